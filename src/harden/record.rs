//! The `pod-hardener.io/hardened` record annotation: what was changed and skipped, for auditors.
//!
//! Compact JSON, deterministic (no time, no randomness, entries sorted by target then control),
//! and merged rather than duplicated when an already hardened pod is planned again (reinvocation
//! after a sidecar injector). Schema (version 1):
//!
//! ```json
//! {"v":1,"level":"restricted","mode":"fill",
//!  "changes":[{"control":"runAsNonRoot","target":"pod","value":true},
//!             {"control":"allowPrivilegeEscalation","target":"containers/app","value":false,"overrode":true}],
//!  "skips":[{"control":"readOnlyRootFilesystem","target":"containers/app","reason":"explicit-value","detail":"readOnlyRootFilesystem: false"}],
//!  "images":[{"target":"containers/app","image":"registry.example/app:1","digest":"sha256:...","user":"app","uid":1001,
//!             "source":"registry.example","credential":"imagePullSecret:regcred"}]}
//! ```
//!
//! `images` appears when image lookups decided `runAsNonRoot`: for each container whose user its
//! image decides, the image's digest and configured user (and the UID its `/etc/passwd` gives a
//! named user), the endpoint that answered and the credential it took, or why it could not be
//! read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::control::Control;
use super::images::ImageLookup;
use super::plan::{ImageFinding, Plan};
use super::profile::Profile;

/// The annotation key.
pub const RECORD_ANNOTATION: &str = "pod-hardener.io/hardened";
/// The schema version written in `v`.
pub const RECORD_VERSION: u32 = 1;
/// Above this size the record keeps counts only, so the pod stays under the API server's
/// 256 KiB annotation limit whatever its size.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedChange {
    /// The control.
    pub control: String,
    /// `pod` or `<list>/<container name>`.
    pub target: String,
    /// The value set (`null` for a removal).
    pub value: Value,
    /// The explicit value it rewrote (override mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrode: Option<Value>,
}

/// One recorded skip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedSkip {
    /// The control.
    pub control: String,
    /// `pod` or `<list>/<container name>`.
    pub target: String,
    /// `explicit-value`, `opt-out`, `windows`, `api-invalid`, `conflict`, `immutable`, `level`.
    pub reason: String,
    /// What exactly, where it helps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a lookup learned about one container's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedImage {
    /// `<list>/<container name>`.
    pub target: String,
    /// The image reference as the pod spec writes it.
    pub image: String,
    /// The manifest digest the config was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The config's user as written (empty: none, so root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A named user's UID in the image's `/etc/passwd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// The endpoint that answered (`host[:port]`, a mirror's when a mirror did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The credential the endpoint accepted (`imagePullSecret:<name>`, `credentialsFile`);
    /// absent when it answered anonymously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// Why the config could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

impl RecordedImage {
    fn of(finding: &ImageFinding) -> Self {
        let mut recorded = RecordedImage {
            target: finding.target.key(),
            image: finding.image.clone(),
            digest: None,
            user: None,
            uid: None,
            source: None,
            credential: None,
            unavailable: None,
        };
        match &finding.lookup {
            ImageLookup::Found(facts) => {
                recorded.digest = Some(facts.digest.clone());
                recorded.user = Some(facts.user.clone());
                recorded.uid = facts.passwd_uid;
                recorded.source = Some(facts.source.clone()).filter(|s| !s.is_empty());
                recorded.credential = facts.credential.clone();
            }
            ImageLookup::Unavailable(why) => recorded.unavailable = Some(why.clone()),
        }
        recorded
    }
}

/// Counts kept instead of entries when the record would be too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Truncated {
    /// How many changes were made.
    pub changes: usize,
    /// How many skips there were.
    pub skips: usize,
}

/// The record annotation's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Schema version.
    pub v: u32,
    /// The level whose profile was applied.
    pub level: String,
    /// `fill` or `override`.
    pub mode: String,
    /// Changes, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<RecordedChange>,
    /// Skips, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skips: Vec<RecordedSkip>,
    /// What image lookups learned, sorted by target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<RecordedImage>,
    /// Present instead of entries when they would exceed [`MAX_RECORD_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncated>,
}

fn target_rank(target: &str) -> u8 {
    match target.split_once('/').map(|(list, _)| list) {
        None => 0,
        Some("initContainers") => 1,
        Some("containers") => 2,
        Some(_) => 3,
    }
}

fn control_rank(control: &str) -> usize {
    Control::ALL
        .iter()
        .position(|c| c.as_str() == control)
        .unwrap_or(usize::MAX)
}

/// The sort rank of an entry: pod first, then init, regular and ephemeral containers; within a
/// target, controls in [`Control::ALL`] order. Target names break ties.
fn entry_rank(control: &str, target: &str) -> (u8, usize) {
    (target_rank(target), control_rank(control))
}

