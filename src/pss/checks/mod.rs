//! One file per Pod Security check, each a port of PSA's `policy/check_<id>.go`.
//!
//! Each `check` function returns `None` when the pod is allowed and a [`Failure`](super::Failure)
//! with PSA's exact reason and detail otherwise. Version variants are branches on `pod.minor`.

pub(crate) mod allow_privilege_escalation;
pub(crate) mod app_armor_profile;
pub(crate) mod capabilities;
pub(crate) mod host_namespaces;
pub(crate) mod host_path_volumes;
pub(crate) mod host_ports;
pub(crate) mod host_probes_and_lifecycle;
pub(crate) mod privileged;
pub(crate) mod proc_mount;
pub(crate) mod restricted_volumes;
pub(crate) mod run_as_non_root;
pub(crate) mod run_as_user;
pub(crate) mod se_linux_options;
pub(crate) mod seccomp_profile;
pub(crate) mod sysctls;
pub(crate) mod windows_host_process;

/// `pod`, then `container(s) "a", "b"`, joined by ` and `: PSA's list of "setters".
pub(super) fn setters(pod_is_bad: bool, bad_containers: &[&str]) -> Vec<String> {
    let mut out = Vec::with_capacity(2);
    if pod_is_bad {
        out.push("pod".to_owned());
    }
    if !bad_containers.is_empty() {
        out.push(super::format::containers_subject(bad_containers));
    }
    out
}
