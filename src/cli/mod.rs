//! The command line: `check`, `harden` and `version` over manifests, `audit` over a cluster, sharing the core with the
//! webhook (the CLI's `check` is the validator, its `harden` is the mutator).

pub mod audit;
pub mod certs;
pub mod check;
pub mod harden;
pub mod images;
pub mod krm;
pub mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::harden::{Control, HardeningSettings, Mode, Profile};
use crate::pss::{Level, LevelVersion, Version};

/// Exit code when every object is allowed (or hardening succeeded).
pub const EXIT_OK: i32 = 0;
/// Exit code of `check` when an object violates the policy.
pub const EXIT_VIOLATIONS: i32 = 1;
/// Exit code for unreadable or invalid input.
pub const EXIT_BAD_INPUT: i32 = 2;

/// Why a CLI command could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The input could not be read as manifests.
    #[error(transparent)]
    Read(#[from] crate::manifest::ReadError),
    /// An object's pod spec has the wrong shape.
    #[error("{at}: {source}")]
    Object {
        /// Which document.
        at: String,
        /// What is wrong.
        #[source]
        source: crate::workload::ExtractError,
    },
    /// An object could not be hardened.
    #[error("{at}: {source}")]
    Harden {
        /// Which document.
        at: String,
        /// What went wrong.
        #[source]
        source: crate::harden::HardenError,
    },
    /// The input file could not be opened.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing JSON output failed.
    #[error("cannot write JSON output: {0}")]
    Output(#[source] serde_json::Error),
    /// The input of `krm` is not a ResourceList this function can run on.
    #[error("invalid ResourceList: {0}")]
    Krm(String),
    /// `--image-lookups` cannot start (its settings or its cache directory).
    #[error("image lookups: {0}")]
    Images(String),
}

/// pod-hardener: hardens Pods to the Pod Security Standards and checks them like Pod Security
/// Admission.
#[derive(Debug, Parser)]
#[command(name = "pod-hardener", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate Pods and pod templates in manifests like Pod Security Admission.
    ///
    /// Exit 0 when every object is allowed, 1 when any violates, 2 on bad input.
    Check(CheckArgs),
    /// Harden Pods and pod templates in manifests; usable as a Helm post-renderer.
    ///
    /// Writes every document back on stdout in order. Exit 0 on success (even if violations
    /// remain; use `check` to gate), 2 on bad input.
    Harden(HardenArgs),
    /// Run as a KRM function (kustomize exec transformer, `kpt fn eval --exec`): a ResourceList
    /// on stdin, the hardened ResourceList on stdout, with `results` saying what was changed and
    /// what will still be denied.
    ///
    /// The function's functionConfig (a ConfigMap's data, or an object's spec) may set `level`,
    /// `mode` and `skip`, overriding the flags. Exit 0 on success, 2 on bad input.
    Krm(HardenArgs),
    /// Audit a live cluster: what hardening will change, what will still be denied and what may
    /// not start, per namespace and object (table, JSON or PolicyReports).
    ///
    /// Exit 0 when nothing will be denied, 1 when an object will be, 2 when the audit could not
    /// complete (no report is given then).
    Audit(Box<audit::AuditArgs>),
    /// Serve /mutate and /validate over HTTPS (and /metrics over HTTP).
    Serve(serve::ServeArgs),
    /// Generate a CA and a serving certificate for the webhook Service; prints the caBundle.
    Certs(certs::CertsArgs),
    /// Print the version and the git commit it was built from.
    Version,
}

/// The input of `check` and `harden`.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// Manifest file (YAML or JSON, multi-document, kind: List); `-` or absent for stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl InputArgs {
    /// Reads the whole input, bounded by [`crate::manifest::MAX_INPUT_BYTES`].
    pub fn read(&self) -> Result<Vec<u8>, CliError> {
        use std::io::Read as _;
        let limit = crate::manifest::MAX_INPUT_BYTES as u64 + 1;
        let mut buf = Vec::new();
        let (path, result) = match self.file.as_deref() {
            None => (
                PathBuf::from("-"),
                std::io::stdin().lock().take(limit).read_to_end(&mut buf),
            ),
            Some(p) if p.as_os_str() == "-" => (
                p.to_path_buf(),
                std::io::stdin().lock().take(limit).read_to_end(&mut buf),
            ),
            Some(p) => (
                p.to_path_buf(),
                std::fs::File::open(p).and_then(|f| f.take(limit).read_to_end(&mut buf)),
            ),
        };
        result.map_err(|source| CliError::Io { path, source })?;
        Ok(buf)
    }
}

