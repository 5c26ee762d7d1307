//! What the planner decided for one pod: ordered changes and skips.

use std::borrow::Cow;

use serde_json::Value;

use super::control::Control;
use super::images::ImageLookup;
use crate::pss::containers::ContainerList;

/// What a change or skip applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The pod as a whole (pod `securityContext`, `volumes`).
    Pod,
    /// One container, by list and name.
    Container {
        /// Which list.
        list: ContainerList,
        /// The container's name.
        name: String,
    },
}

impl Target {
    /// `pod`, or `containers/NAME`, `initContainers/NAME`, `ephemeralContainers/NAME`.
    pub fn key(&self) -> String {
        match self {
            Target::Pod => "pod".to_owned(),
            // Built by hand: `format!` was a visible share of building a record.
            Target::Container { list, name } => {
                let list = list.field_name();
                let mut key = String::with_capacity(list.len() + 1 + name.len());
                key.push_str(list);
                key.push('/');
                key.push_str(name);
                key
            }
        }
    }
}

/// How a change edits the object.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Set the field to the value (creating parents as needed).
    Set(Value),
    /// Append the value to the array (creating it as needed).
    Append(Value),
    /// Remove the field.
    Remove,
}

/// One planned change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The control that makes it.
    pub control: Control,
    /// What it applies to.
    pub target: Target,
    /// JSON pointer tokens relative to the PodSpec: field names are static, so only a container
    /// index past the first few is allocated.
    pub path: Vec<Cow<'static, str>>,
    /// The edit.
    pub edit: Edit,
    /// The explicit value it rewrites, in override mode.
    pub overrides: Option<Value>,
}

impl Change {
    /// The value recorded for auditors: what was set, appended, or `null` for a removal.
    pub fn recorded_value(&self) -> Value {
        match &self.edit {
            Edit::Set(v) | Edit::Append(v) => v.clone(),
            Edit::Remove => Value::Null,
        }
    }
}

/// Why a control did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The workload set the field explicitly to a value the control would change.
    ExplicitValue(String),
    /// The `pod-hardener.io/skip` annotation (or `--skip`) names the control.
    OptOut,
    /// The field is invalid on Windows pods.
    Windows,
    /// Setting the field would make the object invalid for the API server.
    ApiInvalid(String),
    /// Setting the field would contradict an explicit value, so the kubelet could not start it.
    Conflict(String),
    /// The field cannot change in this request (pod volumes on an ephemeral container update).
    Immutable(String),
    /// The namespace's level does not apply this control.
    Level,
    /// The control needs a configured value and none is configured.
    NotConfigured,
    /// The container's image runs as root, so `runAsNonRoot` would stop it from starting.
    ImageRunsAsRoot(String),
    /// The container's image names a user the kubelet cannot verify as non-root.
    ImageUserUnverifiable(String),
}

impl SkipReason {
    /// The reason's stable name, as recorded.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::ExplicitValue(_) => "explicit-value",
            SkipReason::OptOut => "opt-out",
            SkipReason::Windows => "windows",
            SkipReason::ApiInvalid(_) => "api-invalid",
            SkipReason::Conflict(_) => "conflict",
            SkipReason::Immutable(_) => "immutable",
            SkipReason::Level => "level",
            SkipReason::NotConfigured => "not-configured",
            SkipReason::ImageRunsAsRoot(_) => "image-runs-as-root",
            SkipReason::ImageUserUnverifiable(_) => "image-user-unverifiable",
        }
    }

    /// The human detail, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            SkipReason::ExplicitValue(d)
            | SkipReason::ApiInvalid(d)
            | SkipReason::Conflict(d)
            | SkipReason::Immutable(d)
            | SkipReason::ImageRunsAsRoot(d)
            | SkipReason::ImageUserUnverifiable(d) => Some(d),
            _ => None,
        }
    }
}

/// What a lookup said about one container's image, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFinding {
    /// The container.
    pub target: Target,
    /// The image reference as the pod spec writes it.
    pub image: String,
    /// What was learned.
    pub lookup: ImageLookup,
}

/// One control that did not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The control.
    pub control: Control,
    /// What it would have applied to.
    pub target: Target,
    /// Why it did not.
    pub reason: SkipReason,
}

/// The planner's output for one pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Changes in application order.
    pub changes: Vec<Change>,
    /// Skips in planning order.
    pub skips: Vec<Skip>,
    /// Problems with the workload's opt-out annotation, to tell the user.
    pub annotation_errors: Vec<String>,
    /// Images whose user could not be learned, and why: `runAsNonRoot` was planned without it.
    pub lookup_failures: Vec<String>,
    /// What lookups said about the image of each container whose user its image decided.
    pub images: Vec<ImageFinding>,
}
