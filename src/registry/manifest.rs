//! What a registry returns for an image, read without trusting it: manifests and indexes (OCI
//! and Docker media types, through oci-spec's types), the image config's user, digests checked
//! against the bytes. Pure functions over bounded byte slices; the fuzz target `registry` feeds
//! them arbitrary input.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde::Deserialize;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list (the index of Docker's schema 2).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The `Accept` header of a manifest request: every kind this module reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Why what the registry sent cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// Not JSON of the expected shape.
    #[error("malformed {what}: {message}")]
    Malformed {
        /// `manifest`, `index` or `image config`.
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A media type this module does not read (schema 1, an artifact, ...).
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// The bytes do not hash to the digest they were asked for by.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A digest that is not `sha256:` and 64 lowercase hex digits.
    #[error("unsupported digest {0:?} (only sha256 is read)")]
    UnsupportedDigest(String),
    /// The index lists no image for the platform.
    #[error("no image for platform {0} in the index")]
    NoPlatform(String),
}

/// A platform the pod will run on, as `kubernetes.io/os` and `kubernetes.io/arch` name it (the
/// same words as the OCI image spec's `os` and `architecture`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((os, architecture))
                if !os.is_empty() && !architecture.is_empty() && !architecture.contains('/') =>
            {
                Ok(Platform {
                    os: os.to_owned(),
                    architecture: architecture.to_owned(),
                })
            }
            _ => Err(format!(
                "invalid platform {s:?}: expected os/architecture, e.g. linux/amd64"
            )),
        }
    }
}

/// A manifest response, read by its media type.
#[derive(Debug)]
pub enum Fetched {
    /// An index (or Docker manifest list): one manifest per platform.
    Index(Box<ImageIndex>),
    /// One image's manifest.
    Manifest(Box<ImageManifest>),
}

/// The part of any manifest that says what it is.
#[derive(Deserialize)]
struct MediaTypeProbe {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
}

/// Reads a manifest response: by its `Content-Type`, else by the body's own `mediaType`, else by
/// its shape (an index has `manifests`), as containerd does.
pub fn parse_manifest(content_type: Option<&str>, body: &[u8]) -> Result<Fetched, FormatError> {
    let probe: MediaTypeProbe =
        serde_json::from_slice(body).map_err(|e| FormatError::Malformed {
            what: "manifest",
            message: e.to_string(),
        })?;
    if probe.schema_version == Some(1) {
        return Err(FormatError::UnsupportedMediaType(
            "application/vnd.docker.distribution.manifest.v1+json".into(),
        ));
    }
    let declared = content_type
        .map(|t| t.split(';').next().unwrap_or_default().trim())
        .filter(|t| !t.is_empty() && *t != "application/json" && *t != "text/plain")
        .map(str::to_owned)
        .or(probe.media_type);
    let is_index = match declared.as_deref() {
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        Some(other) => return Err(FormatError::UnsupportedMediaType(other.to_owned())),
        None => probe.manifests.is_some(),
    };
    if is_index {
        ImageIndex::from_reader(body)
            .map(|index| Fetched::Index(Box::new(index)))
            .map_err(|e| FormatError::Malformed {
                what: "index",
                message: e.to_string(),
            })
    } else {
        ImageManifest::from_reader(body)
            .map(|manifest| Fetched::Manifest(Box::new(manifest)))
            .map_err(|e| FormatError::Malformed {
                what: "manifest",
                message: e.to_string(),
            })
    }
}

/// The index entry for `platform`: same OS and architecture, skipping entries that are not
/// images (attestations list `unknown/unknown`). The first match wins, as containerd's default
/// matcher orders equal matches by position.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    platform: &Platform,
) -> Result<&'a Descriptor, FormatError> {
    index
        .manifests()
        .iter()
        .filter(|d| match d.media_type() {
            MediaType::ImageManifest => true,
            MediaType::Other(t) => t == DOCKER_MANIFEST,
            _ => false,
        })
        .find(|d| {
            d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == platform.os
                    && p.architecture().to_string() == platform.architecture
            })
        })
        .ok_or_else(|| FormatError::NoPlatform(platform.to_string()))
}

/// The image config's fields the kubelet's decision reads. Only `config.User`: containerd reads
/// nothing else for it, and a strict parse of every field would turn a quirky but runnable image
/// into an unknown one.
#[derive(Deserialize)]
struct ImageConfigUser {
    config: Option<ContainerConfigUser>,
}

#[derive(Deserialize)]
struct ContainerConfigUser {
    #[serde(rename = "User")]
    user: Option<String>,
}

/// The config's `User` (empty when unset), as containerd's CRI plugin reads it.
pub fn config_user(body: &[u8]) -> Result<String, FormatError> {
    let config: ImageConfigUser =
        serde_json::from_slice(body).map_err(|e| FormatError::Malformed {
            what: "image config",
            message: e.to_string(),
        })?;
    Ok(config.config.and_then(|c| c.user).unwrap_or_default())
}

/// How a layer is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// The compression of a layer of `media_type`, or `None` for a layer that is not a filesystem
/// tar (a foreign or unknown type: skipped when looking for `/etc/passwd`).
pub fn layer_compression(media_type: &MediaType) -> Option<LayerCompression> {
    match media_type {
        MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => {
            Some(LayerCompression::None)
        }
        MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => {
            Some(LayerCompression::Gzip)
        }
        MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => {
            Some(LayerCompression::Zstd)
        }
        MediaType::Other(t) => match t.as_str() {
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(LayerCompression::Gzip)
            }
            "application/vnd.docker.image.rootfs.diff.tar" => Some(LayerCompression::None),
            _ => None,
        },
        _ => None,
    }
}

