//! Image lookups: what each container image's config says about its user, read from its
//! registry over the OCI distribution API, so that [`crate::harden::images`] can decide
//! `runAsNonRoot` as the kubelet will.
//!
//! - [`settings`]: `images:` in the configuration (budgets, limits, mirrors, CAs, credentials).
//! - [`client`]: bounded, authenticated GETs of manifests and blobs.
//! - [`manifest`] and [`passwd`]: pure readers of what registries return (fuzzed).
//! - [`credentials`]: a Docker config file's `auths`.
//! - [`lookup`]: one image's lookup, endpoint by endpoint.
//! - [`cache`]: the shared, bounded cache and in-flight lookups a server's reviews use.

pub mod cache;
pub mod client;
pub mod credentials;
pub mod lookup;
pub mod manifest;
pub mod passwd;
pub mod pull_secrets;
pub mod settings;

pub use cache::ImageLookups;
pub use manifest::Platform;
pub use pull_secrets::PodPullSecrets;
pub use settings::{ImageLookupConfig, LookupSettings};

use k8s_openapi::api::core::v1::PodSpec;
use serde::Deserialize as _;
use serde_json::Value;

/// What lookups need from a pod spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodImages {
    /// Its images (containers, init containers, ephemeral containers: each once, in spec order).
    pub images: Vec<String>,
    /// The platform it will run on.
    pub platform: Platform,
    /// The pull Secrets it names, each once, in its order.
    pub pull_secrets: Vec<String>,
}

/// The images of a pod spec in JSON form: [`spec_images`] of it read typed; none (and `default`)
/// when it does not read, as hardening will then refuse it anyway.
pub fn pod_images(spec: &Value, default: &Platform) -> PodImages {
    match PodSpec::deserialize(spec) {
        Ok(spec) => spec_images(&spec, default),
        Err(_) => PodImages {
            images: Vec::new(),
            platform: default.clone(),
            pull_secrets: Vec::new(),
        },
    }
}

/// The images of a pod spec (containers, init containers, ephemeral containers: each once, in spec
/// order), its pull Secrets, and the platform it will run on: `kubernetes.io/os` and
/// `kubernetes.io/arch` from its node selector, else from a required node affinity term that pins
/// one value, else `default`. Windows pods are looked up too (the verdicts skip them, as the
/// kubelet checks names there).
pub fn spec_images(spec: &PodSpec, default: &Platform) -> PodImages {
    let mut images: Vec<String> = Vec::new();
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    let ephemeral = spec.ephemeral_containers.iter().flatten();
    let all = containers
        .map(|c| c.image.as_deref())
        .chain(ephemeral.map(|c| c.image.as_deref()));
    for image in all.flatten() {
        if !image.is_empty() && !images.iter().any(|i| i == image) {
            images.push(image.to_owned());
        }
    }
    let label = |key: &str| -> Option<String> {
        if let Some(v) = spec.node_selector.as_ref().and_then(|s| s.get(key)) {
            return Some(v.clone());
        }
        let terms = &spec
            .affinity
            .as_ref()?
            .node_affinity
            .as_ref()?
            .required_during_scheduling_ignored_during_execution
            .as_ref()?
            .node_selector_terms;
        // Terms are ORed: only a value every term pins is certain.
        let mut pinned: Option<String> = None;
        for term in terms {
            let value = term
                .match_expressions
                .iter()
                .flatten()
                .find(|e| e.key == key && e.operator == "In")
                .and_then(|e| e.values.as_deref())
                .filter(|values| values.len() == 1)
                .map(|values| values[0].as_str())?;
            match &pinned {
                Some(p) if p != value => return None,
                _ => pinned = Some(value.to_owned()),
            }
        }
        pinned
    };
    let platform = Platform {
        os: label("kubernetes.io/os").unwrap_or_else(|| default.os.clone()),
        architecture: label("kubernetes.io/arch").unwrap_or_else(|| default.architecture.clone()),
    };
    let mut pull_secrets: Vec<String> = Vec::new();
    for reference in spec.image_pull_secrets.iter().flatten() {
        if !reference.name.is_empty() && !pull_secrets.contains(&reference.name) {
            pull_secrets.push(reference.name.clone());
        }
    }
    PodImages {
        images,
        platform,
        pull_secrets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_images_once_and_the_platform_from_selector_or_affinity() {
        let default: Platform = "linux/amd64".parse().expect("platform");
        let found = pod_images(
            &json!({
                "initContainers": [{"name": "i", "image": "init:1"}],
                "containers": [{"name": "a", "image": "app:1"}, {"name": "b", "image": "app:1"}, {"name": "c"}],
                "nodeSelector": {"kubernetes.io/arch": "arm64"},
                "imagePullSecrets": [{"name": "b"}, {"name": "a"}, {"name": "b"}, {"name": ""}]
            }),
            &default,
        );
        assert_eq!(found.images, ["init:1", "app:1"]);
        assert_eq!(found.platform.to_string(), "linux/arm64");
        assert_eq!(found.pull_secrets, ["b", "a"]);
        let affinity = |terms: Value| {
            pod_images(
                &json!({"containers": [], "affinity": {"nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}),
                &default,
            )
            .platform
            .to_string()
        };
        let term = |arch: &[&str]| json!({"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": arch}]});
        assert_eq!(affinity(json!([term(&["arm64"])])), "linux/arm64");
        assert_eq!(
            affinity(json!([term(&["arm64"]), term(&["arm64"])])),
            "linux/arm64"
        );
        assert_eq!(affinity(json!([term(&["arm64", "amd64"])])), "linux/amd64");
        assert_eq!(
            affinity(json!([term(&["arm64"]), term(&["s390x"])])),
            "linux/amd64"
        );
        assert_eq!(affinity(json!([term(&["arm64"]), {}])), "linux/amd64");
    }
}
