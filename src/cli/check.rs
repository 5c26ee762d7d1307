//! `pod-hardener check`: evaluate every Pod and pod template in manifests at a level and version,
//! like Pod Security Admission would.

use serde::Serialize;

use crate::manifest::{self, Document};
use crate::pss::{self, LevelVersion, Violation, defaulting};
use crate::workload::{self, WorkloadKind};

use super::{CliError, ObjectRef};

/// Output format of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per evaluated object.
    Text,
    /// One JSON array, one element per evaluated object.
    Json,
}

/// One evaluated object.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Kind.
    pub kind: &'static str,
    /// Name (or generateName).
    pub name: String,
    /// Namespace, if the manifest names one.
    pub namespace: Option<String>,
    /// Whether it meets the policy.
    pub allowed: bool,
    /// PSA's composed message when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The failed checks in PSA's order.
    pub violations: Vec<Violation>,
}

/// Evaluates the pod parts of one document, with the API server's defaulting applied first.
pub fn evaluate_document(
    doc: &Document,
    kind: WorkloadKind,
    policy: LevelVersion,
) -> Result<Evaluation, CliError> {
    let mut parts = workload::extract(kind, &doc.object).map_err(|source| CliError::Object {
        at: ObjectRef::position(&doc_position(doc), kind.as_str(), &doc.object),
        source,
    })?;
    defaulting::apply_api_server_defaults(&mut parts.spec, kind.spec_owner());
    let violations = pss::evaluate(&parts.metadata, &parts.spec, policy);
    let object = ObjectRef::of(&doc.object);
    let allowed = violations.is_empty();
    Ok(Evaluation {
        kind: kind.as_str(),
        name: object.name,
        namespace: object.namespace,
        allowed,
        message: (!allowed).then(|| pss::violates_message(policy, &violations)),
        violations,
    })
}

pub(super) fn doc_position(doc: &Document) -> String {
    match doc.list_item {
        Some(i) => format!("document {} item {i}", doc.index),
        None => format!("document {}", doc.index),
    }
}

/// Runs `check` over `input`; returns what to print on stdout and whether everything is allowed.
pub fn run(
    input: &[u8],
    policy: LevelVersion,
    format: OutputFormat,
) -> Result<(String, bool), CliError> {
    let docs = manifest::read_documents(input)?;
    let mut evaluations = Vec::new();
    for doc in &docs {
        if let Some(kind) = WorkloadKind::of_document(&doc.object) {
            evaluations.push(evaluate_document(doc, kind, policy)?);
        }
    }
    let all_allowed = evaluations.iter().all(|e| e.allowed);
    let out = match format {
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(&evaluations).map_err(CliError::Output)?;
            s.push('\n');
            s
        }
        OutputFormat::Text => {
            let mut s = String::new();
            for e in &evaluations {
                let who = ObjectRef::display(e.kind, e.namespace.as_deref(), &e.name);
                let verdict = e.message.as_deref().unwrap_or("allowed");
                s.push_str(&format!("{who}: {verdict}\n"));
            }
            s
        }
    };
    Ok((out, all_allowed))
}
