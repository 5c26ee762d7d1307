//! `audit --apply`: writes the PolicyReports and the ClusterPolicyReport with server-side apply
//! (field manager `pod-hardener`), so a second run updates the same objects, and deletes the
//! extra `pod-hardener-N` reports a namespace no longer needs. Each report is one request, so
//! an interrupted run leaves every report whole (old or new), never half-written.

use std::collections::BTreeSet;

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;

use super::policy_report::{
    self, API_VERSION, MANAGED_BY, MANAGED_BY_LABEL, REPORT_NAME, namespace_reports,
};
use super::report::Report;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "pod-hardener";

/// Why the reports could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// A write, list or delete failed.
    #[error("cannot {what}: {source}{hint}")]
    Api {
        /// What was being done: `apply PolicyReport apps/pod-hardener`.
        what: String,
        /// kube's error.
        #[source]
        source: kube::Error,
        /// What to do about it, when known.
        hint: &'static str,
    },
}

/// What `--apply` wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// PolicyReports applied.
    pub policy_reports: usize,
    /// Extra PolicyReports of an earlier run deleted.
    pub pruned: usize,
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "wgpolicyk8s.io".into(),
        version: "v1alpha2".into(),
        api_version: API_VERSION.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn api_error(what: String, source: kube::Error) -> PublishError {
    let hint = match &source {
        kube::Error::Api(status) if status.code == 404 => {
            " (are the wgpolicyk8s.io PolicyReport CRDs installed? see the README, \"Audit\")"
        }
        kube::Error::Api(status) if status.code == 403 => {
            " (--apply needs the ClusterRole pod-hardener-audit-reports, see manifests/audit/)"
        }
        _ => "",
    };
    PublishError::Api { what, source, hint }
}

async fn apply(api: &Api<DynamicObject>, report: &Value, what: String) -> Result<(), PublishError> {
    let name = report["metadata"]["name"].as_str().unwrap_or(REPORT_NAME);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(report))
        .await
        .map(|_| ())
        .map_err(|source| api_error(what, source))
}

/// Applies every report of `report` and prunes the extra ones of earlier runs.
pub async fn publish(client: &kube::Client, report: &Report) -> Result<Published, PublishError> {
    let namespaced = resource("PolicyReport", "policyreports");
    let mut published = Published::default();
    for ns in &report.namespaces {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &namespaced);
        let mut written = BTreeSet::new();
        for r in namespace_reports(ns, report) {
            let name = r["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            apply(&api, &r, format!("apply PolicyReport {}/{name}", ns.name)).await?;
            written.insert(name);
            published.policy_reports += 1;
        }
        let ours = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let existing = api
            .list_metadata(&ours)
            .await
            .map_err(|source| api_error(format!("list PolicyReports in {}", ns.name), source))?;
        for old in existing.items {
            let Some(name) = old.metadata.name else {
                continue;
            };
            // Only the numbered parts this command writes; anything else is someone else's.
            let numbered = name
                .strip_prefix(REPORT_NAME)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|n| n.parse::<usize>().is_ok());
            if numbered && !written.contains(&name) {
                api.delete(&name, &DeleteParams::default())
                    .await
                    .map_err(|source| {
                        api_error(format!("delete PolicyReport {}/{name}", ns.name), source)
                    })?;
                published.pruned += 1;
            }
        }
    }
    let cluster: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("ClusterPolicyReport", "clusterpolicyreports"),
    );
    // Server-side apply replaces the results list whole: a run limited to some namespaces keeps
    // the earlier run's results for the others.
    let mut kept = Vec::new();
    if !report.scope.namespaces.is_empty() {
        let existing = cluster.get_opt(REPORT_NAME).await.map_err(|source| {
            api_error(format!("get ClusterPolicyReport {REPORT_NAME}"), source)
        })?;
        let audited: BTreeSet<&str> = report.namespaces.iter().map(|n| n.name.as_str()).collect();
        kept = existing
            .and_then(|o| o.data.get("results").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|r| policy_report::result_namespace(r).is_some_and(|ns| !audited.contains(ns)))
            .collect();
    }
    apply(
        &cluster,
        &policy_report::cluster_report(report, kept),
        format!("apply ClusterPolicyReport {REPORT_NAME}"),
    )
    .await?;
    Ok(published)
}
