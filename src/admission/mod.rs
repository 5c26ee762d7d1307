//! AdmissionReview in, AdmissionReview out: the webhook's decisions, pure apart from the
//! namespace policy the caller looks up first.
//!
//! - [`review`]: the wire format (decode, encode); [`object`] and `typed` read the object;
//!   `wire` writes the answer's JSON.
//! - [`mutate`]: `/mutate`, hardening Pods on CREATE and new ephemeral containers.
//! - [`validate`]: `/validate`, Pod Security Admission's decisions plus what pod-hardener could
//!   not fix and why.
//! - [`explain`]: the "could not fix" part of messages.
//! - [`match_conditions`]: when the API server need not call `/mutate`.
//! - [`mutating_policy`]: the same fill-mode changes as an in-process MutatingAdmissionPolicy,
//!   the limit the API-server benchmark compares the webhook with.

pub mod explain;
pub mod match_conditions;
pub mod mutate;
pub mod mutating_policy;
pub mod object;
pub mod review;
mod typed;
pub mod validate;
mod wire;

use std::collections::BTreeSet;

use crate::harden::{Control, HardeningSettings};
use crate::pss::CheckId;

pub use review::{
    AdmissionRequest, AdmissionResponse, DecodeError, Operation, ReviewObject, decode,
};

/// Who and what is exempt from Pod Security, as in PSA's `PodSecurityConfiguration.exemptions`.
/// Exempt requests are neither hardened nor checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Exemptions {
    /// Requesting users (exact match). Pods created by a controller are requested by the
    /// controller's service account, not by the user who created the workload.
    pub usernames: BTreeSet<String>,
    /// `spec.runtimeClassName` values.
    pub runtime_class_names: BTreeSet<String>,
    /// Namespaces.
    pub namespaces: BTreeSet<String>,
}

impl Exemptions {
    /// The exemption that covers the request itself, in PSA's order: `namespace`, then `user`.
    pub(crate) fn of_request(&self, req: &AdmissionRequest) -> Option<&'static str> {
        if req
            .namespace
            .as_ref()
            .is_some_and(|ns| self.namespaces.contains(ns))
        {
            return Some("namespace");
        }
        self.usernames
            .contains(&req.user_info.username)
            .then_some("user")
    }

    /// Whether `spec.runtimeClassName` is exempt.
    pub(crate) fn covers_runtime_class(&self, runtime_class_name: Option<&String>) -> bool {
        runtime_class_name.is_some_and(|rc| self.runtime_class_names.contains(rc))
    }
}

/// What the admission decisions depend on besides the namespace policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionSettings {
    /// Hardening profiles and values.
    pub hardening: HardeningSettings,
    /// Exemptions.
    pub exemptions: Exemptions,
}

/// How a request was decided, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Decision {
    /// Allowed without changes.
    Allowed,
    /// Allowed with a patch.
    Patched,
    /// Allowed; shadow mode computed a patch that was not sent.
    Shadowed,
    /// Allowed, with warnings about violations.
    Warned,
    /// Denied by policy.
    Denied,
    /// Exempt.
    Exempt,
    /// Malformed request.
    Invalid,
    /// A bug in pod-hardener, reported in the answer instead of papered over.
    Error,
}

impl Decision {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Patched => "patched",
            Decision::Shadowed => "shadow",
            Decision::Warned => "warned",
            Decision::Denied => "denied",
            Decision::Exempt => "exempt",
            Decision::Invalid => "invalid",
            Decision::Error => "error",
        }
    }

    /// Every decision, for metrics.
    pub const ALL: [Decision; 8] = [
        Decision::Allowed,
        Decision::Patched,
        Decision::Shadowed,
        Decision::Warned,
        Decision::Denied,
        Decision::Exempt,
        Decision::Invalid,
        Decision::Error,
    ];
}

/// A decided request: the response and what the server logs and counts about it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The response to send.
    pub response: AdmissionResponse,
    /// How it was decided.
    pub decision: Decision,
    /// Controls that changed something (or would have, in shadow mode).
    pub changes: Vec<Control>,
    /// Checks that failed at the enforce level.
    pub violations: Vec<CheckId>,
}

impl Outcome {
    /// A decision with no changes and no violations.
    #[must_use]
    pub fn new(response: AdmissionResponse, decision: Decision) -> Self {
        Outcome {
            response,
            decision,
            changes: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// With the controls that changed something.
    #[must_use]
    pub fn with_changes(mut self, changes: Vec<Control>) -> Self {
        self.changes = changes;
        self
    }

    /// With the checks that failed at the enforce level.
    #[must_use]
    pub fn with_violations(mut self, violations: Vec<CheckId>) -> Self {
        self.violations = violations;
        self
    }

    /// An allowed request with no changes.
    #[must_use]
    pub fn allowed(uid: &str) -> Self {
        Outcome::new(AdmissionResponse::allow(uid), Decision::Allowed)
    }

    /// A malformed request.
    #[must_use]
    pub fn invalid(response: AdmissionResponse) -> Self {
        Outcome::new(response, Decision::Invalid)
    }
}

/// Pod subresources PSA never evaluates.
pub(crate) const IGNORED_POD_SUBRESOURCES: [&str; 8] = [
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// Whether the request is for core/v1 Pods.
pub(crate) fn is_pod(req: &AdmissionRequest) -> bool {
    req.resource.group.is_empty() && req.resource.resource == "pods"
}

#[cfg(test)]
pub(crate) mod tests;
