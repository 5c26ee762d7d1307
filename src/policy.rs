//! A namespace's policy: the Pod Security levels it enforces, warns and audits at, and
//! pod-hardener's mode, read from its labels exactly as Pod Security Admission reads them
//! (`api/helpers.go` `PolicyToEvaluate`).

use std::collections::BTreeMap;

use crate::pss::{Level, LevelVersion, Version};

/// `pod-security.kubernetes.io/enforce`
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// `pod-security.kubernetes.io/enforce-version`
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";
/// `pod-security.kubernetes.io/warn`
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";
/// `pod-security.kubernetes.io/warn-version`
pub const WARN_VERSION_LABEL: &str = "pod-security.kubernetes.io/warn-version";
/// `pod-security.kubernetes.io/audit`
pub const AUDIT_LABEL: &str = "pod-security.kubernetes.io/audit";
/// `pod-security.kubernetes.io/audit-version`
pub const AUDIT_VERSION_LABEL: &str = "pod-security.kubernetes.io/audit-version";
/// `pod-hardener.io/mode`
pub const MODE_LABEL: &str = "pod-hardener.io/mode";

/// What pod-hardener's mutating webhook does in a namespace.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
// One spelling for the label, the config file and the flags: as_str and FromStr.
#[serde(try_from = "String", into = "&'static str")]
pub enum HardenMode {
    /// Patch pods (the default).
    #[default]
    Harden,
    /// Plan but do not patch: warnings, audit annotations and metrics say what would change.
    Shadow,
    /// Do nothing.
    Off,
}

impl HardenMode {
    /// `harden`, `shadow` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            HardenMode::Harden => "harden",
            HardenMode::Shadow => "shadow",
            HardenMode::Off => "off",
        }
    }
}

/// A `pod-hardener.io/mode` value that is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mode {0:?}: must be harden, shadow or off")]
pub struct UnknownMode(pub String);

impl std::str::FromStr for HardenMode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [HardenMode::Harden, HardenMode::Shadow, HardenMode::Off]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

impl TryFrom<String> for HardenMode {
    type Error = UnknownMode;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<HardenMode> for &'static str {
    fn from(mode: HardenMode) -> Self {
        mode.as_str()
    }
}

/// The policy used where a namespace has no labels (the `defaultPolicy` config section),
/// like PSA's `PodSecurityConfiguration.defaults`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DefaultPolicy {
    /// Default enforce level.
    pub enforce: String,
    /// Default enforce version.
    pub enforce_version: String,
    /// Default warn level.
    pub warn: String,
    /// Default warn version.
    pub warn_version: String,
    /// Default audit level.
    pub audit: String,
    /// Default audit version.
    pub audit_version: String,
    /// Default pod-hardener mode.
    pub mode: HardenMode,
}

impl Default for DefaultPolicy {
    fn default() -> Self {
        DefaultPolicy {
            enforce: "restricted".into(),
            enforce_version: "latest".into(),
            warn: "restricted".into(),
            warn_version: "latest".into(),
            audit: "restricted".into(),
            audit_version: "latest".into(),
            mode: HardenMode::Harden,
        }
    }
}

/// The parsed defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Enforce.
    pub enforce: LevelVersion,
    /// Warn.
    pub warn: LevelVersion,
    /// Audit.
    pub audit: LevelVersion,
    /// Mode.
    pub mode: HardenMode,
}

/// A default policy value that is not a level or version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidDefault {
    /// The field, e.g. `defaultPolicy.enforceVersion`.
    pub field: &'static str,
    /// What is wrong with its value.
    pub message: String,
}

