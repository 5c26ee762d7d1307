//! One object at its namespace's policy: compliant as it is, compliant after hardening, still
//! denied, or exempt; and what may fail at run time. Pure: the same decisions as `/mutate` then
//! `/validate` (and as `check` and `harden` offline), through the same core.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, SecurityContext};
use serde::Serialize;
use serde_json::Value;

use crate::admission::AdmissionSettings;
use crate::admission::explain::{Unfixable, could_not_fix, unfixable};
use crate::harden::images::{ImageCatalog, UserVerdict, verdict};
use crate::harden::{Control, Hardener, Plan, Profile, Record, Scope, Target};
use crate::policy::{HardenMode, NamespacePolicy};
use crate::pss::containers::{self, ContainerList};
use crate::pss::{self, defaulting};
use crate::workload::{self, WorkloadKind};

/// The verdict on one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Meets the namespace's enforce level as it is (hardening may still change it).
    Compliant,
    /// Fails the enforce level as it is and meets it after hardening.
    Hardened,
    /// Still fails the enforce level after hardening: its Pods will be denied.
    Denied,
    /// Neither hardened nor checked (an exempt namespace or runtime class).
    Exempt,
    /// Its pod spec cannot be read.
    Unreadable,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 5] = [
        Class::Compliant,
        Class::Hardened,
        Class::Denied,
        Class::Exempt,
        Class::Unreadable,
    ];

    /// `compliant`, `hardened`, `denied`, `exempt`, `unreadable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Compliant => "compliant",
            Class::Hardened => "hardened",
            Class::Denied => "denied",
            Class::Exempt => "exempt",
            Class::Unreadable => "unreadable",
        }
    }
}

/// What may stop a hardened container at run time, though admission allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RiskKind {
    /// Hardening makes the root filesystem read-only: a program writing outside `/tmp` and its
    /// volumes fails.
    ReadOnlyRoot,
    /// Hardening sets `runAsNonRoot` and the image runs as root: the kubelet refuses it.
    ImageRunsAsRoot,
    /// Hardening sets `runAsNonRoot` and the image names a user the kubelet cannot verify.
    ImageUserUnverifiable,
    /// Hardening sets `runAsNonRoot` and nothing is known of the image's user (no lookups, or
    /// the lookup failed): it starts only if the image's USER is numeric and non-zero.
    ImageUserUnknown,
}

impl RiskKind {
    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskKind::ReadOnlyRoot => "read-only-root",
            RiskKind::ImageRunsAsRoot => "image-runs-as-root",
            RiskKind::ImageUserUnverifiable => "image-user-unverifiable",
            RiskKind::ImageUserUnknown => "image-user-unknown",
        }
    }
}

/// One run-time risk of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// `containers/NAME` or `initContainers/NAME`.
    pub container: String,
    /// What.
    pub kind: RiskKind,
    /// Why, for people.
    pub detail: String,
}

/// `containers/app: read-only-root`.
impl std::fmt::Display for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.container, self.kind.as_str())
    }
}

/// The controls hardening applies to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetChanges {
    /// `pod`, `containers/NAME`, `initContainers/NAME`.
    pub target: String,
    /// The controls, in record order.
    pub controls: Vec<Control>,
}

/// `containers/app: runAsNonRoot, seccompProfile`.
impl std::fmt::Display for TargetChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.target)?;
        for (i, control) in self.controls.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{control}")?;
        }
        Ok(())
    }
}

/// What the audit found for one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The verdict.
    pub class: Class,
    /// The enforce level and version it was judged at.
    pub policy: String,
    /// What hardening changes, per target (empty when nothing, or when it does not run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<TargetChanges>,
    /// For `denied`: the message the API server will give (PSA's, plus what pod-hardener could
    /// not fix); for `exempt`: what exempts it; for `unreadable`: what is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `denied`: each check left failing and why hardening cannot fix it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unfixable: Vec<Unfixable>,
    /// What may fail at run time after hardening.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub risks: Vec<Risk>,
}

