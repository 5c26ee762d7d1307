//! `hostProbesAndHostLifecycle` (baseline, v1.34): probes and lifecycle handlers may not name a
//! `host` (HTTP GET or TCP socket), not even a loopback one.

use crate::pss::containers::visit;
use crate::pss::format::{join_quote, pluralize, sorted_set};
use crate::pss::{Failure, PodUnderTest};
use k8s_openapi::api::core::v1::{HTTPGetAction, TCPSocketAction};

fn hosts<'a>(
    http_get: Option<&'a HTTPGetAction>,
    tcp_socket: Option<&'a TCPSocketAction>,
) -> impl Iterator<Item = &'a str> {
    let http = http_get.and_then(|h| h.host.as_deref());
    let tcp = tcp_socket.and_then(|t| t.host.as_deref());
    http.into_iter().chain(tcp).filter(|h| !h.is_empty())
}

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let mut bad_containers = Vec::new();
    let mut bad_hosts = Vec::new();
    for c in visit(pod.spec) {
        let probe_hosts = c
            .probes
            .into_iter()
            .flatten()
            .flat_map(|p| hosts(p.http_get.as_ref(), p.tcp_socket.as_ref()));
        let handlers = c
            .lifecycle
            .into_iter()
            .flat_map(|l| [l.post_start.as_ref(), l.pre_stop.as_ref()]);
        let lifecycle_hosts = handlers
            .flatten()
            .flat_map(|h| hosts(h.http_get.as_ref(), h.tcp_socket.as_ref()));
        let before = bad_hosts.len();
        bad_hosts.extend(probe_hosts.chain(lifecycle_hosts).map(str::to_owned));
        if bad_hosts.len() > before {
            bad_containers.push(c.name.to_owned());
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    // Unlike the other checks, PSA keeps both lists as sorted sets here.
    let containers = sorted_set(bad_containers);
    let hosts = sorted_set(bad_hosts);
    Some(Failure {
        reason: "probe or lifecycle host",
        detail: format!(
            "{} {} {} {} {}",
            pluralize("container", "containers", containers.len()),
            join_quote(&containers),
            pluralize("uses", "use", containers.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(&hosts)
        ),
    })
}