/// Sorts entries by (target rank, target, control rank), computing each entry's ranks once: the
/// comparator ran them on every comparison, a few percent of a review.
fn sort_entries<T>(entries: &mut Vec<T>, fields: impl Fn(&T) -> (&str, &str)) {
    let mut ranked: Vec<((u8, usize), T)> = entries
        .drain(..)
        .map(|e| {
            let (control, target) = fields(&e);
            (entry_rank(control, target), e)
        })
        .collect();
    ranked.sort_by(|(a_rank, a), (b_rank, b)| {
        a_rank
            .0
            .cmp(&b_rank.0)
            .then_with(|| fields(a).1.cmp(fields(b).1))
            .then(a_rank.1.cmp(&b_rank.1))
    });
    entries.extend(ranked.into_iter().map(|(_, e)| e));
}

impl Record {
    /// The record a pod (or template) already carries in its annotation, if it reads as one.
    pub fn on(parts: &crate::workload::PodParts) -> Option<Record> {
        parts
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RECORD_ANNOTATION))
            .and_then(|s| serde_json::from_str(s).ok())
    }

    /// The record of `plan`, merged into `existing` (the annotation already on the pod, if any).
    pub fn merged(plan: &Plan, profile: &Profile, existing: Option<&str>) -> Record {
        let previous: Option<Record> = existing.and_then(|s| serde_json::from_str(s).ok());
        let mut changes: Vec<RecordedChange> = plan
            .changes
            .iter()
            .map(|c| RecordedChange {
                control: c.control.as_str().to_owned(),
                target: c.target.key(),
                value: c.recorded_value(),
                overrode: c.overrides.clone(),
            })
            .collect();
        let mut skips: Vec<RecordedSkip> = plan
            .skips
            .iter()
            .map(|s| RecordedSkip {
                control: s.control.as_str().to_owned(),
                target: s.target.key(),
                reason: s.reason.code().to_owned(),
                detail: s.reason.detail().map(str::to_owned),
            })
            .collect();
        let mut images: Vec<RecordedImage> = plan.images.iter().map(RecordedImage::of).collect();
        let mut truncated = None;
        if let Some(prev) = previous {
            // A container looked up again is recorded as now; the others keep what they had.
            for old in prev.images {
                if !images.iter().any(|i| i.target == old.target) {
                    images.push(old);
                }
            }
            use std::collections::HashSet;
            // Keys of what this plan recorded, so merging stays linear in the record's size.
            let new_changes: HashSet<(String, String, bool)> = changes
                .iter()
                .map(|c| (c.control.clone(), c.target.clone(), c.overrode.is_some()))
                .collect();
            let mut covered: HashSet<(String, String)> = changes
                .iter()
                .map(|c| (c.control.clone(), c.target.clone()))
                .chain(skips.iter().map(|s| (s.control.clone(), s.target.clone())))
                .collect();
            for old in prev.changes {
                let key = (
                    old.control.clone(),
                    old.target.clone(),
                    old.overrode.is_some(),
                );
                if !new_changes.contains(&key) {
                    covered.insert((old.control.clone(), old.target.clone()));
                    changes.push(old);
                }
            }
            for old in prev.skips {
                if covered.insert((old.control.clone(), old.target.clone())) {
                    skips.push(old);
                }
            }
            truncated = prev.truncated;
        }
        sort_entries(&mut changes, |c| (&c.control, &c.target));
        sort_entries(&mut skips, |s| (&s.control, &s.target));
        images.sort_by(|a, b| {
            (target_rank(&a.target), &a.target).cmp(&(target_rank(&b.target), &b.target))
        });
        let mut record = Record {
            v: RECORD_VERSION,
            level: profile.level.as_str().to_owned(),
            mode: profile.mode.as_str().to_owned(),
            changes,
            skips,
            images,
            truncated,
        };
        if let Some(t) = record.truncated.take() {
            record.truncate(t);
        }
        record
    }

    /// The compact JSON of the record, truncated to counts first if it would exceed
    /// [`MAX_RECORD_BYTES`].
    pub fn into_bounded_json(mut self) -> (Record, String) {
        let json = self.to_json();
        if json.len() <= MAX_RECORD_BYTES {
            return (self, json);
        }
        self.truncate(Truncated {
            changes: 0,
            skips: 0,
        });
        let json = self.to_json();
        (self, json)
    }

    fn truncate(&mut self, earlier: Truncated) {
        self.truncated = Some(Truncated {
            changes: earlier.changes + self.changes.len(),
            skips: earlier.skips + self.skips.len(),
        });
        self.changes.clear();
        self.skips.clear();
        self.images.clear();
    }

    /// Compact, deterministic JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}
