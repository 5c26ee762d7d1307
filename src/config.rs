//! The configuration: one YAML file (every field optional, with the defaults below) plus flags
//! and environment variables, validated into one [`Config`]. An invalid value fails at startup
//! with the field's name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::admission::{AdmissionSettings, Exemptions};
use crate::harden::HardeningSettings;
use crate::policy::{DefaultPolicy, Defaults};
use crate::registry::{ImageLookupConfig, LookupSettings};
use crate::server::routes::RequestLimits;
use crate::server::transport::TransportLimits;

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML for the schema (the parser's message names the field).
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the field.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A value is out of range.
    #[error("invalid config: {field}: {message}")]
    Invalid {
        /// The field, e.g. `limits.maxBodyBytes`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A duration written as `500ms`, `5s`, `2m` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 5s, 2m"))?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: the unit must be ms, s, m or h"
                ));
            }
        };
        Ok(HumanDuration(d))
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `tls`: the serving certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often the files are compared with what is loaded.
    pub reload_interval: HumanDuration,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            cert_file: "/etc/pod-hardener/tls/tls.crt".into(),
            key_file: "/etc/pod-hardener/tls/tls.key".into(),
            reload_interval: HumanDuration(Duration::from_secs(10)),
        }
    }
}

/// The most `limits.maxConcurrentStreams`: each stream adds its HTTP/2 window (64 KiB) to the
/// memory a connection may hold.
const MAX_CONCURRENT_STREAMS: u32 = 256;

/// `limits`: every wait and buffer of the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body; 413 beyond it.
    pub max_body_bytes: usize,
    /// Request-body bytes the whole process may hold at once, across every connection and
    /// stream; a request waits for its share (within `requestTimeout`), then gets 503.
    pub max_in_flight_body_bytes: usize,
    /// Most open connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Most concurrent HTTP/2 streams (requests) per connection.
    pub max_concurrent_streams: u32,
    /// TLS handshake deadline.
    pub handshake_timeout: HumanDuration,
    /// Deadline to receive a request's headers.
    pub header_read_timeout: HumanDuration,
    /// After the TLS handshake, deadline for the connection's first request (HTTP/2: preface,
    /// settings and the first HEADERS frame), so a client that trickles bytes cannot hold a
    /// connection slot; Go's HTTP/2 server allows 10 s for the preface.
    pub first_request_timeout: HumanDuration,
    /// Deadline to receive a request's body and answer it.
    pub request_timeout: HumanDuration,
    /// A connection with no request started or in flight for this long is closed (HTTP/2 PINGs
    /// do not count).
    pub idle_timeout: HumanDuration,
    /// On SIGTERM, how long in-flight requests may take before connections are closed.
    pub drain_timeout: HumanDuration,
    /// On SIGTERM, how long the server goes on accepting and serving before the drain, telling
    /// each client to close its connection (HTTP/1.1 `Connection: close`, HTTP/2 GOAWAY), so
    /// that a rolling restart loses no request; 0 closes the listeners at once.
    pub drain_grace: HumanDuration,
    /// Deadline of the GET for a namespace missing from the cache.
    pub namespace_lookup_timeout: HumanDuration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // An object may be 3 MiB and an UPDATE review carries it twice.
            max_body_bytes: 8 * 1024 * 1024,
            // Four bodies of the largest size at once, or thousands of ordinary (few-KiB)
            // reviews: a quarter of the shipped 128 MiB memory limit.
            max_in_flight_body_bytes: 32 * 1024 * 1024,
            max_connections: 1024,
            // The API server opens another connection when one has no stream left, so a low
            // number costs nothing; 128 (hyper's default) let one connection ask for 1 GiB.
            max_concurrent_streams: 32,
            handshake_timeout: HumanDuration(Duration::from_secs(5)),
            header_read_timeout: HumanDuration(Duration::from_secs(5)),
            first_request_timeout: HumanDuration(Duration::from_secs(10)),
            request_timeout: HumanDuration(Duration::from_secs(10)),
            idle_timeout: HumanDuration(Duration::from_secs(90)),
            drain_timeout: HumanDuration(Duration::from_secs(20)),
            // Off outside a cluster (a Ctrl-C ends at once); manifests/ sets it.
            drain_grace: HumanDuration(Duration::ZERO),
            namespace_lookup_timeout: HumanDuration(Duration::from_secs(2)),
        }
    }
}

impl From<&Limits> for TransportLimits {
    fn from(limits: &Limits) -> Self {
        TransportLimits {
            max_connections: limits.max_connections,
            max_concurrent_streams: limits.max_concurrent_streams,
            handshake_timeout: limits.handshake_timeout.0,
            header_read_timeout: limits.header_read_timeout.0,
            first_request_timeout: limits.first_request_timeout.0,
            idle_timeout: limits.idle_timeout.0,
        }
    }
}

impl From<&Limits> for RequestLimits {
    fn from(limits: &Limits) -> Self {
        RequestLimits {
            max_body_bytes: limits.max_body_bytes,
            max_in_flight_body_bytes: limits.max_in_flight_body_bytes,
            request_timeout: limits.request_timeout.0,
        }
    }
}

