//! `images:` in the configuration file: whether and how pod-hardener reads image configs from
//! registries, with every wait and size bounded. Registry hosts are configured as containerd's
//! `hosts.toml` configures them: mirrors tried in order before the registry itself, a CA bundle,
//! `skip_verify`, plain HTTP.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::manifest::Platform;
use super::passwd::ScanLimits;
use crate::config::HumanDuration;

/// One registry host's settings (`registries.<host>`; the host as images name it, with its port:
/// `docker.io`, `registry.local:5000`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RegistryHost {
    /// Endpoints (`https://mirror.local:5000`) tried in order before the host itself, as
    /// containerd's `[host."..."]` entries with `capabilities = ["pull", "resolve"]`.
    pub mirrors: Vec<String>,
    /// A PEM bundle of CAs trusted for this host, besides the system roots (containerd's `ca`).
    pub ca: Option<PathBuf>,
    /// Accept any certificate (containerd's `skip_verify`): for a test registry only.
    pub insecure_skip_verify: bool,
    /// Speak plain HTTP to this host (containerd's `http://` server).
    #[serde(rename = "plainHTTP")]
    pub plain_http: bool,
}

/// `images:` as written in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ImageLookupConfig {
    /// Read each container image's config to decide `runAsNonRoot` as the kubelet will. Off by
    /// default in the binary (it makes outbound calls); on in the shipped manifests.
    pub enabled: bool,
    /// How long one review waits for its lookups; after it the answer uses what is known, and
    /// the lookups still running fill the cache for the next review.
    pub review_budget: HumanDuration,
    /// Deadline of one image's whole lookup (the Pod's pull Secrets' read, manifests, config,
    /// layers).
    pub lookup_timeout: HumanDuration,
    /// Deadline of each HTTP request's answer (connect included).
    pub request_timeout: HumanDuration,
    /// The platform of a pod that names none (`kubernetes.io/os` / `kubernetes.io/arch` in its
    /// node selector or required node affinity).
    pub default_platform: String,
    /// How long a tag's lookup is reused (a digest's is reused until evicted: it cannot change).
    #[serde(rename = "tagTTL")]
    pub tag_ttl: HumanDuration,
    /// How long a failed lookup is reused before the registry is asked again.
    #[serde(rename = "failureTTL")]
    pub failure_ttl: HumanDuration,
    /// Most images remembered; the least recently used goes first.
    pub max_cached_images: usize,
    /// Most lookups running at once; an image beyond them is decided as unknown.
    pub max_concurrent_lookups: usize,
    /// Largest manifest or index (containerd reads at most 4 MiB).
    pub max_manifest_bytes: usize,
    /// Largest image config.
    pub max_config_bytes: usize,
    /// Most compressed bytes read from one layer while looking for `/etc/passwd`.
    pub max_layer_bytes: u64,
    /// Most decompressed bytes read from one layer.
    pub max_layer_uncompressed_bytes: u64,
    /// Largest `/etc/passwd`.
    pub max_passwd_bytes: u64,
    /// Most layers read, from the top, looking for `/etc/passwd`.
    pub max_layers_scanned: usize,
    /// A Docker config file (`.dockerconfigjson`) with registry credentials, read at each lookup
    /// so a rotated Secret applies without a restart.
    pub credentials_file: Option<PathBuf>,
    /// Per registry host: mirrors, CA, TLS verification, plain HTTP.
    pub registries: BTreeMap<String, RegistryHost>,
    /// Also offer the credentials of the Pod's own `imagePullSecrets` (read from its namespace
    /// through the API server), as the kubelet does. Off by default: it needs `get` on Secrets
    /// (README, "Image lookups").
    pub pod_pull_secrets: bool,
}

impl Default for ImageLookupConfig {
    fn default() -> Self {
        ImageLookupConfig {
            enabled: false,
            // Well under the shipped webhook timeout (10 s), leaving the API server's own work
            // and a second webhook call room.
            review_budget: HumanDuration(Duration::from_secs(2)),
            lookup_timeout: HumanDuration(Duration::from_secs(20)),
            request_timeout: HumanDuration(Duration::from_secs(5)),
            default_platform: "linux/amd64".into(),
            tag_ttl: HumanDuration(Duration::from_secs(300)),
            failure_ttl: HumanDuration(Duration::from_secs(30)),
            max_cached_images: 4096,
            max_concurrent_lookups: 32,
            max_manifest_bytes: 4 << 20,
            max_config_bytes: 8 << 20,
            max_layer_bytes: 256 << 20,
            max_layer_uncompressed_bytes: 1 << 30,
            max_passwd_bytes: 1 << 20,
            max_layers_scanned: 64,
            credentials_file: None,
            registries: BTreeMap::new(),
            pod_pull_secrets: false,
        }
    }
}

