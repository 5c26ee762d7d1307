//! The `pod-hardener.io/hardened` record annotation: what was changed and skipped, for auditors.
//!
//! Compact JSON, deterministic (no time, no randomness, entries sorted by target then control),
//! and merged rather than duplicated when an already hardened pod is planned again (reinvocation
//! after a sidecar injector). Schema (version 2): entries grouped by target, then keyed by
//! control, so each target and control name is written once:
//!
//! ```json
//! {"v":2,"level":"restricted","mode":"override",
//!  "changes":{"pod":{"runAsNonRoot":true},"containers/app":{"capabilities":"ALL"}},
//!  "overrides":{"containers/app":{"allowPrivilegeEscalation":{"from":true,"to":false}}},
//!  "skips":{"containers/app":{"readOnlyRootFilesystem":{"reason":"explicit-value","detail":"readOnlyRootFilesystem: false"}}},
//!  "images":[{"target":"containers/app","image":"registry.example/app:1","digest":"sha256:...","user":"app","uid":1001,
//!             "source":"registry.example","credential":"imagePullSecret:regcred"}]}
//! ```
//!
//! `changes` holds what was filled in (a field that was unset), `overrides` what override mode
//! rewrote (`from` the explicit value, `to` the new one, `null` for a removal): one control may
//! do both on one container (`capabilities`: `ALL` appended to `drop`, `add` rewritten), which
//! is why they are two maps. Version 1 wrote a list of `{"control","target","value"[,"overrode"]}`
//! entries, about twice the bytes (1,297 against 675 B for the benchmarks' three-container pod),
//! and every byte is stored with the pod, sent twice per review (the patch and the audit
//! annotation) and read by the API server; version-1 records on existing pods and manifests are still read (and merged into version 2).
//!
//! `images` appears when image lookups decided `runAsNonRoot`: for each container whose user its
//! image decides, the image's digest and configured user (and the UID its `/etc/passwd` gives a
//! named user), the endpoint that answered and the credential it took, or why it could not be
//! read.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::control::Control;
use super::images::ImageLookup;
use super::plan::{ImageFinding, Plan};
use super::profile::Profile;

/// The annotation key.
pub const RECORD_ANNOTATION: &str = "pod-hardener.io/hardened";
/// The schema version written in `v`.
pub const RECORD_VERSION: u32 = 2;
/// The earlier schema, still read.
const RECORD_VERSION_1: u32 = 1;
/// Above this size the record keeps counts only, so the pod stays under the API server's
/// 256 KiB annotation limit whatever its size.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

/// One recorded change (as version 1 wrote it, and so still reads it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

/// One recorded skip (as version 1 wrote it, and so still reads it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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

/// The record annotation's content, in memory: flat lists of entries, whatever the schema
/// version it was read from. It is written as version [`RECORD_VERSION`] (see the module
/// documentation), and read from version 2 or 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The level whose profile was applied.
    pub level: String,
    /// `fill` or `override`.
    pub mode: String,
    /// Changes, sorted.
    pub changes: Vec<RecordedChange>,
    /// Skips, sorted.
    pub skips: Vec<RecordedSkip>,
    /// What image lookups learned, sorted by target.
    pub images: Vec<RecordedImage>,
    /// Present instead of entries when they would exceed [`MAX_RECORD_BYTES`].
    pub truncated: Option<Truncated>,
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("v", &RECORD_VERSION)?;
        map.serialize_entry("level", &self.level)?;
        map.serialize_entry("mode", &self.mode)?;
        let changes = ByTarget::new(&self.changes, |c| c.overrode.is_none().then_some(&c.value));
        if changes.any() {
            map.serialize_entry("changes", &changes)?;
        }
        let overrides = ByTarget::new(&self.changes, |c| {
            let from = c.overrode.as_ref()?;
            Some(Rewrite { from, to: &c.value })
        });
        if overrides.any() {
            map.serialize_entry("overrides", &overrides)?;
        }
        let skips = ByTarget::new(&self.skips, |s| {
            Some(SkipV2 {
                reason: s.reason.as_str(),
                detail: s.detail.as_deref(),
            })
        });
        if skips.any() {
            map.serialize_entry("skips", &skips)?;
        }
        if !self.images.is_empty() {
            map.serialize_entry("images", &self.images)?;
        }
        if let Some(truncated) = &self.truncated {
            map.serialize_entry("truncated", truncated)?;
        }
        map.end()
    }
}