/// Where namespace labels come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceSource {
    /// The cluster if one is reachable (in-cluster or KUBECONFIG), else the static default.
    #[default]
    Auto,
    /// The cluster; startup fails without one.
    Cluster,
    /// The static default policy for every namespace.
    Static,
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `pod_hardener=debug`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The configuration file's schema. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConfigFile {
    /// HTTPS address of `/mutate`, `/validate`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Plain-HTTP address of `/metrics`, `/healthz`, `/readyz`; `null` disables it.
    pub metrics_listen: Option<SocketAddr>,
    /// The serving certificate.
    pub tls: TlsSettings,
    /// Limits and timeouts.
    pub limits: Limits,
    /// Where namespace labels come from.
    pub namespace_source: NamespaceSource,
    /// The policy of namespaces without labels (and of every namespace without a cluster).
    pub default_policy: DefaultPolicy,
    /// Hardening profiles.
    pub hardening: HardeningSettings,
    /// Exemptions from hardening and validation.
    pub exemptions: Exemptions,
    /// Logging.
    pub log: LogSettings,
    /// Image lookups (off unless `enabled`).
    pub images: ImageLookupConfig,
}

impl Default for ConfigFile {
    fn default() -> Self {
        ConfigFile {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            metrics_listen: Some(SocketAddr::from(([0, 0, 0, 0], 9090))),
            tls: TlsSettings::default(),
            limits: Limits::default(),
            namespace_source: NamespaceSource::Auto,
            default_policy: DefaultPolicy::default(),
            hardening: HardeningSettings::default(),
            exemptions: Exemptions::default(),
            log: LogSettings::default(),
            images: ImageLookupConfig::default(),
        }
    }
}

/// The validated configuration the server runs with, parsed once into the values each part
/// needs: the transport its limits, the routes theirs, admission its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// HTTPS address of the webhook.
    pub listen: SocketAddr,
    /// Plain-HTTP address of metrics and health, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// The serving certificate.
    pub tls: TlsSettings,
    /// What each webhook connection may take.
    pub transport: TransportLimits,
    /// What each request may take.
    pub requests: RequestLimits,
    /// On SIGTERM, how long in-flight requests may take before connections are closed.
    pub drain_timeout: Duration,
    /// On SIGTERM, how long the server goes on serving first (see [`Limits::drain_grace`]).
    pub drain_grace: Duration,
    /// Where namespace labels come from.
    pub namespace_source: NamespaceSource,
    /// Deadline of the GET for a namespace missing from the cache.
    pub namespace_lookup_timeout: Duration,
    /// The parsed default policy.
    pub defaults: Defaults,
    /// What admission decisions need.
    pub admission: AdmissionSettings,
    /// Logging.
    pub log: LogSettings,
    /// Image lookups, when enabled.
    pub images: Option<LookupSettings>,
}

impl ConfigFile {
    /// Reads a YAML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        ConfigFile::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Parses YAML text; the error names the field.
    pub fn parse(text: &str) -> Result<Self, serde_yaml_ng::Error> {
        if text.trim().is_empty() {
            return Ok(ConfigFile::default());
        }
        serde_yaml_ng::from_str(text)
    }

