//! `pod-hardener audit`: what turning pod-hardener on (and labelling namespaces) will do to the
//! workloads already in a cluster, object by object: compliant as it is, compliant after
//! hardening, still denied (and why hardening cannot fix it), and at risk at run time.
//!
//! - [`mod@classify`]: one object at its namespace's policy (pure, the webhook's own core).
//! - [`report`]: the findings per namespace and in total; the table and the JSON document (pure).
//! - [`policy_report`]: the same as `wgpolicyk8s.io` PolicyReports (pure).
//! - [`mod@scan`]: reads the cluster page by page and classifies what it reads.
//! - [`publish`]: `--apply`, the reports written with server-side apply.

pub mod classify;
pub mod policy_report;
pub mod publish;
pub mod report;
pub mod scan;

pub use classify::{Class, Finding, Risk, RiskKind, classify};
pub use report::Report;
pub use scan::{ImageSource, Progress, ScanError, ScanOptions, scan};
