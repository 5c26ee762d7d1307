//! The hardening controls: each one a named thing in code, config, annotations, metrics and docs.

use std::fmt;
use std::str::FromStr;

use super::profile::HardeningSettings;
use crate::pss::CheckId;

/// One hardening control (see the README's control table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Control {
    /// Pod `securityContext.runAsNonRoot: true`.
    RunAsNonRoot,
    /// Pod `securityContext.seccompProfile: {type: RuntimeDefault}`.
    SeccompProfile,
    /// Pod `securityContext.runAsUser` (configured number; off by default).
    RunAsUser,
    /// Pod `securityContext.runAsGroup` (configured number; off by default).
    RunAsGroup,
    /// Pod `securityContext.fsGroup` (configured number; off by default).
    FsGroup,
    /// Container `securityContext.allowPrivilegeEscalation: false`.
    AllowPrivilegeEscalation,
    /// Container `securityContext.capabilities.drop` contains `ALL`.
    Capabilities,
    /// Container `securityContext.procMount` reset to `Default` (override mode only).
    ProcMount,
    /// Container `securityContext.readOnlyRootFilesystem: true`.
    ReadOnlyRootFilesystem,
    /// An `emptyDir` mounted at `/tmp` in containers that got a read-only root.
    TmpVolume,
}

impl Control {
    /// Every control, in record order.
    pub const ALL: [Control; 10] = [
        Control::RunAsNonRoot,
        Control::SeccompProfile,
        Control::RunAsUser,
        Control::RunAsGroup,
        Control::FsGroup,
        Control::AllowPrivilegeEscalation,
        Control::Capabilities,
        Control::ProcMount,
        Control::ReadOnlyRootFilesystem,
        Control::TmpVolume,
    ];

    /// The control that fixes failures of `check`, for the checks a mutation may fix. Unless it
    /// records a skip for this control, the planner leaves no failure of `check` behind
    /// (`tests/harden_fixtures.rs` asserts it on every fixture).
    pub fn fixing(check: CheckId) -> Option<Control> {
        Some(match check {
            CheckId::AllowPrivilegeEscalation => Control::AllowPrivilegeEscalation,
            CheckId::CapabilitiesBaseline | CheckId::CapabilitiesRestricted => {
                Control::Capabilities
            }
            CheckId::RunAsNonRoot => Control::RunAsNonRoot,
            CheckId::RunAsUser => Control::RunAsUser,
            CheckId::SeccompProfileBaseline | CheckId::SeccompProfileRestricted => {
                Control::SeccompProfile
            }
            CheckId::ProcMount | CheckId::ProcMountRestricted => Control::ProcMount,
            _ => return None,
        })
    }