/// An entry of the record: what it applies to.
trait Entry {
    fn control(&self) -> &str;
    fn target(&self) -> &str;
}

impl Entry for RecordedChange {
    fn control(&self) -> &str {
        &self.control
    }
    fn target(&self) -> &str {
        &self.target
    }
}

impl Entry for RecordedSkip {
    fn control(&self) -> &str {
        &self.control
    }
    fn target(&self) -> &str {
        &self.target
    }
}

/// Sorted entries written as `{target: {control: value}}`; `value` says what an entry writes in
/// this map, or `None` when it belongs to another (changes and overrides share one list), so
/// the record is written from its own lists without copying them.
struct ByTarget<'a, E, F> {
    entries: &'a [E],
    value: F,
}

impl<'a, E: Entry, F> ByTarget<'a, E, F> {
    fn new<V>(entries: &'a [E], value: F) -> Self
    where
        F: Fn(&'a E) -> Option<V>,
    {
        ByTarget { entries, value }
    }

    /// Whether any entry belongs to this map.
    fn any<V>(&self) -> bool
    where
        F: Fn(&'a E) -> Option<V>,
    {
        self.entries.iter().any(|e| (self.value)(e).is_some())
    }
}

impl<'a, E: Entry, V: Serialize, F: Fn(&'a E) -> Option<V>> Serialize for ByTarget<'a, E, F> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut targets = serializer.serialize_map(None)?;
        // Sorted entries keep a target's entries together.
        for group in self.entries.chunk_by(|a, b| a.target() == b.target()) {
            if !group.iter().any(|e| (self.value)(e).is_some()) {
                continue;
            }
            let controls = Controls {
                entries: group,
                value: &self.value,
            };
            targets.serialize_entry(group[0].target(), &controls)?;
        }
        targets.end()
    }
}

/// One target's entries that belong to the map, written as `{control: value}`.
struct Controls<'s, 'a, E, F> {
    entries: &'a [E],
    value: &'s F,
}

impl<'a, E: Entry, V: Serialize, F: Fn(&'a E) -> Option<V>> Serialize for Controls<'_, 'a, E, F> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut controls = serializer.serialize_map(None)?;
        for e in self.entries {
            if let Some(value) = (self.value)(e) {
                controls.serialize_entry(e.control(), &value)?;
            }
        }
        controls.end()
    }
}

/// An override as version 2 writes it.
#[derive(Serialize)]
struct Rewrite<'a> {
    from: &'a Value,
    to: &'a Value,
}

/// A skip as version 2 writes it.
#[derive(Serialize)]
struct SkipV2<'a> {
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

/// `{target: {control: T}}` as read.
type Targets<T> = BTreeMap<String, BTreeMap<String, T>>;

