//! `runAsNonRoot` (restricted, v1.0; from v1.35 allowed for user-namespaced pods): the pod, or
//! every container, must set `runAsNonRoot: true`, and none may set it to `false`.

use super::setters;
use crate::pss::containers::visit;
use crate::pss::format::containers_subject;
use crate::pss::{Failure, PodUnderTest};

const REASON: &str = "runAsNonRoot != true";

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    if pod.minor >= 35 && pod.uses_user_namespace() {
        return None;
    }
    let pod_value = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.run_as_non_root);
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for c in visit(pod.spec) {
        match c.security_context.and_then(|sc| sc.run_as_non_root) {
            Some(false) => explicitly_bad.push(c.name),
            Some(true) => {}
            None if pod_value != Some(true) => implicitly_bad.push(c.name),
            None => {}
        }
    }
    let bad_setters = setters(pod_value == Some(false), &explicitly_bad);
    if !bad_setters.is_empty() {
        return Some(Failure {
            reason: REASON,
            detail: format!(
                "{} must not set securityContext.runAsNonRoot=false",
                bad_setters.join(" and ")
            ),
        });
    }
    if implicitly_bad.is_empty() {
        return None;
    }
    Some(Failure {
        reason: REASON,
        detail: format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_subject(&implicitly_bad)
        ),
    })
}
