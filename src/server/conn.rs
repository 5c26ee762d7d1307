//! One client connection: TLS handshake (bounded), HTTP/1.1 or HTTP/2 by ALPN, a first-request
//! deadline, header-read and idle timeouts (idleness counts requests, not bytes), and a graceful
//! close when the server drains.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::routes::{self, AppState, RouteSet};

/// When a connection last had a request, and how many it has in flight: the idle timeout counts
/// requests, not bytes, so HTTP/2 PINGs or a trickled frame cannot keep a connection that asks
/// nothing from ever idling out.
struct RequestActivity {
    epoch: Instant,
    /// Milliseconds after `epoch` when a request last started or finished.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Whether any request has arrived (the first-request deadline).
    any: AtomicBool,
}

impl RequestActivity {
    fn new() -> Self {
        RequestActivity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            any: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Marks a request in flight until the guard is dropped (answered, or abandoned with its
    /// connection).
    fn start(self: &Arc<Self>) -> InFlight {
        self.any.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(last))
    }
}

struct InFlight(Arc<RequestActivity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one accepted TCP connection until it closes, idles out, or the server drains.
pub(crate) async fn serve(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<TlsAcceptor>,
    routes: RouteSet,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) {
    let limits = &state.limits;
    match tls {
        Some(acceptor) => {
            let handshake = tokio::time::timeout(limits.handshake_timeout.0, acceptor.accept(tcp));
            // Shutdown first: a connection accepted just before shutdown must not complete a
            // handshake after it (a TLS 1.3 client sees the handshake done after one server
            // flight, then a reset).
            let stream = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                r = handshake => r,
            };
            match stream {
                Ok(Ok(stream)) => serve_http(stream, routes, state, shutdown).await,
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
        None => serve_http(tcp, routes, state, shutdown).await,
    }
}

async fn serve_http<T>(io: T, routes: RouteSet, state: Arc<AppState>, shutdown: CancellationToken)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(RequestActivity::new());
    let idle_timeout = state.limits.idle_timeout.0;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(state.limits.header_read_timeout.0);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128);
    // Until its first request the connection must get there within `firstRequestTimeout`:
    // hyper's HTTP/1.1 header timer only starts once hyper-util has told the protocols apart, and
    // HTTP/2 has no header timer, so a client trickling the HTTP/2 preface (or sending nothing
    // after the handshake) would otherwise hold its connection slot.
    let first_request_deadline = tokio::time::sleep(state.limits.first_request_timeout.0);
    let mut first_request_deadline = std::pin::pin!(first_request_deadline);
    let service_state = state.clone();
    let service_activity = activity.clone();
    let service = service_fn(move |req| {
        let in_flight = service_activity.start();
        let answer = routes::handle(service_state.clone(), routes, req);
        async move {
            let answer = answer.await;
            drop(in_flight);
            answer
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    // Check for idleness a few times per timeout: cheap, and closes idle connections within
    // 125% of the limit.
    let check_every = (idle_timeout / 4).max(Duration::from_millis(50));
    let mut awaiting_first_request = true;
    loop {
        tokio::select! {
            () = first_request_deadline.as_mut(), if awaiting_first_request => {
                awaiting_first_request = false;
                if !activity.any.load(Ordering::Relaxed) {
                    // Nothing is in flight: dropping the connection closes it.
                    tracing::debug!("Closing a connection that sent no request in time");
                    return;
                }
            }
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "Connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep(check_every), if !closing => {
                if activity.idle_for().is_some_and(|idle| idle >= idle_timeout) {
                    tracing::debug!("Closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}
