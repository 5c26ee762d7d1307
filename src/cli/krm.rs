//! `pod-hardener krm`: the hardener as a KRM function (the KRM Functions Specification of
//! kustomize's `cmd/config/docs/api-conventions/functions-spec.md`), for kustomize exec
//! transformers and `kpt fn eval --exec`.
//!
//! A `ResourceList` comes in on stdin; every workload among its `items` is hardened like
//! `harden` does, and the same `ResourceList` goes out on stdout with `results` added: one `info`
//! result per hardened workload saying what was changed, one `warning` per workload that the
//! level will still deny, with PSA's message. Still-denied workloads are warnings, not errors,
//! so that the pipeline goes on (the hardening succeeded; admission decides). Options come from
//! the command line, and a `functionConfig` overrides them: a ConfigMap's `data` (what
//! `kpt fn eval -- level=baseline` passes) or any object's `spec`, with the keys `level`, `mode`
//! and `skip` (comma-separated, or a list).

use serde_json::{Map, Value, json};

use crate::harden::{Control, HardeningSettings, Mode, Profile};
use crate::manifest;
use crate::pss::Level;
use crate::yaml;

use super::harden::{self, HardenOptions, ObjectReport};
use super::{CliError, HardenArgs, ObjectRef};

/// The `apiVersion`s of a `ResourceList` this function reads.
pub const RESOURCE_LIST_VERSIONS: [&str; 2] =
    ["config.kubernetes.io/v1", "config.kubernetes.io/v1beta1"];

/// Annotations where orchestrators say which file and which document of it an item came from
/// (the current one first, then the legacy one).
const PATH_ANNOTATIONS: [&str; 2] = [
    "internal.config.kubernetes.io/path",
    "config.kubernetes.io/path",
];
const INDEX_ANNOTATIONS: [&str; 2] = [
    "internal.config.kubernetes.io/index",
    "config.kubernetes.io/index",
];

/// Runs the function over `input`; returns the output `ResourceList`.
pub fn run(input: &[u8], defaults: &HardenArgs) -> Result<String, CliError> {
    let text = manifest::input_text(input)?;
    let mut docs = manifest::read_source_documents(text)?;
    let (Some(doc), None) = (docs.pop(), docs.pop()) else {
        return Err(CliError::Krm(
            "expected exactly one ResourceList document".into(),
        ));
    };
    let api_version = doc.object.get("apiVersion").and_then(Value::as_str);
    let kind = doc.object.get("kind").and_then(Value::as_str);
    if kind != Some("ResourceList")
        || !api_version.is_some_and(|v| RESOURCE_LIST_VERSIONS.contains(&v))
    {
        return Err(CliError::Krm(format!(
            "expected a ResourceList of {}, found kind {} of {}",
            RESOURCE_LIST_VERSIONS.join(" or "),
            kind.unwrap_or("(none)"),
            api_version.unwrap_or("(none)")
        )));
    }
    let options = options(defaults, doc.object.get("functionConfig"))?;
    let mut list = doc.object.clone();
    let mut results = match list.get("results") {
        Some(Value::Array(previous)) => previous.clone(),
        _ => Vec::new(),
    };
    if let Some(Value::Array(items)) = list.get_mut("items") {
        for (i, item) in items.iter_mut().enumerate() {
            if !item.is_object() {
                return Err(CliError::Krm(format!("item {i} is not an object")));
            }
            for report in harden::harden_document(item, &format!("item {i}"), &options)? {
                results.extend(report_results(&report, item));
            }
        }
    }
    if let Value::Object(map) = &mut list {
        if results.is_empty() {
            map.remove("results");
        } else {
            map.insert("results".into(), Value::Array(results));
        }
    }
    Ok(yaml::write_document(&list, Some(&doc.tree)))
}

