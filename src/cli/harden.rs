//! `pod-hardener harden`: harden every Pod and pod template in manifests and write every
//! document back, in order. Works as `helm install --post-renderer` (stdin to stdout).

use std::fmt::Write as _;

use serde_json::Value;

use crate::harden::{self, Control, Hardener, Profile, Scope};
use crate::manifest;
use crate::pss::{self, LevelVersion, Version, defaulting};
use crate::workload::WorkloadKind;

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
}

/// The output of `harden`: documents for stdout and the explanation for stderr.
#[derive(Debug, Clone, Default)]
pub struct HardenOutput {
    /// The documents, as a YAML stream.
    pub stdout: String,
    /// What was changed per object and what will still be denied (with `--explain`).
    pub stderr: String,
}

/// Runs `harden` over `input`.
pub fn run(input: &[u8], options: &HardenOptions) -> Result<HardenOutput, CliError> {
    let docs = manifest::read_raw_documents(input)?;
    let mut out = HardenOutput::default();
    for (index, mut doc) in docs {
        if manifest::is_list(&doc) {
            if let Some(Value::Array(items)) = doc.get_mut("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    harden_object(
                        item,
                        &format!("document {index} item {i}"),
                        options,
                        &mut out.stderr,
                    )?;
                }
            }
        } else {
            harden_object(
                &mut doc,
                &format!("document {index}"),
                options,
                &mut out.stderr,
            )?;
        }
        let yaml = serde_yaml_ng::to_string(&doc).map_err(|e| CliError::Yaml(e.to_string()))?;
        out.stdout.push_str("---\n");
        out.stdout.push_str(&yaml);
    }
    Ok(out)
}

fn harden_object(
    object: &mut Value,
    at: &str,
    options: &HardenOptions,
    explanation: &mut String,
) -> Result<(), CliError> {
    let Some(kind) = WorkloadKind::of_document(object) else {
        return Ok(());
    };
    let hardener = Hardener::new(options.profile.clone()).skipping(options.skip.iter().copied());
    let located = |source| CliError::Harden {
        at: at.to_owned(),
        source,
    };
    let hardening = hardener
        .harden(kind, object, Scope::Create)
        .map_err(located)?;
    let hardened = hardening.hardened_object().map_err(located)?;
    if options.explain {
        let who = ObjectRef::of(object);
        let policy = LevelVersion::new(options.profile.level, Version::Latest);
        let mut as_hardened = hardening.hardened_parts().map_err(located)?.into_owned();
        defaulting::apply_api_server_defaults(&mut as_hardened.spec, kind.spec_owner());
        let violations = pss::evaluate(&as_hardened.metadata, &as_hardened.spec, policy);
        let _ = writeln!(
            explanation,
            "{}:",
            ObjectRef::display(kind.as_str(), who.namespace.as_deref(), &who.name)
        );
        explain_plan(&hardening.plan, explanation);
        if violations.is_empty() {
            let _ = writeln!(explanation, "  allowed at {policy}");
        } else {
            let _ = writeln!(
                explanation,
                "  still denied: {}",
                pss::violates_message(policy, &violations)
            );
        }
    }
    *object = hardened;
    Ok(())
}

fn explain_plan(plan: &harden::Plan, out: &mut String) {
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