impl Finding {
    fn without_hardening(class: Class, policy: String, message: String) -> Self {
        Finding {
            class,
            policy,
            changes: Vec::new(),
            message: Some(message),
            unfixable: Vec::new(),
            risks: Vec::new(),
        }
    }

    /// Whether it is at risk at run time: a risk other than an unknown image user, which is
    /// counted (and reported) apart.
    pub fn is_at_risk(&self) -> bool {
        self.risks
            .iter()
            .any(|r| r.kind != RiskKind::ImageUserUnknown)
    }

    /// Whether hardening sets `runAsNonRoot` on an image whose user is not known.
    pub fn has_unknown_image_user(&self) -> bool {
        self.risks
            .iter()
            .any(|r| r.kind == RiskKind::ImageUserUnknown)
    }
}

/// Classifies one `kind` object (JSON, as the API server stores it) in `namespace`, whose policy
/// is `policy`, as the webhook with `settings` will treat the Pods made from it; `images`, when
/// lookups ran, is what they learned about its images.
pub fn classify(
    kind: WorkloadKind,
    object: &Value,
    namespace: &str,
    policy: &NamespacePolicy,
    settings: &AdmissionSettings,
    images: Option<ImageCatalog>,
) -> Finding {
    let level = policy.enforce.to_string();
    if settings.exemptions.namespaces.contains(namespace) {
        return Finding::without_hardening(Class::Exempt, level, "exempt namespace".into());
    }
    // A Pod is created without ephemeral containers (`kubectl debug` adds them later, through
    // a subresource the webhook judges on its own): judge it as it will be created again.
    let without_ephemeral;
    let object = match object.pointer("/spec/ephemeralContainers") {
        Some(_) if kind == WorkloadKind::Pod => {
            let mut copy = object.clone();
            if let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("ephemeralContainers");
            }
            without_ephemeral = copy;
            &without_ephemeral
        }
        _ => object,
    };
    let parts = match workload::extract(kind, object) {
        Ok(parts) => parts,
        Err(e) => return Finding::without_hardening(Class::Unreadable, level, e.to_string()),
    };
    if settings
        .exemptions
        .covers_runtime_class(parts.spec.runtime_class_name.as_ref())
    {
        return Finding::without_hardening(Class::Exempt, level, "exempt runtimeClass".into());
    }
    let as_is = pss::evaluate(
        &parts.metadata,
        &defaulted(&parts.spec, kind),
        policy.enforce,
    );

    let hardening = if policy.mode == HardenMode::Harden {
        let mut hardener = Hardener::new(Profile::for_level(
            policy.enforce.level,
            &settings.hardening,
        ));
        if let Some(images) = images.clone() {
            hardener = hardener.with_images(images);
        }
        match hardener.harden(kind, object, Scope::Create) {
            Ok(h) => Some(h),
            Err(e) => return Finding::without_hardening(Class::Unreadable, level, e.to_string()),
        }
    } else {
        None
    };
    // The pod as the validating webhook will see it, and the record that explains it.
    let (after, record) = match &hardening {
        Some(h) => match h.hardened_parts() {
            Ok(hardened) => {
                let record = h.record.as_ref().map(|(r, _)| r.clone());
                let record = record.or_else(|| Record::on(&hardened));
                (hardened, record)
            }
            Err(e) => return Finding::without_hardening(Class::Unreadable, level, e.to_string()),
        },
        None => (Cow::Borrowed(&parts), Record::on(&parts)),
    };
    let remaining = if hardening.as_ref().is_some_and(|h| h.changes_object()) {
        pss::evaluate(
            &after.metadata,
            &defaulted(&after.spec, kind),
            policy.enforce,
        )
    } else {
        as_is.clone()
    };

    // `/validate` judges the pod after hardening: compliant as it is counts only when hardening
    // leaves it so.
    let class = match (as_is.is_empty(), remaining.is_empty()) {
        (_, false) => Class::Denied,
        (true, true) => Class::Compliant,
        (false, true) => Class::Hardened,
    };
    let plan = hardening.as_ref().map(|h| &h.plan);
    let (message, unfixable) = if class == Class::Denied {
        let mut message = pss::violates_message(policy.enforce, &remaining);
        let extra = could_not_fix(&remaining, record.as_ref());
        if !extra.is_empty() {
            message.push_str("; ");
            message.push_str(&extra);
        }
        (Some(message), unfixable(&remaining, record.as_ref()))
    } else {
        (None, Vec::new())
    };
    Finding {
        class,
        policy: level,
        changes: plan.map(changes_by_target).unwrap_or_default(),
        message,
        unfixable,
        // A denied object never runs: its risks would only bury the reason it is denied.
        risks: match plan {
            Some(plan) if class != Class::Denied => {
                run_time_risks(plan, &after.spec, images.as_ref())
            }
            _ => Vec::new(),
        },
    }
}

