//! Where the PodSpec lives in each kind that carries one, and typed access to it.
//!
//! Pods carry their own spec; workload resources carry a pod template whose spec the controller
//! copies into the Pods it creates. Everything here is pure and works on `serde_json::Value`,
//! so unknown fields survive untouched in whatever the caller writes back.

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// A kind that carries a PodSpec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// core/v1 Pod
    Pod,
    /// core/v1 PodTemplate
    PodTemplate,
    /// core/v1 ReplicationController
    ReplicationController,
    /// apps/v1 ReplicaSet
    ReplicaSet,
    /// apps/v1 Deployment
    Deployment,
    /// apps/v1 StatefulSet
    StatefulSet,
    /// apps/v1 DaemonSet
    DaemonSet,
    /// batch/v1 Job
    Job,
    /// batch/v1 CronJob
    CronJob,
}

impl WorkloadKind {
    /// The kind for an API group and kind name, if it carries a PodSpec.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        Some(match (group, kind) {
            ("", "Pod") => WorkloadKind::Pod,
            ("", "PodTemplate") => WorkloadKind::PodTemplate,
            ("", "ReplicationController") => WorkloadKind::ReplicationController,
            ("apps", "ReplicaSet") => WorkloadKind::ReplicaSet,
            ("apps", "Deployment") => WorkloadKind::Deployment,
            ("apps", "StatefulSet") => WorkloadKind::StatefulSet,
            ("apps", "DaemonSet") => WorkloadKind::DaemonSet,
            ("batch", "Job") => WorkloadKind::Job,
            ("batch", "CronJob") => WorkloadKind::CronJob,
            _ => return None,
        })
    }

    /// The kind of a manifest document, from its `apiVersion` and `kind`.
    pub fn of_document(doc: &Value) -> Option<Self> {
        let api_version = doc.get("apiVersion")?.as_str()?;
        let kind = doc.get("kind")?.as_str()?;
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        WorkloadKind::from_group_kind(group, kind)
    }

    /// The kind name, e.g. `Deployment`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::PodTemplate => "PodTemplate",
            WorkloadKind::ReplicationController => "ReplicationController",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
        }
    }

    /// Every kind, owners before what they own (CronJob before Job, Deployment before
    /// ReplicaSet, every workload before Pod), the order an audit lists them in.
    pub const OWNERS_FIRST: [WorkloadKind; 9] = [
        WorkloadKind::CronJob,
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::ReplicationController,
        WorkloadKind::Job,
        WorkloadKind::ReplicaSet,
        WorkloadKind::PodTemplate,
        WorkloadKind::Pod,
    ];

    /// The `apiVersion` it is served at: `v1`, `apps/v1`, `batch/v1`.
    pub fn api_version(self) -> &'static str {
        match self {
            WorkloadKind::Pod | WorkloadKind::PodTemplate | WorkloadKind::ReplicationController => {
                "v1"
            }
            WorkloadKind::ReplicaSet
            | WorkloadKind::Deployment
            | WorkloadKind::StatefulSet
            | WorkloadKind::DaemonSet => "apps/v1",
            WorkloadKind::Job | WorkloadKind::CronJob => "batch/v1",
        }
    }

    /// JSON pointer tokens from the object root to the pod template (or, for a Pod, the root).
    fn template_tokens(self) -> &'static [&'static str] {
        match self {
            WorkloadKind::Pod => &[],
            WorkloadKind::PodTemplate => &["template"],
            WorkloadKind::CronJob => &["spec", "jobTemplate", "spec", "template"],
            _ => &["spec", "template"],
        }
    }

    /// JSON pointer tokens to the PodSpec: `/spec`, `/spec/template/spec`, ...
    pub fn pod_spec_tokens(self) -> Vec<&'static str> {
        let mut tokens = self.template_tokens().to_vec();
        tokens.push("spec");
        tokens
    }

    /// The pod spec of `object`, a `kind` object in JSON form, if it has one.
    pub fn pod_spec_of(self, object: &Value) -> Option<&Value> {
        lookup(object, &self.pod_spec_tokens()).filter(|v| !v.is_null())
    }

    /// JSON pointer tokens to the pod metadata: `/metadata`, `/spec/template/metadata`, ...
    pub fn pod_metadata_tokens(self) -> Vec<&'static str> {
        let mut tokens = self.template_tokens().to_vec();
        tokens.push("metadata");
        tokens
    }

    /// Whether the spec is a Pod's own (as opposed to a template), which matters for defaulting.
    pub fn spec_owner(self) -> crate::pss::defaulting::SpecOwner {
        if self == WorkloadKind::Pod {
            crate::pss::defaulting::SpecOwner::Pod
        } else {
            crate::pss::defaulting::SpecOwner::Template
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a document's PodSpec could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The object has no PodSpec where its kind puts one.
    #[error("{kind} has no pod spec at {pointer}")]
    MissingSpec {
        /// The kind.
        kind: WorkloadKind,
        /// Where the spec was expected.
        pointer: String,
    },
    /// The PodSpec or its metadata does not have the shape of a Kubernetes PodSpec.
    #[error("{kind} has an invalid pod {part} at {pointer}: {field}: {source}")]
    Invalid {
        /// The kind.
        kind: WorkloadKind,
        /// `spec` or `metadata`.
        part: &'static str,
        /// Where it is.
        pointer: String,
        /// The field that is wrong, from the object's root: `spec.volumes[0].configMap`.
        field: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

/// A typed copy of an object's pod metadata and spec.
#[derive(Debug, Clone, Default)]
pub struct PodParts {
    /// The pod's (or template's) metadata; empty when absent.
    pub metadata: ObjectMeta,
    /// The pod's (or template's) spec.
    pub spec: PodSpec,
}

/// A Pod read straight into its typed parts (the webhook's decoding of a Pod create), with what
/// the patch builder must know of the JSON it came from that the parts do not say.
#[derive(Debug, Clone, Default)]
pub struct TypedPod {
    /// The pod's metadata (empty when absent) and spec.
    pub parts: PodParts,
    /// Whether the object had a (non-null) `metadata`: without one, the record's annotation is
    /// added with a new `metadata` object.
    pub has_metadata: bool,
}

impl TypedPod {
    /// The pod in JSON form as far as its parts go: its `metadata` (when it had one) and `spec`.
    pub fn to_json(&self) -> Value {
        parts_json(&self.parts, self.has_metadata)
    }
}

/// Pod parts in JSON form: `metadata` (when `has_metadata`) and `spec`.
pub(crate) fn parts_json(parts: &PodParts, has_metadata: bool) -> Value {
    // Serializing k8s-openapi's types cannot fail.
    let json = |part: Result<Value, serde_json::Error>| part.unwrap_or(Value::Null);
    let mut object = serde_json::Map::new();
    if has_metadata {
        object.insert(
            "metadata".into(),
            json(serde_json::to_value(&parts.metadata)),
        );
    }
    object.insert("spec".into(), json(serde_json::to_value(&parts.spec)));
    Value::Object(object)
}

fn pointer_string(tokens: &[&str]) -> String {
    tokens.iter().map(|t| format!("/{t}")).collect()
}

fn lookup<'v>(root: &'v Value, tokens: &[&str]) -> Option<&'v Value> {
    tokens.iter().try_fold(root, |v, t| v.get(t))
}

/// Reads one typed part of an object; on failure, names the field that is wrong.
fn deserialize_part<T: serde::de::DeserializeOwned>(
    value: &Value,
    kind: WorkloadKind,
    part: &'static str,
    tokens: &[&str],
) -> Result<T, ExtractError> {
    T::deserialize(value).map_err(|source| {
        // Only now track the path: doing it on every review would cost the webhook's hot path.
        let (inner, source) = match serde_path_to_error::deserialize::<_, T>(value) {
            Err(e) => (e.path().to_string(), e.into_inner()),
            Ok(_) => (String::new(), source),
        };
        let mut field = tokens.join(".");
        if !inner.is_empty() && inner != "." {
            if !inner.starts_with('[') {
                field.push('.');
            }
            field.push_str(&inner);
        }
        ExtractError::Invalid {
            kind,
            part,
            pointer: pointer_string(tokens),
            field,
            source,
        }
    })
}

/// Reads the typed pod metadata and spec of `object`, a `kind` object in JSON form.
pub fn extract(kind: WorkloadKind, object: &Value) -> Result<PodParts, ExtractError> {
    let spec_tokens = kind.pod_spec_tokens();
    let spec_value = lookup(object, &spec_tokens)
        .filter(|v| !v.is_null())
        .ok_or_else(|| ExtractError::MissingSpec {
            kind,
            pointer: pointer_string(&spec_tokens),
        })?;
    let spec = deserialize_part(spec_value, kind, "spec", &spec_tokens)?;
    let meta_tokens = kind.pod_metadata_tokens();
    let metadata = match lookup(object, &meta_tokens).filter(|v| !v.is_null()) {
        None => ObjectMeta::default(),
        Some(v) => deserialize_part(v, kind, "metadata", &meta_tokens)?,
    };
    Ok(PodParts { metadata, spec })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_spec_of_every_kind() {
        for (api_version, kind, expected) in [
            ("v1", "Pod", "/spec"),
            ("v1", "PodTemplate", "/template/spec"),
            ("v1", "ReplicationController", "/spec/template/spec"),
            ("apps/v1", "ReplicaSet", "/spec/template/spec"),
            ("apps/v1", "Deployment", "/spec/template/spec"),
            ("apps/v1", "StatefulSet", "/spec/template/spec"),
            ("apps/v1", "DaemonSet", "/spec/template/spec"),
            ("batch/v1", "Job", "/spec/template/spec"),
            (
                "batch/v1",
                "CronJob",
                "/spec/jobTemplate/spec/template/spec",
            ),
        ] {
            let doc = json!({"apiVersion": api_version, "kind": kind});
            let kind = WorkloadKind::of_document(&doc).expect("known kind");
            assert_eq!(pointer_string(&kind.pod_spec_tokens()), expected);
        }
    }

    #[test]
    fn ignores_kinds_without_a_pod_spec() {
        for (api_version, kind) in [
            ("v1", "Service"),
            ("v1", "ConfigMap"),
            ("extensions/v1beta1", "Deployment"),
            ("v1", "Deployment"),
        ] {
            assert_eq!(
                WorkloadKind::of_document(&json!({"apiVersion": api_version, "kind": kind})),
                None
            );
        }
    }

    #[test]
    fn extracts_a_cronjob_template() {
        let doc = json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "spec": {"jobTemplate": {"spec": {"template": {
                "metadata": {"annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}}}}
        });
        let parts = extract(WorkloadKind::CronJob, &doc).unwrap();
        assert_eq!(parts.spec.containers[0].name, "c");
        assert_eq!(parts.metadata.annotations.unwrap()["a"], "b");
    }

    #[test]
    fn reports_a_missing_or_malformed_spec() {
        let err = extract(WorkloadKind::Deployment, &json!({"spec": {}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment has no pod spec at /spec/template/spec"
        );
        let err = extract(WorkloadKind::Pod, &json!({"spec": {"containers": "x"}})).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Pod has an invalid pod spec at /spec: spec.containers: invalid type"),
            "{err}"
        );
        let err = extract(
            WorkloadKind::Deployment,
            &json!({"spec": {"template": {"spec": {"containers": [],
                "volumes": [{"name": "v", "configMap": {"defaultMode": "0755"}}]}}}}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment has an invalid pod spec at /spec/template/spec: \
             spec.template.spec.volumes[0].configMap.defaultMode: \
             invalid type: string \"0755\", expected i32"
        );
    }
}
