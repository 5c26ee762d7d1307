//! The cluster side of an audit: reads namespaces and every object that carries a pod spec,
//! page by page (`limit`/`continue`, so memory is bounded by the page size plus one small
//! finding per object), folds each object into the audited workload that controls it, and
//! classifies the rest ([`mod@super::classify`]). Any failed list fails the whole scan: a report is
//! complete or is not given.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodTemplate, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, ObjectList};
use serde_json::Value;

use super::classify::{Class, classify};
use super::report::{AuditScope, AuditedObject, NamespaceReport, Report};
use crate::admission::AdmissionSettings;
use crate::harden::ImageCatalog;
use crate::policy::{Defaults, NamespacePolicy};
use crate::pss::LevelVersion;
use crate::workload::WorkloadKind;

/// Objects per list request when not configured (kubectl's default chunk size).
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// What to audit, and how the webhook is configured.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Namespaces to audit; empty for all.
    pub namespaces: Vec<String>,
    /// Only objects matching this label selector.
    pub label_selector: Option<String>,
    /// Objects per list request.
    pub page_size: u32,
    /// A hypothetical enforce level and version for every namespace, instead of its labels'.
    pub policy: Option<LevelVersion>,
    /// The policy of namespaces without labels (the server's `defaultPolicy`).
    pub defaults: Defaults,
    /// Hardening settings and exemptions (the server's).
    pub settings: AdmissionSettings,
    /// The deadline of each request to the API server, the response's body included.
    pub request_timeout: Duration,
    /// Seconds since the epoch when the scan started.
    pub started_at_seconds: i64,
}

/// What image lookups learned about the images of one pod spec; may block.
pub trait ImageSource {
    /// The catalog for the images of `pod_spec`.
    fn catalog(&self, pod_spec: &Value) -> ImageCatalog;
}

/// Told after each page, for a progress indicator.
pub trait Progress {
    /// `listed` objects of `kind` read so far.
    fn page(&mut self, kind: WorkloadKind, listed: u64);
}

/// Why a scan could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// A list or get failed (forbidden, unreachable, timed out, the API server went away).
    #[error("cannot {what}: {source}")]
    Api {
        /// What was being read: `list pods in all namespaces`.
        what: String,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
    /// A request got no whole answer within its deadline.
    #[error("cannot {what}: no answer within {seconds} s")]
    Timeout {
        /// What was being read.
        what: String,
        /// The deadline.
        seconds: u64,
    },
    /// An object could not be turned back into JSON (a bug).
    #[error("cannot read {what}: {source}")]
    Object {
        /// Which object.
        what: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

fn where_(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "in all namespaces".to_owned(),
    }
}

/// One page of `api`, or the error naming what was listed.
async fn page<K>(
    api: &Api<K>,
    params: &ListParams,
    timeout: Duration,
    what: impl FnOnce() -> String,
) -> Result<ObjectList<K>, ScanError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    // kube's read timeout bounds each gap between reads, not the whole answer.
    match tokio::time::timeout(timeout, api.list(params)).await {
        Ok(Ok(list)) => Ok(list),
        Ok(Err(source)) => Err(ScanError::Api {
            what: what(),
            source,
        }),
        Err(_) => Err(ScanError::Timeout {
            what: what(),
            seconds: timeout.as_secs(),
        }),
    }
}

/// The namespaces in scope, each with its policy and an empty report.
struct Namespaces {
    policies: HashMap<String, NamespacePolicy>,
    reports: BTreeMap<String, NamespaceReport>,
}

