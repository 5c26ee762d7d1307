//! The hardening planner: given a PodSpec (from a Pod or any workload template) and the
//! namespace's profile, compute the changes that make it restricted-compliant without
//! overriding the workload's explicit choices, as an RFC 6902 patch plus a record for auditors.
//!
//! - [`control`]: the named controls.
//! - [`profile`]: which controls apply at which level, fill or override mode.
//! - [`opt_out`]: the `pod-hardener.io/skip` annotation.
//! - [`planner`]: one function per control, producing a [`Plan`].
//! - [`record`]: the `pod-hardener.io/hardened` annotation.
//! - `patch`: a plan as a minimal JSON Patch rooted at any pod-spec pointer.

pub mod control;
pub mod opt_out;
mod patch;
pub mod plan;
pub mod planner;
pub mod profile;
pub mod record;

use json_patch::Patch;
use serde_json::Value;

pub use control::Control;
pub use opt_out::{OptOuts, SKIP_ANNOTATION};
pub use plan::{Change, Edit, Plan, Skip, SkipReason, Target};
pub use planner::{Scope, plan};
pub use profile::{HardeningSettings, Mode, Profile};
pub use record::{RECORD_ANNOTATION, Record};

use crate::workload::{PodParts, WorkloadKind};

/// A plan with its patch and the record annotation it writes.
#[derive(Debug, Clone)]
pub struct Hardening {
    /// What the planner decided.
    pub plan: Plan,
    /// The record and its JSON, when this plan writes one (absent when nothing changed and the
    /// pod already carries a record).
    pub record: Option<(Record, String)>,
    /// The JSON Patch against the whole object (empty when nothing changes).
    pub patch: Patch,
}

/// Whether the record annotation is written into the object by the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPlacement {
    /// Written into the pod (template) metadata.
    Annotation,
    /// Not written (the ephemeral-containers subresource ignores metadata changes); the caller
    /// reports it elsewhere (audit annotations).
    Elsewhere,
}

/// Plans `object` (a `kind` in JSON form, whose typed pod parts are `parts`) and builds its patch.
pub fn harden(
    object: &Value,
    kind: WorkloadKind,
    parts: &PodParts,
    profile: &Profile,
    opt_outs: &OptOuts,
    scope: Scope<'_>,
    placement: RecordPlacement,
) -> Hardening {
    let plan = planner::plan(parts, profile, opt_outs, scope);
    let spec_tokens = kind.pod_spec_tokens();
    let mut edits: Vec<patch::RootedEdit<'_>> = plan
        .changes
        .iter()
        .map(|c| patch::RootedEdit {
            path: spec_tokens
                .iter()
                .copied()
                .chain(c.path.iter().map(String::as_str))
                .collect(),
            edit: c.edit.clone(),
        })
        .collect();

    let existing = parts
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RECORD_ANNOTATION));
    // A pod already carrying a record keeps it untouched unless something new was changed, which
    // makes re-planning a hardened pod a no-op whatever its skips.
    let wants_record = !plan.changes.is_empty() || (existing.is_none() && !plan.skips.is_empty());
    let record = wants_record
        .then(|| Record::merged(&plan, profile, existing.map(String::as_str)).into_bounded_json());
    if let (Some((_, json)), RecordPlacement::Annotation) = (&record, placement)
        && existing != Some(json)
    {
        let mut path = kind.pod_metadata_tokens();
        path.extend(["annotations", RECORD_ANNOTATION]);
        edits.push(patch::RootedEdit {
            path,
            edit: Edit::Set(Value::String(json.clone())),
        });
    }
    let patch = patch::build(object, edits);
    Hardening {
        plan,
        record,
        patch,
    }
}

#[cfg(test)]
mod tests;
