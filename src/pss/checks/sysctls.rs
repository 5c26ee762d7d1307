//! `sysctls` (baseline; the allowed set grows at v1.27, v1.29, v1.32 and v1.37): only namespaced,
//! isolated sysctls, matched as exact strings.

use crate::pss::{Failure, PodUnderTest};

/// Each sysctl the baseline level allows, with the first minor version that allows it.
pub(crate) const ALLOWED: [(&str, u32); 14] = [
    ("kernel.shm_rmid_forced", 0),
    ("net.ipv4.ip_local_port_range", 0),
    ("net.ipv4.tcp_syncookies", 0),
    ("net.ipv4.ping_group_range", 0),
    ("net.ipv4.ip_unprivileged_port_start", 0),
    ("net.ipv4.ip_local_reserved_ports", 27),
    ("net.ipv4.tcp_keepalive_time", 29),
    ("net.ipv4.tcp_fin_timeout", 29),
    ("net.ipv4.tcp_keepalive_intvl", 29),
    ("net.ipv4.tcp_keepalive_probes", 29),
    ("net.ipv4.tcp_rmem", 32),
    ("net.ipv4.tcp_wmem", 32),
    ("net.ipv4.tcp_slow_start_after_idle", 37),
    ("net.ipv4.tcp_notsent_lowat", 37),
];

/// Whether `name` is allowed at policy minor `minor`.
pub(crate) fn is_allowed(name: &str, minor: u32) -> bool {
    ALLOWED
        .iter()
        .any(|(allowed, since)| *allowed == name && *since <= minor)
}

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let sysctls = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.sysctls.as_ref())?;
    // Spec order, unquoted and not de-duplicated, as PSA prints them.
    let forbidden: Vec<&str> = sysctls
        .iter()
        .map(|s| s.name.as_str())
        .filter(|name| !is_allowed(name, pod.minor))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    Some(Failure {
        reason: "forbidden sysctls",
        detail: forbidden.join(", "),
    })
}