async fn read_namespaces(
    client: &kube::Client,
    options: &ScanOptions,
) -> Result<Namespaces, ScanError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut namespaces: Vec<Namespace> = Vec::new();
    if options.namespaces.is_empty() {
        let mut params = ListParams::default().limit(options.page_size);
        loop {
            let list = page(&api, &params, options.request_timeout, || {
                "list namespaces".to_owned()
            })
            .await?;
            let next = list.metadata.continue_.clone().filter(|c| !c.is_empty());
            namespaces.extend(list.items);
            match next {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    } else {
        for name in &options.namespaces {
            let what = || format!("get namespace {name}");
            let ns = match tokio::time::timeout(options.request_timeout, api.get(name)).await {
                Ok(got) => got.map_err(|source| ScanError::Api {
                    what: what(),
                    source,
                })?,
                Err(_) => {
                    return Err(ScanError::Timeout {
                        what: what(),
                        seconds: options.request_timeout.as_secs(),
                    });
                }
            };
            namespaces.push(ns);
        }
    }
    let mut out = Namespaces {
        policies: HashMap::new(),
        reports: BTreeMap::new(),
    };
    for ns in namespaces {
        let Some(name) = ns.metadata.name else {
            continue;
        };
        let mut policy =
            NamespacePolicy::from_labels(ns.metadata.labels.as_ref(), &options.defaults);
        if let Some(hypothetical) = options.policy {
            policy.enforce = hypothetical;
        }
        let report = NamespaceReport::new(
            name.clone(),
            policy.enforce.to_string(),
            policy.mode.as_str(),
            policy.label_errors.clone(),
        );
        out.reports.insert(name.clone(), report);
        out.policies.insert(name, policy);
    }
    Ok(out)
}

/// Where an audited object's finding lives, so what it controls is folded into it.
#[derive(Debug, Clone)]
struct Slot {
    namespace: String,
    index: usize,
}

/// What the scan carries from page to page.
struct ScanState<'a> {
    options: &'a ScanOptions,
    images: Option<&'a dyn ImageSource>,
    policies: HashMap<String, NamespacePolicy>,
    reports: BTreeMap<String, NamespaceReport>,
    /// Every audited or folded object's UID, to where its finding lives.
    slots: HashMap<String, Slot>,
}

/// Audits the cluster `client` talks to.
pub async fn scan(
    client: &kube::Client,
    options: &ScanOptions,
    images: Option<&dyn ImageSource>,
    progress: &mut dyn Progress,
) -> Result<Report, ScanError> {
    let Namespaces { policies, reports } = read_namespaces(client, options).await?;
    let mut state = ScanState {
        options,
        images,
        policies,
        reports,
        slots: HashMap::new(),
    };
    for kind in WorkloadKind::OWNERS_FIRST {
        // Typed lists: a page of typed objects takes a fraction of the memory of the same page
        // as JSON values, and each object becomes JSON only while it is classified.
        match kind {
            WorkloadKind::Pod => scan_kind::<Pod>(client, kind, &mut state, progress).await?,
            WorkloadKind::PodTemplate => {
                scan_kind::<PodTemplate>(client, kind, &mut state, progress).await?;
            }
            WorkloadKind::ReplicationController => {
                scan_kind::<ReplicationController>(client, kind, &mut state, progress).await?;
            }
            WorkloadKind::ReplicaSet => {
                scan_kind::<ReplicaSet>(client, kind, &mut state, progress).await?;
            }
            WorkloadKind::Deployment => {
                scan_kind::<Deployment>(client, kind, &mut state, progress).await?;
            }
            WorkloadKind::StatefulSet => {
                scan_kind::<StatefulSet>(client, kind, &mut state, progress).await?;
            }
            WorkloadKind::DaemonSet => {
                scan_kind::<DaemonSet>(client, kind, &mut state, progress).await?;
            }
            WorkloadKind::Job => scan_kind::<Job>(client, kind, &mut state, progress).await?,
            WorkloadKind::CronJob => {
                scan_kind::<CronJob>(client, kind, &mut state, progress).await?;
            }
        }
    }
    let scope = AuditScope {
        namespaces: options.namespaces.clone(),
        label_selector: options.label_selector.clone(),
        policy: options.policy.map(|p| p.to_string()),
        hardening_mode: options.settings.hardening.mode.as_str().to_owned(),
        image_lookups: images.is_some(),
    };
    Ok(Report::new(
        options.started_at_seconds,
        scope,
        state.reports.into_values().collect(),
    ))
}

