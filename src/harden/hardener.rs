//! The one way into the core's hardening: [`Hardener::harden`] reads an object's pod parts and
//! opt-outs, plans, and builds the patch and record; [`Hardening`] then gives the pod as it will
//! look after hardening. Every front end (the webhook's `/mutate` and `/validate`, the CLI's
//! `harden` and `check`, fuzzing, benchmarks and tests) goes through it.

use std::borrow::Cow;

use json_patch::Patch;
use serde_json::Value;

use super::control::Control;
use super::images::ImageCatalog;
use super::opt_out::OptOuts;
use super::patch;
use super::plan::{Edit, Plan};
use super::planner::{self, Scope};
use super::profile::Profile;
use super::record::{RECORD_ANNOTATION, Record};
use crate::pss::{self, LevelVersion, Violation};
use crate::workload::{self, ExtractError, PodParts, TypedPod, WorkloadKind};

/// Why an object could not be hardened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HardenError {
    /// The object's pod spec or metadata cannot be read.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// A bug: the patch the planner built does not apply to the object it was built for.
    #[error("internal error: the planned patch does not apply to the {kind}: {message}")]
    PatchDidNotApply {
        /// The object's kind.
        kind: WorkloadKind,
        /// What json-patch said.
        message: String,
    },
}

/// Hardens objects with one profile (level, mode, controls) and extra opt-outs.
#[derive(Debug, Clone)]
pub struct Hardener {
    profile: Profile,
    /// Controls skipped for every object, on top of each object's own `pod-hardener.io/skip`.
    extra_skips: Vec<Control>,
    /// What lookups learned about the object's images, when they ran.
    images: Option<ImageCatalog>,
}

impl Hardener {
    /// A hardener applying `profile`.
    #[must_use]
    pub fn new(profile: Profile) -> Self {
        Hardener {
            profile,
            extra_skips: Vec::new(),
            images: None,
        }
    }

    /// Also skips `controls` for every object (the CLI's `--skip`), recorded as opt-outs.
    #[must_use]
    pub fn skipping(mut self, controls: impl IntoIterator<Item = Control>) -> Self {
        self.extra_skips.extend(controls);
        self
    }

    /// Decides `runAsNonRoot` and `runAsUser` per container from what lookups learned about
    /// the images (see [`super::images`]); without it, images are not considered.
    #[must_use]
    pub fn with_images(mut self, images: ImageCatalog) -> Self {
        self.images = Some(images);
        self
    }

    /// The profile it applies.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Plans `object` (a `kind` in JSON form) within `scope` and builds its patch and record.
    ///
    /// The record goes into the pod (template) annotations on create; an update of the
    /// `pods/ephemeralcontainers` subresource ignores metadata changes, so there it is only
    /// returned, for the caller to report elsewhere (audit annotations).
    pub fn harden<'o>(
        &self,
        kind: WorkloadKind,
        object: &'o Value,
        scope: Scope<'_>,
    ) -> Result<Hardening<'o>, HardenError> {
        let parts = workload::extract(kind, object)?;
        Ok(self.harden_parts(kind, Cow::Owned(parts), Source::Json(object), scope))
    }

    /// Plans a Pod read straight into its typed parts (the webhook's Pod creates) within
    /// `scope`, as [`Hardener::harden`] plans the same Pod in JSON form.
    pub fn harden_pod<'o>(&self, pod: &'o TypedPod, scope: Scope<'_>) -> Hardening<'o> {
        let source = Source::Typed {
            has_metadata: pod.has_metadata,
        };
        self.harden_parts(WorkloadKind::Pod, Cow::Borrowed(&pod.parts), source, scope)
    }

    fn harden_parts<'o>(
        &self,
        kind: WorkloadKind,
        parts: Cow<'o, PodParts>,
        source: Source<'o>,
        scope: Scope<'_>,
    ) -> Hardening<'o> {
        let mut opt_outs = OptOuts::from_annotations(parts.metadata.annotations.as_ref());
        opt_outs.add_pod_wide(self.extra_skips.iter().copied());
        let plan = planner::plan(
            &parts,
            &self.profile,
            &opt_outs,
            self.images.as_ref(),
            scope,
        );

        let spec_tokens = kind.pod_spec_tokens();
        let mut edits: Vec<patch::RootedEdit<'_>> = plan
            .changes
            .iter()
            .map(|c| patch::RootedEdit {
                path: spec_tokens
                    .iter()
                    .copied()
                    .chain(c.path.iter().map(|t| t.as_ref()))
                    .collect(),
                edit: c.edit.clone(),
            })
            .collect();
        let existing = parts
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RECORD_ANNOTATION));
        // A pod already carrying a record keeps it untouched unless something new was changed,
        // which makes re-planning a hardened pod a no-op whatever its skips.
        let wants_record =
            !plan.changes.is_empty() || (existing.is_none() && !plan.skips.is_empty());
        let record = wants_record.then(|| {
            Record::merged(&plan, &self.profile, existing.map(String::as_str)).into_bounded_json()
        });
        let writes_annotation = matches!(scope, Scope::Create);
        if let Some((_, json)) = &record
            && writes_annotation
            && existing != Some(json)
        {
            let mut path = kind.pod_metadata_tokens();
            path.extend(["annotations", RECORD_ANNOTATION]);
            edits.push(patch::RootedEdit {
                path,
                edit: Edit::Set(Value::String(json.clone())),
            });
        }
        let patch = match source {
            Source::Json(object) => patch::build(object, edits),
            Source::Typed { has_metadata } => patch::build(
                &patch::TypedPresence {
                    parts: &parts,
                    has_metadata,
                },
                edits,
            ),
        };
        Hardening {
            source,
            kind,
            parts,
            plan,
            record,
            patch,
        }
    }
}

