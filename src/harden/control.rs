//! The hardening controls: each one a named thing in code, config, annotations, metrics and docs.

use std::fmt;
use std::str::FromStr;

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

    /// Whether the field is valid on a Windows pod (`spec.os.name: windows`).
    pub fn applies_to_windows(self) -> bool {
        self == Control::RunAsNonRoot
    }
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
