//! The serving certificate: loaded from PEM files, served through a resolver so it can be
//! swapped without a restart, and reloaded by polling the files (Secret volumes replace files by
//! swapping a symlink, which file-change notifications on the paths miss). A new pair that does
//! not load is reported and the old one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate pair could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{path} contains no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PEM block is malformed.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the pair (unsupported key, key not matching the certificate).
    #[error("certificate and key are not a usable pair: {0}")]
    Pair(#[source] rustls::Error),
    /// No crypto provider is installed.
    #[error("no rustls crypto provider is installed")]
    NoProvider,
}

/// The PEM bytes of a pair, to tell whether the files changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PemPair {
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses a PEM certificate chain and key into a rustls `CertifiedKey`.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert_path.to_owned(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem {
        path: key_path.to_owned(),
        message: e.to_string(),
    })?;
    let provider = rustls::crypto::CryptoProvider::get_default().ok_or(TlsError::NoProvider)?;
    CertifiedKey::from_der(chain, key, provider).map_err(TlsError::Pair)
}

/// The current certificate, shared by every handshake.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, PemPair)>,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The files are unchanged.
    Unchanged,
    /// A new pair was loaded.
    Reloaded,
    /// The files changed but did not load; the old pair stays.
    Failed,
}

impl CertStore {
    /// Loads the pair; fails when it does not load (startup must not serve without one).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let pem = PemPair {
            cert: read(cert_path)?,
            key: read(key_path)?,
        };
        let key = certified_key(&pem.cert, &pem.key, cert_path, key_path)?;
        Ok(CertStore {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new((Arc::new(key), pem)),
        })
    }

    /// Compares the files with the loaded pair and swaps in a changed pair that loads.
    pub fn reload(&self) -> ReloadOutcome {
        let pem = match (read(&self.cert_path), read(&self.key_path)) {
            (Ok(cert), Ok(key)) => PemPair { cert, key },
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(%error, "Cannot read the certificate files; keeping the loaded certificate");
                return ReloadOutcome::Failed;
            }
        };
        if self.current.read().unwrap_or_else(|e| e.into_inner()).1 == pem {
            return ReloadOutcome::Unchanged;
        }
        match certified_key(&pem.cert, &pem.key, &self.cert_path, &self.key_path) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (Arc::new(key), pem);
                tracing::info!(cert = %self.cert_path.display(), "Reloaded the serving certificate");
                ReloadOutcome::Reloaded
            }
            Err(error) => {
                // A half-written rotation (new certificate, old key) lands here; the next poll
                // sees the finished pair.
                tracing::warn!(%error, "The new certificate files do not load; keeping the loaded certificate");
                ReloadOutcome::Failed
            }
        }
    }

    /// Polls the files every `interval` until `shutdown`, reporting each outcome to `on_reload`.
    pub async fn watch(
        self: Arc<Self>,
        interval: Duration,
        shutdown: tokio_util::sync::CancellationToken,
        on_reload: impl Fn(ReloadOutcome) + Send + 'static,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let store = self.clone();
                    // File reads are blocking I/O: keep them off the async workers.
                    let outcome = tokio::task::spawn_blocking(move || store.reload()).await.unwrap_or(ReloadOutcome::Failed);
                    on_reload(outcome);
                }
                () = shutdown.cancelled() => return,
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .clone(),
        )
    }
}

/// The server's TLS configuration: TLS 1.2 and 1.3 with rustls' default (strong) suites, no
/// client authentication, ALPN h2 and http/1.1, certificates from `store`.
pub fn server_config(store: Arc<CertStore>) -> Result<rustls::ServerConfig, TlsError> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .ok_or(TlsError::NoProvider)?
        .clone();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Pair)?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Installs the process-wide crypto provider (ring) once; later calls do nothing.
pub fn install_crypto_provider() {
    // An error means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