    /// The control's name in config, annotations and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Control::RunAsNonRoot => "runAsNonRoot",
            Control::SeccompProfile => "seccompProfile",
            Control::RunAsUser => "runAsUser",
            Control::RunAsGroup => "runAsGroup",
            Control::FsGroup => "fsGroup",
            Control::AllowPrivilegeEscalation => "allowPrivilegeEscalation",
            Control::Capabilities => "capabilities",
            Control::ProcMount => "procMount",
            Control::ReadOnlyRootFilesystem => "readOnlyRootFilesystem",
            Control::TmpVolume => "tmpVolume",
        }
    }

    /// Whether the control sets a pod-level field (as opposed to one per container).
    pub fn is_pod_level(self) -> bool {
        matches!(
            self,
            Control::RunAsNonRoot
                | Control::SeccompProfile
                | Control::RunAsUser
                | Control::RunAsGroup
                | Control::FsGroup
        )
    }

    /// CEL conditions true when this control can change nothing, in fill or override mode
    /// alike: over the pod's security context `pod_sc` and over each container's `container_sc`
    /// (both CEL paths known to exist). The value the control sets, or one it never rewrites;
    /// an unset field it would fill is never satisfied. For the mutating webhook's
    /// `matchConditions` (see `admission::match_conditions`).
    pub fn cel_satisfied(
        self,
        settings: &HardeningSettings,
        pod_sc: &str,
        container_sc: &str,
    ) -> CelConditions {
        let (p, c) = (pod_sc, container_sc);
        let kept: Vec<String> = KEPT_SECCOMP_TYPES
            .iter()
            .map(|t| format!("'{t}'"))
            .collect();
        let kept = format!("[{}]", kept.join(", "));
        let (pod, container): (Vec<String>, Vec<String>) = match self {
            Control::RunAsNonRoot => (
                vec![format!("has({p}.runAsNonRoot) && {p}.runAsNonRoot == true")],
                vec![format!(
                    "(!has({c}.runAsNonRoot) || {c}.runAsNonRoot == true)"
                )],
            ),
            Control::SeccompProfile => (
                vec![format!(
                    "has({p}.seccompProfile) && {p}.seccompProfile.type in {kept}"
                )],
                vec![format!(
                    "(!has({c}.seccompProfile) || {c}.seccompProfile.type in {kept})"
                )],
            ),
            // An explicit root UID is rewritten in override mode, configured or not.
            Control::RunAsUser => (
                vec![if settings.run_as_user.is_some() {
                    format!("has({p}.runAsUser) && {p}.runAsUser != 0")
                } else {
                    format!("(!has({p}.runAsUser) || {p}.runAsUser != 0)")
                }],
                vec![format!("(!has({c}.runAsUser) || {c}.runAsUser != 0)")],
            ),
            Control::RunAsGroup => (
                settings
                    .run_as_group
                    .map(|_| format!("has({p}.runAsGroup)"))
                    .into_iter()
                    .collect(),
                vec![],
            ),
            Control::FsGroup => (
                settings
                    .fs_group
                    .map(|_| format!("has({p}.fsGroup)"))
                    .into_iter()
                    .collect(),
                vec![],
            ),
            Control::AllowPrivilegeEscalation => (
                vec![],
                vec![format!(
                    "has({c}.allowPrivilegeEscalation) && {c}.allowPrivilegeEscalation == false"
                )],
            ),
            // Only NET_BIND_SERVICE is kept in `add` in override mode.
            Control::Capabilities => (
                vec![],
                vec![format!(
                    "has({c}.capabilities) && has({c}.capabilities.drop) && 'ALL' in {c}.capabilities.drop \
                     && (!has({c}.capabilities.add) || {c}.capabilities.add.all(a, a == 'NET_BIND_SERVICE'))"
                )],
            ),
            Control::ProcMount => (
                vec![],
                vec![format!(
                    "(!has({c}.procMount) || {c}.procMount == 'Default')"
                )],
            ),
            // An explicit false is the escape hatch, never rewritten.
            Control::ReadOnlyRootFilesystem => {
                (vec![], vec![format!("has({c}.readOnlyRootFilesystem)")])
            }
            // Added only beside a readOnlyRootFilesystem this plan fills.
            Control::TmpVolume => (vec![], vec![]),
        };
        CelConditions { pod, container }
    }

    /// Whether the field is valid on a Windows pod (`spec.os.name: windows`).
    pub fn applies_to_windows(self) -> bool {
        self == Control::RunAsNonRoot
    }
}

/// The seccomp profile types the planner keeps (any other is rewritten in override mode).
pub(crate) const KEPT_SECCOMP_TYPES: [&str; 2] = ["RuntimeDefault", "Localhost"];

/// What [`Control::cel_satisfied`] asks of a Pod, as CEL conditions that must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CelConditions {
    /// Over the pod's security context.
    pub pod: Vec<String>,
    /// Over each container's security context.
    pub container: Vec<String>,
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A control name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown control {0:?} (known: {known})", known = known_controls())]
pub struct UnknownControl(pub String);

fn known_controls() -> String {
    let names: Vec<&str> = Control::ALL.iter().map(|c| c.as_str()).collect();
    names.join(", ")
}

impl FromStr for Control {
    type Err = UnknownControl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Control::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownControl(s.to_owned()))
    }
}

impl serde::Serialize for Control {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Control {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
