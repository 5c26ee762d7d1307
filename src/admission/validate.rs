//! `/validate`: Pod Security Admission's decisions at the namespace's levels, with PSA's exact
//! messages plus what pod-hardener could not fix and why. Pods are enforced; workload resources
//! get warnings only, computed on their template as it will look after hardening.

use std::borrow::Cow;

use serde_json::Value;

use super::explain::could_not_fix;
use super::{
    AdmissionRequest, AdmissionResponse, AdmissionSettings, Decision, Operation, Outcome,
    ReviewObject,
};
use crate::harden::{Hardener, ImageCatalog, Profile, Scope, record::Record};
use crate::policy::{HardenMode, NamespacePolicy};
use crate::pss::{self, Level, LevelVersion, Violation};
use crate::workload::{self, PodParts, WorkloadKind};

/// Audit annotation keys, as PSA names them (the API server prefixes the webhook name).
pub const AUDIT_ENFORCE_POLICY: &str = "enforce-policy";
/// Audit annotation with the audit level's violations.
pub const AUDIT_VIOLATIONS: &str = "audit-violations";
/// Audit annotation naming an exemption.
pub const AUDIT_EXEMPT: &str = "exempt";
/// Audit annotation for label errors.
pub const AUDIT_ERROR: &str = "error";

/// Decides a `/validate` request.
pub fn validate(
    req: &AdmissionRequest,
    policy: &NamespacePolicy,
    settings: &AdmissionSettings,
) -> Outcome {
    validate_with_images(req, policy, settings, None)
}

/// Decides a `/validate` request; `images`, when lookups ran for a workload's template, makes
/// its warnings say what its Pods' hardening will leave failing (an image that runs as root).
pub fn validate_with_images(
    req: &AdmissionRequest,
    policy: &NamespacePolicy,
    settings: &AdmissionSettings,
    images: Option<ImageCatalog>,
) -> Outcome {
    if matches!(req.operation, Operation::Delete | Operation::Connect) {
        return Outcome::allowed(&req.uid);
    }
    if super::is_pod(req) {
        return validate_pod(req, policy, settings);
    }
    let kind = WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind);
    match kind {
        Some(kind) if kind != WorkloadKind::Pod && req.sub_resource.is_none() => {
            validate_workload(req, kind, policy, settings, images)
        }
        _ => Outcome::allowed(&req.uid),
    }
}

fn exempt(uid: &str, what: &str) -> Outcome {
    let mut rsp = AdmissionResponse::allow(uid);
    rsp.audit_annotations
        .insert(AUDIT_EXEMPT.to_owned(), what.to_owned());
    Outcome::new(rsp, Decision::Exempt)
}

/// Evaluations cached per level and version, as PSA does, since warn and audit usually equal
/// enforce; each one's aggregated details too, so the messages of equal levels (a denial and
/// its audit annotation, a warning and the audit annotation) aggregate them once.
struct Evaluations<'a> {
    parts: &'a PodParts,
    cache: Vec<Evaluation>,
}

struct Evaluation {
    level: LevelVersion,
    violations: Vec<Violation>,
    /// `pss::aggregate_details` of the violations, once a message needed it.
    details: Option<String>,
}

impl<'a> Evaluations<'a> {
    fn new(parts: &'a PodParts) -> Self {
        Evaluations {
            parts,
            cache: Vec::with_capacity(3),
        }
    }

    fn evaluation(&mut self, lv: LevelVersion) -> &mut Evaluation {
        let index = match self.cache.iter().position(|e| e.level == lv) {
            Some(i) => i,
            None => {
                let violations = pss::evaluate(&self.parts.metadata, &self.parts.spec, lv);
                self.cache.push(Evaluation {
                    level: lv,
                    violations,
                    details: None,
                });
                self.cache.len() - 1
            }
        };
        &mut self.cache[index]
    }

    /// The violations at `lv` and their aggregated details.
    fn with_details(&mut self, lv: LevelVersion) -> (&[Violation], &str) {
        let Evaluation {
            violations,
            details,
            ..
        } = self.evaluation(lv);
        let details = details.get_or_insert_with(|| pss::aggregate_details(violations));
        (violations, details)
    }
}

