//! `runAsUser` (restricted, v1.23; from v1.35 allowed for user-namespaced pods): neither the pod
//! nor a container may set `runAsUser: 0`.

use super::setters;
use crate::pss::containers::names_where;
use crate::pss::{Failure, PodUnderTest};

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    if pod.minor >= 35 && pod.uses_user_namespace() {
        return None;
    }
    let pod_is_bad = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.run_as_user)
        == Some(0);
    let bad = names_where(pod.spec, |c| {
        c.security_context.and_then(|sc| sc.run_as_user) == Some(0)
    });
    let who = setters(pod_is_bad, &bad);
    if who.is_empty() {
        return None;
    }
    Some(Failure {
        reason: "runAsUser=0",
        detail: format!("{} must not set runAsUser=0", who.join(" and ")),
    })
}