/// The validated lookup settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupSettings {
    /// See [`ImageLookupConfig::review_budget`].
    pub review_budget: Duration,
    /// See [`ImageLookupConfig::lookup_timeout`].
    pub lookup_timeout: Duration,
    /// See [`ImageLookupConfig::request_timeout`].
    pub request_timeout: Duration,
    /// See [`ImageLookupConfig::default_platform`].
    pub default_platform: Platform,
    /// See [`ImageLookupConfig::tag_ttl`].
    pub tag_ttl: Duration,
    /// See [`ImageLookupConfig::failure_ttl`].
    pub failure_ttl: Duration,
    /// See [`ImageLookupConfig::max_cached_images`].
    pub max_cached_images: usize,
    /// See [`ImageLookupConfig::max_concurrent_lookups`].
    pub max_concurrent_lookups: usize,
    /// See [`ImageLookupConfig::max_manifest_bytes`].
    pub max_manifest_bytes: usize,
    /// See [`ImageLookupConfig::max_config_bytes`].
    pub max_config_bytes: usize,
    /// See [`ImageLookupConfig::max_layer_bytes`].
    pub max_layer_bytes: u64,
    /// Decompression and `/etc/passwd` bounds.
    pub scan: ScanLimits,
    /// See [`ImageLookupConfig::max_layers_scanned`].
    pub max_layers_scanned: usize,
    /// See [`ImageLookupConfig::credentials_file`].
    pub credentials_file: Option<PathBuf>,
    /// See [`ImageLookupConfig::registries`].
    pub registries: BTreeMap<String, RegistryHost>,
    /// See [`ImageLookupConfig::pod_pull_secrets`].
    pub pod_pull_secrets: bool,
}

