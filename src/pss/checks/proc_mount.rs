//! `procMount` (baseline, v1.0; from v1.35 allowed for user-namespaced pods) and
//! `procMount_restricted` (restricted, v1.35: the v1.0 rule, never relaxed).

use crate::pss::containers::visit;
use crate::pss::format::{containers_subject, join_quote, sorted_set};
use crate::pss::{Failure, PodUnderTest};

pub(crate) fn check_baseline(pod: &PodUnderTest<'_>) -> Option<Failure> {
    if pod.minor >= 35 && pod.uses_user_namespace() {
        return None;
    }
    check_restricted(pod)
}

pub(crate) fn check_restricted(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let mut bad_containers = Vec::new();
    let mut bad_types = Vec::new();
    for c in visit(pod.spec) {
        let proc_mount = c.security_context.and_then(|sc| sc.proc_mount.as_ref());
        if let Some(proc_mount) = proc_mount.filter(|p| *p != "Default") {
            bad_containers.push(c.name);
            bad_types.push(proc_mount.clone());
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    Some(Failure {
        reason: "procMount",
        detail: format!(
            "{} must not set securityContext.procMount to {}",
            containers_subject(&bad_containers),
            join_quote(&sorted_set(bad_types))
        ),
    })
}
