//! `privileged` (baseline, v1.0): no container may set `securityContext.privileged: true`.

use crate::pss::containers::names_where;
use crate::pss::format::containers_subject;
use crate::pss::{Failure, PodUnderTest};

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let bad = names_where(pod.spec, |c| {
        c.security_context.and_then(|sc| sc.privileged) == Some(true)
    });
    if bad.is_empty() {
        return None;
    }
    Some(Failure {
        reason: "privileged",
        detail: format!(
            "{} must not set securityContext.privileged=true",
            containers_subject(&bad)
        ),
    })
}
