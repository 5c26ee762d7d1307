//! One image's lookup: resolve the reference to a manifest for the pod's platform, read its
//! config's user, and for a named user its UID from the topmost layer holding `/etc/passwd`.
//! Each endpoint (mirrors, then the registry) is tried in turn while the failure is one another
//! endpoint may not have.

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use oci_spec::distribution::Reference;
use tokio::time::Instant;

use super::client::{RegistryClient, RequestError, Session, content_type, read_limited};
use super::credentials::{Credential, CredentialsError, Keyring};
use super::manifest::{
    self, Fetched, FormatError, LayerCompression, MANIFEST_ACCEPT, Platform, layer_compression,
};
use super::passwd::{LayerScan, ScanError, ScanLimits, passwd_uid, scan_layer};
use super::pull_secrets::PodKeyrings;
use super::settings::LookupSettings;
use crate::harden::images::{ImageFacts, ImageUser};

/// Why an image's lookup failed: the reason recorded and sent as a warning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The image reference does not parse.
    #[error("invalid image reference: {0}")]
    InvalidReference(String),
    /// A request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The registry sent something unusable.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A layer could not be scanned for `/etc/passwd`.
    #[error("layer {digest}: {source}")]
    Scan {
        /// The layer.
        digest: String,
        /// Why.
        #[source]
        source: ScanError,
    },
    /// A layer is larger than `images.maxLayerBytes`.
    #[error("layer {digest} is {size} bytes, more than images.maxLayerBytes ({max})")]
    LayerTooLarge {
        /// The layer.
        digest: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The credentials file is unusable.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The whole lookup took longer than `images.lookupTimeout`.
    #[error("lookup took longer than images.lookupTimeout ({0:?})")]
    Timeout(std::time::Duration),
    /// The lookup failed, and some of the Pod's pull Secrets gave no credentials.
    #[error("{source} (imagePullSecrets not used: {problems})")]
    PullSecrets {
        /// Why the lookup failed.
        source: Box<LookupError>,
        /// `<name>: <why>` per Secret.
        problems: String,
    },
}

/// Parses an image reference as the container runtime does (Docker Hub's defaults included).
pub fn parse_reference(image: &str) -> Result<Reference, LookupError> {
    image
        .parse::<Reference>()
        .map_err(|e| LookupError::InvalidReference(e.to_string()))
}

/// What a lookup learned, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    /// The facts for the record.
    pub facts: ImageFacts,
    /// The endpoint that answered.
    pub endpoint: String,
}

/// Looks `reference` up for `platform` through every endpoint of its registry in turn, at each
/// with the credentials the kubelet would offer it: the Pod's pull Secrets' (`pod`, in order),
/// then the credentials file's, the next tried when one is refused; anonymously when none has
/// any for the endpoint. `deadline` ends the whole lookup: the caller starts `lookupTimeout`
/// before it reads the Pod's pull Secrets, so that read counts against it too.
pub async fn look_up(
    client: &RegistryClient,
    settings: &LookupSettings,
    reference: &Reference,
    platform: &Platform,
    pod: &PodKeyrings,
    deadline: Instant,
) -> Result<Learned, LookupError> {
    let keyring = match &settings.credentials_file {
        Some(path) => Keyring::load(path)?,
        None => Keyring::default(),
    };
    let registry = reference.registry();
    let mut last_error = None;
    'endpoints: for endpoint in settings.endpoints(registry) {
        let host = endpoint
            .base
            .split_once("://")
            .map_or(endpoint.base.as_str(), |(_, h)| h)
            .to_owned();
        // A mirror gets the mirror's credentials; the registry its own.
        let for_endpoint = |keyring: &Keyring| {
            keyring
                .for_host(&host)
                .or_else(|| keyring.for_host(registry))
                .cloned()
        };
        let mut offers: Vec<(Option<Credential>, Option<String>)> = pod
            .keyrings
            .iter()
            .filter_map(|(name, k)| {
                for_endpoint(k).map(|c| (Some(c), Some(format!("imagePullSecret:{name}"))))
            })
            .collect();
        if let Some(credential) = for_endpoint(&keyring) {
            offers.push((Some(credential), Some("credentialsFile".to_owned())));
        }
        if offers.is_empty() {
            offers.push((None, None));
        }
        let count = offers.len();
        for (tried, (credential, credential_name)) in offers.into_iter().enumerate() {
            let mut session = Session::new(
                client,
                endpoint.base.clone(),
                reference.repository().to_owned(),
                endpoint.mirror_of.as_deref(),
                credential,
                deadline,
            );
            let attempt = tokio::time::timeout_at(
                deadline,
                look_up_at(&mut session, settings, reference, platform, deadline),
            )
            .await
            .unwrap_or(Err(LookupError::Timeout(settings.lookup_timeout)));
            match attempt {
                Ok(mut facts) => {
                    facts.source = host;
                    facts.credential = credential_name;
                    return Ok(Learned {
                        facts,
                        endpoint: endpoint.base,
                    });
                }
                Err(LookupError::Request(e)) if e.refused_credentials() && tried + 1 < count => {
                    tracing::debug!(endpoint = %endpoint.base, error = %e, "Image lookup: trying the next credential");
                    last_error = Some(LookupError::Request(e));
                }
                Err(LookupError::Request(e)) if e.try_next_endpoint() => {
                    tracing::debug!(endpoint = %endpoint.base, error = %e, "Image lookup: trying the next endpoint");
                    last_error = Some(LookupError::Request(e));
                    continue 'endpoints;
                }
                Err(e) => return Err(with_secret_problems(e, pod)),
            }
        }
    }
    let error = last_error.unwrap_or(LookupError::InvalidReference(format!(
        "no endpoint for registry {registry}"
    )));
    Err(with_secret_problems(error, pod))
}

