//! The planner over every v1.37 PSA fixture: the hardened pod is allowed at restricted:latest
//! unless what remains is something fill mode may not fix (and then the record says why); the
//! patch applies and gives exactly the planned object; hardening is idempotent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use json_patch::Patch;
use pod_hardener::harden::{self, Edit, HardeningSettings, Mode, Profile, Scope};
use pod_hardener::pss::{self, CheckId, Level, LevelVersion, defaulting};
use pod_hardener::workload::{self, WorkloadKind};
use serde_json::{Value, json};

include!("support/shared_data.rs");

fn load(path: &Path) -> Value {
    serde_yaml_ng::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn profile(mode: Mode) -> Profile {
    Profile::for_level(
        Level::Restricted,
        &HardeningSettings {
            mode,
            ..HardeningSettings::default()
        },
    )
}

fn harden_pod<'o>(object: &'o Value, profile: &Profile) -> harden::Hardening<'o> {
    harden::Hardener::new(profile.clone())
        .harden(WorkloadKind::Pod, object, Scope::Create)
        .expect("the pod has a spec")
}

fn apply(object: &Value, patch: &Patch) -> Value {
    let mut out = object.clone();
    json_patch::patch(&mut out, &patch.0)
        .unwrap_or_else(|e| panic!("patch {patch:?} does not apply: {e}"));
    out
}

/// An independent application of the plan: walk each path, creating objects as needed.
fn apply_plan_directly(object: &Value, hardening: &harden::Hardening<'_>) -> Value {
    let mut out = object.clone();
    for change in &hardening.plan.changes {
        let (last, parents) = change.path.split_last().unwrap();
        let mut node = out.get_mut("spec").unwrap();
        for token in parents {
            node = match node {
                Value::Array(items) => &mut items[token.parse::<usize>().unwrap()],
                Value::Object(map) => {
                    let slot = map.entry(token.to_string()).or_insert_with(|| json!({}));
                    if slot.is_null() {
                        *slot = json!({});
                    }
                    slot
                }
                other => panic!("cannot descend into {other}"),
            };
        }
        let map = node.as_object_mut().unwrap();
        match &change.edit {
            Edit::Set(v) => {
                map.insert(last.to_string(), v.clone());
            }
            Edit::Append(v) => {
                let slot = map.entry(last.clone()).or_insert_with(|| json!([]));
                if slot.is_null() {
                    *slot = json!([]);
                }
                slot.as_array_mut().unwrap().push(v.clone());
            }
            Edit::Remove => {
                map.remove(last.as_ref());
            }
        }
    }
    if let Some((_, record_json)) = &hardening.record {
        let meta = out
            .as_object_mut()
            .unwrap()
            .entry("metadata")
            .or_insert_with(|| json!({}));
        let annotations = meta
            .as_object_mut()
            .unwrap()
            .entry("annotations")
            .or_insert_with(|| json!({}));
        annotations[harden::RECORD_ANNOTATION] = json!(record_json);
    }
    out
}

fn remaining_violations(object: &Value) -> Vec<pss::Violation> {
    let mut parts = workload::extract(WorkloadKind::Pod, object).unwrap();
    defaulting::apply_api_server_defaults(&mut parts.spec, defaulting::SpecOwner::Pod);
    pss::evaluate(
        &parts.metadata,
        &parts.spec,
        LevelVersion::restricted_latest(),
    )
}

/// Checks that no mutation may fix (PSS reference §10, NEVER), plus the explicit-only baseline
/// checks the planner has no control for.
fn never_fixable(check: CheckId) -> bool {
    matches!(
        check,
        CheckId::HostNamespaces
            | CheckId::HostPathVolumes
            | CheckId::RestrictedVolumes
            | CheckId::HostPorts
            | CheckId::HostProbesAndHostLifecycle
            | CheckId::Sysctls
            | CheckId::WindowsHostProcess
            | CheckId::Privileged
            | CheckId::AppArmorProfile
            | CheckId::SeLinuxOptions
    )
}