/// What a [`Hardening`] was planned from.
#[derive(Debug, Clone, Copy)]
enum Source<'o> {
    /// An object in JSON form.
    Json(&'o Value),
    /// A Pod's typed parts, and whether its JSON had a `metadata`.
    Typed { has_metadata: bool },
}

/// One object's hardening: the plan, the record, the patch, and the pod before and after.
#[derive(Debug, Clone)]
pub struct Hardening<'o> {
    source: Source<'o>,
    kind: WorkloadKind,
    /// Extracted from a JSON object, or borrowed from a typed Pod.
    parts: Cow<'o, PodParts>,
    /// What the planner decided.
    pub plan: Plan,
    /// The record and its JSON, when this plan writes one (absent when nothing changed and the
    /// pod already carries a record).
    pub record: Option<(Record, String)>,
    /// The JSON Patch against the whole object (empty when nothing changes).
    pub patch: Patch,
}

impl<'o> Hardening<'o> {
    /// The object's kind.
    pub fn kind(&self) -> WorkloadKind {
        self.kind
    }

    /// The object's pod metadata and spec as they are, before hardening.
    pub fn parts(&self) -> &PodParts {
        &self.parts
    }

    /// Whether the patch changes the object.
    pub fn changes_object(&self) -> bool {
        !self.patch.0.is_empty()
    }

    /// The whole object after hardening. For a Pod planned from its typed parts, the object is
    /// those parts in JSON form (its `metadata`, when it had one, and `spec`).
    pub fn hardened_object(&self) -> Result<Value, HardenError> {
        let mut hardened = match self.source {
            Source::Json(object) => object.clone(),
            Source::Typed { has_metadata } => workload::parts_json(&self.parts, has_metadata),
        };
        json_patch::patch(&mut hardened, &self.patch.0).map_err(|e| {
            HardenError::PatchDidNotApply {
                kind: self.kind,
                message: e.to_string(),
            }
        })?;
        Ok(hardened)
    }

    /// The pod metadata and spec as they will be after hardening: the object with its patch
    /// applied, read again. A patch that does not apply is reported, never papered over.
    pub fn hardened_parts(&self) -> Result<Cow<'_, PodParts>, HardenError> {
        if !self.changes_object() {
            return Ok(Cow::Borrowed(self.parts.as_ref()));
        }
        Ok(Cow::Owned(self.hardened_object_and_parts()?.1))
    }

    /// The whole hardened object and its pod parts, patched once (for callers that need both).
    pub fn hardened_object_and_parts(&self) -> Result<(Value, PodParts), HardenError> {
        let hardened = self.hardened_object()?;
        let parts = workload::extract(self.kind, &hardened)?;
        Ok((hardened, parts))
    }

    /// The checks of `policy` the hardened pod will still fail, with the details of the pod as
    /// it is, computed without building the hardened pod: the planner fixes every failure of
    /// the checks its controls cover unless it records a skip for that control (the fixture
    /// suites assert that this equals evaluating [`Hardening::hardened_parts`]), so what remains
    /// is every failed check no control covers plus those whose control was skipped.
    pub fn still_failing(&self, policy: LevelVersion) -> Vec<Violation> {
        // A check a control fixes is not run at all: its failure on the pod as it is would be
        // formatted only to be dropped.
        pss::evaluate_checks(&self.parts.metadata, &self.parts.spec, policy, |check| {
            Control::fixing(check).is_none_or(|c| self.plan.skips.iter().any(|s| s.control == c))
        })
    }
}
