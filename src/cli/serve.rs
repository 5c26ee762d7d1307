//! `pod-hardener serve`: load and validate the configuration, choose the namespace policy source,
//! and run the HTTPS server until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::certs::{self, CertRequest};
use crate::config::{Config, ConfigError, ConfigFile, LogFormat, NamespaceSource};
use crate::namespaces::{ClusterCache, NamespacePolicies};
use crate::server::{BoundServer, ServerError, tls};

/// `serve` arguments. Each flag overrides the config file; each has an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (YAML); without it, the documented defaults.
    #[arg(long, env = "POD_HARDENER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTTPS address for /mutate and /validate.
    #[arg(long, env = "POD_HARDENER_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Plain-HTTP address for /metrics, /healthz, /readyz.
    #[arg(long, env = "POD_HARDENER_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain.
    #[arg(long, env = "POD_HARDENER_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "POD_HARDENER_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "POD_HARDENER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `pod_hardener=debug`.
    #[arg(long, env = "POD_HARDENER_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Development mode: a throw-away certificate for localhost, listening on 127.0.0.1, the
    /// static default policy for every namespace.
    #[arg(long)]
    pub dev: bool,
    /// Where development mode writes its certificate.
    #[arg(long, env = "POD_HARDENER_DEV_DIR", value_name = "DIR")]
    pub dev_dir: Option<PathBuf>,
}

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server could not start.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The development certificate could not be made.
    #[error("development certificate: {0}")]
    DevCerts(#[from] certs::CertsError),
    /// `namespaceSource: cluster` and no cluster is reachable.
    #[error("namespaceSource is cluster, but no cluster is reachable: {0}")]
    NoCluster(#[source] ClusterUnreachable),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

impl ServeArgs {
    /// The configuration: file, then flags and environment on top, then validation.
    pub fn config(&self) -> Result<ConfigFile, ConfigError> {
        let mut file = match &self.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        if self.dev {
            file.listen = SocketAddr::from(([127, 0, 0, 1], 8443));
            file.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 9090)));
            file.namespace_source = NamespaceSource::Static;
        }
        if let Some(addr) = self.listen {
            file.listen = addr;
        }
        if let Some(addr) = self.metrics_listen {
            file.metrics_listen = Some(addr);
        }
        if let Some(p) = &self.tls_cert {
            file.tls.cert_file = p.clone();
        }
        if let Some(p) = &self.tls_key {
            file.tls.key_file = p.clone();
        }
        if let Some(f) = self.log_format {
            file.log.format = f;
        }
        if let Some(l) = &self.log_level {
            file.log.level = l.clone();
        }
        Ok(file)
    }
}

/// Initializes logging from the configuration.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second initialization (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Writes the development certificate and points the config at it.
fn prepare_dev_certs(file: &mut ConfigFile, dir: Option<&PathBuf>) -> Result<PathBuf, ServeError> {
    let dir = dir
        .cloned()
        .unwrap_or_else(|| std::env::temp_dir().join("pod-hardener-dev"));
    let mut req = CertRequest::new("pod-hardener", "pod-hardener");
    req.extra_dns.push("localhost".into());
    req.extra_ips.extend(
        ["127.0.0.1".parse::<std::net::IpAddr>(), "::1".parse()]
            .into_iter()
            .flatten(),
    );
    req.validity_days = 30;
    let written = certs::write_files(&certs::generate(&req)?, &dir)?;
    file.tls.cert_file = written.cert;
    file.tls.key_file = written.key;
    Ok(written.ca_cert)
}

/// The namespace policies, and the cluster client they watch with when a cluster is used.
async fn namespace_policies(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<(NamespacePolicies, Option<kube::Client>), ServeError> {
    let fixed = || {
        let d = config.defaults;
        tracing::info!(
            enforce = %d.enforce, warn = %d.warn, audit = %d.audit, mode = d.mode.as_str(),
            "No cluster: every namespace gets the static default policy"
        );
        NamespacePolicies::fixed(&config.defaults)
    };
    let source = config.namespace_source;
    if source == NamespaceSource::Static {
        return Ok((fixed(), None));
    }
    let client = match reachable_client().await {
        Ok(client) => client,
        Err(why) if source == NamespaceSource::Auto => {
            tracing::info!(reason = %why, "No cluster reachable");
            return Ok((fixed(), None));
        }
        Err(why) => return Err(ServeError::NoCluster(why)),
    };
    tracing::info!("Watching namespace labels");
    let cache = ClusterCache::start(
        client.clone(),
        config.defaults,
        config.namespace_lookup_timeout,
        shutdown.clone(),
    );
    Ok((NamespacePolicies::Cluster(cache), Some(client)))
}

/// How long the API server has to answer the start-up version request.
const CLUSTER_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no cluster could be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterUnreachable {
    /// Neither in-cluster configuration nor a kubeconfig was found or usable.
    #[error(transparent)]
    Config(#[from] kube::config::InferConfigError),
    /// The client could not be built, or the API server answered with an error.
    #[error(transparent)]
    Client(#[from] kube::Error),
    /// The API server did not answer in time.
    #[error("the API server did not answer within {0:?}")]
    NoAnswer(Duration),
}

/// A client for the cluster (in-cluster or KUBECONFIG) that answered a version request.
async fn reachable_client() -> Result<kube::Client, ClusterUnreachable> {
    let config = kube::Config::infer().await?;
    let client = kube::Client::try_from(config)?;
    match tokio::time::timeout(CLUSTER_PROBE_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ClusterUnreachable::NoAnswer(CLUSTER_PROBE_TIMEOUT)),
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: &ServeArgs) -> Result<(), ServeError> {
    tls::install_crypto_provider();
    let mut file = args.config()?;
    init_logging(file.log.format, &file.log.level);
    let dev_ca = if args.dev {
        Some(prepare_dev_certs(&mut file, args.dev_dir.as_ref())?)
    } else {
        None
    };
    let config = file.validate()?;
    let shutdown = CancellationToken::new();
    // The namespace watch outlives the signal: the server goes on deciding reviews during its
    // drain grace, with labels kept current.
    let stopped = CancellationToken::new();
    let (namespaces, cluster) = namespace_policies(&config, &stopped).await?;
    let server = BoundServer::bind(config, namespaces).await?;
    if let Some(images) = &server.state().images
        && images.settings().pod_pull_secrets
    {
        match cluster {
            Some(client) => {
                images.read_pull_secrets_with(client);
                tracing::info!("Image lookups offer the credentials of Pods' imagePullSecrets");
            }
            None => tracing::warn!(
                "images.podPullSecrets is on, but no cluster is used: Pods' imagePullSecrets are not read"
            ),
        }
    }
    if let (Some(ca), Ok(addr)) = (dev_ca, server.webhook_addr()) {
        tracing::info!(ca = %ca.display(), "Development mode: throw-away certificate for localhost");
        eprintln!(
            "\nTry it:\n  curl --cacert {} -H 'Content-Type: application/json' --data @examples/admission-review.json https://{addr}/mutate\n",
            ca.display()
        );
    }
    let signal_token = shutdown.clone();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServeError::Signals)?;
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM: draining"),
            _ = tokio::signal::ctrl_c() => tracing::info!("Interrupted: draining"),
        }
        signal_token.cancel();
    });
    server.run(shutdown).await;
    stopped.cancel();
    Ok(())
}
