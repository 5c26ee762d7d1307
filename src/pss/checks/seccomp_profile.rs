//! `seccompProfile_baseline` (baseline: v1.0 reads the alpha annotations, v1.19 reads the fields)
//! and `seccompProfile_restricted` (restricted, v1.19; Windows pods exempt from v1.25; it
//! replaces the baseline check).

use super::setters;
use crate::pss::containers::visit;
use crate::pss::format::{containers_subject, go_quote, join_quote, pluralize, sorted_set};
use crate::pss::{Failure, PodUnderTest};
use k8s_openapi::api::core::v1::SeccompProfile;

/// The pre-1.19 pod-level annotation.
pub(crate) const POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
/// The pre-1.19 per-container annotation prefix.
pub(crate) const CONTAINER_ANNOTATION_PREFIX: &str =
    "container.seccomp.security.alpha.kubernetes.io/";

const REASON: &str = "seccompProfile";

fn allowed_type(profile: &SeccompProfile) -> bool {
    matches!(profile.type_.as_str(), "RuntimeDefault" | "Localhost")
}

fn allowed_annotation_value(value: &str) -> bool {
    value == "runtime/default" || value == "docker/default" || value.starts_with("localhost/")
}

fn must_not_set(who: &[String], values: Vec<String>) -> Failure {
    Failure {
        reason: REASON,
        detail: format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            who.join(" and "),
            join_quote(&sorted_set(values))
        ),
    }
}

pub(crate) fn check_baseline(pod: &PodUnderTest<'_>) -> Option<Failure> {
    if pod.minor < 19 {
        check_baseline_annotations(pod)
    } else {
        check_baseline_fields(pod)
    }
}

fn check_baseline_annotations(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let annotations = pod.meta.annotations.as_ref()?;
    let mut forbidden = Vec::new();
    if let Some(v) = annotations
        .get(POD_ANNOTATION)
        .filter(|v| !allowed_annotation_value(v))
    {
        forbidden.push(format!("{POD_ANNOTATION}={}", go_quote(v)));
    }
    for c in visit(pod.spec) {
        let key = format!("{CONTAINER_ANNOTATION_PREFIX}{}", c.name);
        if let Some(v) = annotations
            .get(&key)
            .filter(|v| !allowed_annotation_value(v))
        {
            forbidden.push(format!("{key}={}", go_quote(v)));
        }
    }
    if forbidden.is_empty() {
        return None;
    }
    let forbidden = sorted_set(forbidden);
    Some(Failure {
        reason: REASON,
        detail: format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", forbidden.len()),
            forbidden.join(", ")
        ),
    })
}

fn check_baseline_fields(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let mut bad_values = Vec::new();
    let pod_profile = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.seccomp_profile.as_ref());
    let pod_is_bad = pod_profile.is_some_and(|p| !allowed_type(p));
    if let Some(p) = pod_profile.filter(|_| pod_is_bad) {
        bad_values.push(p.type_.clone());
    }
    let mut bad_containers = Vec::new();
    for c in visit(pod.spec) {
        let profile = c
            .security_context
            .and_then(|sc| sc.seccomp_profile.as_ref());
        if let Some(p) = profile.filter(|p| !allowed_type(p)) {
            bad_containers.push(c.name);
            bad_values.push(p.type_.clone());
        }
    }
    let who = setters(pod_is_bad, &bad_containers);
    if who.is_empty() {
        return None;
    }
    Some(must_not_set(&who, bad_values))
}

pub(crate) fn check_restricted(pod: &PodUnderTest<'_>) -> Option<Failure> {
    if pod.minor >= 25 && pod.is_windows() {
        return None;
    }
    let mut bad_values = Vec::new();
    let pod_profile = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.seccomp_profile.as_ref());
    let pod_is_bad = pod_profile.is_some_and(|p| !allowed_type(p));
    let pod_is_valid = pod_profile.is_some_and(allowed_type);
    if let Some(p) = pod_profile.filter(|_| pod_is_bad) {
        bad_values.push(p.type_.clone());
    }
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for c in visit(pod.spec) {
        match c
            .security_context
            .and_then(|sc| sc.seccomp_profile.as_ref())
        {
            Some(p) if !allowed_type(p) => {
                explicitly_bad.push(c.name);
                bad_values.push(p.type_.clone());
            }
            Some(_) => {}
            None if !pod_is_valid => implicitly_bad.push(c.name),
            None => {}
        }
    }
    let who = setters(pod_is_bad, &explicitly_bad);
    if !who.is_empty() {
        return Some(must_not_set(&who, bad_values));
    }
    if implicitly_bad.is_empty() {
        return None;
    }
    Some(Failure {
        reason: REASON,
        detail: format!(
            r#"pod or {} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#,
            containers_subject(&implicitly_bad)
        ),
    })
}