/// A failed lookup's error, with why the Pod's pull Secrets gave no credentials when some did
/// not: the likely reason a private registry refused.
fn with_secret_problems(error: LookupError, pod: &PodKeyrings) -> LookupError {
    if pod.problems.is_empty() {
        return error;
    }
    LookupError::PullSecrets {
        source: Box::new(error),
        problems: pod.problems.join("; "),
    }
}

async fn fetch_manifest(
    session: &mut Session<'_>,
    settings: &LookupSettings,
    what: &'static str,
    reference: &str,
    deadline: Instant,
) -> Result<(Fetched, String), LookupError> {
    let rsp = session
        .get(what, "manifests", reference, MANIFEST_ACCEPT)
        .await?;
    let media_type = content_type(&rsp);
    let header_digest = rsp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_limited(
        what,
        session.endpoint(),
        rsp.into_body(),
        settings.max_manifest_bytes,
        deadline,
    )
    .await?;
    // The digest is always the hash of the bytes read: a digest reference must match it, and a
    // registry's header that disagrees is a registry not to trust.
    let digest = manifest::sha256_digest(&body);
    if reference.starts_with("sha256:") {
        manifest::verify_digest(reference, &body)?;
    } else if let Some(header) = header_digest.filter(|h| h.starts_with("sha256:"))
        && header != digest
    {
        return Err(FormatError::DigestMismatch {
            expected: header,
            actual: digest,
        }
        .into());
    }
    Ok((
        manifest::parse_manifest(media_type.as_deref(), &body)?,
        digest,
    ))
}

async fn look_up_at(
    session: &mut Session<'_>,
    settings: &LookupSettings,
    reference: &Reference,
    platform: &Platform,
    deadline: Instant,
) -> Result<ImageFacts, LookupError> {
    let wanted = reference
        .digest()
        .map(str::to_owned)
        .or_else(|| reference.tag().map(str::to_owned))
        .unwrap_or_else(|| "latest".to_owned());
    if wanted.contains(':') {
        manifest::check_digest(&wanted)?;
    }
    let (fetched, digest) =
        fetch_manifest(session, settings, "manifest", &wanted, deadline).await?;
    let image_manifest = match fetched {
        Fetched::Manifest(m) => m,
        Fetched::Index(index) => {
            let entry = manifest::select_platform(&index, platform)?;
            let entry_digest = entry.digest().to_string();
            manifest::check_digest(&entry_digest)?;
            match fetch_manifest(
                session,
                settings,
                "platform manifest",
                &entry_digest,
                deadline,
            )
            .await?
            {
                (Fetched::Manifest(m), _) => m,
                (Fetched::Index(_), _) => {
                    return Err(FormatError::Malformed {
                        what: "index",
                        message: "an index entry for the platform is itself an index".into(),
                    }
                    .into());
                }
            }
        }
    };
    let config_digest = image_manifest.config().digest().to_string();
    manifest::check_digest(&config_digest)?;
    let rsp = session
        .get("image config", "blobs", &config_digest, "*/*")
        .await?;
    let body = read_limited(
        "image config",
        session.endpoint(),
        rsp.into_body(),
        settings.max_config_bytes,
        deadline,
    )
    .await?;
    manifest::verify_digest(&config_digest, &body)?;
    let user = manifest::config_user(&body)?;
    let passwd_uid = match ImageUser::parse(&user) {
        ImageUser::Name(name) => {
            find_passwd_uid(session, settings, image_manifest.layers(), &name).await?
        }
        ImageUser::Root | ImageUser::Uid(_) => None,
    };
    Ok(ImageFacts {
        digest,
        user,
        passwd_uid,
        ..ImageFacts::default()
    })
}