impl DefaultPolicy {
    /// Validates the defaults; the error names the field.
    pub fn parse(&self) -> Result<Defaults, InvalidDefault> {
        let lv = |field: &'static str,
                  level: &str,
                  version_field: &'static str,
                  version: &str|
         -> Result<LevelVersion, InvalidDefault> {
            let level = level.parse::<Level>().map_err(|e| InvalidDefault {
                field,
                message: e.to_string(),
            })?;
            let version = version.parse::<Version>().map_err(|e| InvalidDefault {
                field: version_field,
                message: e.to_string(),
            })?;
            Ok(LevelVersion::new(level, version))
        };
        Ok(Defaults {
            enforce: lv(
                "defaultPolicy.enforce",
                &self.enforce,
                "defaultPolicy.enforceVersion",
                &self.enforce_version,
            )?,
            warn: lv(
                "defaultPolicy.warn",
                &self.warn,
                "defaultPolicy.warnVersion",
                &self.warn_version,
            )?,
            audit: lv(
                "defaultPolicy.audit",
                &self.audit,
                "defaultPolicy.auditVersion",
                &self.audit_version,
            )?,
            mode: self.mode,
        })
    }
}

/// The policy that applies to pods in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePolicy {
    /// Level and version that decide allow or deny.
    pub enforce: LevelVersion,
    /// Level and version that add warnings.
    pub warn: LevelVersion,
    /// Level and version that add audit annotations.
    pub audit: LevelVersion,
    /// pod-hardener's mode.
    pub mode: HardenMode,
    /// Invalid label values found (PSA's `Failed to parse policy` errors), already resolved:
    /// an invalid enforce level is restricted, invalid warn and audit levels privileged, an
    /// invalid version latest, an invalid mode harden.
    pub label_errors: Vec<String>,
}

impl NamespacePolicy {
    /// The policy from namespace labels over `defaults`.
    pub fn from_labels(labels: Option<&BTreeMap<String, String>>, defaults: &Defaults) -> Self {
        let get = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
        let mut errors = Vec::new();
        let mut level = |key: &str, default: Level, on_error: Level| match get(key) {
            None => (default, false),
            Some(v) => match v.parse::<Level>() {
                Ok(l) => (l, true),
                Err(_) => {
                    errors.push(format!(
                        "{key}: must be one of privileged, baseline, restricted, not {v:?}"
                    ));
                    (on_error, false)
                }
            },
        };
        // PSA fails closed on a bad enforce level and open on bad warn and audit levels.
        let (enforce_level, enforce_labelled) =
            level(ENFORCE_LABEL, defaults.enforce.level, Level::Restricted);
        let (warn_level, warn_labelled) = level(WARN_LABEL, defaults.warn.level, Level::Privileged);
        let (audit_level, _) = level(AUDIT_LABEL, defaults.audit.level, Level::Privileged);
        let warn_level_was_set = get(WARN_LABEL).is_some();
        let mut version = |key: &str, default: Version| match get(key) {
            None => (default, false),
            Some(v) => match v.parse::<Version>() {
                Ok(version) => (version, true),
                Err(_) => {
                    errors.push(format!("{key}: must be \"latest\" or \"v1.x\", not {v:?}"));
                    (Version::Latest, false)
                }
            },
        };
        let (enforce_version, _) = version(ENFORCE_VERSION_LABEL, defaults.enforce.version);
        let (mut warn_version, warn_version_labelled) =
            version(WARN_VERSION_LABEL, defaults.warn.version);
        let (audit_version, _) = version(AUDIT_VERSION_LABEL, defaults.audit.version);
        let mut warn_level = warn_level;
        // Warn inherits a stricter, validly labelled enforce level when warn is not labelled.
        if !warn_level_was_set && !warn_labelled && enforce_labelled && enforce_level > warn_level {
            warn_level = enforce_level;
            if !warn_version_labelled {
                warn_version = enforce_version;
            }
        }
        let mode = match get(MODE_LABEL) {
            None => defaults.mode,
            Some(v) => v.parse().unwrap_or_else(|e: UnknownMode| {
                errors.push(format!("{MODE_LABEL}: {e}"));
                HardenMode::Harden
            }),
        };
        NamespacePolicy {
            enforce: LevelVersion::new(enforce_level, enforce_version),
            warn: LevelVersion::new(warn_level, warn_version),
            audit: LevelVersion::new(audit_level, audit_version),
            mode,
            label_errors: errors,
        }
    }

