//! `pod-hardener audit`: the cluster of the current kubeconfig (or in-cluster) audited for what
//! pod-hardener will change, what will still be denied and what may not start
//! ([`crate::audit`]); a table, JSON or PolicyReports, optionally written to the cluster.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::admission::AdmissionSettings;
use crate::audit::scan::DEFAULT_PAGE_SIZE;
use crate::audit::{self, ImageSource, Progress, Report, ScanOptions};
use crate::config::ConfigFile;
use crate::harden::{ImageCatalog, Mode};
use crate::policy::DefaultPolicy;
use crate::pss::{Level, LevelVersion, Version};
use crate::workload::WorkloadKind;

use super::images::CliLookups;

/// The namespaces the shipped webhook configurations (`manifests/base/webhooks.yaml`, the Helm
/// chart's `webhooks.excludedNamespaces` plus its own) never send to pod-hardener.
pub const EXCLUDED_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-node-lease",
    "kube-public",
    "pod-hardener",
];

/// Output format of `audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditOutput {
    /// The summary per namespace and the most frequent reasons (each object with --details).
    Table,
    /// The `audit.pod-hardener.io/v1` AuditReport document.
    Json,
    /// `wgpolicyk8s.io/v1alpha2` PolicyReports per namespace and a ClusterPolicyReport (YAML).
    Policyreport,
}

/// When to show progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// When stderr is a terminal.
    Auto,
    /// Always, one line per page.
    Always,
    /// Never.
    Never,
}

/// `audit` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// The kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Audit only this namespace (repeatable; default: all).
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,
    /// Audit only objects matching this label selector.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Judge every namespace at this enforce level instead of its labels' (what if I label it?).
    #[arg(long, value_parser = parse_level)]
    pub level: Option<Level>,
    /// With --level: the policy version (v1.N or latest).
    #[arg(long, requires = "level", value_parser = parse_version)]
    pub version: Option<Version>,
    /// Hardening mode: fill (never overwrite explicit values) or override (default: the
    /// config's, else fill).
    #[arg(long)]
    pub mode: Option<Mode>,
    /// The webhook's config file, so the audit decides as the installed webhook will: its
    /// defaultPolicy, hardening and exemptions (namespaces and runtime classes; its images
    /// section is not read: use --image-lookups); default: the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A namespace the webhook configurations' namespaceSelector leaves out (repeatable):
    /// neither hardened nor checked by pod-hardener, so reported exempt. Default: those of the
    /// shipped configurations.
    #[arg(
        long = "excluded-namespace",
        value_name = "NAMESPACE",
        default_values_t = EXCLUDED_NAMESPACES.map(String::from)
    )]
    pub excluded_namespaces: Vec<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: AuditOutput,
    /// With the table: one block per object that hardening changes or that is denied or at risk.
    #[arg(long)]
    pub details: bool,
    /// Also write the PolicyReports to the cluster (server-side apply, field manager
    /// pod-hardener; needs the wgpolicyk8s.io CRDs).
    #[arg(long)]
    pub apply: bool,
    /// Objects per list request.
    #[arg(long, default_value_t = DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,
    /// Deadline of each request to the API server, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub request_timeout: u64,
    /// Progress on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// Image lookups: which containers will not start, as the kubelet decides.
    #[command(flatten)]
    pub images: super::images::ImageLookupArgs,
}

fn parse_level(s: &str) -> Result<Level, String> {
    s.parse::<Level>().map_err(|e| e.to_string())
}

fn parse_version(s: &str) -> Result<Version, String> {
    s.parse::<Version>().map_err(|e| e.to_string())
}

/// Why `audit` could not give a complete report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The config file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// No kubeconfig or in-cluster configuration could be loaded.
    #[error("cannot load the cluster's configuration: {0}")]
    Kubeconfig(String),
    /// The scan failed: no report is given.
    #[error("{0}; no report was written")]
    Scan(#[from] audit::ScanError),
    /// `--apply` failed.
    #[error(transparent)]
    Publish(#[from] audit::publish::PublishError),
    /// Image lookups could not start.
    #[error(transparent)]
    Images(#[from] super::CliError),
    /// Options that cannot go together.
    #[error("{0}")]
    Usage(String),
    /// The default policy is invalid.
    #[error(transparent)]
    Defaults(#[from] crate::policy::InvalidDefault),
    /// Ctrl-C during the scan.
    #[error("interrupted; no report was written")]
    Interrupted,
    /// Ctrl-C while the reports were being applied: each is whole, old or new.
    #[error(
        "interrupted while applying the reports; each report in the cluster is whole, from this run or the previous one"
    )]
    InterruptedApplying,
    /// The runtime could not start, or output could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Writing JSON failed.
    #[error("cannot write JSON output: {0}")]
    Json(#[from] serde_json::Error),
}

/// What `audit` prints, and whether anything will be denied.
#[derive(Debug, Clone)]
pub struct AuditOutcome {
    /// For stdout.
    pub stdout: String,
    /// For stderr after the report (what `--apply` wrote).
    pub stderr: String,
    /// Whether an object will be denied or is unreadable (exit 1).
    pub has_denials: bool,
}

struct Lookups<'a>(&'a CliLookups);

impl ImageSource for Lookups<'_> {
    fn catalog(&self, pod_spec: &Value) -> ImageCatalog {
        // The lookups run on their own runtime: leave this one's worker while they do.
        tokio::task::block_in_place(|| self.0.catalog(pod_spec))
    }
}

