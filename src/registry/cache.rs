//! The lookups a server shares across reviews: answers cached (a digest's until evicted, a tag's
//! for `tagTTL`, a failure's for `failureTTL`), at most `maxCachedImages` of them, one lookup in
//! flight per image however many reviews want it, at most `maxConcurrentLookups` in flight, and
//! each review waiting only its `reviewBudget`. A lookup outlives the review that started it, so
//! a slow registry answers the next review from the cache instead of holding this one.
//!
//! The cache is a map with a use counter and an O(n) eviction scan on insert: inserts follow a
//! registry round trip, so the scan of a few thousand entries is noise, and a hit is one hash
//! lookup under a mutex held for nothing else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;

use super::client::{ClientError, RegistryClient};
use super::lookup;
use super::manifest::Platform;
use super::pull_secrets::{PodKeyrings, PodPullSecrets, PullSecretReader};
use super::settings::LookupSettings;
use crate::harden::images::{ImageCatalog, ImageLookup};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The reference as the pod spec writes it: a hit needs no parsing (the reference parser
    /// is most of a miss's CPU before the network), at the cost of caching `busybox` and
    /// `docker.io/library/busybox:latest` apart.
    image: String,
    platform: Platform,
    /// The Pod's pull Secrets, when they take part: what they open is cached apart, so that a
    /// Pod without them is never answered with what only they could read.
    pull_secrets: Option<PodPullSecrets>,
}

#[derive(Debug)]
struct Entry {
    lookup: ImageLookup,
    /// `None`: kept until evicted (a digest's answer cannot change).
    expires: Option<Instant>,
    last_used: u64,
}

type SharedLookup = Shared<BoxFuture<'static, ImageLookup>>;

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// Each lookup in flight, and when it started.
    in_flight: HashMap<Key, (SharedLookup, Instant)>,
    clock: u64,
}

/// What the lookups have done since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct LookupCounters {
    /// Images answered from the cache.
    pub cache_hits: AtomicU64,
    /// Images that started a lookup or joined one in flight.
    pub cache_misses: AtomicU64,
    /// Lookups that read the image config.
    pub found: AtomicU64,
    /// Lookups that failed (the reason went to the review as a warning).
    pub failed: AtomicU64,
    /// Images a review stopped waiting for at its budget.
    pub budget_exceeded: AtomicU64,
    /// Images not looked up because `maxConcurrentLookups` were in flight.
    pub rejected_busy: AtomicU64,
}

struct Inner {
    client: RegistryClient,
    settings: LookupSettings,
    /// Set once a cluster client exists, when `images.podPullSecrets` is on.
    pull_secrets: OnceLock<PullSecretReader>,
    state: Mutex<State>,
    counters: LookupCounters,
}

/// Image lookups shared by every review of a server (cheap to clone).
#[derive(Clone)]
pub struct ImageLookups {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ImageLookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageLookups")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

enum Started {
    Ready(ImageLookup),
    /// A lookup in flight, worth waiting for until the instant given: one review budget after
    /// it started, so a slow registry costs the reviews of one image one budget in all, not one
    /// each.
    Pending(SharedLookup, Instant),
}

impl ImageLookups {
    /// Lookups with `settings` (TLS clients built now, so a bad CA file fails at startup).
    pub fn new(settings: LookupSettings) -> Result<Self, ClientError> {
        Ok(ImageLookups {
            inner: Arc::new(Inner {
                client: RegistryClient::new(&settings)?,
                settings,
                pull_secrets: OnceLock::new(),
                state: Mutex::new(State::default()),
                counters: LookupCounters::default(),
            }),
        })
    }

    /// Reads Pods' pull Secrets with `client` from now on, when `images.podPullSecrets` is on
    /// (the first client given stays). Returns whether they will be read.
    pub fn read_pull_secrets_with(&self, client: kube::Client) -> bool {
        if !self.inner.settings.pod_pull_secrets {
            return false;
        }
        let _ = self.inner.pull_secrets.set(PullSecretReader::new(client));
        true
    }