    /// The policy of an unlabelled namespace.
    pub fn defaults(defaults: &Defaults) -> Self {
        NamespacePolicy::from_labels(None, defaults)
    }

    /// Whether nothing is checked: all three modes privileged and no label errors.
    pub fn is_fully_privileged(&self) -> bool {
        self.enforce.level == Level::Privileged
            && self.warn.level == Level::Privileged
            && self.audit.level == Level::Privileged
            && self.label_errors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn privileged_defaults() -> Defaults {
        let p = LevelVersion::new(Level::Privileged, Version::Latest);
        Defaults {
            enforce: p,
            warn: p,
            audit: p,
            mode: HardenMode::Harden,
        }
    }

    #[test]
    fn reads_levels_versions_and_mode() {
        let l = labels(&[
            (ENFORCE_LABEL, "baseline"),
            (ENFORCE_VERSION_LABEL, "v1.30"),
            (AUDIT_LABEL, "restricted"),
            (MODE_LABEL, "shadow"),
        ]);
        let p = NamespacePolicy::from_labels(Some(&l), &privileged_defaults());
        assert_eq!(p.enforce.to_string(), "baseline:v1.30");
        assert_eq!(p.audit.to_string(), "restricted:latest");
        assert_eq!(p.mode, HardenMode::Shadow);
        assert!(p.label_errors.is_empty());
    }

    #[test]
    fn warn_inherits_a_stricter_enforce_level_and_its_version() {
        let l = labels(&[
            (ENFORCE_LABEL, "restricted"),
            (ENFORCE_VERSION_LABEL, "v1.25"),
        ]);
        let p = NamespacePolicy::from_labels(Some(&l), &privileged_defaults());
        assert_eq!(p.warn.to_string(), "restricted:v1.25");
        let l = labels(&[(ENFORCE_LABEL, "restricted"), (WARN_LABEL, "baseline")]);
        assert_eq!(
            NamespacePolicy::from_labels(Some(&l), &privileged_defaults())
                .warn
                .level,
            Level::Baseline
        );
        let l = labels(&[(ENFORCE_LABEL, "restricted"), (WARN_VERSION_LABEL, "v1.30")]);
        assert_eq!(
            NamespacePolicy::from_labels(Some(&l), &privileged_defaults())
                .warn
                .to_string(),
            "restricted:v1.30"
        );
    }

    #[test]
    fn invalid_labels_fail_closed_for_enforce_and_open_for_warn_and_audit() {
        let l = labels(&[
            (ENFORCE_LABEL, "strict"),
            (WARN_LABEL, "loud"),
            (AUDIT_LABEL, "x"),
            (ENFORCE_VERSION_LABEL, "1.25"),
            (MODE_LABEL, "yes"),
        ]);
        let p = NamespacePolicy::from_labels(Some(&l), &privileged_defaults());
        assert_eq!(p.enforce.to_string(), "restricted:latest");
        assert_eq!(p.warn.level, Level::Privileged);
        assert_eq!(p.audit.level, Level::Privileged);
        assert_eq!(p.mode, HardenMode::Harden);
        assert_eq!(p.label_errors.len(), 5, "{:?}", p.label_errors);
        assert!(!p.is_fully_privileged());
    }

    #[test]
    fn defaults_apply_to_unlabelled_namespaces() {
        let d = DefaultPolicy::default().parse().unwrap();
        let p = NamespacePolicy::defaults(&d);
        assert_eq!(p.enforce, LevelVersion::restricted_latest());
        assert_eq!(p.mode, HardenMode::Harden);
        let bad = DefaultPolicy {
            enforce_version: "v1".into(),
            ..DefaultPolicy::default()
        };
        let err = bad.parse().unwrap_err();
        assert_eq!(err.field, "defaultPolicy.enforceVersion");
        assert!(
            err.to_string()
                .starts_with("defaultPolicy.enforceVersion: ")
        );
    }
}