#[test]
fn hardened_fixtures_are_allowed_or_explained() {
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for path in psa_v1_37_fixtures() {
        let object = load(&path);
        for mode in [Mode::Fill, Mode::Override] {
            let hardening = harden_pod(&object, &profile(mode));
            let hardened = apply(&object, &hardening.patch);
            assert_eq!(
                hardened,
                apply_plan_directly(&object, &hardening),
                "{}: patch differs from plan",
                path.display()
            );
            // The record as written reads back as the record built: no entry lost to the
            // grouping by target and control.
            if let Some((record, json)) = &hardening.record {
                let read: harden::Record = serde_json::from_str(json).expect("the record reads");
                assert_eq!(&read, record, "{}: {json}", path.display());
            }
            let remaining = remaining_violations(&hardened);
            let unexplained: Vec<String> = remaining
                .iter()
                .filter(|v| {
                    if never_fixable(v.check) {
                        return false;
                    }
                    // What fill mode may not fix is explained by a recorded skip of its control.
                    let control = harden::Control::fixing(v.check);
                    let explained = hardening
                        .plan
                        .skips
                        .iter()
                        .any(|s| Some(s.control) == control);
                    match mode {
                        Mode::Fill => !explained,
                        // Override fixes everything override-able; only API-invalid combinations
                        // (privileged) remain.
                        Mode::Override => !hardening.plan.skips.iter().any(|s| {
                            Some(s.control) == control && s.reason.code() == "api-invalid"
                        }),
                    }
                })
                .map(|v| format!("{}: {} ({})", v.check, v.reason, v.detail))
                .collect();
            if !unexplained.is_empty() {
                failures.push(format!(
                    "{} [{}]: {}",
                    path.display(),
                    mode.as_str(),
                    unexplained.join("; ")
                ));
            }
            let key = match (mode, remaining.is_empty()) {
                (Mode::Fill, true) => "fill: allowed",
                (Mode::Fill, false) => "fill: still denied (explained)",
                (Mode::Override, true) => "override: allowed",
                (Mode::Override, false) => "override: still denied (never fixable)",
            };
            *tally.entry(key).or_default() += 1;
        }
    }
    println!("hardened v1.37 fixtures: {tally:?}");
    assert!(
        failures.is_empty(),
        "{} unexplained:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn hardening_is_idempotent_on_every_fixture() {
    for path in psa_v1_37_fixtures() {
        let object = load(&path);
        for mode in [Mode::Fill, Mode::Override] {
            let first = apply(&object, &harden_pod(&object, &profile(mode)).patch);
            let again = harden_pod(&first, &profile(mode));
            assert!(
                again.patch.0.is_empty(),
                "{} [{}]: second pass patched {:?}",
                path.display(),
                mode.as_str(),
                again.patch
            );
            assert!(again.plan.changes.is_empty(), "{}", path.display());
        }
    }
}

#[test]
fn the_default_pod_gets_exactly_the_restricted_base() {
    // PSS reference §10: the minimal fill set is exactly restricted/v1.37/pass/base.yaml.
    let bare = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "base"}, "spec": {
        "containers": [{"name": "container1", "image": "registry.k8s.io/pause"}],
        "initContainers": [{"name": "initcontainer1", "image": "registry.k8s.io/pause"}]}});
    let settings = HardeningSettings {
        restricted: [
            harden::Control::RunAsNonRoot,
            harden::Control::SeccompProfile,
            harden::Control::AllowPrivilegeEscalation,
            harden::Control::Capabilities,
        ]
        .into(),
        ..HardeningSettings::default()
    };
    let hardening = harden_pod(&bare, &Profile::for_level(Level::Restricted, &settings));
    let mut hardened = apply(&bare, &hardening.patch);
    hardened["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let expected = load(&psa_fixtures_dir().join("restricted/v1.37/pass/base.yaml"));
    assert_eq!(hardened, expected);
}
