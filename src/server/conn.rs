//! One client connection: TLS handshake (bounded), HTTP/1.1 or HTTP/2 by ALPN, header-read and
//! idle timeouts, and a graceful close when the server drains.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::routes::{self, AppState, RouteSet};

/// An I/O stream that remembers when it last moved bytes, for the idle timeout.
struct ActivityIo<T> {
    inner: T,
    epoch: Instant,
    last_activity_ms: Arc<AtomicU64>,
}

impl<T> ActivityIo<T> {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
    let epoch = Instant::now();
    let last_activity_ms = Arc::new(AtomicU64::new(0));
    let io = ActivityIo {
        inner: io,
        epoch,
        last_activity_ms: last_activity_ms.clone(),
    };
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
    // Set by the first request: until then the connection must get there within
    // `firstRequestTimeout`. hyper's HTTP/1.1 header timer only starts once hyper-util has told
    // the protocols apart, and HTTP/2 has no header timer, so a client trickling the HTTP/2
    // preface (or sending nothing after the handshake) would otherwise hold its connection slot
    // for as long as it keeps the idle timer reset.
    let requested = Arc::new(AtomicBool::new(false));
    let first_request_deadline = tokio::time::sleep(state.limits.first_request_timeout.0);
    let mut first_request_deadline = std::pin::pin!(first_request_deadline);
    let service_state = state.clone();
    let service_requested = requested.clone();
    let service = service_fn(move |req| {
        service_requested.store(true, Ordering::Relaxed);
        routes::handle(service_state.clone(), routes, req)
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
                if !requested.load(Ordering::Relaxed) {
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
                let last = Duration::from_millis(last_activity_ms.load(Ordering::Relaxed));
                if epoch.elapsed().saturating_sub(last) >= idle_timeout {
                    tracing::debug!("Closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}
