//! The Pod Security Standards evaluator: a pure port of Kubernetes' Pod Security Admission
//! policy package (`k8s.io/pod-security-admission/policy`).
//!
//! [`evaluate`] runs every check that applies at a [`LevelVersion`] and returns the violations
//! in PSA's order with PSA's reasons and details, byte for byte. Each check lives in its own file
//! under `checks/`; [`CheckId`] lists them and says at which versions and levels each runs.
//!
//! The evaluator reads a PodSpec and its ObjectMeta, so Pods and workload templates share it. It
//! assumes the API server's defaulting has happened, as it has for anything PSA sees; callers
//! that read manifests from disk apply [`defaulting::apply_api_server_defaults`] first.

mod check_id;
mod checks;
pub mod containers;
pub mod defaulting;
mod format;
mod level;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use check_id::CheckId;
pub use level::{Level, LevelVersion, NEWEST_MINOR, ParseError, Version};

pub use format::go_quote;

/// One failed check, rendered as PSA renders it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The check that failed.
    pub check: CheckId,
    /// PSA's forbidden reason, e.g. `allowPrivilegeEscalation != false`.
    pub reason: &'static str,
    /// PSA's forbidden detail, e.g. `container "app" must set securityContext.allowPrivilegeEscalation=false`.
    pub detail: String,
}

/// What a check returns when it fails: the reason and the detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) reason: &'static str,
    pub(crate) detail: String,
}

/// The pod as the checks see it: metadata, spec and the minor version being evaluated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PodUnderTest<'a> {
    pub(crate) meta: &'a ObjectMeta,
    pub(crate) spec: &'a PodSpec,
    pub(crate) minor: u32,
}

impl PodUnderTest<'_> {
    /// `spec.os.name == "windows"`, which relaxes some restricted checks from v1.25.
    pub(crate) fn is_windows(&self) -> bool {
        self.spec.os.as_ref().is_some_and(|os| os.name == "windows")
    }

    /// `spec.hostUsers == false`: a user-namespaced pod, relaxed by some v1.35 variants.
    pub(crate) fn uses_user_namespace(&self) -> bool {
        self.spec.host_users == Some(false)
    }
}

/// Evaluates a pod (or pod template) at a level and version.
///
/// Returns the violations in PSA's order; an empty vector means allowed. `privileged` runs no
/// checks.
pub fn evaluate(meta: &ObjectMeta, spec: &PodSpec, policy: LevelVersion) -> Vec<Violation> {
    evaluate_checks(meta, spec, policy, |_| true)
}

/// [`evaluate`] restricted to the checks `runs` selects, for a caller that knows the others pass
/// (the hardened pod's remaining failures): the order and the violations of the selected
/// checks are those of [`evaluate`].
pub fn evaluate_checks(
    meta: &ObjectMeta,
    spec: &PodSpec,
    policy: LevelVersion,
    runs: impl Fn(CheckId) -> bool,
) -> Vec<Violation> {
    let pod = PodUnderTest {
        meta,
        spec,
        minor: policy.version.effective_minor(),
    };
    CheckId::applicable(policy.level, pod.minor)
        .filter(|check| runs(*check))
        .filter_map(|check| {
            check.run(&pod).map(|Failure { reason, detail }| Violation {
                check,
                reason,
                detail,
            })
        })
        .collect()
}

/// `reason (detail), reason (detail)`: PSA's `ForbiddenDetail` aggregation.
pub fn aggregate_details(violations: &[Violation]) -> String {
    let mut out = String::new();
    for (i, v) in violations.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(v.reason);
        if !v.detail.is_empty() {
            out.push_str(" (");
            out.push_str(&v.detail);
            out.push(')');
        }
    }
    out
}

/// `reason, reason`: PSA's `ForbiddenReason` aggregation, used where details would be too long.
pub fn aggregate_reasons(violations: &[Violation]) -> String {
    let reasons: Vec<&str> = violations.iter().map(|v| v.reason).collect();
    reasons.join(", ")
}

/// The enforce message: `violates PodSecurity "restricted:latest": reason (detail), ...`.
pub fn violates_message(policy: LevelVersion, violations: &[Violation]) -> String {
    violates_message_with_details(policy, &aggregate_details(violations))
}

/// [`violates_message`] around details already aggregated ([`aggregate_details`]), for a caller
/// that words the same violations more than once.
pub fn violates_message_with_details(policy: LevelVersion, details: &str) -> String {
    format!(
        "violates PodSecurity {}: {details}",
        go_quote(&policy.to_string())
    )
}

/// The warn and audit message: `would violate PodSecurity "restricted:latest": ...`.
pub fn would_violate_message(policy: LevelVersion, violations: &[Violation]) -> String {
    would_violate_message_with_details(policy, &aggregate_details(violations))
}

/// [`would_violate_message`] around details already aggregated ([`aggregate_details`]).
pub fn would_violate_message_with_details(policy: LevelVersion, details: &str) -> String {
    format!(
        "would violate PodSecurity {}: {details}",
        go_quote(&policy.to_string())
    )
}

#[cfg(test)]
mod tests;
