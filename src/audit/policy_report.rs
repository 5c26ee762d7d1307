//! The audit as `wgpolicyk8s.io/v1alpha2` PolicyReports (one set per namespace) and one
//! ClusterPolicyReport (one result per namespace): the format Kyverno and Kubewarden write and
//! Policy Reporter displays. Pure: [`super::publish`] applies what this builds.
//!
//! One result per audited object: `pass` (compliant as it is or after hardening), `warn` (admitted,
//! but at risk at run time), `fail` (still denied), `skip` (exempt), `error` (unreadable). The
//! rule is the class; properties carry the changes, risks and reasons as text.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::classify::{Class, Finding, RiskKind};
use super::report::{AuditedObject, NamespaceReport, Report, Summary};

/// The group and version of the reports.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
/// The name of each namespace's (first) PolicyReport and of the ClusterPolicyReport.
pub const REPORT_NAME: &str = "pod-hardener";
/// The label every report carries, so a later run finds (and prunes) its own.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "pod-hardener";
/// Results per PolicyReport: a namespace with more gets `pod-hardener-2`, `-3`... so each
/// object stays far below etcd's 1.5 MiB request limit (a result is under 1 KiB).
pub const MAX_RESULTS_PER_REPORT: usize = 500;
/// The `policy` of every result.
pub const POLICY: &str = "pod-hardener";

/// The PolicyReport result for one finding.
fn result_of(finding: &Finding) -> &'static str {
    match finding.class {
        Class::Compliant | Class::Hardened
            if finding
                .risks
                .iter()
                .any(|r| r.kind != RiskKind::ImageUserUnknown) =>
        {
            "warn"
        }
        Class::Compliant | Class::Hardened => "pass",
        Class::Denied => "fail",
        Class::Exempt => "skip",
        Class::Unreadable => "error",
    }
}

fn message_of(finding: &Finding) -> String {
    let changes: Vec<String> = finding
        .changes
        .iter()
        .map(|t| {
            let controls: Vec<&str> = t.controls.iter().map(|c| c.as_str()).collect();
            format!("{}: {}", t.target, controls.join(", "))
        })
        .collect();
    let mut message = match finding.class {
        Class::Compliant if changes.is_empty() => format!("meets {} as it is", finding.policy),
        Class::Compliant => format!(
            "meets {} as it is; hardening also sets {}",
            finding.policy,
            changes.join("; ")
        ),
        Class::Hardened => format!(
            "meets {} after hardening sets {}",
            finding.policy,
            changes.join("; ")
        ),
        Class::Denied | Class::Exempt | Class::Unreadable => {
            finding.message.clone().unwrap_or_default()
        }
    };
    let risks: Vec<String> = finding
        .risks
        .iter()
        .map(|r| format!("{} {}", r.container, r.kind.as_str()))
        .collect();
    if !risks.is_empty() {
        message.push_str("; at run time: ");
        message.push_str(&risks.join(", "));
    }
    message
}

