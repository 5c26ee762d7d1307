//! The findings of one audit, per namespace and in total, and their two human and machine
//! forms: the table (`--output table`, details with `--details`) and the JSON document
//! (`--output json`, schema `audit.pod-hardener.io/v1` `AuditReport`, documented in the README).
//! Pure: the scan fills it, the CLI prints it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::classify::{Class, Finding};
use crate::workload::WorkloadKind;

/// `apiVersion` of the JSON report; a change that removes or renames a field bumps it.
pub const REPORT_API_VERSION: &str = "audit.pod-hardener.io/v1";

/// How many of the most frequent reasons a summary lists.
pub const TOP_REASONS: usize = 10;

/// One audited object (a workload, or a Pod no audited workload owns) and its finding.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditedObject {
    /// `v1`, `apps/v1`, `batch/v1`.
    pub api_version: &'static str,
    /// Its kind.
    #[serde(serialize_with = "kind_name")]
    pub kind: WorkloadKind,
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// Its audited controller (`Deployment web`), when it is reported apart from it because its
    /// Pods fare worse than the controller's template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controlled_by: Option<String>,
    /// Objects it owns that the audit folded into it (its ReplicaSets, Jobs, Pods), by kind.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub owned: BTreeMap<&'static str, u32>,
    /// What was found.
    #[serde(flatten)]
    pub finding: Finding,
}

impl AuditedObject {
    /// What was folded into it, for people: `2 Pods, 1 ReplicaSet`; empty when nothing was.
    pub fn owned_text(&self) -> String {
        let parts: Vec<String> = self
            .owned
            .iter()
            .map(|(kind, n)| format!("{n} {kind}{}", if *n == 1 { "" } else { "s" }))
            .collect();
        parts.join(", ")
    }
}

fn kind_name<S: serde::Serializer>(kind: &WorkloadKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

/// Counts of each class, and of run-time risks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Objects audited (folded ones excluded).
    pub objects: u32,
    /// Compliant as they are.
    pub compliant: u32,
    /// Compliant after hardening.
    pub hardened: u32,
    /// Still denied after hardening.
    pub denied: u32,
    /// Exempt.
    pub exempt: u32,
    /// Unreadable.
    pub unreadable: u32,
    /// Objects with a run-time risk other than an unknown image user (a read-only root made by
    /// hardening, an image that runs as root or as an unverifiable named user).
    pub at_risk: u32,
    /// Objects for which hardening sets `runAsNonRoot` on an image whose user is not known.
    pub image_user_unknown: u32,
}

impl Summary {
    fn count(&mut self, finding: &Finding) {
        self.objects += 1;
        match finding.class {
            Class::Compliant => self.compliant += 1,
            Class::Hardened => self.hardened += 1,
            Class::Denied => self.denied += 1,
            Class::Exempt => self.exempt += 1,
            Class::Unreadable => self.unreadable += 1,
        }
        self.at_risk += u32::from(finding.is_at_risk());
        self.image_user_unknown += u32::from(finding.has_unknown_image_user());
    }

    fn add(&mut self, other: &Summary) {
        self.objects += other.objects;
        self.compliant += other.compliant;
        self.hardened += other.hardened;
        self.denied += other.denied;
        self.exempt += other.exempt;
        self.unreadable += other.unreadable;
        self.at_risk += other.at_risk;
        self.image_user_unknown += other.image_user_unknown;
    }
}

/// A reason and how many objects it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    /// `denied: runAsNonRoot (explicit-value)` or `at risk: read-only-root`.
    pub reason: String,
    /// Objects.
    pub count: u32,
}

/// One namespace's findings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceReport {
    /// The namespace.
    pub name: String,
    /// Its enforce level and version, as the audit applied them.
    pub policy: String,
    /// pod-hardener's mode there (`harden`, `shadow`, `off`).
    pub mode: &'static str,
    /// Invalid Pod Security or mode labels (resolved as PSA and the webhook resolve them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub label_errors: Vec<String>,
    /// Counts.
    pub summary: Summary,
    /// The most frequent reasons in this namespace.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_reasons: Vec<ReasonCount>,
    /// Every audited object, by kind (owners first) then name.
    pub objects: Vec<AuditedObject>,
}

