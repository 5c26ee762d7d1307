//! The HTTPS server: hyper 1 on tokio with rustls, serving the admission routes on one port and
//! metrics and health on a plain-HTTP port.
//!
//! Everything is bounded: a connection cap (a semaphore acquired before each accept, so excess
//! clients wait in the kernel's listen backlog of [`LISTEN_BACKLOG`]), TLS handshake, header-read,
//! request and idle timeouts, a request body limit, and a drain deadline on shutdown, after which
//! remaining connections are dropped. The metrics port has its own small cap
//! ([`METRICS_MAX_CONNECTIONS`]), so a webhook port at its cap never starves the kubelet's probes.

pub mod conn;
pub mod metrics;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::namespaces::NamespacePolicies;
use routes::{AppState, RouteSet};
use tls::CertStore;

/// The listen backlog of both ports: clients over the connection cap wait here, in order. The
/// kernel caps it at `net.core.somaxconn` (4096 by default since Linux 5.4). tokio's own
/// `TcpListener::bind` uses 128, and a connection that finds the backlog full has its SYN-ACK
/// retransmitted with exponential backoff (1 s, 2 s, 4 s, ...): it is then served seconds late
/// and out of order, past the API server's timeout, while later clients go first.
pub const LISTEN_BACKLOG: u32 = 1024;

/// The connection cap of the plain-HTTP metrics port (the kubelet's probes and Prometheus need a
/// handful), separate from `limits.maxConnections` of the webhook port so that neither port can
/// take the other's connections.
pub const METRICS_MAX_CONNECTIONS: usize = 64;

/// Binds `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as tokio's own `bind` sets it).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The certificate did not load.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A server with its certificate loaded and its ports bound, ready to run.
pub struct BoundServer {
    webhook: TcpListener,
    metrics: Option<TcpListener>,
    acceptor: TlsAcceptor,
    store: Arc<CertStore>,
    state: Arc<AppState>,
    config: Config,
}

impl BoundServer {
    /// Loads the certificate and binds the listeners (the certificate first, so a bad one fails
    /// before a port is taken).
    pub async fn bind(config: Config, namespaces: NamespacePolicies) -> Result<Self, ServerError> {
        let store = Arc::new(CertStore::load(
            &config.file.tls.cert_file,
            &config.file.tls.key_file,
        )?);
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(store.clone())?));
        let bind =
            |addr: SocketAddr| listen(addr).map_err(|source| ServerError::Bind { addr, source });
        let webhook = bind(config.file.listen)?;
        let metrics = match config.file.metrics_listen {
            Some(addr) => Some(bind(addr)?),
            None => None,
        };
        let state = Arc::new(AppState {
            limits: config.file.limits.clone(),
            admission: config.admission.clone(),
            namespaces,
            metrics: metrics::Metrics::default(),
            serving: Default::default(),
        });
        Ok(BoundServer {
            webhook,
            metrics,
            acceptor,
            store,
            state,
            config,
        })
    }

    /// The HTTPS address actually bound (useful with port 0).
    pub fn webhook_addr(&self) -> std::io::Result<SocketAddr> {
        self.webhook.local_addr()
    }

    /// The metrics address actually bound, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The shared state (metrics included).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight requests finish
    /// within the drain deadline, drops the connections still open at the deadline, and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let BoundServer {
            webhook,
            metrics,
            acceptor,
            store,
            state,
            config,
        } = self;
        let tracker = TaskTracker::new();
        let reload_state = state.clone();
        tracker.spawn(store.watch(
            config.file.tls.reload_interval.0,
            shutdown.clone(),
            move |outcome| {
                reload_state.metrics.record_reload(outcome);
            },
        ));
        // Cancelled at the drain deadline: the connections still open are dropped.
        let abort = CancellationToken::new();
        let stages = Stages {
            drain: shutdown.clone(),
            abort: abort.clone(),
        };
        // One cap per port: each accept loop holds a permit while it waits for a client, and a
        // shared cap let the metrics port's waiting permit (and its connections) take the
        // webhook's, and a full webhook port starve the probes.
        let connections = Arc::new(Semaphore::new(config.file.limits.max_connections));
        let metrics_connections = Arc::new(Semaphore::new(METRICS_MAX_CONNECTIONS));
        state.serving.store(true, Ordering::Release);
        tracing::info!(addr = ?webhook.local_addr().ok(), "Serving /mutate and /validate over HTTPS");
        let mut loops = Vec::new();
        loops.push(tokio::spawn(accept_loop(
            webhook,
            Some(acceptor),
            RouteSet::Webhook,
            state.clone(),
            connections,
            tracker.clone(),
            stages.clone(),
        )));
        if let Some(listener) = metrics {
            tracing::info!(addr = ?listener.local_addr().ok(), "Serving /metrics, /healthz and /readyz over HTTP");
            loops.push(tokio::spawn(accept_loop(
                listener,
                None,
                RouteSet::Metrics,
                state.clone(),
                metrics_connections,
                tracker.clone(),
                stages,
            )));
        }
        for handle in loops {
            // The accept loops end at shutdown, dropping (closing) their listeners.
            let _ = handle.await;
        }
        state.serving.store(false, Ordering::Release);
        tracker.close();
        let drain = config.file.limits.drain_timeout.0;
        tracing::info!(connections = tracker.len(), deadline = ?drain, "Draining connections");
        if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
            tracing::warn!(
                remaining = tracker.len(),
                "Drain deadline reached; closing the remaining connections"
            );
            abort.cancel();
            // Each connection task drops its connection at its next poll.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tracker.wait()).await;
        } else {
            tracing::info!("All connections drained");
        }
    }
}

/// The two stages of a shutdown.
#[derive(Clone)]
struct Stages {
    /// Cancelled to stop accepting and close connections gracefully.
    drain: CancellationToken,
    /// Cancelled at the drain deadline to drop the connections still open.
    abort: CancellationToken,
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    routes: RouteSet,
    state: Arc<AppState>,
    connections: Arc<Semaphore>,
    tracker: TaskTracker,
    stages: Stages,
) {
    let shutdown = stages.drain;
    loop {
        // `biased`, shutdown first: once shutdown is signalled, no further connection is taken
        // from the backlog, even one that is already waiting.
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (tcp, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(error) => {
                    // Usually EMFILE: back off briefly instead of spinning.
                    tracing::warn!(%error, "Failed to accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        let abort = stages.abort.clone();
        tracker.spawn(async move {
            state.metrics.connection_opened();
            tokio::select! {
                () = conn::serve(tcp, peer, tls, routes, state.clone(), shutdown) => {}
                () = abort.cancelled() => {}
            }
            state.metrics.connection_closed();
            drop(permit);
        });
    }
}
