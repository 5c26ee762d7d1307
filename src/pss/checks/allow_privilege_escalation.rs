//! `allowPrivilegeEscalation` (restricted, v1.8; Windows pods exempt from v1.25).
//! Every container must explicitly set `securityContext.allowPrivilegeEscalation: false`.

use crate::pss::containers::names_where;
use crate::pss::format::containers_subject;
use crate::pss::{Failure, PodUnderTest};

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    if pod.minor >= 25 && pod.is_windows() {
        return None;
    }
    let bad = names_where(pod.spec, |c| {
        c.security_context
            .and_then(|sc| sc.allow_privilege_escalation)
            != Some(false)
    });
    if bad.is_empty() {
        return None;
    }
    Some(Failure {
        reason: "allowPrivilegeEscalation != false",
        detail: format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_subject(&bad)
        ),
    })
}
