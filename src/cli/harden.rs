//! `pod-hardener harden`: harden every Pod and pod template in manifests and write every
//! document back, in order. Works as `helm install --post-renderer` (stdin to stdout).

use std::fmt::Write as _;

use serde_json::Value;

use crate::harden::{self, Control, Hardener, Profile, Scope};
use crate::manifest;
use crate::pss::{self, LevelVersion, Version, defaulting};
use crate::workload::WorkloadKind;
use crate::yaml;

use super::{CliError, ObjectRef};

/// What `harden` was asked to do.
#[derive(Debug, Clone)]
pub struct HardenOptions {
    /// The profile (level, mode, controls).
    pub profile: Profile,
    /// Controls to skip for every object, on top of each object's own opt-outs.
    pub skip: Vec<Control>,
    /// Whether to explain each object on stderr.
    pub explain: bool,
    /// Image lookups (`--image-lookups`), deciding `runAsNonRoot` from each image's user.
    pub images: Option<std::sync::Arc<super::images::CliLookups>>,
}

/// The output of `harden`: documents for stdout and the explanation for stderr.
#[derive(Debug, Clone, Default)]
pub struct HardenOutput {
    /// The documents, as a YAML stream.
    pub stdout: String,
    /// What was changed per object and what will still be denied (with `--explain`).
    pub stderr: String,
}

/// What hardening did to one workload, and what will still stand in its way at admission.
#[derive(Debug, Clone)]
pub struct ObjectReport {
    /// Where it is: `document 3` or `document 3 item 1`.
    pub at: String,
    /// Its kind.
    pub kind: WorkloadKind,
    /// The hardened object's name and namespace.
    pub object: ObjectRef,
    /// What was changed and skipped.
    pub plan: harden::Plan,
    /// The policy it was evaluated at (the profile's level, latest version).
    pub policy: LevelVersion,
    /// PSA's message when the hardened object is still denied at `policy`.
    pub still_denied: Option<String>,
}

/// Runs `harden` over `input`. Documents that hardening leaves unchanged are written back byte
/// for byte (comments and formatting included); changed ones are rewritten in their own key
/// order, in YAML that every reader reads back the same ([`crate::yaml::write`]).
pub fn run(input: &[u8], options: &HardenOptions) -> Result<HardenOutput, CliError> {
    let text = manifest::input_text(input)?;
    let docs = manifest::read_source_documents(text)?;
    let mut out = HardenOutput::default();
    let mut rewritten = Vec::new();
    for doc in docs {
        let mut object = doc.object.clone();
        let reports = harden_document(&mut object, &format!("document {}", doc.index), options)?;
        if options.explain {
            for report in &reports {
                explain(report, &mut out.stderr);
            }
        }
        if object != doc.object {
            rewritten.push((doc.content, yaml::write_document(&object, Some(&doc.tree))));
        }
    }
    out.stdout = yaml::splice(text, &rewritten);
    Ok(out)
}

/// Hardens the workload `object` is, or each workload of a `kind: List`, in place.
pub fn harden_document(
    object: &mut Value,
    at: &str,
    options: &HardenOptions,
) -> Result<Vec<ObjectReport>, CliError> {
    if !manifest::is_list(object) {
        return Ok(harden_object(object, at, options)?.into_iter().collect());
    }
    let mut reports = Vec::new();
    if let Some(Value::Array(items)) = object.get_mut("items") {
        for (i, item) in items.iter_mut().enumerate() {
            reports.extend(harden_object(item, &format!("{at} item {i}"), options)?);
        }
    }
    Ok(reports)
}

fn harden_object(
    object: &mut Value,
    at: &str,
    options: &HardenOptions,
) -> Result<Option<ObjectReport>, CliError> {
    let Some(kind) = WorkloadKind::of_document(object) else {
        return Ok(None);
    };
    let mut hardener =
        Hardener::new(options.profile.clone()).skipping(options.skip.iter().copied());
    if let Some(lookups) = &options.images
        && let Some(spec) = kind.pod_spec_of(object)
    {
        hardener = hardener.with_images(lookups.catalog(spec));
    }
    let located = |source| CliError::Harden {
        at: ObjectRef::position(at, kind.as_str(), object),
        source,
    };
    let hardening = hardener
        .harden(kind, object, Scope::Create)
        .map_err(located)?;
    let (hardened_object, mut hardened) = hardening.hardened_object_and_parts().map_err(located)?;
    let plan = hardening.plan;
    *object = hardened_object;
    let policy = LevelVersion::new(options.profile.level, Version::Latest);
    defaulting::apply_api_server_defaults(&mut hardened.spec, kind.spec_owner());
    let violations = pss::evaluate(&hardened.metadata, &hardened.spec, policy);
    Ok(Some(ObjectReport {
        at: at.to_owned(),
        kind,
        object: ObjectRef::of(object),
        plan,
        policy,
        still_denied: (!violations.is_empty()).then(|| pss::violates_message(policy, &violations)),
    }))
}

fn explain(report: &ObjectReport, explanation: &mut String) {
    let who = &report.object;
    let _ = writeln!(
        explanation,
        "{}:",
        ObjectRef::display(report.kind.as_str(), who.namespace.as_deref(), &who.name)
    );
    explain_plan(&report.plan, explanation);
    match &report.still_denied {
        None => {
            let _ = writeln!(explanation, "  allowed at {}", report.policy);
        }
        Some(message) => {
            let _ = writeln!(explanation, "  still denied: {message}");
        }
    }
}

/// One line per change, skip and annotation error of `plan`.
pub fn explain_plan(plan: &harden::Plan, out: &mut String) {
    if plan.changes.is_empty() {
        let _ = writeln!(out, "  changed: nothing");
    }
    for c in &plan.changes {
        let how = if c.overrides.is_some() {
            "overrode"
        } else {
            "set"
        };
        let _ = writeln!(
            out,
            "  {how} {} on {}: {}",
            c.control,
            c.target.key(),
            c.recorded_value()
        );
    }
    for s in &plan.skips {
        let detail = s
            .reason
            .detail()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  skipped {} on {}: {}{detail}",
            s.control,
            s.target.key(),
            s.reason.code()
        );
    }
    for e in &plan.annotation_errors {
        let _ = writeln!(out, "  warning: {e}");
    }
}
