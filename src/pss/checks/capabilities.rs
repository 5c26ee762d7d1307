//! `capabilities_baseline` (baseline, v1.0) and `capabilities_restricted` (restricted, v1.22;
//! Windows pods exempt from v1.25, and it replaces the baseline check).

use crate::pss::containers::visit;
use crate::pss::format::{containers_subject, join_quote, sorted_set};
use crate::pss::{Failure, PodUnderTest};

/// The capabilities the baseline level lets a container add (exact, case-sensitive strings).
pub(crate) const BASELINE_ALLOWED: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The only capability the restricted level lets a container add.
pub(crate) const RESTRICTED_ALLOWED: &str = "NET_BIND_SERVICE";

const REASON_BASELINE: &str = "non-default capabilities";
const REASON_RESTRICTED: &str = "unrestricted capabilities";

fn must_not_include(containers: &[&str], caps: Vec<String>) -> String {
    format!(
        "{} must not include {} in securityContext.capabilities.add",
        containers_subject(containers),
        join_quote(&sorted_set(caps))
    )
}

pub(crate) fn check_baseline(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let mut bad_containers = Vec::new();
    let mut bad_caps = Vec::new();
    for c in visit(pod.spec) {
        let added = c
            .security_context
            .and_then(|sc| sc.capabilities.as_ref())
            .and_then(|caps| caps.add.as_ref());
        let mut container_is_bad = false;
        for cap in added.into_iter().flatten() {
            if !BASELINE_ALLOWED.contains(&cap.as_str()) {
                container_is_bad = true;
                bad_caps.push(cap.clone());
            }
        }
        if container_is_bad {
            bad_containers.push(c.name);
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    Some(Failure {
        reason: REASON_BASELINE,
        detail: must_not_include(&bad_containers, bad_caps),
    })
}

pub(crate) fn check_restricted(pod: &PodUnderTest<'_>) -> Option<Failure> {
    if pod.minor >= 25 && pod.is_windows() {
        return None;
    }
    let mut missing_drop_all = Vec::new();
    let mut adding_forbidden = Vec::new();
    let mut forbidden_caps = Vec::new();
    for c in visit(pod.spec) {
        let Some(caps) = c.security_context.and_then(|sc| sc.capabilities.as_ref()) else {
            missing_drop_all.push(c.name);
            continue;
        };
        if !caps.drop.iter().flatten().any(|cap| cap == "ALL") {
            missing_drop_all.push(c.name);
        }
        let mut container_adds_forbidden = false;
        for cap in caps.add.iter().flatten() {
            if cap != RESTRICTED_ALLOWED {
                container_adds_forbidden = true;
                forbidden_caps.push(cap.clone());
            }
        }
        if container_adds_forbidden {
            adding_forbidden.push(c.name);
        }
    }
    let mut parts = Vec::with_capacity(2);
    if !missing_drop_all.is_empty() {
        parts.push(format!(
            r#"{} must set securityContext.capabilities.drop=["ALL"]"#,
            containers_subject(&missing_drop_all)
        ));
    }
    if !adding_forbidden.is_empty() {
        parts.push(must_not_include(&adding_forbidden, forbidden_caps));
    }
    if parts.is_empty() {
        return None;
    }
    Some(Failure {
        reason: REASON_RESTRICTED,
        detail: parts.join("; "),
    })
}