fn properties_of(object: &AuditedObject) -> BTreeMap<&'static str, String> {
    let f = &object.finding;
    let mut p = BTreeMap::new();
    p.insert("class", f.class.as_str().to_owned());
    p.insert("policy", f.policy.clone());
    let join = |items: Vec<String>| items.join("; ");
    if !f.changes.is_empty() {
        p.insert(
            "changes",
            join(
                f.changes
                    .iter()
                    .map(|t| {
                        let c: Vec<&str> = t.controls.iter().map(|c| c.as_str()).collect();
                        format!("{}: {}", t.target, c.join(","))
                    })
                    .collect(),
            ),
        );
    }
    if !f.unfixable.is_empty() {
        p.insert(
            "unfixable",
            join(
                f.unfixable
                    .iter()
                    .map(|u| format!("{}: {}", u.check, u.reason))
                    .collect(),
            ),
        );
    }
    if !f.risks.is_empty() {
        p.insert(
            "risks",
            join(
                f.risks
                    .iter()
                    .map(|r| format!("{}: {}", r.container, r.kind.as_str()))
                    .collect(),
            ),
        );
    }
    if !object.owned.is_empty() {
        p.insert(
            "owned",
            object
                .owned
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    p
}

fn timestamp(seconds: i64) -> Value {
    json!({"seconds": seconds, "nanos": 0})
}

fn summary_of(results: &[Value]) -> Value {
    let mut counts: BTreeMap<&str, u64> = ["pass", "fail", "warn", "error", "skip"]
        .into_iter()
        .map(|k| (k, 0))
        .collect();
    for r in results {
        if let Some(n) = r["result"].as_str().and_then(|k| counts.get_mut(k)) {
            *n += 1;
        }
    }
    json!(counts)
}

fn metadata(name: &str, namespace: Option<&str>, report: &Report) -> Value {
    let mut m = json!({
        "name": name,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY},
        "annotations": {"pod-hardener.io/scanned-at": report.scanned_at},
    });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

/// The name of a namespace's `index`th report (0-based): `pod-hardener`, `pod-hardener-2`...
pub fn report_name(index: usize) -> String {
    if index == 0 {
        REPORT_NAME.to_owned()
    } else {
        format!("{REPORT_NAME}-{}", index + 1)
    }
}

/// The PolicyReports of one namespace: at least one (empty when nothing was audited there, so a
/// previous run's findings are replaced), at most [`MAX_RESULTS_PER_REPORT`] results each.
pub fn namespace_reports(ns: &NamespaceReport, report: &Report) -> Vec<Value> {
    let results: Vec<Value> = ns
        .objects
        .iter()
        .map(|o| {
            let f = &o.finding;
            let result = result_of(f);
            let mut r = json!({
                "policy": POLICY,
                "rule": f.class.as_str(),
                "result": result,
                "scored": true,
                "source": MANAGED_BY,
                "category": "Pod Security Standards",
                "message": message_of(f),
                "timestamp": timestamp(report.scanned_at_seconds),
                "resources": [{
                    "apiVersion": o.api_version,
                    "kind": o.kind.as_str(),
                    "name": o.name,
                    "namespace": ns.name,
                    "uid": o.uid,
                }],
                "properties": properties_of(o),
            });
            match result {
                "fail" => r["severity"] = json!("high"),
                "warn" => r["severity"] = json!("medium"),
                _ => {}
            }
            r
        })
        .collect();
    let chunks: Vec<&[Value]> = if results.is_empty() {
        vec![&[]]
    } else {
        results.chunks(MAX_RESULTS_PER_REPORT).collect()
    };
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            json!({
                "apiVersion": API_VERSION,
                "kind": "PolicyReport",
                "metadata": metadata(&report_name(i), Some(&ns.name), report),
                "summary": summary_of(chunk),
                "results": chunk,
            })
        })
        .collect()
}

fn namespace_result(ns: &NamespaceReport, report: &Report) -> Value {
    let s: &Summary = &ns.summary;
    let result = if s.denied > 0 || s.unreadable > 0 {
        "fail"
    } else if s.at_risk > 0 {
        "warn"
    } else {
        "pass"
    };
    let mut r = json!({
        "policy": POLICY,
        "rule": "namespace",
        "result": result,
        "scored": true,
        "source": MANAGED_BY,
        "category": "Pod Security Standards",
        "message": format!(
            "{} objects at {} (mode {}): {} compliant, {} after hardening, {} denied, {} exempt, {} unreadable; {} at risk at run time, {} with an unknown image user",
            s.objects, ns.policy, ns.mode, s.compliant, s.hardened, s.denied, s.exempt,
            s.unreadable, s.at_risk, s.image_user_unknown
        ),
        "timestamp": timestamp(report.scanned_at_seconds),
        "resources": [{"apiVersion": "v1", "kind": "Namespace", "name": ns.name}],
        "properties": {
            "policy": ns.policy,
            "mode": ns.mode,
            "objects": s.objects.to_string(),
            "compliant": s.compliant.to_string(),
            "hardened": s.hardened.to_string(),
            "denied": s.denied.to_string(),
            "exempt": s.exempt.to_string(),
            "unreadable": s.unreadable.to_string(),
            "atRisk": s.at_risk.to_string(),
            "imageUserUnknown": s.image_user_unknown.to_string(),
        },
    });
    match result {
        "fail" => r["severity"] = json!("high"),
        "warn" => r["severity"] = json!("medium"),
        _ => {}
    }
    r
}

/// The ClusterPolicyReport: one result per namespace in scope.
pub fn cluster_report(report: &Report) -> Value {
    let results: Vec<Value> = report
        .namespaces
        .iter()
        .map(|ns| namespace_result(ns, report))
        .collect();
    json!({
        "apiVersion": API_VERSION,
        "kind": "ClusterPolicyReport",
        "metadata": metadata(REPORT_NAME, None, report),
        "summary": summary_of(&results),
        "results": results,
    })
}

/// Every report, namespaced ones first, as `--output policyreport` prints them.
pub fn all_reports(report: &Report) -> Vec<Value> {
    let mut out: Vec<Value> = report
        .namespaces
        .iter()
        .flat_map(|ns| namespace_reports(ns, report))
        .collect();
    out.push(cluster_report(report));
    out
}

/// `--output policyreport`: the reports as a YAML stream, written so that every YAML 1.1 and
/// 1.2 reader (kubectl's included) reads each string back as a string.
pub fn to_yaml(report: &Report) -> String {
    let mut out = String::new();
    for r in all_reports(report) {
        out.push_str("---\n");
        out.push_str(&crate::yaml::write_document(&r, None));
    }
    out
}