/// A value of `images:` that is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config: {field}: {message}")]
pub struct InvalidLookupSetting {
    /// The field, e.g. `images.reviewBudget`.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

impl ImageLookupConfig {
    /// Checks every value; `None` when lookups are disabled.
    pub fn validate(&self) -> Result<Option<LookupSettings>, InvalidLookupSetting> {
        let invalid = |field, message: String| InvalidLookupSetting { field, message };
        for (field, d) in [
            ("images.reviewBudget", self.review_budget),
            ("images.lookupTimeout", self.lookup_timeout),
            ("images.requestTimeout", self.request_timeout),
            ("images.tagTTL", self.tag_ttl),
            ("images.failureTTL", self.failure_ttl),
        ] {
            if d.0.is_zero() {
                return Err(invalid(field, "must be greater than zero".into()));
            }
        }
        for (field, n) in [
            ("images.maxCachedImages", self.max_cached_images as u64),
            (
                "images.maxConcurrentLookups",
                self.max_concurrent_lookups as u64,
            ),
            ("images.maxManifestBytes", self.max_manifest_bytes as u64),
            ("images.maxConfigBytes", self.max_config_bytes as u64),
            ("images.maxLayerBytes", self.max_layer_bytes),
            (
                "images.maxLayerUncompressedBytes",
                self.max_layer_uncompressed_bytes,
            ),
            ("images.maxPasswdBytes", self.max_passwd_bytes),
        ] {
            if n == 0 {
                return Err(invalid(field, "must be at least 1".into()));
            }
        }
        let default_platform: Platform = self
            .default_platform
            .parse()
            .map_err(|e| invalid("images.defaultPlatform", e))?;
        for (host, registry) in &self.registries {
            if host.is_empty() || host.contains('/') || host.contains("://") {
                return Err(invalid(
                    "images.registries",
                    format!("{host:?} is not a registry host (name[:port])"),
                ));
            }
            for mirror in &registry.mirrors {
                let uri: Result<hyper::Uri, _> = mirror.parse();
                let ok = uri.is_ok_and(|u| {
                    matches!(u.scheme_str(), Some("http" | "https"))
                        && u.authority().is_some()
                        && matches!(u.path(), "" | "/")
                        && u.query().is_none()
                });
                if !ok {
                    return Err(invalid(
                        "images.registries.mirrors",
                        format!("{mirror:?} is not an endpoint such as https://mirror.local:5000"),
                    ));
                }
            }
        }
        if !self.enabled {
            return Ok(None);
        }
        Ok(Some(LookupSettings {
            review_budget: self.review_budget.0,
            lookup_timeout: self.lookup_timeout.0,
            request_timeout: self.request_timeout.0,
            default_platform,
            tag_ttl: self.tag_ttl.0,
            failure_ttl: self.failure_ttl.0,
            max_cached_images: self.max_cached_images,
            max_concurrent_lookups: self.max_concurrent_lookups,
            max_manifest_bytes: self.max_manifest_bytes,
            max_config_bytes: self.max_config_bytes,
            max_layer_bytes: self.max_layer_bytes,
            scan: ScanLimits {
                max_layer_bytes: self.max_layer_uncompressed_bytes,
                max_passwd_bytes: self.max_passwd_bytes,
            },
            max_layers_scanned: self.max_layers_scanned,
            credentials_file: self.credentials_file.clone(),
            registries: self.registries.clone(),
            pod_pull_secrets: self.pod_pull_secrets,
        }))
    }
}

impl LookupSettings {
    /// The endpoints to ask for an image of `registry`, in order: its mirrors, then itself (over
    /// plain HTTP when so configured). Docker Hub's API host is `registry-1.docker.io`.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let host = self.registries.get(registry);
        let mut endpoints: Vec<Endpoint> = host
            .map(|h| {
                h.mirrors
                    .iter()
                    .map(|m| Endpoint {
                        base: m.trim_end_matches('/').to_owned(),
                        mirror_of: Some(registry.to_owned()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let scheme = if host.is_some_and(|h| h.plain_http) {
            "http"
        } else {
            "https"
        };
        let api_host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        endpoints.push(Endpoint {
            base: format!("{scheme}://{api_host}"),
            mirror_of: None,
        });
        endpoints
    }
}

/// Where to send the requests for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://host[:port]`.
    pub base: String,
    /// The registry this endpoint mirrors, if it is a mirror.
    pub mirror_of: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> ImageLookupConfig {
        serde_yaml_ng::from_str(yaml).expect("yaml")
    }

    #[test]
    fn disabled_by_default_and_every_field_read() {
        assert_eq!(ImageLookupConfig::default().validate(), Ok(None));
        let settings = config(
            r#"
enabled: true
reviewBudget: 500ms
defaultPlatform: linux/arm64
tagTTL: 1m
credentialsFile: /etc/pod-hardener/registry/.dockerconfigjson
registries:
  docker.io: {mirrors: ["https://mirror.local:5000/"]}
  registry.local:5000: {ca: /etc/ca.pem, plainHTTP: true}
"#,
        )
        .validate()
        .expect("valid")
        .expect("enabled");
        assert_eq!(settings.review_budget, Duration::from_millis(500));
        assert_eq!(settings.default_platform.to_string(), "linux/arm64");
        assert_eq!(settings.tag_ttl, Duration::from_secs(60));
        let bases = |r: &str| -> Vec<String> {
            settings.endpoints(r).into_iter().map(|e| e.base).collect()
        };
        assert_eq!(
            bases("docker.io"),
            ["https://mirror.local:5000", "https://registry-1.docker.io"]
        );
        assert_eq!(bases("registry.local:5000"), ["http://registry.local:5000"]);
        assert_eq!(bases("ghcr.io"), ["https://ghcr.io"]);
        assert_eq!(
            settings.endpoints("docker.io")[0].mirror_of.as_deref(),
            Some("docker.io")
        );
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        for (yaml, field) in [
            ("reviewBudget: 0s", "images.reviewBudget"),
            ("maxCachedImages: 0", "images.maxCachedImages"),
            ("defaultPlatform: amd64", "images.defaultPlatform"),
            (
                "registries: {\"https://r.example\": {}}",
                "images.registries",
            ),
            (
                "registries: {r.example: {mirrors: [\"ftp://m\"]}}",
                "images.registries.mirrors",
            ),
            (
                "registries: {r.example: {mirrors: [\"https://m/v2/x\"]}}",
                "images.registries.mirrors",
            ),
        ] {
            let err = config(yaml).validate().expect_err(yaml);
            assert_eq!(err.field, field, "{yaml}");
        }
        assert!(serde_yaml_ng::from_str::<ImageLookupConfig>("unknown: 1").is_err());
    }
}
