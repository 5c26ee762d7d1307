//! The HTTPS server: hyper 1 on tokio with rustls, serving the admission routes on one port and
//! metrics and health on a plain-HTTP port.
//!
//! Everything is bounded: a connection cap (a semaphore acquired before each accept, so excess
//! clients wait in the kernel's listen backlog), TLS handshake, header-read, request and idle
//! timeouts, a request body limit, and a drain deadline on shutdown, after which remaining
//! connections are dropped.

pub mod conn;
pub mod metrics;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::namespaces::NamespacePolicies;
use routes::{AppState, RouteSet};
use tls::CertStore;

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
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })
        };
        let webhook = bind(config.file.listen).await?;
        let metrics = match config.file.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
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
        let connections = Arc::new(Semaphore::new(config.file.limits.max_connections));
        state.serving.store(true, Ordering::Release);
        tracing::info!(addr = ?webhook.local_addr().ok(), "Serving /mutate and /validate over HTTPS");
        let mut loops = Vec::new();
        loops.push(tokio::spawn(accept_loop(
            webhook,
            Some(acceptor),
            RouteSet::Webhook,
            state.clone(),
            connections.clone(),
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
                connections,
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
