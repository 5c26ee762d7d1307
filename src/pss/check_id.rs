//! The registry of checks: their IDs, levels, the versions at which each applies, and which
//! baseline check a restricted check replaces (`policy/registry.go`).

use super::level::Level;
use super::{Failure, PodUnderTest, checks};

/// Every check PSA has. The declaration order is PSA's output order: baseline IDs sorted
/// byte-wise, then restricted IDs sorted byte-wise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckId {
    // --- baseline ---
    /// `appArmorProfile`
    AppArmorProfile,
    /// `capabilities_baseline`
    CapabilitiesBaseline,
    /// `hostNamespaces`
    HostNamespaces,
    /// `hostPathVolumes`
    HostPathVolumes,
    /// `hostPorts`
    HostPorts,
    /// `hostProbesAndHostLifecycle`
    HostProbesAndHostLifecycle,
    /// `privileged`
    Privileged,
    /// `procMount`
    ProcMount,
    /// `seLinuxOptions`
    SeLinuxOptions,
    /// `seccompProfile_baseline`
    SeccompProfileBaseline,
    /// `sysctls`
    Sysctls,
    /// `windowsHostProcess`
    WindowsHostProcess,
    // --- restricted ---
    /// `allowPrivilegeEscalation`
    AllowPrivilegeEscalation,
    /// `capabilities_restricted`
    CapabilitiesRestricted,
    /// `procMount_restricted`
    ProcMountRestricted,
    /// `restrictedVolumes`
    RestrictedVolumes,
    /// `runAsNonRoot`
    RunAsNonRoot,
    /// `runAsUser`
    RunAsUser,
    /// `seccompProfile_restricted`
    SeccompProfileRestricted,
}

impl CheckId {
    /// All checks, in output order.
    pub const ALL: [CheckId; 19] = [
        CheckId::AppArmorProfile,
        CheckId::CapabilitiesBaseline,
        CheckId::HostNamespaces,
        CheckId::HostPathVolumes,
        CheckId::HostPorts,
        CheckId::HostProbesAndHostLifecycle,
        CheckId::Privileged,
        CheckId::ProcMount,
        CheckId::SeLinuxOptions,
        CheckId::SeccompProfileBaseline,
        CheckId::Sysctls,
        CheckId::WindowsHostProcess,
        CheckId::AllowPrivilegeEscalation,
        CheckId::CapabilitiesRestricted,
        CheckId::ProcMountRestricted,
        CheckId::RestrictedVolumes,
        CheckId::RunAsNonRoot,
        CheckId::RunAsUser,
        CheckId::SeccompProfileRestricted,
    ];

