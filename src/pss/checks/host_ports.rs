//! `hostPorts` (baseline, v1.0): no container port may set a non-zero `hostPort`.

use crate::pss::containers::visit;
use crate::pss::format::{join_quote, pluralize, sorted_set};
use crate::pss::{Failure, PodUnderTest};

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let mut bad_containers = Vec::new();
    let mut ports = Vec::new();
    for c in visit(pod.spec) {
        let mut container_is_bad = false;
        for port in c.ports.into_iter().flatten() {
            if let Some(host_port) = port.host_port.filter(|p| *p != 0) {
                container_is_bad = true;
                ports.push(host_port.to_string());
            }
        }
        if container_is_bad {
            bad_containers.push(c.name);
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    // PSA sorts the ports as strings: "10", "20", "8080", "9".
    let ports = sorted_set(ports);
    Some(Failure {
        reason: "hostPort",
        detail: format!(
            "{} {} {} {} {}",
            pluralize("container", "containers", bad_containers.len()),
            join_quote(&bad_containers),
            pluralize("uses", "use", bad_containers.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    })
}