/// The UID of `name` in the topmost layer's `/etc/passwd`, `None` when no layer has the file
/// (or the one that has it does not list the name).
async fn find_passwd_uid(
    session: &mut Session<'_>,
    settings: &LookupSettings,
    layers: &[oci_spec::image::Descriptor],
    name: &str,
) -> Result<Option<i64>, LookupError> {
    for layer in layers.iter().rev().take(settings.max_layers_scanned) {
        let Some(compression) = layer_compression(layer.media_type()) else {
            continue;
        };
        let digest = layer.digest().to_string();
        manifest::check_digest(&digest)?;
        if layer.size() > settings.max_layer_bytes {
            return Err(LookupError::LayerTooLarge {
                digest,
                size: layer.size(),
                max: settings.max_layer_bytes,
            });
        }
        let rsp = session.get("layer", "blobs", &digest, "*/*").await?;
        let scan = scan_blob(
            rsp.into_body(),
            compression,
            settings.scan,
            settings.max_layer_bytes,
        )
        .await
        .map_err(|source| LookupError::Scan {
            digest: digest.clone(),
            source,
        })?;
        match scan {
            LayerScan::Found(passwd) => return Ok(passwd_uid(&passwd, name)),
            LayerScan::Removed => return Ok(None),
            LayerScan::Absent => {}
        }
    }
    Ok(None)
}

/// A blocking reader over the chunks an async task sends: the tar and decompression crates are
/// synchronous, so the scan runs on a blocking thread while the body is read here. Dropping
/// either side ends the other.
struct ChannelReader {
    chunk: bytes::Bytes,
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// Streams a layer blob into [`scan_layer`], stopping as soon as the scan has its answer, at
/// `max_compressed` bytes, or when the caller's deadline drops this future.
async fn scan_blob(
    body: Incoming,
    compression: LayerCompression,
    limits: ScanLimits,
    max_compressed: u64,
) -> Result<LayerScan, ScanError> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let reader = ChannelReader {
        chunk: bytes::Bytes::new(),
        rx,
    };
    let mut scan = tokio::task::spawn_blocking(move || scan_layer(reader, compression, &limits));
    let pump = async move {
        let mut body = body;
        let mut sent: u64 = 0;
        while let Some(frame) = body.frame().await {
            let chunk = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => Ok(data),
                    Err(_) => continue,
                },
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            if let Ok(data) = &chunk {
                sent += data.len() as u64;
            }
            let over = sent > max_compressed;
            let failed = chunk.is_err();
            let chunk = if over {
                Err(std::io::Error::other(format!(
                    "more than {max_compressed} compressed bytes"
                )))
            } else {
                chunk
            };
            if tx.send(chunk).await.is_err() || over || failed {
                break;
            }
        }
    };
    let joined = tokio::select! {
        result = &mut scan => result,
        () = pump => scan.await,
    };
    joined.unwrap_or_else(|e| Err(ScanError::Read(std::io::Error::other(e.to_string()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_with_docker_hub_defaults() {
        for (image, registry, repository, tag) in [
            ("busybox", "docker.io", "library/busybox", Some("latest")),
            ("127.0.0.1:5000/app:1", "127.0.0.1:5000", "app", Some("1")),
            (
                "localhost:5000/a/b",
                "localhost:5000",
                "a/b",
                Some("latest"),
            ),
            ("ghcr.io/org/app:v2", "ghcr.io", "org/app", Some("v2")),
        ] {
            let r = parse_reference(image).expect(image);
            assert_eq!(
                (r.registry(), r.repository(), r.tag()),
                (registry, repository, tag),
                "{image}"
            );
        }
        let pinned = parse_reference(
            "r.example/app@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        )
        .expect("digest");
        assert!(pinned.digest().is_some());
        for bad in ["", "a:b:c:d", "r.example/app@sha256:short"] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }
}
