//! The audit as `wgpolicyk8s.io/v1alpha2` PolicyReports (one set per namespace) and one
//! ClusterPolicyReport (one result per namespace): the format Kyverno and Kubewarden write and
//! Policy Reporter displays. Pure: [`super::publish`] applies what this builds.
//!
//! One result per audited object: `pass` (compliant as it is or after hardening), `warn` (admitted,
//! but at risk at run time), `fail` (still denied), `skip` (exempt), `error` (unreadable). The
//! rule is the class; properties carry the changes, risks and reasons as text.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::classify::{Class, Finding};
use super::report::{AuditedObject, NamespaceReport, Report, Summary};

/// The group and version of the reports.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
/// The name of each namespace's (first) PolicyReport and of the ClusterPolicyReport.
pub const REPORT_NAME: &str = "pod-hardener";
/// The label every report carries, so a later run finds (and prunes) its own.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "pod-hardener";
/// Results per PolicyReport, at most: a namespace with more gets `pod-hardener-2`, `-3`...
pub const MAX_RESULTS_PER_REPORT: usize = 500;
/// A PolicyReport's results in JSON, at most (a denied object's message has no fixed length):
/// far below etcd's 1.5 MiB request limit.
pub const MAX_RESULTS_BYTES: usize = 512 * 1024;
/// The `policy` of every result.
pub const POLICY: &str = "pod-hardener";

/// The PolicyReport result for one finding.
fn result_of(finding: &Finding) -> &'static str {
    match finding.class {
        Class::Compliant | Class::Hardened if finding.is_at_risk() => "warn",
        Class::Compliant | Class::Hardened => "pass",
        Class::Denied => "fail",
        Class::Exempt => "skip",
        Class::Unreadable => "error",
    }
}

fn joined<T: std::fmt::Display>(items: &[T], sep: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

fn message_of(finding: &Finding) -> String {
    let changes = joined(&finding.changes, "; ");
    let mut message = match finding.class {
        Class::Compliant if changes.is_empty() => format!("meets {} as it is", finding.policy),
        Class::Compliant => format!(
            "meets {} as it is; hardening also sets {changes}",
            finding.policy
        ),
        Class::Hardened => format!("meets {} after hardening sets {changes}", finding.policy),
        Class::Denied | Class::Exempt | Class::Unreadable => {
            finding.message.clone().unwrap_or_default()
        }
    };
    if !finding.risks.is_empty() {
        message.push_str("; at run time: ");
        message.push_str(&joined(&finding.risks, ", "));
    }
    message
}

fn properties_of(object: &AuditedObject) -> BTreeMap<&'static str, String> {
    let f = &object.finding;
    let mut p = BTreeMap::new();
    p.insert("class", f.class.as_str().to_owned());
    p.insert("policy", f.policy.clone());
    let unfixable: Vec<String> = f
        .unfixable
        .iter()
        .map(|u| format!("{}: {}", u.check, u.reason))
        .collect();
    for (key, value) in [
        ("changes", joined(&f.changes, "; ")),
        ("unfixable", unfixable.join("; ")),
        ("risks", joined(&f.risks, "; ")),
        ("owned", object.owned_text()),
        (
            "controlledBy",
            object.controlled_by.clone().unwrap_or_default(),
        ),
    ] {
        if !value.is_empty() {
            p.insert(key, value);
        }
    }
    p
}

/// One result: what every result of pod-hardener's carries, around what differs.
fn result(
    outcome: &str,
    rule: &str,
    message: String,
    resource: Value,
    properties: Value,
    report: &Report,
) -> Value {
    let mut r = json!({
        "policy": POLICY,
        "rule": rule,
        "result": outcome,
        "scored": true,
        "source": MANAGED_BY,
        "category": "Pod Security Standards",
        "message": message,
        "timestamp": timestamp(report.scanned_at_seconds),
        "resources": [resource],
        "properties": properties,
    });
    let severity = match outcome {
        "fail" => "high",
        "warn" => "medium",
        _ => return r,
    };
    r["severity"] = json!(severity);
    r
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
/// previous run's findings are replaced), each within [`MAX_RESULTS_PER_REPORT`] and
/// [`MAX_RESULTS_BYTES`].
pub fn namespace_reports(ns: &NamespaceReport, report: &Report) -> Vec<Value> {
    let mut chunks: Vec<Vec<Value>> = vec![Vec::new()];
    let mut bytes = 0;
    for o in &ns.objects {
        let resource = json!({
            "apiVersion": o.api_version,
            "kind": o.kind.as_str(),
            "name": o.name,
            "namespace": ns.name,
            "uid": o.uid,
        });
        let r = result(
            result_of(&o.finding),
            o.finding.class.as_str(),
            message_of(&o.finding),
            resource,
            json!(properties_of(o)),
            report,
        );
        let size = r.to_string().len();
        let current = chunks.last().map_or(0, Vec::len);
        if current > 0 && (current == MAX_RESULTS_PER_REPORT || bytes + size > MAX_RESULTS_BYTES) {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(r);
        }
    }
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            json!({
                "apiVersion": API_VERSION,
                "kind": "PolicyReport",
                "metadata": metadata(&report_name(i), Some(&ns.name), report),
                "summary": summary_of(&chunk),
                "results": chunk,
            })
        })
        .collect()
}

fn namespace_result(ns: &NamespaceReport, report: &Report) -> Value {
    let s: &Summary = &ns.summary;
    let outcome = if s.denied > 0 || s.unreadable > 0 {
        "fail"
    } else if s.at_risk > 0 {
        "warn"
    } else {
        "pass"
    };
    let message = format!(
        "{} objects at {} (mode {}): {} compliant, {} after hardening, {} denied, {} exempt, {} unreadable; {} at risk at run time, {} with an unknown image user",
        s.objects,
        ns.policy,
        ns.mode,
        s.compliant,
        s.hardened,
        s.denied,
        s.exempt,
        s.unreadable,
        s.at_risk,
        s.image_user_unknown
    );
    let properties = json!({
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
    });
    let resource = json!({"apiVersion": "v1", "kind": "Namespace", "name": ns.name});
    result(outcome, "namespace", message, resource, properties, report)
}

/// The namespace a ClusterPolicyReport result is about.
pub fn result_namespace(result: &Value) -> Option<&str> {
    result["resources"][0]["name"].as_str()
}

/// The ClusterPolicyReport: one result per namespace in scope, after `kept` (an earlier run's
/// results for namespaces this run did not audit; empty for a whole-cluster run).
pub fn cluster_report(report: &Report, kept: Vec<Value>) -> Value {
    let mut results = kept;
    results.extend(
        report
            .namespaces
            .iter()
            .map(|ns| namespace_result(ns, report)),
    );
    results.sort_by(|a, b| result_namespace(a).cmp(&result_namespace(b)));
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
    out.push(cluster_report(report, Vec::new()));
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
