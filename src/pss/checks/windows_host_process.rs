//! `windowsHostProcess` (baseline, v1.0): neither the pod nor a container may run as a Windows
//! HostProcess.

use super::setters;
use crate::pss::containers::names_where;
use crate::pss::{Failure, PodUnderTest};

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let pod_is_bad = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.windows_options.as_ref())
        .and_then(|w| w.host_process)
        == Some(true);
    let bad = names_where(pod.spec, |c| {
        c.security_context
            .and_then(|sc| sc.windows_options.as_ref())
            .and_then(|w| w.host_process)
            == Some(true)
    });
    let who = setters(pod_is_bad, &bad);
    if who.is_empty() {
        return None;
    }
    Some(Failure {
        reason: "hostProcess",
        detail: format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            who.join(" and ")
        ),
    })
}