fn validate_pod(
    req: &AdmissionRequest,
    policy: &NamespacePolicy,
    settings: &AdmissionSettings,
) -> Outcome {
    if req
        .sub_resource
        .as_deref()
        .is_some_and(|s| super::IGNORED_POD_SUBRESOURCES.contains(&s))
    {
        return Outcome::allowed(&req.uid);
    }
    if let Some(what) = settings.exemptions.of_request(req) {
        return exempt(&req.uid, what);
    }
    if policy.is_fully_privileged() {
        let mut rsp = AdmissionResponse::allow(&req.uid);
        rsp.audit_annotations
            .insert(AUDIT_ENFORCE_POLICY.to_owned(), policy.enforce.to_string());
        return Outcome::new(rsp, Decision::Allowed);
    }
    let Some(object) = req.object.as_ref() else {
        return Outcome::invalid(AdmissionResponse::bad_request(
            &req.uid,
            "the request has no object".into(),
        ));
    };
    let (parts, json) = match object {
        ReviewObject::Pod(pod) => (Cow::Borrowed(&pod.parts), None),
        ReviewObject::Json(json) => match workload::extract(WorkloadKind::Pod, json) {
            Ok(p) => (Cow::Owned(p), Some(json)),
            Err(e) => {
                return Outcome::invalid(AdmissionResponse::bad_request(
                    &req.uid,
                    format!("failed to decode pod: {e}"),
                ));
            }
        },
    };
    // Only creates read typed, so an update's object is JSON here.
    if req.operation == Operation::Update
        && json.is_some_and(|new| !is_significant_update(new, req.old_object.as_ref()))
    {
        return Outcome::allowed(&req.uid);
    }
    if settings
        .exemptions
        .covers_runtime_class(parts.spec.runtime_class_name.as_ref())
    {
        return exempt(&req.uid, "runtimeClass");
    }
    let mut evaluations = Evaluations::new(&parts);
    let mut rsp = AdmissionResponse::allow(&req.uid);
    rsp.audit_annotations
        .insert(AUDIT_ENFORCE_POLICY.to_owned(), policy.enforce.to_string());
    if !policy.label_errors.is_empty() {
        rsp.audit_annotations.insert(
            AUDIT_ERROR.to_owned(),
            format!("Failed to parse policy: {}", policy.label_errors.join("; ")),
        );
    }
    let (enforce, details) = evaluations.with_details(policy.enforce);
    if !enforce.is_empty() {
        let record = Record::on(&parts);
        let mut message = pss::violates_message_with_details(policy.enforce, details);
        let extra = could_not_fix(enforce, record.as_ref());
        if !extra.is_empty() {
            message.push_str("; ");
            message.push_str(&extra);
        }
        let checks = enforce.iter().map(|v| v.check).collect();
        let mut denied = AdmissionResponse::forbid(&req.uid, message);
        denied.audit_annotations = std::mem::take(&mut rsp.audit_annotations);
        add_audit(&mut denied, policy, &mut evaluations);
        return Outcome::new(denied, Decision::Denied).with_violations(checks);
    }
    add_audit(&mut rsp, policy, &mut evaluations);
    let warned = add_warning(&mut rsp, policy, &mut evaluations);
    let decision = if warned {
        Decision::Warned
    } else {
        Decision::Allowed
    };
    Outcome::new(rsp, decision)
}

fn add_audit(
    rsp: &mut AdmissionResponse,
    policy: &NamespacePolicy,
    evaluations: &mut Evaluations<'_>,
) {
    if policy.audit.level == Level::Privileged {
        return;
    }
    let (violations, details) = evaluations.with_details(policy.audit);
    if !violations.is_empty() {
        rsp.audit_annotations.insert(
            AUDIT_VIOLATIONS.to_owned(),
            pss::would_violate_message_with_details(policy.audit, details),
        );
    }
}

fn add_warning(
    rsp: &mut AdmissionResponse,
    policy: &NamespacePolicy,
    evaluations: &mut Evaluations<'_>,
) -> bool {
    if policy.warn.level == Level::Privileged {
        return false;
    }
    let (violations, details) = evaluations.with_details(policy.warn);
    if violations.is_empty() {
        return false;
    }
    rsp.warnings.push(pss::would_violate_message_with_details(
        policy.warn,
        details,
    ));
    true
}