    /// PSA's check ID, e.g. `capabilities_restricted`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::AppArmorProfile => "appArmorProfile",
            CheckId::CapabilitiesBaseline => "capabilities_baseline",
            CheckId::HostNamespaces => "hostNamespaces",
            CheckId::HostPathVolumes => "hostPathVolumes",
            CheckId::HostPorts => "hostPorts",
            CheckId::HostProbesAndHostLifecycle => "hostProbesAndHostLifecycle",
            CheckId::Privileged => "privileged",
            CheckId::ProcMount => "procMount",
            CheckId::SeLinuxOptions => "seLinuxOptions",
            CheckId::SeccompProfileBaseline => "seccompProfile_baseline",
            CheckId::Sysctls => "sysctls",
            CheckId::WindowsHostProcess => "windowsHostProcess",
            CheckId::AllowPrivilegeEscalation => "allowPrivilegeEscalation",
            CheckId::CapabilitiesRestricted => "capabilities_restricted",
            CheckId::ProcMountRestricted => "procMount_restricted",
            CheckId::RestrictedVolumes => "restrictedVolumes",
            CheckId::RunAsNonRoot => "runAsNonRoot",
            CheckId::RunAsUser => "runAsUser",
            CheckId::SeccompProfileRestricted => "seccompProfile_restricted",
        }
    }

    /// The level the check belongs to.
    pub fn level(self) -> Level {
        if self >= CheckId::AllowPrivilegeEscalation {
            Level::Restricted
        } else {
            Level::Baseline
        }
    }

    /// The first policy minor version at which the check exists.
    pub fn min_minor(self) -> u32 {
        match self {
            CheckId::AllowPrivilegeEscalation => 8,
            CheckId::SeccompProfileRestricted => 19,
            CheckId::CapabilitiesRestricted => 22,
            CheckId::RunAsUser => 23,
            CheckId::HostProbesAndHostLifecycle => 34,
            CheckId::ProcMountRestricted => 35,
            _ => 0,
        }
    }

    /// The baseline check this restricted check replaces at the restricted level, from its
    /// first version on.
    pub fn overrides(self) -> Option<CheckId> {
        match self {
            CheckId::RestrictedVolumes => Some(CheckId::HostPathVolumes),
            CheckId::SeccompProfileRestricted => Some(CheckId::SeccompProfileBaseline),
            CheckId::CapabilitiesRestricted => Some(CheckId::CapabilitiesBaseline),
            CheckId::ProcMountRestricted => Some(CheckId::ProcMount),
            _ => None,
        }
    }

    /// The checks that run at `level` and policy minor `minor`, in output order.
    pub fn applicable(level: Level, minor: u32) -> impl Iterator<Item = CheckId> {
        CheckId::ALL.into_iter().filter(move |check| {
            let exists = check.min_minor() <= minor;
            match (level, check.level()) {
                (Level::Privileged, _) => false,
                (Level::Baseline, Level::Baseline) => exists,
                (Level::Baseline, _) => false,
                (Level::Restricted, Level::Restricted) => exists,
                (Level::Restricted, _) => {
                    exists
                        && !CheckId::ALL
                            .iter()
                            .any(|r| r.overrides() == Some(*check) && r.min_minor() <= minor)
                }
            }
        })
    }

    pub(crate) fn run(self, pod: &PodUnderTest<'_>) -> Option<Failure> {
        match self {
            CheckId::AppArmorProfile => checks::app_armor_profile::check(pod),
            CheckId::CapabilitiesBaseline => checks::capabilities::check_baseline(pod),
            CheckId::HostNamespaces => checks::host_namespaces::check(pod),
            CheckId::HostPathVolumes => checks::host_path_volumes::check(pod),
            CheckId::HostPorts => checks::host_ports::check(pod),
            CheckId::HostProbesAndHostLifecycle => checks::host_probes_and_lifecycle::check(pod),
            CheckId::Privileged => checks::privileged::check(pod),
            CheckId::ProcMount => checks::proc_mount::check_baseline(pod),
            CheckId::SeLinuxOptions => checks::se_linux_options::check(pod),
            CheckId::SeccompProfileBaseline => checks::seccomp_profile::check_baseline(pod),
            CheckId::Sysctls => checks::sysctls::check(pod),
            CheckId::WindowsHostProcess => checks::windows_host_process::check(pod),
            CheckId::AllowPrivilegeEscalation => checks::allow_privilege_escalation::check(pod),
            CheckId::CapabilitiesRestricted => checks::capabilities::check_restricted(pod),
            CheckId::ProcMountRestricted => checks::proc_mount::check_restricted(pod),
            CheckId::RestrictedVolumes => checks::restricted_volumes::check(pod),
            CheckId::RunAsNonRoot => checks::run_as_non_root::check(pod),
            CheckId::RunAsUser => checks::run_as_user::check(pod),
            CheckId::SeccompProfileRestricted => checks::seccomp_profile::check_restricted(pod),
        }
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(level: Level, minor: u32) -> Vec<&'static str> {
        CheckId::applicable(level, minor)
            .map(CheckId::as_str)
            .collect()
    }

    #[test]
    fn declaration_order_is_byte_order_within_each_level() {
        let (baseline, restricted): (Vec<CheckId>, Vec<CheckId>) = CheckId::ALL
            .into_iter()
            .partition(|c| c.level() == Level::Baseline);
        for group in [baseline, restricted] {
            let names: Vec<_> = group.iter().map(|c| c.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(names, sorted);
        }
    }

    #[test]
    fn restricted_latest_order_matches_psa() {
        assert_eq!(
            ids(Level::Restricted, 37),
            [
                "appArmorProfile",
                "hostNamespaces",
                "hostPorts",
                "hostProbesAndHostLifecycle",
                "privileged",
                "seLinuxOptions",
                "sysctls",
                "windowsHostProcess",
                "allowPrivilegeEscalation",
                "capabilities_restricted",
                "procMount_restricted",
                "restrictedVolumes",
                "runAsNonRoot",
                "runAsUser",
                "seccompProfile_restricted",
            ]
        );
    }

    #[test]
    fn baseline_latest_order_matches_psa() {
        assert_eq!(
            ids(Level::Baseline, 37),
            [
                "appArmorProfile",
                "capabilities_baseline",
                "hostNamespaces",
                "hostPathVolumes",
                "hostPorts",
                "hostProbesAndHostLifecycle",
                "privileged",
                "procMount",
                "seLinuxOptions",
                "seccompProfile_baseline",
                "sysctls",
                "windowsHostProcess",
            ]
        );
    }

    #[test]
    fn overrides_apply_only_from_the_restricted_checks_version() {
        let at = |minor| ids(Level::Restricted, minor);
        assert!(at(18).contains(&"seccompProfile_baseline"));
        assert!(!at(19).contains(&"seccompProfile_baseline"));
        assert!(at(21).contains(&"capabilities_baseline"));
        assert!(!at(22).contains(&"capabilities_baseline"));
        assert!(at(34).contains(&"procMount"));
        assert!(!at(35).contains(&"procMount"));
        assert!(!at(0).contains(&"hostPathVolumes"));
        assert!(!at(7).contains(&"allowPrivilegeEscalation"));
        assert!(ids(Level::Privileged, 37).is_empty());
    }
}
