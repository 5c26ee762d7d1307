//! `appArmorProfile` (baseline, v1.0): profile fields and the deprecated per-container
//! annotations may only select `RuntimeDefault`/`runtime/default` or `Localhost`/`localhost/*`.

use super::setters;
use crate::pss::containers::names_where;
use crate::pss::format::{go_quote, join_quote, pluralize, sorted_set};
use crate::pss::{Failure, PodUnderTest};
use k8s_openapi::api::core::v1::AppArmorProfile;

/// The deprecated beta annotation prefix; every key with it is checked, matching container or not.
pub(crate) const ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn allowed_type(profile: &AppArmorProfile) -> bool {
    matches!(profile.type_.as_str(), "RuntimeDefault" | "Localhost")
}

fn allowed_annotation_value(value: &str) -> bool {
    value.is_empty() || value == "runtime/default" || value.starts_with("localhost/")
}

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let mut bad_values = Vec::new();
    let pod_profile = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.app_armor_profile.as_ref());
    let pod_is_bad = pod_profile.is_some_and(|p| !allowed_type(p));
    if let Some(p) = pod_profile.filter(|_| pod_is_bad) {
        bad_values.push(p.type_.clone());
    }
    let bad_containers = names_where(pod.spec, |c| {
        match c
            .security_context
            .and_then(|sc| sc.app_armor_profile.as_ref())
        {
            Some(p) if !allowed_type(p) => {
                bad_values.push(p.type_.clone());
                true
            }
            _ => false,
        }
    });
    let forbidden_annotations = sorted_set(
        pod.meta
            .annotations
            .iter()
            .flatten()
            .filter(|(k, v)| k.starts_with(ANNOTATION_PREFIX) && !allowed_annotation_value(v))
            .map(|(k, v)| format!("{k}={}", go_quote(v)))
            .collect(),
    );

    let mut values = sorted_set(bad_values);
    let mut who = setters(pod_is_bad, &bad_containers);
    if !forbidden_annotations.is_empty() {
        who.push(pluralize("annotation", "annotations", forbidden_annotations.len()).to_owned());
        values.extend(forbidden_annotations);
    }
    if values.is_empty() {
        return None;
    }
    Some(Failure {
        reason: pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        detail: format!(
            "{} must not set AppArmor profile type to {}",
            who.join(" and "),
            join_quote(&values)
        ),
    })
}