/// A record as written, version 1 or 2.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordWire {
    v: u32,
    level: String,
    mode: String,
    #[serde(default)]
    changes: Option<ChangesWire>,
    #[serde(default)]
    overrides: Targets<RewriteWire>,
    #[serde(default)]
    skips: Option<SkipsWire>,
    #[serde(default)]
    images: Vec<RecordedImage>,
    #[serde(default)]
    truncated: Option<Truncated>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ChangesWire {
    V1(Vec<RecordedChange>),
    V2(Targets<Value>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SkipsWire {
    V1(Vec<RecordedSkip>),
    V2(Targets<SkipWire>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewriteWire {
    from: Value,
    to: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkipWire {
    reason: String,
    #[serde(default)]
    detail: Option<String>,
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let wire = RecordWire::deserialize(deserializer)?;
        let shapes_match = match wire.v {
            RECORD_VERSION => {
                !matches!(wire.changes, Some(ChangesWire::V1(_)))
                    && !matches!(wire.skips, Some(SkipsWire::V1(_)))
            }
            RECORD_VERSION_1 => {
                wire.overrides.is_empty()
                    && !matches!(wire.changes, Some(ChangesWire::V2(_)))
                    && !matches!(wire.skips, Some(SkipsWire::V2(_)))
            }
            v => return Err(D::Error::custom(format!("unknown record version {v}"))),
        };
        if !shapes_match {
            return Err(D::Error::custom(format!("not a version {} record", wire.v)));
        }
        let mut changes = match wire.changes {
            None => Vec::new(),
            Some(ChangesWire::V1(changes)) => changes,
            Some(ChangesWire::V2(targets)) => {
                flatten(targets, |control, target, value| RecordedChange {
                    control,
                    target,
                    value,
                    overrode: None,
                })
            }
        };
        changes.extend(flatten(wire.overrides, |control, target, r| {
            RecordedChange {
                control,
                target,
                value: r.to,
                overrode: Some(r.from),
            }
        }));
        let mut skips = match wire.skips {
            None => Vec::new(),
            Some(SkipsWire::V1(skips)) => skips,
            Some(SkipsWire::V2(targets)) => flatten(targets, |control, target, s| RecordedSkip {
                control,
                target,
                reason: s.reason,
                detail: s.detail,
            }),
        };
        sort_entries(&mut changes, |c| (&c.control, &c.target));
        sort_entries(&mut skips, |s| (&s.control, &s.target));
        Ok(Record {
            level: wire.level,
            mode: wire.mode,
            changes,
            skips,
            images: wire.images,
            truncated: wire.truncated,
        })
    }
}

/// The entries of `{target: {control: T}}`, each made by `entry(control, target, T)`.
fn flatten<T, E>(targets: Targets<T>, entry: impl Fn(String, String, T) -> E) -> Vec<E> {
    targets
        .into_iter()
        .flat_map(|(target, controls)| {
            controls
                .into_iter()
                .map(move |(control, value)| (control, target.clone(), value))
        })
        .map(|(control, target, value)| entry(control, target, value))
        .collect()
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn change(
        control: &str,
        target: &str,
        value: Value,
        overrode: Option<Value>,
    ) -> RecordedChange {
        RecordedChange {
            control: control.into(),
            target: target.into(),
            value,
            overrode,
        }
    }

    fn skip(control: &str, target: &str, reason: &str, detail: Option<&str>) -> RecordedSkip {
        RecordedSkip {
            control: control.into(),
            target: target.into(),
            reason: reason.into(),
            detail: detail.map(str::to_owned),
        }
    }

    /// One of everything, sorted as [`Record::merged`] sorts: fills and a rewrite of the same
    /// control on one container (`capabilities` in override mode), a skip with and without a
    /// detail, an image.
    fn override_record() -> Record {
        Record {
            level: "restricted".into(),
            mode: "override".into(),
            changes: vec![
                change("runAsNonRoot", "pod", json!(true), None),
                change(
                    "allowPrivilegeEscalation",
                    "initContainers/init",
                    json!(false),
                    None,
                ),
                change(
                    "allowPrivilegeEscalation",
                    "containers/app",
                    json!(false),
                    Some(json!(true)),
                ),
                change("capabilities", "containers/app", json!("ALL"), None),
                change(
                    "capabilities",
                    "containers/app",
                    Value::Null,
                    Some(json!(["NET_ADMIN"])),
                ),
            ],
            skips: vec![
                skip("seccompProfile", "pod", "opt-out", None),
                skip(
                    "readOnlyRootFilesystem",
                    "containers/app",
                    "explicit-value",
                    Some("readOnlyRootFilesystem: false"),
                ),
            ],
            images: vec![RecordedImage {
                target: "containers/app".into(),
                image: "registry.example/app:1".into(),
                digest: Some("sha256:abc".into()),
                user: Some("app".into()),
                uid: Some(1001),
                source: Some("registry.example".into()),
                credential: None,
                unavailable: None,
            }],
            truncated: None,
        }
    }

    #[test]
    fn version_2_groups_entries_by_target_and_reads_back_losslessly() {
        let record = override_record();
        let json = record.to_json();
        assert_eq!(
            json,
            concat!(
                r#"{"v":2,"level":"restricted","mode":"override","#,
                r#""changes":{"pod":{"runAsNonRoot":true},"initContainers/init":{"allowPrivilegeEscalation":false},"#,
                r#""containers/app":{"capabilities":"ALL"}},"#,
                r#""overrides":{"containers/app":{"allowPrivilegeEscalation":{"from":true,"to":false},"#,
                r#""capabilities":{"from":["NET_ADMIN"],"to":null}}},"#,
                r#""skips":{"pod":{"seccompProfile":{"reason":"opt-out"}},"#,
                r#""containers/app":{"readOnlyRootFilesystem":{"reason":"explicit-value","detail":"readOnlyRootFilesystem: false"}}},"#,
                r#""images":[{"target":"containers/app","image":"registry.example/app:1","digest":"sha256:abc","#,
                r#""user":"app","uid":1001,"source":"registry.example"}]}"#
            )
        );
        let read: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(read, record);
    }

    #[test]
    fn version_1_records_are_read_as_the_same_entries() {
        let v1 = concat!(
            r#"{"v":1,"level":"restricted","mode":"override","changes":["#,
            r#"{"control":"runAsNonRoot","target":"pod","value":true},"#,
            r#"{"control":"allowPrivilegeEscalation","target":"initContainers/init","value":false},"#,
            r#"{"control":"allowPrivilegeEscalation","target":"containers/app","value":false,"overrode":true},"#,
            r#"{"control":"capabilities","target":"containers/app","value":"ALL"},"#,
            r#"{"control":"capabilities","target":"containers/app","value":null,"overrode":["NET_ADMIN"]}],"#,
            r#""skips":[{"control":"seccompProfile","target":"pod","reason":"opt-out"},"#,
            r#"{"control":"readOnlyRootFilesystem","target":"containers/app","reason":"explicit-value","detail":"readOnlyRootFilesystem: false"}],"#,
            r#""images":[{"target":"containers/app","image":"registry.example/app:1","digest":"sha256:abc","#,
            r#""user":"app","uid":1001,"source":"registry.example"}]}"#
        );
        let read: Record = serde_json::from_str(v1).unwrap();
        assert_eq!(read, override_record());
        // A truncated version-1 record keeps its counts.
        let truncated =
            r#"{"v":1,"level":"baseline","mode":"fill","truncated":{"changes":900,"skips":3}}"#;
        let read: Record = serde_json::from_str(truncated).unwrap();
        assert_eq!(
            read.truncated,
            Some(Truncated {
                changes: 900,
                skips: 3
            })
        );
        assert_eq!(
            read.to_json(),
            r#"{"v":2,"level":"baseline","mode":"fill","truncated":{"changes":900,"skips":3}}"#
        );
    }

    #[test]
    fn a_record_of_another_version_or_shape_is_not_read() {
        for text in [
            // Version 1 with version 2's maps, and the reverse.
            r#"{"v":1,"level":"restricted","mode":"fill","changes":{"pod":{"runAsNonRoot":true}}}"#,
            r#"{"v":1,"level":"restricted","mode":"fill","overrides":{"pod":{"runAsUser":{"from":0,"to":null}}}}"#,
            r#"{"v":2,"level":"restricted","mode":"fill","changes":[{"control":"runAsNonRoot","target":"pod","value":true}]}"#,
            r#"{"v":2,"level":"restricted","mode":"fill","skips":[{"control":"seccompProfile","target":"pod","reason":"opt-out"}]}"#,
            // A version this build does not know, an unknown field, a malformed entry.
            r#"{"v":3,"level":"restricted","mode":"fill"}"#,
            r#"{"v":2,"level":"restricted","mode":"fill","extra":1}"#,
            r#"{"v":2,"level":"restricted","mode":"fill","overrides":{"pod":{"runAsUser":0}}}"#,
            r#"{"v":2,"level":"restricted","mode":"fill","skips":{"pod":{"seccompProfile":"opt-out"}}}"#,
        ] {
            assert!(serde_json::from_str::<Record>(text).is_err(), "{text}");
        }
    }
}
