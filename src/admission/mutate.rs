//! `/mutate`: harden Pods on CREATE, and new ephemeral containers on UPDATE of the
//! `pods/ephemeralcontainers` subresource. Every other request is allowed unchanged: pod
//! security fields are immutable after create, so patching other updates would brick pods.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    AdmissionRequest, AdmissionResponse, AdmissionSettings, Decision, Operation, Outcome,
    ReviewObject,
};
use crate::harden::{self, Control, Hardener, Hardening, ImageCatalog, Profile, Scope};
use crate::policy::{HardenMode, NamespacePolicy};
use crate::pss;
use crate::workload::WorkloadKind;

/// The audit annotation with the record of a hardened pod.
pub const AUDIT_HARDENED: &str = "hardened";
/// The audit annotation with what shadow mode would have changed.
pub const AUDIT_SHADOW: &str = "shadow";

/// Decides a `/mutate` request without image lookups.
pub fn mutate(
    req: &AdmissionRequest,
    policy: &NamespacePolicy,
    settings: &AdmissionSettings,
) -> Outcome {
    mutate_with_images(req, policy, settings, None)
}

/// Decides a `/mutate` request; `images`, when lookups ran, decides `runAsNonRoot` per
/// container from each image's user (see [`crate::harden::images`]).
pub fn mutate_with_images(
    req: &AdmissionRequest,
    policy: &NamespacePolicy,
    settings: &AdmissionSettings,
    images: Option<ImageCatalog>,
) -> Outcome {
    let scope_names: BTreeSet<String>;
    let scope = match (req.operation, req.sub_resource.as_deref()) {
        _ if !super::is_pod(req) => return Outcome::allowed(&req.uid),
        (Operation::Create, None) => Scope::Create,
        (Operation::Update, Some("ephemeralcontainers")) => {
            scope_names = ephemeral_names(req.old_object.as_ref());
            Scope::NewEphemeralContainers(&scope_names)
        }
        _ => return Outcome::allowed(&req.uid),
    };
    let Some(object) = req.object.as_ref() else {
        return Outcome::invalid(AdmissionResponse::bad_request(
            &req.uid,
            "the request has no object".into(),
        ));
    };
    let exemptions = &settings.exemptions;
    if policy.mode == HardenMode::Off || exemptions.of_request(req).is_some() {
        return Outcome::allowed(&req.uid);
    }
    let mut hardener = Hardener::new(Profile::for_level(
        policy.enforce.level,
        &settings.hardening,
    ));
    if let Some(images) = images {
        hardener = hardener.with_images(images);
    }
    let hardened = match object {
        ReviewObject::Pod(pod) => Ok(hardener.harden_pod(pod, scope)),
        ReviewObject::Json(object) => hardener.harden(WorkloadKind::Pod, object, scope),
    };
    let hardening = match hardened {
        Ok(hardening) => hardening,
        Err(e) => return Outcome::invalid(AdmissionResponse::bad_request(&req.uid, e.to_string())),
    };
    // Planned before this check so the pod is read once; exempt runtime classes are rare.
    let runtime_class = hardening.parts().spec.runtime_class_name.as_ref();
    if exemptions.covers_runtime_class(runtime_class) {
        return Outcome::allowed(&req.uid);
    }

    let mut rsp = AdmissionResponse::allow(&req.uid);
    rsp.warnings
        .extend(hardening.plan.annotation_errors.iter().cloned());
    rsp.warnings
        .extend(hardening.plan.lookup_failures.iter().map(|why| {
            format!(
                "pod-hardener could not read the user of {why}; runAsNonRoot was planned without it"
            )
        }));
    let changed: Vec<Control> = distinct_controls(&hardening.plan);
    let shadow = policy.mode == HardenMode::Shadow;
    if let Some((_, json)) = &hardening.record {
        let key = if shadow { AUDIT_SHADOW } else { AUDIT_HARDENED };
        rsp.audit_annotations.insert(key.to_owned(), json.clone());
    }
    if !changed.is_empty() {
        let names: Vec<&str> = changed.iter().map(|c| c.as_str()).collect();
        let verb = if shadow {
            "pod-hardener (shadow mode) would set"
        } else {
            "pod-hardener set"
        };
        rsp.warnings.push(format!("{verb}: {}", names.join(", ")));
    }
    // Shadow mode sends no patch, so the pod is judged as it is.
    if let Some(warning) = still_denied(&hardening, !shadow, policy) {
        rsp.warnings.push(warning);
    }
    let decision = match (changed.is_empty(), shadow) {
        (true, _) => Decision::Allowed,
        (false, true) => Decision::Shadowed,
        (false, false) => {
            rsp = rsp.with_patch(&hardening.patch);
            Decision::Patched
        }
    };
    Outcome::new(rsp, decision).with_changes(changed)
}

fn ephemeral_names(old: Option<&Value>) -> BTreeSet<String> {
    old.and_then(|o| o.pointer("/spec/ephemeralContainers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name")?.as_str().map(str::to_owned))
        .collect()
}

fn distinct_controls(plan: &harden::Plan) -> Vec<Control> {
    let set: BTreeSet<Control> = plan.changes.iter().map(|c| c.control).collect();
    set.into_iter().collect()
}

/// A warning when the pod, as hardened (`applied`) or as it is, will still be denied at the
/// enforce level.
fn still_denied(
    hardening: &Hardening<'_>,
    applied: bool,
    policy: &NamespacePolicy,
) -> Option<String> {
    if policy.enforce.level == pss::Level::Privileged {
        return None;
    }
    let violations = if applied {
        hardening.still_failing(policy.enforce)
    } else {
        let parts = hardening.parts();
        pss::evaluate(&parts.metadata, &parts.spec, policy.enforce)
    };
    if violations.is_empty() {
        return None;
    }
    let mut warning = format!(
        "pod-hardener: this pod will still be denied by PodSecurity {}: {}",
        pss::go_quote(&policy.enforce.to_string()),
        pss::aggregate_reasons(&violations)
    );
    // Why, and what to do: the same explanation the validating webhook's denial gives.
    let record = hardening.record.as_ref().map(|(record, _)| record);
    let why = super::explain::could_not_fix(&violations, record);
    if !why.is_empty() {
        warning.push_str("; ");
        warning.push_str(&why);
    }
    Some(warning)
}
