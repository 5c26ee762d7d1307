//! The HTTPS server: hyper 1 on tokio with rustls, serving the admission routes on one port and
//! metrics and health on a plain-HTTP port.
//!
//! The transport ([`transport`] and its per-connection half, `conn`) serves any hyper service,
//! one per listener, and knows nothing of admission; [`routes`] is the service of both ports here. Everything is bounded: a
//! connection cap per port, TLS handshake, header-read, first-request, request and idle
//! timeouts, HTTP/2 streams per connection, a request body limit, a process-wide budget for
//! request bodies in flight ([`budget`]), and on shutdown an optional drain grace (still
//! serving, telling clients to go: see [`transport::Connections`]) then a drain deadline, after
//! which remaining connections are dropped. The metrics port has its own small cap
//! ([`METRICS_MAX_CONNECTIONS`]), so a webhook port at its cap never starves the kubelet's probes.

pub mod budget;
mod conn;
pub mod metrics;
pub mod routes;
pub mod tls;
pub mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::namespaces::NamespacePolicies;
use routes::{AppState, RouteSet, Routes};
use tls::CertStore;
pub use transport::LISTEN_BACKLOG;
use transport::{ConnectionObserver, Connections, Listener, TransportLimits};

/// The connection cap of the plain-HTTP metrics port (the kubelet's probes and Prometheus need a
/// handful), separate from `limits.maxConnections` of the webhook port so that neither port can
/// take the other's connections.
pub const METRICS_MAX_CONNECTIONS: usize = 64;

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
    /// The image lookups' TLS settings are unusable (a CA file, most often).
    #[error("images: {0}")]
    ImageLookups(#[source] crate::registry::client::ClientError),
}

/// A server with its certificate loaded and its ports bound, ready to run.
pub struct BoundServer {
    webhook: Listener,
    metrics: Option<Listener>,
    store: Arc<CertStore>,
    reload_interval: Duration,
    drain_grace: Duration,
    drain_timeout: Duration,
    state: Arc<AppState>,
}

impl BoundServer {
    /// Loads the certificate and binds the listeners (the certificate first, so a bad one fails
    /// before a port is taken).
    pub async fn bind(config: Config, namespaces: NamespacePolicies) -> Result<Self, ServerError> {
        let Config {
            listen,
            metrics_listen,
            tls,
            transport,
            requests,
            drain_grace,
            drain_timeout,
            admission,
            images,
            ..
        } = config;
        let images = images
            .map(crate::registry::ImageLookups::new)
            .transpose()
            .map_err(ServerError::ImageLookups)?;
        let store = Arc::new(CertStore::load(&tls.cert_file, &tls.key_file)?);
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(store.clone())?));
        let bind = |addr: SocketAddr, tls: Option<TlsAcceptor>, limits: TransportLimits| {
            Listener::bind(addr, tls, limits).map_err(|source| ServerError::Bind { addr, source })
        };
        let webhook = bind(listen, Some(acceptor), transport)?;
        let metrics_limits = TransportLimits {
            max_connections: METRICS_MAX_CONNECTIONS,
            ..transport
        };
        let metrics = match metrics_listen {
            Some(addr) => Some(bind(addr, None, metrics_limits)?),
            None => None,
        };
        Ok(BoundServer {
            webhook,
            metrics,
            store,
            reload_interval: tls.reload_interval.0,
            drain_grace,
            drain_timeout,
            state: Arc::new(AppState::new(requests, admission, namespaces).with_images(images)),
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

    /// The routes' state (metrics included).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` is cancelled; then `/readyz` answers 503 and, for the drain
    /// grace, the server goes on accepting and serving while it tells every client to close its
    /// connection (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY); then it stops accepting, lets
    /// in-flight requests finish within the drain deadline, drops the connections still open at
    /// the deadline, and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let BoundServer {
            webhook,
            metrics,
            store,
            reload_interval,
            drain_grace,
            drain_timeout,
            state,
        } = self;
        // Cancelled when the grace is over: the listeners close and connections with them.
        let closing = CancellationToken::new();
        let reload_state = state.clone();
        let reloads = tokio::spawn(
            store.watch(reload_interval, closing.clone(), move |outcome| {
                reload_state.metrics.record_reload(outcome);
            }),
        );
        let connections = Connections::with_grace(shutdown.clone(), closing.clone());
        let observer: Arc<dyn ConnectionObserver> = state.clone();
        state.serving.store(true, Ordering::Release);
        tracing::info!(addr = ?webhook.local_addr().ok(), "Serving /mutate and /validate over HTTPS");
        let mut loops = vec![connections.serve(
            webhook,
            Routes::new(state.clone(), RouteSet::Webhook),
            observer.clone(),
        )];
        if let Some(listener) = metrics {
            tracing::info!(addr = ?listener.local_addr().ok(), "Serving /metrics, /healthz and /readyz over HTTP");
            loops.push(connections.serve(
                listener,
                Routes::new(state.clone(), RouteSet::Metrics),
                observer,
            ));
        }
        shutdown.cancelled().await;
        // Unready at once: the kubelet's probe takes the replica out of the Service's endpoints
        // if its deletion has not already.
        state.serving.store(false, Ordering::Release);
        if !drain_grace.is_zero() {
            tracing::info!(grace = ?drain_grace, connections = connections.open(), "Draining: still serving, asking every client to close its connection");
            tokio::time::sleep(drain_grace).await;
        }
        closing.cancel();
        for handle in loops {
            // The accept loops end when closing, dropping (closing) their listeners.
            let _ = handle.await;
        }
        connections.drain(drain_timeout).await;
        // The watcher ends when closing too; it polls files, so it is done within a poll.
        let _ = tokio::time::timeout(Duration::from_secs(1), reloads).await;
    }
}

/// Connections of both ports count in the open-connections gauge.
impl ConnectionObserver for AppState {
    fn opened(&self) {
        self.metrics.connection_opened();
    }

    fn closed(&self) {
        self.metrics.connection_closed();
    }
}
