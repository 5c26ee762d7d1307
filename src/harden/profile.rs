//! What the planner applies: the controls for the namespace's level, the mode, and the values of
//! the optional controls.

use std::collections::BTreeSet;

use super::control::Control;
use crate::pss::Level;

/// Whether explicit insecure values are left alone or rewritten.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only set fields that are unset (the default).
    #[default]
    Fill,
    /// Also rewrite explicit insecure values of the override-able checks, recording each.
    Override,
}

impl Mode {
    /// `fill` or `override`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fill => "fill",
            Mode::Override => "override",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fill" => Ok(Mode::Fill),
            "override" => Ok(Mode::Override),
            other => Err(format!("invalid mode {other:?}: must be fill or override")),
        }
    }
}

/// The hardening settings shared by every level (the `hardening` section of the config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HardeningSettings {
    /// Controls applied at the restricted level.
    pub restricted: BTreeSet<Control>,
    /// Controls applied at the baseline level.
    pub baseline: BTreeSet<Control>,
    /// Fill or override.
    pub mode: Mode,
    /// `sizeLimit` of the `/tmp` emptyDir, e.g. `64Mi`; none by default.
    pub tmp_size_limit: Option<String>,
    /// Value for the `runAsUser` control; the control does nothing without it.
    pub run_as_user: Option<i64>,
    /// Value for the `runAsGroup` control.
    pub run_as_group: Option<i64>,
    /// Value for the `fsGroup` control.
    pub fs_group: Option<i64>,
}

impl Default for HardeningSettings {
    fn default() -> Self {
        HardeningSettings {
            // Every control; runAsUser, runAsGroup and fsGroup act only once given a value.
            restricted: Control::ALL.into(),
            baseline: [Control::SeccompProfile, Control::AllowPrivilegeEscalation].into(),
            mode: Mode::Fill,
            tmp_size_limit: None,
            run_as_user: None,
            run_as_group: None,
            fs_group: None,
        }
    }
}

/// The controls and values the planner applies to one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The level the profile was made for (recorded in the annotation).
    pub level: Level,
    /// The enabled controls.
    pub controls: BTreeSet<Control>,
    /// Fill or override.
    pub mode: Mode,
    /// `sizeLimit` of the `/tmp` emptyDir.
    pub tmp_size_limit: Option<String>,
    /// Configured `runAsUser`.
    pub run_as_user: Option<i64>,
    /// Configured `runAsGroup`.
    pub run_as_group: Option<i64>,
    /// Configured `fsGroup`.
    pub fs_group: Option<i64>,
}

impl Profile {
    /// The profile for `level`: restricted applies its full set, baseline its subset,
    /// privileged nothing.
    pub fn for_level(level: Level, settings: &HardeningSettings) -> Self {
        let controls = match level {
            Level::Restricted => settings.restricted.clone(),
            Level::Baseline => settings.baseline.clone(),
            Level::Privileged => BTreeSet::new(),
        };
        Profile {
            level,
            controls,
            mode: settings.mode,
            tmp_size_limit: settings.tmp_size_limit.clone(),
            run_as_user: settings.run_as_user,
            run_as_group: settings.run_as_group,
            fs_group: settings.fs_group,
        }
    }

    /// The default restricted profile in fill mode.
    pub fn restricted() -> Self {
        Profile::for_level(Level::Restricted, &HardeningSettings::default())
    }

    /// Whether `control` is enabled.
    pub fn has(&self, control: Control) -> bool {
        self.controls.contains(&control)
    }
}
