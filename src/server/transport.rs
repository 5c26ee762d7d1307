//! The transport: listeners, their accept loops and connection caps, TLS, HTTP/1.1 and HTTP/2,
//! and the staged drain of every connection (an optional grace while still serving, a graceful
//! close, then a deadline). It serves any hyper service and knows nothing of
//! admission: the webhook routes are one service, the metrics routes another, a test's echo a
//! third (`tests/server_transport.rs`).
//!
//! Each listener has its own cap (a semaphore acquired before each accept, so excess clients
//! wait in the kernel's listen backlog of [`LISTEN_BACKLOG`]) and its own [`TransportLimits`].
//! Each connection runs in a `conn` span carrying the client's address, and so does every task
//! the connection spawns (HTTP/2 runs each stream as a task), so a request's log lines name the
//! client that sent it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::conn;

/// The listen backlog of every listener: clients over the connection cap wait here, in order.
/// The kernel caps it at `net.core.somaxconn` (4096 by default since Linux 5.4). tokio's own
/// `TcpListener::bind` uses 128, and a connection that finds the backlog full has its SYN-ACK
/// retransmitted with exponential backoff (1 s, 2 s, 4 s, ...): it is then served seconds late
/// and out of order, past the API server's timeout, while later clients go first.
pub const LISTEN_BACKLOG: u32 = 1024;

/// What one listener's connections may take: how many at once, and how long each may wait for
/// the peer at each stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportLimits {
    /// Most open connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// Deadline to receive a request's headers (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// After the TLS handshake, deadline for the connection's first request (HTTP/2: preface,
    /// settings and the first HEADERS frame).
    pub first_request_timeout: Duration,
    /// A connection with no request started or in flight for this long is closed.
    pub idle_timeout: Duration,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A hyper service the transport can serve: what hyper needs of a service and its bodies to run
/// it on a multi-threaded runtime, and `Clone`, so that each connection gets its own.
pub trait ConnectionService:
    Service<
        Request<Incoming>,
        Response = Response<Self::ResponseBody>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + Sync
    + 'static
{
    /// The body of its responses.
    type ResponseBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> ConnectionService for S
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
{
    type ResponseBody = B;
}

/// Told when a connection opens and closes (a gauge, a log).
pub trait ConnectionObserver: Send + Sync + 'static {
    /// A connection was accepted (before its TLS handshake).
    fn opened(&self);
    /// It closed, for whatever reason.
    fn closed(&self);
}

/// Observes nothing.
impl ConnectionObserver for () {
    fn opened(&self) {}
    fn closed(&self) {}
}

/// A bound port, with its TLS (if any) and limits.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: TransportLimits,
}

impl Listener {
    /// Binds `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as tokio's own `bind` sets it);
    /// `tls: None` serves plain HTTP.
    pub fn bind(
        addr: SocketAddr,
        tls: Option<TlsAcceptor>,
        limits: TransportLimits,
    ) -> std::io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        Ok(Listener {
            tcp: socket.listen(LISTEN_BACKLOG)?,
            tls,
            limits,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// The connections of every listener of one server, drained together, in stages:
/// - `draining` (the drain grace): the listeners go on accepting and every connection goes on
///   serving, but HTTP/1.1 answers carry `Connection: close` and HTTP/2 connections get GOAWAY,
///   so clients move to other replicas without a request ever meeting a closed connection;
/// - `closing`: the accept loops stop (closing the listeners) and connections close gracefully
///   (idle ones at once, busy ones after their answers);
/// - `abort` (at the drain deadline of [`Connections::drain`]): the rest are dropped.
pub struct Connections {
    tracker: TaskTracker,
    draining: CancellationToken,
    closing: CancellationToken,
    abort: CancellationToken,
}

impl Connections {
    /// Connections that close (gracefully) when `shutdown` is cancelled: no grace.
    pub fn new(shutdown: CancellationToken) -> Self {
        Connections::with_grace(shutdown.clone(), shutdown)
    }

    /// Connections that start draining when `draining` is cancelled and close when `closing` is;
    /// the caller cancels `closing` when the grace is over.
    pub fn with_grace(draining: CancellationToken, closing: CancellationToken) -> Self {
        Connections {
            tracker: TaskTracker::new(),
            draining,
            closing,
            abort: CancellationToken::new(),
        }
    }

    /// Spawns the accept loop of `listener`, serving each connection with a clone of `service`
    /// until closing; the handle ends when the loop has stopped accepting (and dropped, so
    /// closed, the listener).
    pub fn serve(
        &self,
        listener: Listener,
        service: impl ConnectionService,
        observer: Arc<dyn ConnectionObserver>,
    ) -> JoinHandle<()> {
        let accept = AcceptLoop {
            listener,
            tracker: self.tracker.clone(),
            draining: self.draining.clone(),
            closing: self.closing.clone(),
            abort: self.abort.clone(),
            observer,
        };
        tokio::spawn(accept.run(service))
    }

    /// Connections open now, on every listener.
    pub fn open(&self) -> usize {
        self.tracker.len()
    }

    /// Once closing: lets in-flight requests finish within `deadline`, then drops the
    /// connections still open.
    pub async fn drain(self, deadline: Duration) {
        self.tracker.close();
        tracing::info!(connections = self.tracker.len(), deadline = ?deadline, "Draining connections");
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.tracker.len(),
                "Drain deadline reached; closing the remaining connections"
            );
            self.abort.cancel();
            // Each connection task drops its connection at its next poll.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.tracker.wait()).await;
        } else {
            tracing::info!("All connections drained");
        }
    }
}

struct AcceptLoop {
    listener: Listener,
    tracker: TaskTracker,
    draining: CancellationToken,
    closing: CancellationToken,
    abort: CancellationToken,
    observer: Arc<dyn ConnectionObserver>,
}

impl AcceptLoop {
    async fn run(self, service: impl ConnectionService) {
        let Listener { tcp, tls, limits } = self.listener;
        // One cap per listener: each accept loop holds a permit while it waits for a client, so
        // a shared cap would let one port's waiting permit (and its connections) take the
        // other's, and a full webhook port starve the probes.
        let connections = Arc::new(Semaphore::new(limits.max_connections));
        loop {
            // `biased`, closing first: once the listeners close, no further connection is
            // taken from the backlog, even one that is already waiting. During the drain grace
            // they are: the API server may still dial this replica until its endpoint is gone.
            let permit = tokio::select! {
                biased;
                () = self.closing.cancelled() => return,
                p = connections.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (stream, peer) = tokio::select! {
                biased;
                () = self.closing.cancelled() => return,
                r = tcp.accept() => match r {
                    Ok(conn) => conn,
                    Err(error) => {
                        // Usually EMFILE: back off briefly instead of spinning.
                        tracing::warn!(%error, "Failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let connection = conn::Connection {
                tls: tls.clone(),
                limits,
                draining: self.draining.clone(),
                closing: self.closing.clone(),
            };
            let service = service.clone();
            let abort = self.abort.clone();
            let observer = self.observer.clone();
            self.tracker.spawn(
                async move {
                    observer.opened();
                    tokio::select! {
                        () = connection.serve(stream, service) => {}
                        () = abort.cancelled() => {}
                    }
                    observer.closed();
                    drop(permit);
                }
                .instrument(tracing::info_span!("conn", client = %peer)),
            );
        }
    }
}

/// Runs the futures hyper spawns (HTTP/2 streams, above all) inside the span they were spawned
/// from, the connection's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InSpanExecutor;

impl<F> hyper::rt::Executor<F> for InSpanExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut.in_current_span());
    }
}