/// PSA's `isSignificantPodUpdate`: only changes to the set of containers or their images are
/// re-evaluated; every other update of a pod is allowed.
fn is_significant_update(new: &Value, old: Option<&Value>) -> bool {
    let Some(old) = old else { return true };
    let list = |v: &Value, field: &str| -> Vec<(Option<String>, Option<String>)> {
        v.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
                (s("name"), s("image"))
            })
            .collect()
    };
    let changed = |field: &str| list(new, field) != list(old, field);
    // Ephemeral containers can only be added or have their image changed, so any difference
    // in the (name, image) list is significant, as in PSA.
    changed("containers") || changed("initContainers") || changed("ephemeralContainers")
}

fn validate_workload(
    req: &AdmissionRequest,
    kind: WorkloadKind,
    policy: &NamespacePolicy,
    settings: &AdmissionSettings,
    images: Option<ImageCatalog>,
) -> Outcome {
    if let Some(what) = settings.exemptions.of_request(req) {
        return exempt(&req.uid, what);
    }
    if policy.warn.level == Level::Privileged && policy.audit.level == Level::Privileged {
        return Outcome::allowed(&req.uid);
    }
    let Some(object) = req.object.as_ref() else {
        return Outcome::allowed(&req.uid);
    };
    // Only Pods read typed: a workload's object is JSON, borrowed.
    let object = object.to_json();
    let object = object.as_ref();
    // Workloads are never denied: a template that cannot be read is reported, as PSA does.
    let mut rsp = AdmissionResponse::allow(&req.uid);
    let hardening = if policy.mode == HardenMode::Harden {
        let mut hardener = Hardener::new(Profile::for_level(
            policy.enforce.level,
            &settings.hardening,
        ));
        if let Some(images) = images {
            hardener = hardener.with_images(images);
        }
        Some(hardener.harden(kind, object, Scope::Create))
    } else {
        None
    };
    let parts = match &hardening {
        Some(Ok(h)) => Ok(Cow::Borrowed(h.parts())),
        Some(Err(e)) => Err(e.to_string()),
        None => workload::extract(kind, object)
            .map(Cow::Owned)
            .map_err(|e| e.to_string()),
    };
    let parts = match parts {
        Ok(parts) => parts,
        Err(e) => {
            rsp.audit_annotations.insert(AUDIT_ERROR.to_owned(), e);
            return Outcome::new(rsp, Decision::Allowed);
        }
    };
    if settings
        .exemptions
        .covers_runtime_class(parts.spec.runtime_class_name.as_ref())
    {
        return exempt(&req.uid, "runtimeClass");
    }
    // The template as the controller's Pods will look after /mutate hardens them.
    let (as_hardened, record) = match &hardening {
        Some(Ok(h)) => match h.hardened_parts() {
            Ok(hardened) => {
                let record = h.record.as_ref().map(|(r, _)| r.clone());
                let record = record.or_else(|| Record::on(&hardened));
                (hardened, record)
            }
            // A bug, reported where the user and the auditor see it rather than judged on the
            // unhardened template.
            Err(e) => {
                let message = format!("pod-hardener: {e}");
                rsp.audit_annotations
                    .insert(AUDIT_ERROR.to_owned(), message.clone());
                rsp.warnings.push(message);
                return Outcome::new(rsp, Decision::Error);
            }
        },
        _ => {
            let record = Record::on(&parts);
            (parts, record)
        }
    };
    let mut evaluations = Evaluations::new(&as_hardened);
    add_audit(&mut rsp, policy, &mut evaluations);
    let mut decision = Decision::Allowed;
    let mut checks = Vec::new();
    // The enforce level is what will deny the Pods, so warn about it even when warn is lower.
    for lv in [policy.enforce, policy.warn] {
        if lv.level == Level::Privileged {
            continue;
        }
        let (violations, details) = evaluations.with_details(lv);
        if violations.is_empty() {
            continue;
        }
        let mut message = pss::would_violate_message_with_details(lv, details);
        let extra = could_not_fix(violations, record.as_ref());
        if !extra.is_empty() {
            message.push_str("; ");
            message.push_str(&extra);
        }
        if !rsp.warnings.contains(&message) {
            rsp.warnings.push(message);
        }
        decision = Decision::Warned;
        if lv == policy.enforce {
            checks = violations.iter().map(|v| v.check).collect();
        }
    }
    Outcome::new(rsp, decision).with_violations(checks)
}