impl NamespaceReport {
    /// An empty report for a namespace at `policy` in `mode`.
    pub fn new(
        name: String,
        policy: String,
        mode: &'static str,
        label_errors: Vec<String>,
    ) -> Self {
        NamespaceReport {
            name,
            policy,
            mode,
            label_errors,
            summary: Summary::default(),
            top_reasons: Vec::new(),
            objects: Vec::new(),
        }
    }
}

/// What was audited: the command line's scope, for the reader of a saved report.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditScope {
    /// The namespaces asked for (empty: all).
    pub namespaces: Vec<String>,
    /// The label selector, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// The hypothetical enforce level and version, if one replaced the namespaces' own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Hardening mode: `fill` or `override`.
    pub hardening_mode: String,
    /// Whether image configs were read from their registries.
    pub image_lookups: bool,
}

/// The whole audit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`REPORT_API_VERSION`].
    pub api_version: &'static str,
    /// `AuditReport`.
    pub kind: &'static str,
    /// When the scan started, RFC 3339 (UTC).
    pub scanned_at: String,
    /// The same, in seconds since the epoch (for PolicyReport timestamps).
    #[serde(skip)]
    pub scanned_at_seconds: i64,
    /// What was audited.
    pub scope: AuditScope,
    /// Counts over every namespace.
    pub summary: Summary,
    /// The most frequent reasons over every namespace.
    pub top_reasons: Vec<ReasonCount>,
    /// Each namespace in scope, by name.
    pub namespaces: Vec<NamespaceReport>,
}

fn reasons_of(finding: &Finding) -> Vec<String> {
    let mut reasons: Vec<String> = finding
        .unfixable
        .iter()
        .map(|u| format!("denied: {} ({})", u.check, u.reason))
        .chain(
            finding
                .risks
                .iter()
                .map(|r| format!("at risk: {}", r.kind.as_str())),
        )
        .collect();
    reasons.sort();
    reasons.dedup();
    reasons
}

fn top(counts: BTreeMap<String, u32>, n: usize) -> Vec<ReasonCount> {
    let mut v: Vec<ReasonCount> = counts
        .into_iter()
        .map(|(reason, count)| ReasonCount { reason, count })
        .collect();
    // Most frequent first; ties by name, so the same cluster gives the same report.
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    v.truncate(n);
    v
}

impl Report {
    /// The report over `namespaces`, whose objects are filled in: sorts them and computes
    /// every count.
    pub fn new(
        scanned_at_seconds: i64,
        scope: AuditScope,
        mut namespaces: Vec<NamespaceReport>,
    ) -> Self {
        let mut summary = Summary::default();
        let mut all_reasons: BTreeMap<String, u32> = BTreeMap::new();
        namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        for ns in &mut namespaces {
            ns.objects.sort_by(|a, b| {
                let order =
                    |k: WorkloadKind| WorkloadKind::OWNERS_FIRST.iter().position(|x| *x == k);
                order(a.kind)
                    .cmp(&order(b.kind))
                    .then_with(|| a.name.cmp(&b.name))
            });
            let mut counts = Summary::default();
            let mut reasons: BTreeMap<String, u32> = BTreeMap::new();
            for object in &ns.objects {
                counts.count(&object.finding);
                for reason in reasons_of(&object.finding) {
                    *reasons.entry(reason.clone()).or_default() += 1;
                    *all_reasons.entry(reason).or_default() += 1;
                }
            }
            summary.add(&counts);
            ns.summary = counts;
            ns.top_reasons = top(reasons, TOP_REASONS);
        }
        Report {
            api_version: REPORT_API_VERSION,
            kind: "AuditReport",
            scanned_at: k8s_openapi::jiff::Timestamp::from_second(scanned_at_seconds)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            scanned_at_seconds,
            scope,
            summary,
            top_reasons: top(all_reasons, TOP_REASONS),
            namespaces,
        }
    }

