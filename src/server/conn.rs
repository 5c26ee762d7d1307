//! One client connection: TLS handshake (bounded), HTTP/1.1 or HTTP/2 by ALPN, a first-request
//! deadline, header-read and idle timeouts (idleness counts requests, not bytes), and a graceful
//! close when the server drains, in two steps: while draining (the drain grace), the connection
//! goes on serving, but every HTTP/1.1 answer carries `Connection: close` and HTTP/2 gets GOAWAY,
//! so the client itself stops using it; once closing, what is left closes gracefully.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::header::{CONNECTION, HeaderValue};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::transport::{ConnectionService, InSpanExecutor, TransportLimits};

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

/// How one accepted connection is served: its TLS (if any), its limits, and the server's drain.
pub(crate) struct Connection {
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) limits: TransportLimits,
    /// Cancelled when the drain grace starts: answers ask the client to close the connection.
    pub(crate) draining: CancellationToken,
    /// Cancelled when the grace ends: the connection closes once its requests are answered.
    pub(crate) closing: CancellationToken,
}

/// How often a draining HTTP/2 connection that has not had a request yet checks whether one
/// has started: its GOAWAY waits for the first request, since a connection still reading the
/// preface can only be dropped, which its client would see as an error.
const GOAWAY_CHECK: Duration = Duration::from_millis(50);

/// The HTTP/2 flow-control window of each stream: the most body bytes a stream can have
/// received and not yet read (the protocol's default window, which Go's clients use).
const HTTP2_STREAM_WINDOW_BYTES: u32 = 64 * 1024;

/// The HTTP/2 window of a whole connection: room for every stream's window and one more. A
/// request waiting for its share of the body budget leaves its body unread, and unread bytes
/// hold the connection's window; were it smaller than its streams' windows together (hyper's
/// default is 1 MiB for each), the waiting streams could take all of it, and the streams that
/// hold a share could then never receive the rest of their bodies: each side waiting for the
/// other until the request timeout. It is also the most unread body bytes a connection holds.
fn http2_connection_window(max_concurrent_streams: u32) -> u32 {
    max_concurrent_streams
        .saturating_add(1)
        .saturating_mul(HTTP2_STREAM_WINDOW_BYTES)
        // The protocol's largest window.
        .min(i32::MAX as u32)
}

impl Connection {
    /// Serves `tcp` with `service` until it closes, idles out, or the server drains.
    pub(crate) async fn serve(self, tcp: TcpStream, service: impl ConnectionService) {
        let Some(acceptor) = self.tls.clone() else {
            // Plain HTTP: the protocol is not known before the first bytes; HTTP/2 with prior
            // knowledge (no port here expects it) then gets its GOAWAY when the grace ends.
            return self.serve_http(tcp, service, false).await;
        };
        let handshake = tokio::time::timeout(self.limits.handshake_timeout, acceptor.accept(tcp));
        // Closing first: a connection accepted just before the listeners close must not complete
        // a handshake after it (a TLS 1.3 client sees the handshake done after one server
        // flight, then a reset). During the drain grace handshakes complete: the API server may
        // still dial this replica until it sees the endpoint go.
        let stream = tokio::select! {
            biased;
            () = self.closing.cancelled() => return,
            r = handshake => r,
        };
        match stream {
            Ok(Ok(stream)) => {
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                self.serve_http(stream, service, h2).await;
            }
            Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake timed out"),
        }
    }

    /// Serves one connection; `h2`: HTTP/2 was negotiated by ALPN.
    async fn serve_http<T>(self, io: T, service: impl ConnectionService, h2: bool)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let limits = self.limits;
        let draining = self.draining;
        let closing_token = self.closing;
        let activity = Arc::new(RequestActivity::new());
        let idle_timeout = limits.idle_timeout;
        let mut builder = auto::Builder::new(InSpanExecutor);
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .initial_stream_window_size(HTTP2_STREAM_WINDOW_BYTES)
            .initial_connection_window_size(http2_connection_window(limits.max_concurrent_streams));
        // Until its first request the connection must get there within `firstRequestTimeout`:
        // hyper's HTTP/1.1 header timer only starts once hyper-util has told the protocols
        // apart, and HTTP/2 has no header timer, so a client trickling the HTTP/2 preface (or
        // sending nothing after the handshake) would otherwise hold its connection slot.
        let first_request_deadline = tokio::time::sleep(limits.first_request_timeout);
        let mut first_request_deadline = std::pin::pin!(first_request_deadline);
        let service_activity = activity.clone();
        let service_draining = draining.clone();
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let in_flight = service_activity.start();
            let http1 = req.version() < hyper::Version::HTTP_2;
            let answer = service.call(req);
            let draining = service_draining.clone();
            async move {
                let mut answer = answer.await;
                // While draining, an HTTP/1.1 client is told to close the connection after this
                // answer, so it never sends another request on a connection the server is about
                // to close (a POST written onto a closing connection fails, and Go's client, the
                // API server's, does not retry a POST). Decided when the answer is ready, so a
                // request that was in flight when the grace started closes its connection too.
                if http1
                    && draining.is_cancelled()
                    && let Ok(rsp) = answer.as_mut()
                {
                    rsp.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
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
        // Whether the drain grace has been seen, and whether an HTTP/2 GOAWAY waits for the
        // connection's first request.
        let mut draining_seen = false;
        let mut goaway_pending = false;
        loop {
            if goaway_pending && !closing && activity.any.load(Ordering::Relaxed) {
                // GOAWAY: the client opens a new connection for further requests (to another
                // replica once the endpoint is gone) and retries any stream the server did not
                // take; the streams in flight finish here.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
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
                () = draining.cancelled(), if !draining_seen => {
                    draining_seen = true;
                    // HTTP/1.1 has no way to tell an idle client to go: its connection stays
                    // open, answering with `Connection: close` (above), until the grace ends.
                    goaway_pending = h2;
                }
                () = tokio::time::sleep(GOAWAY_CHECK), if goaway_pending && !closing => {}
                () = closing_token.cancelled(), if !closing => {
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
}