/// `check` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    /// Input.
    pub input: InputArgs,
    /// Level to evaluate at.
    #[arg(long, default_value = "restricted", value_parser = parse_level)]
    pub level: Level,
    /// Policy version: v1.N or latest.
    #[arg(long, default_value = "latest", value_parser = parse_version)]
    pub version: Version,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: check::OutputFormat,
}

impl CheckArgs {
    /// The policy to evaluate at.
    pub fn policy(&self) -> LevelVersion {
        LevelVersion::new(self.level, self.version)
    }
}

/// `harden` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct HardenArgs {
    #[command(flatten)]
    /// Input.
    pub input: InputArgs,
    /// Level whose profile to apply: restricted (full) or baseline (subset).
    #[arg(long, default_value = "restricted", value_parser = parse_hardening_level)]
    pub level: Level,
    /// fill (never overwrite explicit values) or override (rewrite explicit insecure values).
    #[arg(long, default_value = "fill")]
    pub mode: Mode,
    /// Controls to skip for every object, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<Control>,
    /// Explain on stderr what was changed and what will still be denied.
    #[arg(long)]
    pub explain: bool,
    /// Image lookups.
    #[command(flatten)]
    pub images: images::ImageLookupArgs,
}

impl HardenArgs {
    /// The options for [`harden::run`]; starting image lookups can fail.
    pub fn options(&self) -> Result<harden::HardenOptions, CliError> {
        let settings = HardeningSettings {
            mode: self.mode,
            ..HardeningSettings::default()
        };
        let images = self.images.lookups()?.map(std::sync::Arc::new);
        Ok(harden::HardenOptions {
            profile: Profile::for_level(self.level, &settings),
            skip: self.skip.clone(),
            explain: self.explain,
            images,
        })
    }
}

fn parse_level(s: &str) -> Result<Level, String> {
    s.parse::<Level>().map_err(|e| e.to_string())
}

fn parse_hardening_level(s: &str) -> Result<Level, String> {
    match parse_level(s)? {
        Level::Privileged => {
            Err("privileged applies no hardening: use restricted or baseline".into())
        }
        level => Ok(level),
    }
}

fn parse_version(s: &str) -> Result<Version, String> {
    s.parse::<Version>().map_err(|e| e.to_string())
}

/// The name and namespace of an object, for messages.
#[derive(Debug, Clone)]
pub struct ObjectRef {
    /// `metadata.name`, else `metadata.generateName`, else `<unnamed>`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
}

impl ObjectRef {
    /// Reads them from an object.
    pub fn of(object: &Value) -> Self {
        let meta = object.get("metadata");
        let field = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        ObjectRef {
            name: field("name")
                .or_else(|| field("generateName"))
                .unwrap_or_else(|| "<unnamed>".into()),
            namespace: field("namespace"),
        }
    }

    /// `document 3 (Deployment apps/web)`: where an object is, for error messages.
    pub fn position(at: &str, kind: &str, object: &Value) -> String {
        let who = ObjectRef::of(object);
        format!(
            "{at} ({})",
            ObjectRef::display(kind, who.namespace.as_deref(), &who.name)
        )
    }

    /// `Kind namespace/name`, or `Kind name` without a namespace.
    pub fn display(kind: &str, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        }
    }
}

/// The version line: `pod-hardener 0.1.0 (commit abcdef123456)`.
pub fn version_line() -> String {
    format!(
        "pod-hardener {} (commit {})",
        env!("CARGO_PKG_VERSION"),
        option_env!("POD_HARDENER_GIT_COMMIT").unwrap_or("unknown")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