/// Checks that a `sha256:<hex>` digest is well formed (it goes into a URL path).
pub fn check_digest(digest: &str) -> Result<(), FormatError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(FormatError::UnsupportedDigest(digest.to_owned())),
    }
}

/// The `sha256:` digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let hash = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Checks that `bytes` hash to `expected`.
pub fn verify_digest(expected: &str, bytes: &[u8]) -> Result<(), FormatError> {
    check_digest(expected)?;
    let actual = sha256_digest(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(FormatError::DigestMismatch {
            expected: expected.to_owned(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn manifest_json(media_type: Option<&str>) -> String {
        let mt = media_type
            .map(|t| format!(r#""mediaType":"{t}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CONFIG}","size":2}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{CONFIG}","size":2}}]}}"#
        )
    }

    fn index_json(entries: &[(&str, &str, &str)]) -> String {
        let manifests: Vec<String> = entries
            .iter()
            .map(|(mt, os, arch)| {
                format!(
                    r#"{{"mediaType":"{mt}","digest":"{CONFIG}","size":2,"platform":{{"os":"{os}","architecture":"{arch}"}}}}"#
                )
            })
            .collect();
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            manifests.join(",")
        )
    }

    #[test]
    fn reads_each_manifest_kind_by_header_body_or_shape() {
        for (header, body, is_index) in [
            (Some(OCI_MANIFEST), manifest_json(None), false),
            (
                Some(DOCKER_MANIFEST),
                manifest_json(Some(DOCKER_MANIFEST)),
                false,
            ),
            (None, manifest_json(Some(OCI_MANIFEST)), false),
            (Some("application/json"), manifest_json(None), false),
            (
                Some(OCI_INDEX),
                index_json(&[(OCI_MANIFEST, "linux", "amd64")]),
                true,
            ),
            (
                None,
                index_json(&[(DOCKER_MANIFEST, "linux", "arm64")]),
                true,
            ),
            (
                Some("application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"),
                index_json(&[(DOCKER_MANIFEST, "linux", "amd64")]),
                true,
            ),
        ] {
            let fetched = parse_manifest(header, body.as_bytes());
            match (fetched, is_index) {
                (Ok(Fetched::Index(_)), true) | (Ok(Fetched::Manifest(_)), false) => {}
                (other, _) => panic!("{header:?} {body}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for (header, body, expected) in [
            (None, "not json", "malformed manifest"),
            (None, "{}", "malformed manifest"),
            (None, r#"{"schemaVersion":1,"fsLayers":[]}"#, "unsupported"),
            (
                Some("application/vnd.oci.artifact.manifest.v1+json"),
                "{}",
                "unsupported",
            ),
            (
                Some(OCI_INDEX),
                r#"{"schemaVersion":2,"manifests":7}"#,
                "malformed index",
            ),
            (None, "[1,2]", "malformed manifest"),
        ] {
            let err = parse_manifest(header, body.as_bytes()).expect_err(body);
            assert!(err.to_string().contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn picks_the_platform_and_skips_attestations() {
        let body = index_json(&[
            (OCI_MANIFEST, "unknown", "unknown"),
            (OCI_MANIFEST, "linux", "arm64"),
            (DOCKER_MANIFEST, "linux", "amd64"),
            ("application/vnd.in-toto+json", "linux", "amd64"),
        ]);
        let Ok(Fetched::Index(index)) = parse_manifest(None, body.as_bytes()) else {
            panic!("index")
        };
        let amd64: Platform = "linux/amd64".parse().expect("platform");
        let found = select_platform(&index, &amd64).expect("amd64");
        assert_eq!(
            found.media_type(),
            &MediaType::Other(DOCKER_MANIFEST.into())
        );
        let s390x: Platform = "linux/s390x".parse().expect("platform");
        assert_eq!(
            select_platform(&index, &s390x).expect_err("none"),
            FormatError::NoPlatform("linux/s390x".into())
        );
    }

    #[test]
    fn reads_the_config_user_leniently() {
        for (body, user) in [
            (r#"{"config":{"User":"app:app"}}"#, Some("app:app")),
            (r#"{"architecture":"amd64","config":{}}"#, Some("")),
            (r#"{"config":null}"#, Some("")),
            ("{}", Some("")),
            (r#"{"config":{"User":7}}"#, None),
            ("[]", None),
        ] {
            assert_eq!(config_user(body.as_bytes()).ok().as_deref(), user, "{body}");
        }
    }

    #[test]
    fn digests_are_checked_against_the_bytes() {
        assert_eq!(sha256_digest(b"{}"), CONFIG);
        assert!(verify_digest(CONFIG, b"{}").is_ok());
        assert!(matches!(
            verify_digest(CONFIG, b"{ }"),
            Err(FormatError::DigestMismatch { .. })
        ));
        for bad in ["sha512:00", "sha256:../../etc", "sha256:ABC", ""] {
            assert!(matches!(
                check_digest(bad),
                Err(FormatError::UnsupportedDigest(_))
            ));
        }
    }

    #[test]
    fn platforms_parse_as_os_slash_architecture() {
        assert!("linux/amd64".parse::<Platform>().is_ok());
        for bad in ["linux", "/amd64", "linux/", "linux/arm/v7"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }
}
