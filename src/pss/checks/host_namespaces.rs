//! `hostNamespaces` (baseline, v1.0): no `hostNetwork`, `hostPID` or `hostIPC`.

use crate::pss::{Failure, PodUnderTest};

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let spec = pod.spec;
    let used: Vec<&str> = [
        (spec.host_network, "hostNetwork=true"),
        (spec.host_pid, "hostPID=true"),
        (spec.host_ipc, "hostIPC=true"),
    ]
    .into_iter()
    .filter(|(set, _)| *set == Some(true))
    .map(|(_, text)| text)
    .collect();
    if used.is_empty() {
        return None;
    }
    Some(Failure {
        reason: "host namespaces",
        detail: used.join(", "),
    })
}