/// Lists every `K` in scope, page by page, and audits each.
async fn scan_kind<K>(
    client: &kube::Client,
    kind: WorkloadKind,
    state: &mut ScanState<'_>,
    progress: &mut dyn Progress,
) -> Result<(), ScanError>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let options = state.options;
    let scopes: Vec<Option<&str>> = if options.namespaces.is_empty() {
        vec![None]
    } else {
        options
            .namespaces
            .iter()
            .map(|n| Some(n.as_str()))
            .collect()
    };
    let mut listed: u64 = 0;
    for scope in scopes {
        let api: Api<K> = match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let mut params = ListParams::default().limit(options.page_size);
        if let Some(selector) = &options.label_selector {
            params = params.labels(selector);
        }
        loop {
            let list = page(&api, &params, options.request_timeout, || {
                format!("list {} {}", K::plural(&()), where_(scope))
            })
            .await?;
            let next = list.metadata.continue_.clone().filter(|c| !c.is_empty());
            listed += list.items.len() as u64;
            for mut item in list.items {
                // Often the largest part of an object, and never read.
                item.meta_mut().managed_fields = None;
                let meta = item.meta().clone();
                let mut object =
                    serde_json::to_value(&item).map_err(|source| ScanError::Object {
                        what: format!(
                            "{} {}",
                            kind.as_str(),
                            meta.name.clone().unwrap_or_default()
                        ),
                        source,
                    })?;
                drop(item);
                if let Some(fields) = object.as_object_mut() {
                    fields.remove("status");
                }
                state.audit(kind, &meta, &object);
            }
            progress.page(kind, listed);
            match next {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(())
}

/// How bad a class is for the Pods it stands for, to tell a controlled object that fares
/// worse than its controller.
fn severity(class: Class) -> u8 {
    match class {
        Class::Exempt => 0,
        Class::Compliant => 1,
        Class::Hardened => 2,
        Class::Denied | Class::Unreadable => 3,
    }
}

impl ScanState<'_> {
    /// Classifies one object, and folds it into the audited object that controls it when it
    /// fares no worse (the controller's template decides what its Pods will look like when they
    /// are next created); one that fares worse (a sidecar another webhook injected, a Pod of an
    /// older revision) is reported on its own, naming its controller.
    fn audit(&mut self, kind: WorkloadKind, meta: &ObjectMeta, object: &Value) {
        let (Some(namespace), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
            return;
        };
        // A namespace created after the namespaces were read, or outside the scope.
        let Some(policy) = self.policies.get(&namespace) else {
            return;
        };
        let uid = meta.uid.clone().unwrap_or_default();
        let catalog = self
            .images
            .and_then(|source| kind.pod_spec_of(object).map(|s| source.catalog(s)));
        let finding = classify(
            kind,
            object,
            &namespace,
            policy,
            &self.options.settings,
            catalog,
        );
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .and_then(|o| self.slots.get(&o.uid).cloned())
            .filter(|slot| slot.namespace == namespace);
        let Some(report) = self.reports.get_mut(&namespace) else {
            return;
        };
        let mut controlled_by = None;
        if let Some(slot) = controller
            && let Some(owner) = report.objects.get_mut(slot.index)
        {
            if severity(finding.class) <= severity(owner.finding.class) {
                *owner.owned.entry(kind.as_str()).or_default() += 1;
                self.slots.insert(uid, slot);
                return;
            }
            controlled_by = Some(format!("{} {}", owner.kind.as_str(), owner.name));
        }
        report.objects.push(AuditedObject {
            api_version: kind.api_version(),
            kind,
            name,
            uid: uid.clone(),
            controlled_by,
            owned: BTreeMap::new(),
            finding,
        });
        self.slots.insert(
            uid,
            Slot {
                namespace,
                index: report.objects.len() - 1,
            },
        );
    }
}
