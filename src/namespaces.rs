//! Namespace policies: a watch cache of Namespace labels when a cluster is reachable, or the
//! static default policy without one.
//!
//! The cache keeps only the computed [`NamespacePolicy`] per namespace (from a metadata-only
//! watch), so a lookup on the admission path is a read lock and an `Arc` clone. A namespace
//! missing from the cache (created a moment ago) costs one bounded GET; if that fails too, the
//! default policy applies and the caller is told so (a warning and a metric).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;

use crate::policy::{Defaults, NamespacePolicy};

/// Where a policy came from, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupSource {
    /// The static default policy (no cluster).
    Static,
    /// The watch cache.
    Cache,
    /// A GET for a namespace missing from the cache.
    Api,
    /// The default policy because the namespace could not be read.
    Fallback,
}

impl LookupSource {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LookupSource::Static => "static",
            LookupSource::Cache => "cache",
            LookupSource::Api => "api",
            LookupSource::Fallback => "fallback",
        }
    }

    /// Every source, for metrics.
    pub const ALL: [LookupSource; 4] = [
        LookupSource::Static,
        LookupSource::Cache,
        LookupSource::Api,
        LookupSource::Fallback,
    ];
}

/// A looked-up policy.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The policy.
    pub policy: Arc<NamespacePolicy>,
    /// Where it came from.
    pub source: LookupSource,
    /// Set when the default policy was used because the namespace could not be read.
    pub warning: Option<String>,
}

/// The namespace policies the server consults.
#[derive(Debug, Clone)]
pub enum NamespacePolicies {
    /// Every namespace gets the default policy.
    Static(Arc<NamespacePolicy>),
    /// A watch cache over the cluster's namespaces.
    Cluster(Arc<ClusterCache>),
}

impl NamespacePolicies {
    /// The static default for every namespace.
    pub fn fixed(defaults: &Defaults) -> Self {
        NamespacePolicies::Static(Arc::new(NamespacePolicy::defaults(defaults)))
    }

    /// The policy for `namespace`.
    pub async fn lookup(&self, namespace: &str) -> Lookup {
        match self {
            NamespacePolicies::Static(p) => Lookup {
                policy: p.clone(),
                source: LookupSource::Static,
                warning: None,
            },
            NamespacePolicies::Cluster(cache) => cache.lookup(namespace).await,
        }
    }

    /// The policy of cluster-scoped requests and unreadable namespaces.
    pub fn default_policy(&self) -> Arc<NamespacePolicy> {
        match self {
            NamespacePolicies::Static(p) => p.clone(),
            NamespacePolicies::Cluster(cache) => cache.fallback.clone(),
        }
    }

    /// Whether lookups are answered from a synced source.
    pub fn is_ready(&self) -> bool {
        match self {
            NamespacePolicies::Static(_) => true,
            NamespacePolicies::Cluster(cache) => *cache.ready.borrow(),
        }
    }
}

/// The watch cache.
#[derive(Debug)]
pub struct ClusterCache {
    // Metadata-only requests: labels are all the policy needs.
    api: Api<PartialObjectMeta<Namespace>>,
    defaults: Defaults,
    fallback: Arc<NamespacePolicy>,
    policies: RwLock<HashMap<String, Arc<NamespacePolicy>>>,
    ready: watch::Receiver<bool>,
    lookup_timeout: Duration,
}

impl ClusterCache {
    /// Starts the watch on `client` and returns the cache; the watch task runs until `shutdown`.
    pub fn start(
        client: kube::Client,
        defaults: Defaults,
        lookup_timeout: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Arc<Self> {
        let (ready_tx, ready_rx) = watch::channel(false);
        let cache = Arc::new(ClusterCache {
            api: Api::all(client),
            defaults,
            fallback: Arc::new(NamespacePolicy::defaults(&defaults)),
            policies: RwLock::new(HashMap::new()),
            ready: ready_rx,
            lookup_timeout,
        });
        let task_cache = cache.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = task_cache.run_watch(ready_tx) => {},
                () = shutdown.cancelled() => {},
            }
        });
        cache
    }

    fn policy_of(
        &self,
        labels: Option<&std::collections::BTreeMap<String, String>>,
    ) -> Arc<NamespacePolicy> {
        Arc::new(NamespacePolicy::from_labels(labels, &self.defaults))
    }

    async fn run_watch(&self, ready: watch::Sender<bool>) {
        // Backoff on errors keeps the last known policies serving while the API server is away;
        // a relist after reconnecting replaces them atomically, picking up changes made meanwhile.
        let stream = watcher(self.api.clone(), watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut relist: HashMap<String, Arc<NamespacePolicy>> = HashMap::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => relist.clear(),
                Ok(watcher::Event::InitApply(ns)) => {
                    if let Some(name) = ns.metadata.name.clone() {
                        relist.insert(name, self.policy_of(ns.metadata.labels.as_ref()));
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let fresh = std::mem::take(&mut relist);
                    tracing::info!(namespaces = fresh.len(), "Namespace cache synced");
                    *self.policies.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                    let _ = ready.send(true);
                }
                Ok(watcher::Event::Apply(ns)) => {
                    if let Some(name) = ns.metadata.name.clone() {
                        let policy = self.policy_of(ns.metadata.labels.as_ref());
                        self.policies
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(name, policy);
                    }
                }
                Ok(watcher::Event::Delete(ns)) => {
                    if let Some(name) = ns.metadata.name.as_deref() {
                        self.policies
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(name);
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "Namespace watch failed; serving from the cache while it retries")
                }
            }
        }
    }

    async fn lookup(&self, namespace: &str) -> Lookup {
        let cached = self
            .policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(namespace)
            .cloned();
        if let Some(policy) = cached {
            return Lookup {
                policy,
                source: LookupSource::Cache,
                warning: None,
            };
        }
        match tokio::time::timeout(self.lookup_timeout, self.api.get_opt(namespace)).await {
            Ok(Ok(Some(ns))) => {
                let policy = self.policy_of(ns.metadata.labels.as_ref());
                self.policies
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(namespace.to_owned(), policy.clone());
                Lookup {
                    policy,
                    source: LookupSource::Api,
                    warning: None,
                }
            }
            outcome => {
                let why = match outcome {
                    Ok(Ok(None)) => "it does not exist".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer within {:?}", self.lookup_timeout),
                    Ok(Ok(Some(_))) => String::new(),
                };
                let warning = format!(
                    "pod-hardener could not read namespace {namespace:?} ({why}); applied the default policy {}",
                    self.fallback.enforce
                );
                Lookup {
                    policy: self.fallback.clone(),
                    source: LookupSource::Fallback,
                    warning: Some(warning),
                }
            }
        }
    }
}