    /// Checks every value and builds the [`Config`].
    pub fn validate(self) -> Result<Config, ConfigError> {
        let invalid = |field, message: &str| ConfigError::Invalid {
            field,
            message: message.to_owned(),
        };
        let l = &self.limits;
        if l.max_body_bytes < 1024 {
            return Err(invalid("limits.maxBodyBytes", "must be at least 1024"));
        }
        if l.max_in_flight_body_bytes < l.max_body_bytes {
            return Err(invalid(
                "limits.maxInFlightBodyBytes",
                "must be at least limits.maxBodyBytes (a largest body must fit)",
            ));
        }
        if u32::try_from(l.max_in_flight_body_bytes).is_err() {
            return Err(invalid(
                "limits.maxInFlightBodyBytes",
                "must be below 4 GiB",
            ));
        }
        if l.max_connections == 0 {
            return Err(invalid("limits.maxConnections", "must be at least 1"));
        }
        if !(1..=MAX_CONCURRENT_STREAMS).contains(&l.max_concurrent_streams) {
            return Err(invalid(
                "limits.maxConcurrentStreams",
                "must be between 1 and 256",
            ));
        }
        for (field, d) in [
            ("limits.handshakeTimeout", l.handshake_timeout),
            ("limits.headerReadTimeout", l.header_read_timeout),
            ("limits.firstRequestTimeout", l.first_request_timeout),
            ("limits.requestTimeout", l.request_timeout),
            ("limits.idleTimeout", l.idle_timeout),
            ("limits.drainTimeout", l.drain_timeout),
            ("limits.namespaceLookupTimeout", l.namespace_lookup_timeout),
            ("tls.reloadInterval", self.tls.reload_interval),
        ] {
            if d.0.is_zero() {
                return Err(invalid(field, "must be greater than zero"));
            }
        }
        if let Some(limit) = &self.hardening.tmp_size_limit
            && (limit.is_empty() || !limit.starts_with(|c: char| c.is_ascii_digit()))
        {
            return Err(invalid(
                "hardening.tmpSizeLimit",
                "must be a quantity such as 64Mi",
            ));
        }
        let defaults = self
            .default_policy
            .parse()
            .map_err(|e| ConfigError::Invalid {
                field: e.field,
                message: e.message,
            })?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            ConfigError::Invalid {
                field: "log.level",
                message: e.to_string(),
            }
        })?;
        let images = self.images.validate().map_err(|e| ConfigError::Invalid {
            field: e.field,
            message: e.message,
        })?;
        let ConfigFile {
            listen,
            metrics_listen,
            tls,
            limits,
            namespace_source,
            default_policy: _,
            hardening,
            exemptions,
            log,
            images: _,
        } = self;
        Ok(Config {
            listen,
            metrics_listen,
            tls,
            transport: TransportLimits::from(&limits),
            requests: RequestLimits::from(&limits),
            drain_timeout: limits.drain_timeout.0,
            drain_grace: limits.drain_grace.0,
            namespace_source,
            namespace_lookup_timeout: limits.namespace_lookup_timeout.0,
            defaults,
            admission: AdmissionSettings {
                hardening,
                exemptions,
            },
            log,
            images,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        let c = ConfigFile::parse("").unwrap().validate().unwrap();
        assert_eq!(c, ConfigFile::default().validate().unwrap());
        assert_eq!(c.defaults.enforce.to_string(), "restricted:latest");
    }

    #[test]
    fn reads_every_section() {
        let c = ConfigFile::parse(
            r#"
listen: 127.0.0.1:9443
metricsListen: null
tls: {certFile: /a.crt, keyFile: /a.key, reloadInterval: 500ms}
limits: {maxBodyBytes: 2048, drainTimeout: 1m}
namespaceSource: static
defaultPolicy: {enforce: baseline, mode: shadow}
hardening: {mode: override, baseline: [seccompProfile], runAsUser: 1000, tmpSizeLimit: 64Mi}
exemptions: {usernames: [admin], namespaces: [kube-system], runtimeClassNames: [kata]}
log: {format: json, level: debug}
"#,
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9443");
        assert_eq!(c.metrics_listen, None);
        assert_eq!(c.tls.reload_interval.0, Duration::from_millis(500));
        assert_eq!(c.drain_timeout, Duration::from_secs(60));
        assert_eq!(c.requests.max_body_bytes, 2048);
        assert_eq!(c.defaults.enforce.to_string(), "baseline:latest");
        assert_eq!(c.admission.hardening.run_as_user, Some(1000));
        assert!(c.admission.exemptions.runtime_class_names.contains("kata"));
    }

    #[test]
    fn the_drain_grace_is_off_unless_set() {
        assert_eq!(
            ConfigFile::default().validate().unwrap().drain_grace,
            Duration::ZERO
        );
        let c = ConfigFile::parse("limits: {drainGrace: 5s}")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(c.drain_grace, Duration::from_secs(5));
    }

    #[test]
    fn values_out_of_range_name_the_field() {
        for (yaml, expected_field) in [
            ("limits: {maxBodyBytes: 10}", "limits.maxBodyBytes"),
            ("limits: {drainTimeout: 0s}", "limits.drainTimeout"),
            (
                "limits: {maxBodyBytes: 4096, maxInFlightBodyBytes: 2048}",
                "limits.maxInFlightBodyBytes",
            ),
            (
                "limits: {maxInFlightBodyBytes: 8589934592}",
                "limits.maxInFlightBodyBytes",
            ),
            (
                "limits: {maxConcurrentStreams: 0}",
                "limits.maxConcurrentStreams",
            ),
            (
                "limits: {maxConcurrentStreams: 257}",
                "limits.maxConcurrentStreams",
            ),
            ("defaultPolicy: {enforce: strict}", "defaultPolicy.enforce"),
            (
                "defaultPolicy: {auditVersion: v2.0}",
                "defaultPolicy.auditVersion",
            ),
            ("hardening: {tmpSizeLimit: lots}", "hardening.tmpSizeLimit"),
            ("log: {level: '[[['}", "log.level"),
        ] {
            let file = ConfigFile::parse(yaml).expect(yaml);
            match file.validate() {
                Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, expected_field),
                other => panic!("{yaml}: {other:?}"),
            }
        }
    }

    #[test]
    fn unreadable_values_are_named_by_the_parser() {
        for (yaml, named) in [
            ("listen: nowhere", "listen"),
            (
                "limits: {idleTimeout: 5 parsecs}",
                "invalid duration \"5 parsecs\"",
            ),
            ("hardening: {restricted: [readOnly]}", "readOnly"),
            ("tls: {certfile: /x}", "certfile"),
        ] {
            let err = ConfigFile::parse(yaml).expect_err(yaml).to_string();
            assert!(err.contains(named), "{yaml}: {err}");
        }
    }
}