    /// Whether any object will be denied (or cannot be read): `audit` then exits 1, as `check`
    /// does on a violation.
    pub fn has_denials(&self) -> bool {
        self.summary.denied > 0 || self.summary.unreadable > 0
    }

    /// The JSON document.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }

    /// The table: the summary per namespace and in total, the most frequent reasons, then with
    /// `details` one block per object that is not simply compliant.
    pub fn to_table(&self, details: bool) -> String {
        let mut out = String::new();
        let lookups = if self.scope.image_lookups {
            "on"
        } else {
            "off"
        };
        let _ = writeln!(
            out,
            "pod-hardener audit: {} objects in {} namespaces (hardening {}, image lookups {lookups})",
            self.summary.objects,
            self.namespaces.len(),
            self.scope.hardening_mode,
        );
        let header = [
            "NAMESPACE",
            "POLICY",
            "MODE",
            "OBJECTS",
            "COMPLIANT",
            "HARDENED",
            "DENIED",
            "EXEMPT",
            "UNREADABLE",
            "AT RISK",
            "USER UNKNOWN",
        ];
        let row = |name: &str, policy: &str, mode: &str, s: &Summary| -> Vec<String> {
            vec![
                name.to_owned(),
                policy.to_owned(),
                mode.to_owned(),
                s.objects.to_string(),
                s.compliant.to_string(),
                s.hardened.to_string(),
                s.denied.to_string(),
                s.exempt.to_string(),
                s.unreadable.to_string(),
                s.at_risk.to_string(),
                s.image_user_unknown.to_string(),
            ]
        };
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
        for ns in &self.namespaces {
            rows.push(row(&ns.name, &ns.policy, ns.mode, &ns.summary));
        }
        rows.push(row("TOTAL", "", "", &self.summary));
        out.push('\n');
        write_columns(&mut out, &rows);
        if !self.top_reasons.is_empty() {
            let _ = writeln!(out, "\nMost frequent reasons (objects):");
            for r in &self.top_reasons {
                let _ = writeln!(out, "  {:>6}  {}", r.count, r.reason);
            }
        }
        if details {
            self.write_details(&mut out);
        } else if self.summary.objects > self.summary.compliant + self.summary.exempt {
            let _ = writeln!(out, "\nEach object: --details (or --output json).");
        }
        out
    }

    fn write_details(&self, out: &mut String) {
        for ns in &self.namespaces {
            for ns_error in &ns.label_errors {
                let _ = writeln!(out, "\n{}: label error: {ns_error}", ns.name);
            }
            for o in &ns.objects {
                let f = &o.finding;
                if f.class == Class::Compliant && f.changes.is_empty() && f.risks.is_empty() {
                    continue;
                }
                let owned = match o.owned_text() {
                    text if text.is_empty() => text,
                    text => format!(" (with {text})"),
                };
                let controller = o
                    .controlled_by
                    .as_ref()
                    .map(|c| format!(" (controlled by {c})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "\n{} {}/{}{owned}{controller}: {} at {}",
                    o.kind.as_str(),
                    ns.name,
                    o.name,
                    f.class.as_str(),
                    f.policy
                );
                for t in &f.changes {
                    let _ = writeln!(out, "  sets on {t}");
                }
                if let Some(message) = &f.message {
                    let _ = writeln!(out, "  {message}");
                }
                for r in &f.risks {
                    let _ = writeln!(
                        out,
                        "  at risk ({}) {}: {}",
                        r.kind.as_str(),
                        r.container,
                        r.detail
                    );
                }
            }
        }
    }
}

/// Left-aligned columns, two spaces apart.
fn write_columns(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