    /// Whether Pods' pull Secrets are read (set on, and given a client).
    pub fn reads_pull_secrets(&self) -> bool {
        self.inner.pull_secrets.get().is_some()
    }

    /// The settings.
    pub fn settings(&self) -> &LookupSettings {
        &self.inner.settings
    }

    /// The counters.
    pub fn counters(&self) -> &LookupCounters {
        &self.inner.counters
    }

    /// Images currently cached.
    pub fn cached(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What is known about each of `images` (as the pod spec writes them) for `platform`, within
    /// the review budget; with the Pod's pull Secrets when it names some and they are read.
    pub async fn catalog(
        &self,
        images: &[String],
        platform: &Platform,
        pull_secrets: Option<&PodPullSecrets>,
    ) -> ImageCatalog {
        let pull_secrets = pull_secrets.filter(|_| self.reads_pull_secrets());
        let budget = self.inner.settings.review_budget;
        let deadline = Instant::now() + budget;
        let mut catalog = ImageCatalog::new();
        let mut pending = Vec::new();
        for image in images {
            if catalog.get(image).is_some() || pending.iter().any(|(i, _, _)| i == image) {
                continue;
            }
            match self.start(image, platform, pull_secrets) {
                Started::Ready(lookup) => catalog.insert(image.clone(), lookup),
                Started::Pending(shared, worth_waiting) => {
                    pending.push((image.clone(), shared, worth_waiting.min(deadline)));
                }
            }
        }
        let answers = futures_util::future::join_all(pending.into_iter().map(
            |(image, shared, until)| async move {
                (image, tokio::time::timeout_at(until, shared).await)
            },
        ))
        .await;
        for (image, answer) in answers {
            let lookup = answer.unwrap_or_else(|_| {
                self.inner
                    .counters
                    .budget_exceeded
                    .fetch_add(1, Ordering::Relaxed);
                ImageLookup::Unavailable(format!(
                    "not answered within the review budget ({budget:?}); the lookup goes on and the next review uses it"
                ))
            });
            catalog.insert(image, lookup);
        }
        catalog
    }

    /// The cached answer for `image`, or the lookup in flight for it, or a new one.
    fn start(
        &self,
        image: &str,
        platform: &Platform,
        pull_secrets: Option<&PodPullSecrets>,
    ) -> Started {
        let key = Key {
            image: image.to_owned(),
            platform: platform.clone(),
            pull_secrets: pull_secrets.cloned(),
        };
        let counters = &self.inner.counters;
        let mut state = self.lock();
        state.clock += 1;
        let now_tick = state.clock;
        let now = Instant::now();
        let mut stale_failure = None;
        if let Some(entry) = state.entries.get_mut(&key) {
            entry.last_used = now_tick;
            if entry.expires.is_none_or(|at| at > now) {
                counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Started::Ready(entry.lookup.clone());
            }
            // An expired failure is still the best answer for this review: the registry is
            // asked again in the background instead of every review waiting for it.
            if matches!(entry.lookup, ImageLookup::Unavailable(_)) {
                stale_failure = Some(entry.lookup.clone());
            }
        }
        counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        if let Some((shared, started)) = state.in_flight.get(&key) {
            return match stale_failure {
                Some(stale) => Started::Ready(stale),
                None => {
                    Started::Pending(shared.clone(), *started + self.inner.settings.review_budget)
                }
            };
        }
        let reference = match lookup::parse_reference(image) {
            Ok(reference) => reference,
            Err(e) => return Started::Ready(ImageLookup::Unavailable(e.to_string())),
        };
        if state.in_flight.len() >= self.inner.settings.max_concurrent_lookups {
            counters.rejected_busy.fetch_add(1, Ordering::Relaxed);
            return Started::Ready(stale_failure.unwrap_or_else(|| {
                ImageLookup::Unavailable(format!(
                    "not looked up: images.maxConcurrentLookups ({}) lookups in flight",
                    self.inner.settings.max_concurrent_lookups
                ))
            }));
        }
        let shared = self.spawn_lookup(&mut state, key, reference);
        match stale_failure {
            Some(stale) => Started::Ready(stale),
            None => Started::Pending(shared, now + self.inner.settings.review_budget),
        }
    }

    /// Starts the lookup of `reference` as a task that outlives the reviews waiting for it and
    /// stores its answer, registered in flight (under the lock held by the caller, so the
    /// task's removal of its entry, which takes the lock, always follows the insertion).
    fn spawn_lookup(
        &self,
        state: &mut State,
        key: Key,
        reference: oci_spec::distribution::Reference,
    ) -> SharedLookup {
        let this = self.clone();
        let task_key = key.clone();
        let pinned = reference.digest().is_some();
        let task = tokio::spawn(async move {
            let settings = &this.inner.settings;
            // One deadline for the whole lookup, the pull Secrets' read included: a slow API
            // server must not stretch a lookup past `lookupTimeout`.
            let started = Instant::now();
            let deadline = started + settings.lookup_timeout;
            let pod = match (&task_key.pull_secrets, this.inner.pull_secrets.get()) {
                (Some(secrets), Some(reader)) => {
                    let read_by = deadline.min(started + settings.request_timeout);
                    reader.read(secrets, read_by).await
                }
                _ => PodKeyrings::default(),
            };
            let result = lookup::look_up(
                &this.inner.client,
                settings,
                &reference,
                &task_key.platform,
                &pod,
                deadline,
            )
            .await;
            let lookup = match result {
                Ok(learned) => {
                    this.inner.counters.found.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(image = %task_key.image, digest = %learned.facts.digest, user = %learned.facts.user, endpoint = %learned.endpoint, "Image looked up");
                    ImageLookup::Found(learned.facts)
                }
                Err(e) => {
                    this.inner.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(image = %task_key.image, reason = %e, "Image lookup failed");
                    ImageLookup::Unavailable(e.to_string())
                }
            };
            let expires = match &lookup {
                ImageLookup::Found(_) if pinned => None,
                ImageLookup::Found(_) => Some(Instant::now() + settings.tag_ttl),
                ImageLookup::Unavailable(_) => Some(Instant::now() + settings.failure_ttl),
            };
            this.store(task_key, lookup.clone(), expires);
            lookup
        });
        let shared = async move {
            task.await.unwrap_or_else(|e| {
                ImageLookup::Unavailable(format!("the lookup task failed: {e}"))
            })
        }
        .boxed()
        .shared();
        state
            .in_flight
            .insert(key, (shared.clone(), Instant::now()));
        shared
    }

    /// Records `lookup` for `image` on `platform` as a finished lookup would (a tag's answer for
    /// `tagTTL`): to warm the cache ahead of traffic, and for benchmarks. An unparsable reference
    /// is ignored, as a review would answer it without the cache.
    pub fn prime(&self, image: &str, platform: &Platform, lookup: ImageLookup) {
        let Ok(reference) = lookup::parse_reference(image) else {
            return;
        };
        let expires =
            (reference.digest().is_none()).then(|| Instant::now() + self.inner.settings.tag_ttl);
        let key = Key {
            image: image.to_owned(),
            platform: platform.clone(),
            pull_secrets: None,
        };
        self.store(key, lookup, expires);
    }

    fn store(&self, key: Key, lookup: ImageLookup, expires: Option<Instant>) {
        let max = self.inner.settings.max_cached_images;
        let mut state = self.lock();
        state.in_flight.remove(&key);
        state.clock += 1;
        let last_used = state.clock;
        if !state.entries.contains_key(&key) && state.entries.len() >= max {
            let now = Instant::now();
            state
                .entries
                .retain(|_, e| e.expires.is_none_or(|at| at > now));
            while state.entries.len() >= max {
                let Some(oldest) = state
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                state.entries.remove(&oldest);
            }
        }
        state.entries.insert(
            key,
            Entry {
                lookup,
                expires,
                last_used,
            },
        );
    }
}