struct StderrProgress {
    terminal: bool,
}

impl Progress for StderrProgress {
    fn page(&mut self, kind: WorkloadKind, listed: u64) {
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2Kaudit: {} {listed}", kind.as_str())
        } else {
            writeln!(err, "audit: {} {listed}", kind.as_str())
        };
    }
}

struct NoProgress;

impl Progress for NoProgress {
    fn page(&mut self, _: WorkloadKind, _: u64) {}
}

async fn client(args: &AuditArgs) -> Result<kube::Client, AuditError> {
    crate::server::tls::install_crypto_provider();
    let bad = |e: &dyn std::fmt::Display| AuditError::Kubeconfig(e.to_string());
    let options = kube::config::KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let mut config = match &args.kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| AuditError::Kubeconfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| bad(&e))?
        }
        None if args.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| bad(&e))?,
        None => kube::Config::infer().await.map_err(|e| bad(&e))?,
    };
    let timeout = Duration::from_secs(args.request_timeout);
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    kube::Client::try_from(config).map_err(|e| bad(&e))
}

fn scan_options(args: &AuditArgs) -> Result<ScanOptions, AuditError> {
    let (defaults, mut settings) = match &args.config {
        Some(path) => {
            let config = ConfigFile::load(path)?.validate()?;
            (config.defaults, config.admission)
        }
        None => (
            DefaultPolicy::default().parse()?,
            AdmissionSettings::default(),
        ),
    };
    if let Some(mode) = args.mode {
        settings.hardening.mode = mode;
    }
    settings
        .exemptions
        .namespaces
        .extend(args.excluded_namespaces.iter().cloned());
    let started_at_seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Ok(ScanOptions {
        namespaces: args.namespaces.clone(),
        label_selector: args.selector.clone(),
        page_size: args.page_size,
        policy: args
            .level
            .map(|l| LevelVersion::new(l, args.version.unwrap_or(Version::Latest))),
        defaults,
        settings,
        request_timeout: Duration::from_secs(args.request_timeout),
        started_at_seconds,
    })
}

/// `--apply` writes the namespaces' own reports: not a subset of their objects (`-l`) nor a
/// hypothetical policy (`--level`), which would overwrite them with something else.
fn check_apply(args: &AuditArgs) -> Result<(), AuditError> {
    if !args.apply {
        return Ok(());
    }
    for (set, flag) in [
        (args.selector.is_some(), "--selector"),
        (args.level.is_some(), "--level"),
    ] {
        if set {
            return Err(AuditError::Usage(format!(
                "--apply writes each namespace's report as the webhook will judge it: it cannot be combined with {flag}"
            )));
        }
    }
    Ok(())
}

/// Runs `audit`: scans, renders, and with `--apply` writes the reports. Ctrl-C before the end
/// of the scan writes nothing.
pub async fn run(
    args: &AuditArgs,
    lookups: Option<&CliLookups>,
) -> Result<AuditOutcome, AuditError> {
    check_apply(args)?;
    let options = scan_options(args)?;
    let lookups = lookups.map(Lookups);
    let client = client(args).await?;
    let terminal = std::io::stderr().is_terminal();
    let mut progress: Box<dyn Progress + Send> = match args.progress {
        ProgressMode::Always => Box::new(StderrProgress { terminal }),
        ProgressMode::Auto if terminal => Box::new(StderrProgress { terminal }),
        _ => Box::new(NoProgress),
    };
    let images = lookups.as_ref().map(|l| l as &dyn ImageSource);
    let report: Report = tokio::select! {
        result = audit::scan(&client, &options, images, progress.as_mut()) => result?,
        _ = tokio::signal::ctrl_c() => return Err(AuditError::Interrupted),
    };
    if terminal && args.progress != ProgressMode::Never {
        eprint!("\r\x1b[2K");
    }
    let stdout = match args.output {
        AuditOutput::Table => report.to_table(args.details),
        AuditOutput::Json => report.to_json()?,
        AuditOutput::Policyreport => audit::policy_report::to_yaml(&report),
    };
    let mut stderr = String::new();
    if args.apply {
        let published = tokio::select! {
            result = audit::publish::publish(&client, &report) => result?,
            _ = tokio::signal::ctrl_c() => return Err(AuditError::InterruptedApplying),
        };
        stderr = format!(
            "applied {} PolicyReports and the ClusterPolicyReport {}{}\n",
            published.policy_reports,
            audit::policy_report::REPORT_NAME,
            if published.pruned > 0 {
                format!("; deleted {} outdated", published.pruned)
            } else {
                String::new()
            }
        );
    }
    Ok(AuditOutcome {
        stdout,
        stderr,
        has_denials: report.has_denials(),
    })
}