fn defaulted(spec: &PodSpec, kind: WorkloadKind) -> PodSpec {
    let mut spec = spec.clone();
    defaulting::apply_api_server_defaults(&mut spec, kind.spec_owner());
    spec
}

fn changes_by_target(plan: &Plan) -> Vec<TargetChanges> {
    let mut by_target: BTreeMap<&Target, Vec<Control>> = BTreeMap::new();
    for change in &plan.changes {
        let controls = by_target.entry(&change.target).or_default();
        if !controls.contains(&change.control) {
            controls.push(change.control);
        }
    }
    by_target
        .into_iter()
        .map(|(target, mut controls)| {
            controls.sort();
            TargetChanges {
                target: target.key(),
                controls,
            }
        })
        .collect()
}

/// What the kubelet or the program may trip over once hardening applied `plan`, judged on the
/// hardened spec `after`: a read-only root the plan made, and `runAsNonRoot` the plan set for a
/// container with no `runAsUser` in effect, whose image must then run as a numeric non-root user.
fn run_time_risks(plan: &Plan, after: &PodSpec, images: Option<&ImageCatalog>) -> Vec<Risk> {
    let mut risks = Vec::new();
    let sets = |control: Control, list: ContainerList, name: &str| {
        plan.changes.iter().any(|c| {
            c.control == control
                && match &c.target {
                    Target::Pod => true,
                    Target::Container { list: l, name: n } => *l == list && n == name,
                }
        })
    };
    let pod_context = after.security_context.as_ref();
    // The kubelet checks Windows users by name (ContainerAdministrator), not by UID: the image
    // user rules below are Linux's, as the planner's are.
    let windows = after.os.as_ref().is_some_and(|os| os.name == "windows");
    for container in containers::visit(after) {
        if container.list == ContainerList::Ephemeral {
            continue;
        }
        let key = format!("{}/{}", container.list.field_name(), container.name);
        if sets(
            Control::ReadOnlyRootFilesystem,
            container.list,
            container.name,
        ) {
            risks.push(Risk {
                container: key.clone(),
                kind: RiskKind::ReadOnlyRoot,
                detail: "hardening makes its root filesystem read-only (with an emptyDir at /tmp): a program that writes elsewhere on it fails; add an emptyDir for that path or opt out with pod-hardener.io/skip: readOnlyRootFilesystem".into(),
            });
        }
        if windows || !sets(Control::RunAsNonRoot, container.list, container.name) {
            continue;
        }
        let run_as_user = container
            .security_context
            .and_then(|c: &SecurityContext| c.run_as_user)
            .or_else(|| pod_context.and_then(|p| p.run_as_user));
        if run_as_user.is_some() {
            continue;
        }
        let image = container.image.unwrap_or_default();
        let (kind, detail) = match verdict(image, images.and_then(|c| c.get(image))) {
            UserVerdict::Verifiable | UserVerdict::NamedUid { .. } => continue,
            UserVerdict::Root(d) => (RiskKind::ImageRunsAsRoot, d),
            UserVerdict::Unverifiable(d) => (RiskKind::ImageUserUnverifiable, d),
            UserVerdict::Unknown(d) => (RiskKind::ImageUserUnknown, d),
        };
        risks.push(Risk {
            container: key,
            kind,
            detail: format!(
                "hardening sets runAsNonRoot with no runAsUser, so the kubelet starts it only if its image's user is numeric and non-zero: {detail}"
            ),
        });
    }
    risks
}

#[cfg(test)]
mod tests;