/// The command line's options, overridden by the function's configuration.
fn options(defaults: &HardenArgs, config: Option<&Value>) -> Result<HardenOptions, CliError> {
    let mut level = defaults.level;
    let mut mode = defaults.mode;
    let mut skip = defaults.skip.clone();
    let settings = match config {
        Some(c) if c.get("kind").and_then(Value::as_str) == Some("ConfigMap") => c.get("data"),
        Some(c) => c.get("spec"),
        None => None,
    };
    if let Some(Value::Object(settings)) = settings {
        if let Some(value) = setting(settings, "level")? {
            level = match value.parse::<Level>() {
                Ok(Level::Privileged) | Err(_) => {
                    return Err(CliError::Krm(format!(
                        "functionConfig level {value:?}: use restricted or baseline"
                    )));
                }
                Ok(level) => level,
            };
        }
        if let Some(value) = setting(settings, "mode")? {
            mode = value
                .parse::<Mode>()
                .map_err(|e| CliError::Krm(format!("functionConfig mode: {e}")))?;
        }
        match settings.get("skip") {
            None => {}
            Some(Value::String(list)) => skip = parse_controls(list.split(','))?,
            Some(Value::Array(list)) => {
                let names: Option<Vec<&str>> = list.iter().map(Value::as_str).collect();
                let names = names.ok_or_else(|| {
                    CliError::Krm("functionConfig skip: a list of control names".into())
                })?;
                skip = parse_controls(names.into_iter())?;
            }
            Some(_) => {
                return Err(CliError::Krm(
                    "functionConfig skip: a list of control names".into(),
                ));
            }
        }
    }
    let settings = HardeningSettings {
        mode,
        ..HardeningSettings::default()
    };
    // Lookups are the command line's (--image-lookups), not the functionConfig's: they reach
    // the network, which a function's configuration in a repository should not switch on.
    Ok(HardenOptions {
        profile: Profile::for_level(level, &settings),
        skip,
        explain: false,
        images: defaults.options()?.images,
    })
}

fn setting<'v>(settings: &'v Map<String, Value>, key: &str) -> Result<Option<&'v str>, CliError> {
    match settings.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(CliError::Krm(format!(
            "functionConfig {key}: expected a string, found {other}"
        ))),
    }
}

fn parse_controls<'a>(names: impl Iterator<Item = &'a str>) -> Result<Vec<Control>, CliError> {
    names
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse::<Control>()
                .map_err(|e| CliError::Krm(format!("functionConfig skip: {e}")))
        })
        .collect()
}

/// The results for one hardened workload: what changed (`info`) and why it will still be
/// denied (`warning`).
fn report_results(report: &ObjectReport, item: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let base = result_base(report, item);
    if !report.plan.changes.is_empty() {
        let mut explained = String::new();
        harden::explain_plan(&report.plan, &mut explained);
        let changes: Vec<&str> = explained.lines().map(str::trim).collect();
        let mut info = base.clone();
        info.insert(
            "message".into(),
            json!(format!("hardened: {}", changes.join("; "))),
        );
        info.insert("severity".into(), json!("info"));
        out.push(Value::Object(info));
    }
    if let Some(denied) = &report.still_denied {
        let mut warning = base;
        warning.insert("message".into(), json!(format!("will be denied: {denied}")));
        warning.insert("severity".into(), json!("warning"));
        out.push(Value::Object(warning));
    }
    out
}

/// `resourceRef` and `file` of a result about `item`.
fn result_base(report: &ObjectReport, item: &Value) -> Map<String, Value> {
    let ObjectRef { name, namespace } = &report.object;
    let mut reference = Map::new();
    if let Some(api_version) = item.get("apiVersion") {
        reference.insert("apiVersion".into(), api_version.clone());
    }
    reference.insert("kind".into(), json!(report.kind.as_str()));
    reference.insert("name".into(), json!(name));
    if let Some(ns) = namespace {
        reference.insert("namespace".into(), json!(ns));
    }
    let mut base = Map::new();
    base.insert("resourceRef".into(), Value::Object(reference));
    let annotations = item.pointer("/metadata/annotations");
    let annotation = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|k| annotations.and_then(|a| a.get(*k)).and_then(Value::as_str))
    };
    if let Some(path) = annotation(PATH_ANNOTATIONS) {
        let mut file = Map::new();
        file.insert("path".into(), json!(path));
        if let Some(index) = annotation(INDEX_ANNOTATIONS).and_then(|i| i.parse::<u64>().ok()) {
            file.insert("index".into(), json!(index));
        }
        base.insert("file".into(), Value::Object(file));
    }
    base
}
