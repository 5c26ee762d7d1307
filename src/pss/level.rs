//! Pod Security levels and policy versions, parsed exactly as PSA parses namespace labels
//! (`api/helpers.go`).

use std::fmt;
use std::str::FromStr;

/// The newest policy version this evaluator knows: `latest` and anything newer evaluate as this.
pub const NEWEST_MINOR: u32 = 37;

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No restrictions.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Current Pod hardening best practice.
    Restricted,
}

impl Level {
    /// The label value: `privileged`, `baseline` or `restricted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level or version that is not one PSA accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The level is not `privileged`, `baseline` or `restricted`.
    #[error("invalid level {0:?}: must be one of privileged, baseline, restricted")]
    Level(String),
    /// The version is not `latest` or `v1.N`.
    #[error("invalid version {0:?}: must be \"latest\" or \"v1.x\"")]
    Version(String),
}

impl FromStr for Level {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            other => Err(ParseError::Level(other.to_owned())),
        }
    }
}

/// A policy version: `latest` or `v1.N`.
///
/// The version keeps what was written (a label of `v1.99` is shown as `v1.99`), and
/// [`Version::effective_minor`] clamps it to [`NEWEST_MINOR`] for evaluation, as PSA does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The newest policy.
    Latest,
    /// `v1.<minor>`.
    V1(u32),
}

impl Version {
    /// The minor version the checks are evaluated at.
    pub fn effective_minor(self) -> u32 {
        match self {
            Version::Latest => NEWEST_MINOR,
            Version::V1(minor) => minor.min(NEWEST_MINOR),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::V1(minor) => write!(f, "v1.{minor}"),
        }
    }
}

impl FromStr for Version {
    type Err = ParseError;

    /// Accepts `latest` and `^v1\.([0-9]|[1-9][0-9]*)$`, nothing else.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "latest" {
            return Ok(Version::Latest);
        }
        let invalid = || ParseError::Version(s.to_owned());
        let digits = s.strip_prefix("v1.").ok_or_else(invalid)?;
        let well_formed = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !well_formed {
            return Err(invalid());
        }
        // Go's Atoi fails past 64 bits; anything past u32 is far beyond any real minor, so it
        // is clamped like every other too-new version rather than rejected.
        let minor = digits.parse::<u64>().map_err(|_| invalid())?;
        Ok(Version::V1(u32::try_from(minor).unwrap_or(u32::MAX)))
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A level at a version, displayed as PSA does: `restricted:latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    /// The level.
    pub level: Level,
    /// The version.
    pub version: Version,
}

impl LevelVersion {
    /// Builds a level at a version.
    pub fn new(level: Level, version: Version) -> Self {
        LevelVersion { level, version }
    }

    /// `restricted:latest`, the strictest policy.
    pub fn restricted_latest() -> Self {
        LevelVersion::new(Level::Restricted, Version::Latest)
    }
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_like_psa() {
        for (input, expected) in [
            ("latest", Some(Version::Latest)),
            ("v1.0", Some(Version::V1(0))),
            ("v1.9", Some(Version::V1(9))),
            ("v1.37", Some(Version::V1(37))),
            ("v1.99", Some(Version::V1(99))),
            ("v1.01", None),
            ("v1.", None),
            ("v2.0", None),
            ("1.25", None),
            ("v1.25.0", None),
            ("v1.-1", None),
            ("v1.+1", None),
            ("Latest", None),
            ("", None),
        ] {
            assert_eq!(input.parse::<Version>().ok(), expected, "input {input:?}");
        }
    }

    #[test]
    fn a_bad_version_names_the_value() {
        let err = "v1.x".parse::<Version>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid version "v1.x": must be "latest" or "v1.x""#
        );
        let err = "strict".parse::<Level>().unwrap_err();
        assert!(err.to_string().contains("\"strict\""));
    }

    #[test]
    fn newer_versions_clamp_to_the_newest_known() {
        assert_eq!(Version::Latest.effective_minor(), NEWEST_MINOR);
        assert_eq!(Version::V1(99).effective_minor(), NEWEST_MINOR);
        assert_eq!(Version::V1(25).effective_minor(), 25);
        assert_eq!(
            "v1.99999999999"
                .parse::<Version>()
                .map(Version::effective_minor),
            Ok(37)
        );
    }

    #[test]
    fn displays_the_label_text() {
        let lv = LevelVersion::new(Level::Restricted, Version::V1(99));
        assert_eq!(lv.to_string(), "restricted:v1.99");
        assert_eq!(
            LevelVersion::restricted_latest().to_string(),
            "restricted:latest"
        );
    }
}
