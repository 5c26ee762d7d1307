//! Table-driven tests of the hardening contract (DESIGN.md, "The hardening contract").
//!
//! Every test applies the patch with `json_patch::patch` to its input and checks the object that
//! results (and the record annotation it carries), never the patch bytes, except where the
//! contract is about the patch itself (appending with `-`, one `add` for a missing parent,
//! JSON Pointer escaping).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::*;
use crate::pss::Level;
use crate::workload::WorkloadKind;

// === helpers ===

fn settings(mode: Mode) -> HardeningSettings {
    HardeningSettings {
        mode,
        ..HardeningSettings::default()
    }
}

fn profile(level: Level, mode: Mode) -> Profile {
    Profile::for_level(level, &settings(mode))
}

const MODES: [Mode; 2] = [Mode::Fill, Mode::Override];

/// Hardens `object` (a `kind`) through the one entry point.
fn harden_with<'o>(
    object: &'o Value,
    kind: WorkloadKind,
    profile: &Profile,
    scope: Scope<'_>,
) -> Hardening<'o> {
    Hardener::new(profile.clone())
        .harden(kind, object, scope)
        .expect("object has a pod spec")
}

fn harden_pod<'o>(object: &'o Value, profile: &Profile) -> Hardening<'o> {
    harden_with(object, WorkloadKind::Pod, profile, Scope::Create)
}

fn apply(object: &Value, hardening: &Hardening<'_>) -> Value {
    let mut out = object.clone();
    json_patch::patch(&mut out, &hardening.patch.0)
        .unwrap_or_else(|e| panic!("patch {:?} does not apply: {e}", hardening.patch));
    out
}

/// Hardens a Pod and applies the patch.
fn harden_and_apply<'o>(object: &'o Value, profile: &Profile) -> (Hardening<'o>, Value) {
    let hardening = harden_pod(object, profile);
    let result = apply(object, &hardening);
    (hardening, result)
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

fn pod_with_annotations(annotations: Value, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "annotations": annotations}, "spec": spec})
}

fn container(name: &str) -> Value {
    json!({"name": name, "image": "registry.k8s.io/pause"})
}

fn container_sc(name: &str, security_context: Value) -> Value {
    json!({"name": name, "image": "registry.k8s.io/pause", "securityContext": security_context})
}

/// The hardened securityContext of a container that had none (restricted, fill).
fn hardened_sc() -> Value {
    json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
           "readOnlyRootFilesystem": true})
}

fn tmp_mount(volume: &str) -> Value {
    json!({"name": volume, "mountPath": "/tmp"})
}

/// The record annotation string under `metadata` at `meta_pointer`.
fn record_string<'v>(object: &'v Value, meta_pointer: &str) -> &'v str {
    object
        .pointer(meta_pointer)
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(RECORD_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no record annotation at {meta_pointer} in {object}"))
}

/// The parsed record of a hardened Pod.
fn record(object: &Value) -> Value {
    serde_json::from_str(record_string(object, "/metadata")).expect("record is JSON")
}

/// `object` without the record annotation (and without `annotations` if that was the only one).
fn without_record(object: &Value, meta_pointer: &str) -> Value {
    let mut out = object.clone();
    if let Some(meta) = out.pointer_mut(meta_pointer).and_then(Value::as_object_mut) {
        let now_empty = meta
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
            .map(|a| {
                a.remove(RECORD_ANNOTATION);
                a.is_empty()
            });
        if now_empty == Some(true) {
            meta.remove("annotations");
        }
    }
    out
}

type Pair = (String, String);

fn pairs(items: &[(&str, &str)]) -> BTreeSet<Pair> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The record's entries, read as the webhook reads them (any schema version).
fn entries(record: &Value) -> Record {
    serde_json::from_value(record.clone()).unwrap_or_else(|e| panic!("{e}: {record}"))
}

/// (control, target) of the record's skips with `reason`.
fn skips_with(record: &Value, reason: &str) -> BTreeSet<Pair> {
    entries(record)
        .skips
        .into_iter()
        .filter(|s| s.reason == reason)
        .map(|s| (s.control, s.target))
        .collect()
}

/// Every skip of the record as (control, target, reason).
fn all_skips(record: &Value) -> BTreeSet<(String, String, String)> {
    entries(record)
        .skips
        .into_iter()
        .map(|s| (s.control, s.target, s.reason))
        .collect()
}

/// (control, target) of every recorded change, in record order.
fn changes(record: &Value) -> Vec<Pair> {
    entries(record)
        .changes
        .into_iter()
        .map(|c| (c.control, c.target))
        .collect()
}

/// (control, target) → overrode, for the recorded overrides.
fn overrides(record: &Value) -> BTreeMap<Pair, Value> {
    entries(record)
        .changes
        .into_iter()
        .filter_map(|c| Some(((c.control, c.target), c.overrode?)))
        .collect()
}

/// Every object key anywhere in `value`.
fn all_keys(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.insert(k.clone());
                all_keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| all_keys(v, out)),
        _ => {}
    }
}

/// `text` with the whitespace outside JSON strings removed.
fn minified(text: &str) -> String {
    let mut out = String::new();
    let (mut in_string, mut escaped) = (false, false);
    for ch in text.chars() {
        if in_string {
            out.push(ch);
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !ch.is_whitespace() {
            in_string = ch == '"';
            out.push(ch);
        }
    }
    out
}

fn patch_paths(hardening: &Hardening<'_>) -> Vec<String> {
    hardening
        .patch
        .0
        .iter()
        .map(|op| match op {
            json_patch::PatchOperation::Add(o) => o.path.to_string(),
            json_patch::PatchOperation::Remove(o) => o.path.to_string(),
            json_patch::PatchOperation::Replace(o) => o.path.to_string(),
            json_patch::PatchOperation::Move(o) => o.path.to_string(),
            json_patch::PatchOperation::Copy(o) => o.path.to_string(),
            json_patch::PatchOperation::Test(o) => o.path.to_string(),
        })
        .collect()
}

// === Windows ===

#[test]
fn windows_pods_get_run_as_non_root_only() {
    let input = pod(json!({
        "os": {"name": "windows"},
        "initContainers": [container("init")],
        "containers": [container("app"), container_sc("side", json!({}))],
        "ephemeralContainers": [container("debug")],
    }));
    let linux_only = [
        "seccompProfile",
        "allowPrivilegeEscalation",
        "capabilities",
        "readOnlyRootFilesystem",
        "procMount",
        "volumes",
        "volumeMounts",
        "runAsUser",
        "runAsGroup",
        "fsGroup",
    ];
    let configured = HardeningSettings {
        run_as_user: Some(1000),
        run_as_group: Some(3000),
        fs_group: Some(2000),
        tmp_size_limit: Some("64Mi".into()),
        ..HardeningSettings::default()
    };
    let variants = [
        (settings(Mode::Fill), false, false),
        (settings(Mode::Override), true, false),
        (configured.clone(), false, true),
        (
            HardeningSettings {
                mode: Mode::Override,
                ..configured
            },
            true,
            true,
        ),
    ];
    for (settings, procmount_skipped, ids_configured) in variants {
        let mode = settings.mode;
        let prof = Profile::for_level(Level::Restricted, &settings);
        let (_, result) = harden_and_apply(&input, &prof);
        let mut expected = input.clone();
        expected["spec"]["securityContext"] = json!({"runAsNonRoot": true});
        assert_eq!(without_record(&result, "/metadata"), expected, "{mode:?}");

        let mut keys = BTreeSet::new();
        all_keys(&result, &mut keys);
        for field in linux_only {
            assert!(
                !keys.contains(field),
                "{mode:?}: {field} set on a Windows pod"
            );
        }

        let rec = record(&result);
        let mut windows = vec![
            ("seccompProfile", "pod"),
            ("allowPrivilegeEscalation", "pod"),
            ("capabilities", "pod"),
            ("readOnlyRootFilesystem", "pod"),
            ("tmpVolume", "pod"),
        ];
        if procmount_skipped {
            windows.push(("procMount", "pod"));
        }
        if ids_configured {
            windows.extend([
                ("runAsUser", "pod"),
                ("runAsGroup", "pod"),
                ("fsGroup", "pod"),
            ]);
        }
        let context = format!("{mode:?}, ids configured: {ids_configured}");
        assert_eq!(skips_with(&rec, "windows"), pairs(&windows), "{context}");
        assert_eq!(all_skips(&rec).len(), windows.len(), "{context}: {rec}");
        assert_eq!(
            changes(&rec),
            vec![pair("runAsNonRoot", "pod")],
            "{context}"
        );
    }
}

#[test]
fn windows_pods_keep_explicit_linux_fields_even_in_override_mode() {
    let input = pod(json!({
        "os": {"name": "windows"},
        "securityContext": {"runAsNonRoot": false},
        "containers": [container_sc("app", json!({"runAsNonRoot": false,
            "allowPrivilegeEscalation": true, "capabilities": {"add": ["NET_ADMIN"]},
            "procMount": "Unmasked", "seccompProfile": {"type": "Unconfined"}}))],
    }));
    let (_, result) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Override));
    let mut expected = input.clone();
    expected["spec"]["securityContext"]["runAsNonRoot"] = json!(true);
    expected["spec"]["containers"][0]["securityContext"]["runAsNonRoot"] = json!(true);
    assert_eq!(without_record(&result, "/metadata"), expected);
    let rec = record(&result);
    assert_eq!(
        overrides(&rec),
        BTreeMap::from([
            (pair("runAsNonRoot", "pod"), json!(false)),
            (pair("runAsNonRoot", "containers/app"), json!(false)),
        ])
    );
}

fn pair(a: &str, b: &str) -> Pair {
    (a.to_owned(), b.to_owned())
}

// === API validity: privileged and CAP_SYS_ADMIN ===

#[test]
fn privileged_and_sys_admin_never_get_allow_privilege_escalation_false() {
    struct Case {
        name: &'static str,
        security_context: Value,
        level: Level,
        mode: Mode,
        skip: &'static str,
    }
    let cases = [
        Case {
            name: "privileged, fill",
            security_context: json!({"privileged": true}),
            level: Level::Restricted,
            mode: Mode::Fill,
            skip: "",
        },
        Case {
            name: "privileged, override",
            security_context: json!({"privileged": true}),
            level: Level::Restricted,
            mode: Mode::Override,
            skip: "",
        },
        Case {
            name: "privileged with explicit allowPrivilegeEscalation: true, override",
            security_context: json!({"privileged": true, "allowPrivilegeEscalation": true}),
            level: Level::Restricted,
            mode: Mode::Override,
            skip: "",
        },
        Case {
            name: "CAP_SYS_ADMIN, fill",
            security_context: json!({"capabilities": {"add": ["CAP_SYS_ADMIN"]}}),
            level: Level::Restricted,
            mode: Mode::Fill,
            skip: "",
        },
        Case {
            name: "SYS_ADMIN, fill",
            security_context: json!({"capabilities": {"add": ["NET_RAW", "SYS_ADMIN"]}}),
            level: Level::Restricted,
            mode: Mode::Fill,
            skip: "",
        },
        Case {
            // Baseline does not apply `capabilities`, so the added capability stays.
            name: "CAP_SYS_ADMIN, baseline override",
            security_context: json!({"capabilities": {"add": ["CAP_SYS_ADMIN"]}}),
            level: Level::Baseline,
            mode: Mode::Override,
            skip: "",
        },
        Case {
            // The workload opted out of the capabilities rewrite, so SYS_ADMIN stays.
            name: "SYS_ADMIN, override with app/capabilities opted out",
            security_context: json!({"capabilities": {"add": ["SYS_ADMIN"]}}),
            level: Level::Restricted,
            mode: Mode::Override,
            skip: "app/capabilities",
        },
        Case {
            name: "CAP_SYS_ADMIN and allowPrivilegeEscalation: true, baseline override",
            security_context: json!({"capabilities": {"add": ["CAP_SYS_ADMIN"]},
                "allowPrivilegeEscalation": true}),
            level: Level::Baseline,
            mode: Mode::Override,
            skip: "",
        },
    ];
    for case in cases {
        let spec = json!({"containers": [container_sc("app", case.security_context.clone()),
                                          container("plain")]});
        let input = if case.skip.is_empty() {
            pod(spec)
        } else {
            pod_with_annotations(json!({SKIP_ANNOTATION: case.skip}), spec)
        };
        let (_, result) = harden_and_apply(&input, &profile(case.level, case.mode));
        let app = &result["spec"]["containers"][0]["securityContext"];
        assert_eq!(
            app.get("allowPrivilegeEscalation"),
            case.security_context.get("allowPrivilegeEscalation"),
            "{}: {app}",
            case.name
        );
        assert_eq!(
            app["privileged"], case.security_context["privileged"],
            "{}",
            case.name
        );
        assert_eq!(
            app["capabilities"]["add"], case.security_context["capabilities"]["add"],
            "{}",
            case.name
        );
        // The other container still gets it.
        assert_eq!(
            result["spec"]["containers"][1]["securityContext"]["allowPrivilegeEscalation"],
            json!(false),
            "{}",
            case.name
        );
        let rec = record(&result);
        assert!(
            skips_with(&rec, "api-invalid")
                .contains(&pair("allowPrivilegeEscalation", "containers/app")),
            "{}: {rec}",
            case.name
        );
    }
}

#[test]
fn override_removes_sys_admin_before_setting_allow_privilege_escalation() {
    // The API server checks the resulting object: once override mode has removed the added
    // CAP_SYS_ADMIN, `allowPrivilegeEscalation: false` is valid beside what remains.
    for cap in ["CAP_SYS_ADMIN", "SYS_ADMIN"] {
        let input = pod(json!({"containers": [
            container_sc("app", json!({"capabilities": {"add": [cap, "NET_BIND_SERVICE"]}}))]}));
        let (_, result) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Override));
        assert_eq!(
            result["spec"]["containers"][0]["securityContext"],
            json!({"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                   "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}),
            "{cap}"
        );
        let rec = record(&result);
        assert!(skips_with(&rec, "api-invalid").is_empty(), "{cap}: {rec}");
        assert_eq!(
            overrides(&rec),
            BTreeMap::from([(
                pair("capabilities", "containers/app"),
                json!([cap, "NET_BIND_SERVICE"])
            )]),
            "{cap}"
        );
    }
}

// === fill never overwrites; override rewrites and records ===

#[test]
fn fill_keeps_explicit_values_and_override_rewrites_them() {
    struct Case {
        name: &'static str,
        pod_sc: Option<Value>,
        container_sc: Option<Value>,
        /// Pointer (from the object root) to the explicit value.
        pointer: &'static str,
        original: Value,
        /// The control and target that skip in fill mode and override in override mode.
        control: &'static str,
        target: &'static str,
        /// The value after override mode; `None`: removed; equal to `original`: not override-able.
        overridden: Option<Value>,
    }
    let cases = [
        Case {
            name: "allowPrivilegeEscalation: true",
            pod_sc: None,
            container_sc: Some(json!({"allowPrivilegeEscalation": true})),
            pointer: "/spec/containers/0/securityContext/allowPrivilegeEscalation",
            original: json!(true),
            control: "allowPrivilegeEscalation",
            target: "containers/app",
            overridden: Some(json!(false)),
        },
        Case {
            name: "pod runAsNonRoot: false",
            pod_sc: Some(json!({"runAsNonRoot": false})),
            container_sc: None,
            pointer: "/spec/securityContext/runAsNonRoot",
            original: json!(false),
            control: "runAsNonRoot",
            target: "pod",
            overridden: Some(json!(true)),
        },
        Case {
            name: "container runAsNonRoot: false",
            pod_sc: None,
            container_sc: Some(json!({"runAsNonRoot": false})),
            pointer: "/spec/containers/0/securityContext/runAsNonRoot",
            original: json!(false),
            control: "runAsNonRoot",
            target: "containers/app",
            overridden: Some(json!(true)),
        },
        Case {
            name: "pod seccompProfile Unconfined",
            pod_sc: Some(json!({"seccompProfile": {"type": "Unconfined"}})),
            container_sc: None,
            pointer: "/spec/securityContext/seccompProfile",
            original: json!({"type": "Unconfined"}),
            control: "seccompProfile",
            target: "pod",
            overridden: Some(json!({"type": "RuntimeDefault"})),
        },
        Case {
            name: "container seccompProfile Unconfined",
            pod_sc: None,
            container_sc: Some(json!({"seccompProfile": {"type": "Unconfined"}})),
            pointer: "/spec/containers/0/securityContext/seccompProfile",
            original: json!({"type": "Unconfined"}),
            control: "seccompProfile",
            target: "containers/app",
            overridden: Some(json!({"type": "RuntimeDefault"})),
        },
        Case {
            name: "added capability",
            pod_sc: None,
            container_sc: Some(json!({"capabilities": {"add": ["SYS_PTRACE"]}})),
            pointer: "/spec/containers/0/securityContext/capabilities/add",
            original: json!(["SYS_PTRACE"]),
            control: "capabilities",
            target: "containers/app",
            overridden: None,
        },
        Case {
            name: "pod runAsUser: 0",
            pod_sc: Some(json!({"runAsUser": 0})),
            container_sc: None,
            pointer: "/spec/securityContext/runAsUser",
            original: json!(0),
            control: "runAsUser",
            target: "pod",
            overridden: None,
        },
        Case {
            name: "container runAsUser: 0",
            pod_sc: None,
            container_sc: Some(json!({"runAsUser": 0})),
            pointer: "/spec/containers/0/securityContext/runAsUser",
            original: json!(0),
            control: "runAsUser",
            target: "containers/app",
            overridden: None,
        },
        Case {
            name: "readOnlyRootFilesystem: false",
            pod_sc: None,
            container_sc: Some(json!({"readOnlyRootFilesystem": false})),
            pointer: "/spec/containers/0/securityContext/readOnlyRootFilesystem",
            original: json!(false),
            control: "readOnlyRootFilesystem",
            target: "containers/app",
            overridden: Some(json!(false)),
        },
        Case {
            name: "procMount: Unmasked",
            pod_sc: None,
            container_sc: Some(json!({"procMount": "Unmasked"})),
            pointer: "/spec/containers/0/securityContext/procMount",
            original: json!("Unmasked"),
            control: "procMount",
            target: "containers/app",
            overridden: Some(json!("Default")),
        },
    ];
    for case in cases {
        let mut spec = json!({"containers": [container("app")]});
        if let Some(sc) = &case.pod_sc {
            spec["securityContext"] = sc.clone();
        }
        if let Some(sc) = &case.container_sc {
            spec["containers"][0]["securityContext"] = sc.clone();
        }
        let input = pod(spec);
        assert_eq!(input.pointer(case.pointer), Some(&case.original));
        let key = pair(case.control, case.target);

        // Fill: the value is kept and an explicit-value skip recorded, no override.
        let (_, filled) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Fill));
        assert_eq!(
            filled.pointer(case.pointer),
            Some(&case.original),
            "fill, {}",
            case.name
        );
        let rec = record(&filled);
        assert!(
            skips_with(&rec, "explicit-value").contains(&key),
            "fill, {}: {rec}",
            case.name
        );
        assert!(overrides(&rec).is_empty(), "fill, {}: {rec}", case.name);
        // (A change of the same control may still fill other fields, e.g. `drop: [ALL]`.)

        // Override: rewritten (or removed) and recorded as `overrode`; readOnlyRootFilesystem
        // is not override-able and stays an explicit-value skip.
        let (_, overridden) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Override));
        assert_eq!(
            overridden.pointer(case.pointer),
            case.overridden.as_ref(),
            "override, {}",
            case.name
        );
        let rec = record(&overridden);
        if case.overridden.as_ref() == Some(&case.original) {
            assert!(
                skips_with(&rec, "explicit-value").contains(&key),
                "override, {}: {rec}",
                case.name
            );
            assert!(
                !overrides(&rec).contains_key(&key),
                "override, {}",
                case.name
            );
        } else {
            assert_eq!(
                overrides(&rec).get(&key),
                Some(&case.original),
                "override, {}: {rec}",
                case.name
            );
            assert!(
                !skips_with(&rec, "explicit-value").contains(&key),
                "override, {}: {rec}",
                case.name
            );
        }
        assert_eq!(rec["mode"], "override");
    }
}

#[test]
fn fill_and_override_of_a_pod_full_of_explicit_values() {
    let input = pod(json!({
        "securityContext": {"runAsNonRoot": false, "runAsUser": 0,
                            "seccompProfile": {"type": "Unconfined"}},
        "containers": [container_sc("app", json!({
            "allowPrivilegeEscalation": true, "capabilities": {"add": ["NET_ADMIN"]},
            "runAsUser": 0, "readOnlyRootFilesystem": false, "procMount": "Unmasked",
            "seccompProfile": {"type": "Unconfined"}, "runAsNonRoot": false}))],
    }));

    let (_, filled) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Fill));
    let mut expected = input.clone();
    expected["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"] = json!(["ALL"]);
    assert_eq!(without_record(&filled, "/metadata"), expected);
    let rec = record(&filled);
    assert_eq!(
        skips_with(&rec, "explicit-value"),
        pairs(&[
            ("runAsNonRoot", "pod"),
            ("seccompProfile", "pod"),
            ("runAsUser", "pod"),
            ("runAsNonRoot", "containers/app"),
            ("seccompProfile", "containers/app"),
            ("runAsUser", "containers/app"),
            ("allowPrivilegeEscalation", "containers/app"),
            ("capabilities", "containers/app"),
            ("procMount", "containers/app"),
            ("readOnlyRootFilesystem", "containers/app"),
        ])
    );
    assert_eq!(changes(&rec), vec![pair("capabilities", "containers/app")]);

    let (_, overridden) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Override));
    let expected = pod(json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container_sc("app", json!({
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": false, "procMount": "Default",
            "seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": true}))],
    }));
    assert_eq!(without_record(&overridden, "/metadata"), expected);
    let rec = record(&overridden);
    assert_eq!(
        overrides(&rec),
        BTreeMap::from([
            (pair("runAsNonRoot", "pod"), json!(false)),
            (pair("seccompProfile", "pod"), json!({"type": "Unconfined"})),
            (pair("runAsUser", "pod"), json!(0)),
            (pair("runAsNonRoot", "containers/app"), json!(false)),
            (
                pair("seccompProfile", "containers/app"),
                json!({"type": "Unconfined"})
            ),
            (pair("runAsUser", "containers/app"), json!(0)),
            (
                pair("allowPrivilegeEscalation", "containers/app"),
                json!(true)
            ),
            (pair("capabilities", "containers/app"), json!(["NET_ADMIN"])),
            (pair("procMount", "containers/app"), json!("Unmasked")),
        ])
    );
    assert_eq!(
        all_skips(&rec),
        BTreeSet::from([(
            "readOnlyRootFilesystem".to_owned(),
            "containers/app".to_owned(),
            "explicit-value".to_owned()
        )])
    );
}

// === capabilities ===

#[test]
fn capabilities_drop_gets_all_appended_and_override_keeps_net_bind_service() {
    struct Case {
        name: &'static str,
        capabilities: Value,
        mode: Mode,
        expected: Value,
    }
    let cases = [
        Case {
            name: "drop NET_RAW, fill",
            capabilities: json!({"drop": ["NET_RAW"]}),
            mode: Mode::Fill,
            expected: json!({"drop": ["NET_RAW", "ALL"]}),
        },
        Case {
            name: "drop NET_RAW, override",
            capabilities: json!({"drop": ["NET_RAW"]}),
            mode: Mode::Override,
            expected: json!({"drop": ["NET_RAW", "ALL"]}),
        },
        Case {
            name: "drop ALL already",
            capabilities: json!({"drop": ["NET_RAW", "ALL"]}),
            mode: Mode::Override,
            expected: json!({"drop": ["NET_RAW", "ALL"]}),
        },
        Case {
            name: "add NET_BIND_SERVICE, NET_ADMIN, fill",
            capabilities: json!({"add": ["NET_BIND_SERVICE", "NET_ADMIN"]}),
            mode: Mode::Fill,
            expected: json!({"add": ["NET_BIND_SERVICE", "NET_ADMIN"], "drop": ["ALL"]}),
        },
        Case {
            name: "add NET_BIND_SERVICE, NET_ADMIN, override",
            capabilities: json!({"add": ["NET_BIND_SERVICE", "NET_ADMIN"]}),
            mode: Mode::Override,
            expected: json!({"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}),
        },
        Case {
            name: "add NET_ADMIN, drop NET_RAW, override",
            capabilities: json!({"add": ["NET_ADMIN"], "drop": ["NET_RAW"]}),
            mode: Mode::Override,
            expected: json!({"drop": ["NET_RAW", "ALL"]}),
        },
        Case {
            name: "add NET_BIND_SERVICE only, override",
            capabilities: json!({"add": ["NET_BIND_SERVICE"]}),
            mode: Mode::Override,
            expected: json!({"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}),
        },
    ];
    for case in cases {
        let input = pod(json!({"containers": [
            container_sc("app", json!({"capabilities": case.capabilities}))]}));
        let (_, result) = harden_and_apply(&input, &profile(Level::Restricted, case.mode));
        assert_eq!(
            result["spec"]["containers"][0]["securityContext"]["capabilities"], case.expected,
            "{}",
            case.name
        );
    }
}

// === levels ===

#[test]
fn baseline_applies_seccomp_and_allow_privilege_escalation_only() {
    let input = pod(json!({"initContainers": [container("init")],
                           "containers": [container("app")]}));
    for mode in MODES {
        let (_, result) = harden_and_apply(&input, &profile(Level::Baseline, mode));
        let expected = pod(json!({
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [container_sc("init", json!({"allowPrivilegeEscalation": false}))],
            "containers": [container_sc("app", json!({"allowPrivilegeEscalation": false}))],
        }));
        assert_eq!(without_record(&result, "/metadata"), expected, "{mode:?}");
        let rec = record(&result);
        assert_eq!(rec["level"], "baseline");
        let mut level = vec![
            ("runAsNonRoot", "pod"),
            ("capabilities", "pod"),
            ("readOnlyRootFilesystem", "pod"),
            ("tmpVolume", "pod"),
        ];
        if mode == Mode::Override {
            level.push(("procMount", "pod"));
        }
        assert_eq!(skips_with(&rec, "level"), pairs(&level), "{mode:?}");
        assert_eq!(
            all_skips(&rec).len(),
            level.len(),
            "{mode:?}: only level skips: {rec}"
        );
    }
}

#[test]
fn privileged_level_changes_nothing_and_writes_no_annotation() {
    let inputs = [
        pod(json!({"containers": [container("app")]})),
        pod(json!({"securityContext": {"runAsUser": 0}, "containers": [
            container_sc("app", json!({"privileged": true, "capabilities": {"add": ["SYS_ADMIN"]}}))]})),
        pod_with_annotations(json!({"a": "b"}), json!({"containers": [container("app")]})),
    ];
    for input in inputs {
        for mode in MODES {
            let (hardening, result) = harden_and_apply(&input, &profile(Level::Privileged, mode));
            assert_eq!(result, input, "{mode:?}");
            assert!(hardening.patch.0.is_empty(), "{mode:?}");
            assert!(hardening.record.is_none(), "{mode:?}");
        }
    }
}

// === tmpVolume ===

#[test]
fn tmp_volume_is_mounted_only_where_a_read_only_root_was_added() {
    let input = pod(json!({
        "initContainers": [container("init")],
        "containers": [
            container("plain"),
            json!({"name": "has-tmp", "image": "i",
                   "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}]}),
            json!({"name": "has-tmp-slash", "image": "i",
                   "volumeMounts": [{"name": "scratch", "mountPath": "/tmp/"}]}),
            container_sc("already-ro", json!({"readOnlyRootFilesystem": true})),
            container_sc("writable", json!({"readOnlyRootFilesystem": false})),
            json!({"name": "data-only", "image": "i",
                   "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]}),
        ],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    }));
    let (hardening, result) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Fill));
    let spec = &result["spec"];
    assert_eq!(
        spec["volumes"],
        json!([{"name": "scratch", "emptyDir": {}}, {"name": "pod-hardener-tmp", "emptyDir": {}}])
    );
    assert!(
        patch_paths(&hardening).contains(&"/spec/volumes/-".to_owned()),
        "{:?}",
        patch_paths(&hardening)
    );
    let mounts = |list: &str, i: usize| spec[list][i]["volumeMounts"].clone();
    assert_eq!(
        mounts("initContainers", 0),
        json!([tmp_mount("pod-hardener-tmp")])
    );
    assert_eq!(
        mounts("containers", 0),
        json!([tmp_mount("pod-hardener-tmp")])
    );
    assert_eq!(
        mounts("containers", 1),
        json!([{"name": "scratch", "mountPath": "/tmp"}])
    );
    assert_eq!(
        mounts("containers", 2),
        json!([{"name": "scratch", "mountPath": "/tmp/"}])
    );
    assert_eq!(mounts("containers", 3), Value::Null);
    assert_eq!(mounts("containers", 4), Value::Null);
    assert_eq!(
        mounts("containers", 5),
        json!([{"name": "scratch", "mountPath": "/data"}, tmp_mount("pod-hardener-tmp")])
    );
    // Every container that got a read-only root has exactly one /tmp mount; the others none.
    for (i, got_ro) in [true, true, true, false, false, true]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            input["spec"]["containers"][i]["securityContext"]["readOnlyRootFilesystem"].is_null(),
            got_ro
        );
        assert_eq!(
            spec["containers"][i]["securityContext"]["readOnlyRootFilesystem"],
            json!(got_ro || i == 3),
            "container {i}"
        );
    }
}

#[test]
fn tmp_volume_names_size_limits_and_reuse() {
    struct Case {
        name: &'static str,
        volumes: Option<Value>,
        size_limit: Option<&'static str>,
        /// The volumes after hardening.
        expected_volumes: Value,
        /// The volume the container mounts at /tmp.
        mounted: &'static str,
    }
    let cases = [
        Case {
            name: "no volumes",
            volumes: None,
            size_limit: None,
            expected_volumes: json!([{"name": "pod-hardener-tmp", "emptyDir": {}}]),
            mounted: "pod-hardener-tmp",
        },
        Case {
            name: "size limit",
            volumes: None,
            size_limit: Some("64Mi"),
            expected_volumes: json!([{"name": "pod-hardener-tmp",
                                      "emptyDir": {"sizeLimit": "64Mi"}}]),
            mounted: "pod-hardener-tmp",
        },
        Case {
            name: "null volumes",
            volumes: Some(Value::Null),
            size_limit: None,
            expected_volumes: json!([{"name": "pod-hardener-tmp", "emptyDir": {}}]),
            mounted: "pod-hardener-tmp",
        },
        Case {
            name: "a configMap named pod-hardener-tmp",
            volumes: Some(json!([{"name": "pod-hardener-tmp", "configMap": {"name": "cm"}}])),
            size_limit: Some("1Gi"),
            expected_volumes: json!([
                {"name": "pod-hardener-tmp", "configMap": {"name": "cm"}},
                {"name": "pod-hardener-tmp-2", "emptyDir": {"sizeLimit": "1Gi"}}]),
            mounted: "pod-hardener-tmp-2",
        },
        Case {
            name: "pod-hardener-tmp and -2 both taken",
            volumes: Some(json!([
                {"name": "pod-hardener-tmp-2", "secret": {"secretName": "s"}},
                {"name": "pod-hardener-tmp", "configMap": {"name": "cm"}}])),
            size_limit: None,
            expected_volumes: json!([
                {"name": "pod-hardener-tmp-2", "secret": {"secretName": "s"}},
                {"name": "pod-hardener-tmp", "configMap": {"name": "cm"}},
                {"name": "pod-hardener-tmp-3", "emptyDir": {}}]),
            mounted: "pod-hardener-tmp-3",
        },
        Case {
            name: "our emptyDir already there",
            volumes: Some(json!([{"name": "pod-hardener-tmp", "emptyDir": {}}])),
            size_limit: Some("64Mi"),
            expected_volumes: json!([{"name": "pod-hardener-tmp", "emptyDir": {}}]),
            mounted: "pod-hardener-tmp",
        },
    ];
    for case in cases {
        let mut spec = json!({"containers": [container("app")]});
        if let Some(v) = &case.volumes {
            spec["volumes"] = v.clone();
        }
        let input = pod(spec);
        let prof = Profile::for_level(
            Level::Restricted,
            &HardeningSettings {
                tmp_size_limit: case.size_limit.map(str::to_owned),
                ..HardeningSettings::default()
            },
        );
        let (hardening, result) = harden_and_apply(&input, &prof);
        assert_eq!(
            result["spec"]["volumes"], case.expected_volumes,
            "{}",
            case.name
        );
        assert_eq!(
            result["spec"]["containers"][0]["volumeMounts"],
            json!([tmp_mount(case.mounted)]),
            "{}",
            case.name
        );
        let appended = patch_paths(&hardening).contains(&"/spec/volumes/-".to_owned());
        let had_array = case.volumes.as_ref().is_some_and(Value::is_array);
        let added_volume = case.expected_volumes.as_array().map(Vec::len)
            != case
                .volumes
                .as_ref()
                .and_then(Value::as_array)
                .map(Vec::len);
        assert_eq!(appended, had_array && added_volume, "{}", case.name);
    }
}

// === opt-outs ===

#[test]
fn skip_annotation_is_honoured_and_recorded() {
    let input = pod_with_annotations(
        json!({SKIP_ANNOTATION:
            "runAsNonRoot, app/readOnlyRootFilesystem, side/all, bogus, app/seccompProfile, /capabilities"}),
        json!({"containers": [container("app"), container("side"), container("other")]}),
    );
    let (hardening, result) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Fill));
    let expected = pod_with_annotations(
        input["metadata"]["annotations"].clone(),
        json!({
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                container_sc("app", json!({"allowPrivilegeEscalation": false,
                                           "capabilities": {"drop": ["ALL"]}})),
                container("side"),
                json!({"name": "other", "image": "registry.k8s.io/pause",
                       "securityContext": hardened_sc(),
                       "volumeMounts": [tmp_mount("pod-hardener-tmp")]}),
            ],
            "volumes": [{"name": "pod-hardener-tmp", "emptyDir": {}}],
        }),
    );
    assert_eq!(without_record(&result, "/metadata"), expected);
    let rec = record(&result);
    assert_eq!(
        skips_with(&rec, "opt-out"),
        pairs(&[
            ("runAsNonRoot", "pod"),
            ("readOnlyRootFilesystem", "containers/app"),
            ("allowPrivilegeEscalation", "containers/side"),
            ("capabilities", "containers/side"),
            ("readOnlyRootFilesystem", "containers/side"),
        ])
    );
    let errors = &hardening.plan.annotation_errors;
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].contains("\"bogus\""), "{errors:?}");
    assert!(errors[0].contains("unknown control"), "{errors:?}");
    assert!(errors[1].contains("\"app/seccompProfile\""), "{errors:?}");
    assert!(errors[1].contains("pod-level control"), "{errors:?}");
    assert!(errors[2].contains("empty container name"), "{errors:?}");
}

#[test]
fn pod_wide_opt_outs_reach_every_container() {
    struct Case {
        skip: &'static str,
        /// Pointers that must stay absent.
        absent: &'static [&'static str],
        opt_outs: &'static [(&'static str, &'static str)],
    }
    let cases = [
        Case {
            skip: "readOnlyRootFilesystem",
            absent: &[
                "/spec/initContainers/0/securityContext/readOnlyRootFilesystem",
                "/spec/containers/0/securityContext/readOnlyRootFilesystem",
                "/spec/volumes",
                "/spec/containers/0/volumeMounts",
            ],
            opt_outs: &[
                ("readOnlyRootFilesystem", "initContainers/init"),
                ("readOnlyRootFilesystem", "containers/app"),
            ],
        },
        Case {
            skip: "tmpVolume",
            absent: &["/spec/volumes", "/spec/containers/0/volumeMounts"],
            opt_outs: &[
                ("tmpVolume", "initContainers/init"),
                ("tmpVolume", "containers/app"),
            ],
        },
        Case {
            skip: "seccompProfile,capabilities",
            absent: &[
                "/spec/securityContext/seccompProfile",
                "/spec/containers/0/securityContext/capabilities",
                "/spec/initContainers/0/securityContext/capabilities",
            ],
            opt_outs: &[
                ("seccompProfile", "pod"),
                ("capabilities", "initContainers/init"),
                ("capabilities", "containers/app"),
            ],
        },
    ];
    for case in cases {
        let input = pod_with_annotations(
            json!({SKIP_ANNOTATION: case.skip}),
            json!({"initContainers": [container("init")], "containers": [container("app")]}),
        );
        let (hardening, result) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Fill));
        for pointer in case.absent {
            assert_eq!(result.pointer(pointer), None, "{}: {pointer}", case.skip);
        }
        assert_eq!(
            skips_with(&record(&result), "opt-out"),
            pairs(case.opt_outs),
            "{}",
            case.skip
        );
        assert!(hardening.plan.annotation_errors.is_empty());
        // Everything not opted out is still applied.
        assert_eq!(
            result["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"],
            json!(false)
        );
        assert_eq!(
            result["spec"]["securityContext"]["runAsNonRoot"],
            json!(true)
        );
    }
}

// === ephemeral containers ===

#[test]
fn ephemeral_container_updates_touch_only_the_new_ephemeral_containers() {
    let old_names: BTreeSet<String> = ["old-debug".to_owned()].into();
    for with_volume in [false, true] {
        let mut spec = json!({
            "initContainers": [container("init")],
            "containers": [container("app")],
            "ephemeralContainers": [container("old-debug"), container("new-debug")],
        });
        if with_volume {
            spec["volumes"] = json!([{"name": "pod-hardener-tmp", "emptyDir": {}}]);
        }
        let input = pod(spec);
        for mode in MODES {
            let prof = profile(Level::Restricted, mode);
            let scope = Scope::NewEphemeralContainers(&old_names);
            // The subresource ignores metadata: the record goes to audit annotations only.
            {
                let hardening = harden_with(&input, WorkloadKind::Pod, &prof, scope);
                let result = apply(&input, &hardening);
                let mut expected = input.clone();
                let mut new_debug = container_sc("new-debug", hardened_sc());
                if with_volume {
                    new_debug["volumeMounts"] = json!([tmp_mount("pod-hardener-tmp")]);
                }
                expected["spec"]["ephemeralContainers"][1] = new_debug;
                let context = format!("volume {with_volume}, {mode:?}");
                assert_eq!(result, expected, "{context}");
                assert!(hardening.record.is_some(), "{context}: a record to report");
                let plan = &hardening.plan;
                assert!(
                    plan.changes.iter().all(|c| c.target
                        == Target::Container {
                            list: crate::pss::containers::ContainerList::Ephemeral,
                            name: "new-debug".into()
                        }),
                    "{context}: {:?}",
                    plan.changes
                );
                let immutable: Vec<Pair> = plan
                    .skips
                    .iter()
                    .filter(|s| s.reason.code() == "immutable")
                    .map(|s| pair(s.control.as_str(), &s.target.key()))
                    .collect();
                if with_volume {
                    assert!(immutable.is_empty(), "{context}: {immutable:?}");
                } else {
                    assert_eq!(
                        immutable,
                        vec![pair("tmpVolume", "ephemeralContainers/new-debug")],
                        "{context}"
                    );
                }
                let (record, _) = hardening.record.as_ref().expect("a record");
                assert!(
                    record
                        .changes
                        .iter()
                        .all(|c| c.target == "ephemeralContainers/new-debug"),
                    "{context}: {record:?}"
                );
            }
        }
    }
}

// === runAsNonRoot conflicts ===

#[test]
fn run_as_non_root_conflicts_with_explicit_root_user() {
    struct Case {
        name: &'static str,
        spec: Value,
        /// Fill mode sets pod runAsNonRoot (the root user is not inherited).
        fill_sets: bool,
    }
    let cases = [
        Case {
            name: "pod runAsUser: 0",
            spec: json!({"securityContext": {"runAsUser": 0}, "containers": [container("app")]}),
            fill_sets: false,
        },
        Case {
            name: "container runAsUser: 0",
            spec: json!({"containers": [container("app"),
                container_sc("root", json!({"runAsUser": 0}))]}),
            fill_sets: false,
        },
        Case {
            name: "init container runAsUser: 0",
            spec: json!({"initContainers": [container_sc("root", json!({"runAsUser": 0}))],
                         "containers": [container("app")]}),
            fill_sets: false,
        },
        Case {
            name: "ephemeral container runAsUser: 0",
            spec: json!({"containers": [container("app")],
                         "ephemeralContainers": [container_sc("root", json!({"runAsUser": 0}))]}),
            fill_sets: false,
        },
        Case {
            // The container's own runAsNonRoot: false wins over the pod's, so no conflict.
            name: "container runAsUser: 0 with its own runAsNonRoot: false",
            spec: json!({"containers": [container("app"),
                container_sc("root", json!({"runAsUser": 0, "runAsNonRoot": false}))]}),
            fill_sets: true,
        },
        Case {
            name: "container runAsUser: 1000",
            spec: json!({"containers": [container_sc("app", json!({"runAsUser": 1000}))]}),
            fill_sets: true,
        },
    ];
    for case in cases {
        let input = pod(case.spec.clone());
        let (_, filled) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Fill));
        let rec = record(&filled);
        let conflict = skips_with(&rec, "conflict");
        if case.fill_sets {
            assert_eq!(
                filled["spec"]["securityContext"]["runAsNonRoot"],
                json!(true),
                "{}",
                case.name
            );
            assert!(conflict.is_empty(), "{}: {rec}", case.name);
        } else {
            assert_eq!(
                filled.pointer("/spec/securityContext/runAsNonRoot"),
                None,
                "{}",
                case.name
            );
            assert_eq!(
                conflict,
                pairs(&[("runAsNonRoot", "pod")]),
                "{}: {rec}",
                case.name
            );
        }
        // Every explicit runAsUser is kept in fill mode.
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for (i, c) in input["spec"][list]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                assert_eq!(
                    filled["spec"][list][i]["securityContext"]["runAsUser"],
                    c["securityContext"]["runAsUser"],
                    "{}",
                    case.name
                );
            }
        }

        let (_, overridden) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Override));
        assert_eq!(
            overridden["spec"]["securityContext"]["runAsNonRoot"],
            json!(true),
            "override, {}",
            case.name
        );
        let rec = record(&overridden);
        assert!(
            skips_with(&rec, "conflict").is_empty(),
            "override, {}: {rec}",
            case.name
        );
        let mut uids = Vec::new();
        collect_run_as_user(&overridden["spec"], &mut uids);
        assert!(
            !uids.contains(&json!(0)),
            "override, {}: {uids:?}",
            case.name
        );
    }
}

fn collect_run_as_user(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "runAsUser" {
                    out.push(v.clone());
                }
                collect_run_as_user(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_run_as_user(v, out)),
        _ => {}
    }
}

#[test]
fn override_replaces_root_user_with_the_configured_uid() {
    let input = pod(json!({"securityContext": {"runAsUser": 0},
        "containers": [container_sc("app", json!({"runAsUser": 0}))]}));
    let prof = Profile::for_level(
        Level::Restricted,
        &HardeningSettings {
            mode: Mode::Override,
            run_as_user: Some(65532),
            ..HardeningSettings::default()
        },
    );
    let (_, result) = harden_and_apply(&input, &prof);
    assert_eq!(
        result["spec"]["securityContext"],
        json!({"runAsUser": 65532, "runAsNonRoot": true,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        result["spec"]["containers"][0]["securityContext"]["runAsUser"],
        json!(65532)
    );
}

// === the record ===

#[test]
fn the_record_is_compact_and_deterministic() {
    let input = pod_with_annotations(
        json!({SKIP_ANNOTATION: "side/capabilities", "team": "x"}),
        json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}},
               "containers": [container_sc("side", json!({"readOnlyRootFilesystem": false,
                   "capabilities": {"add": ["NET_ADMIN"]}})), container("app")],
               "initContainers": [container("init")]}),
    );
    for mode in MODES {
        let prof = profile(Level::Restricted, mode);
        let (first, first_result) = harden_and_apply(&input, &prof);
        let (second, second_result) = harden_and_apply(&input, &prof);
        let text = record_string(&first_result, "/metadata");
        assert_eq!(text, record_string(&second_result, "/metadata"), "{mode:?}");
        assert_eq!(first_result, second_result, "{mode:?}");
        assert_eq!(first.patch, second.patch, "{mode:?}");
        assert_eq!(minified(text), text, "{mode:?}: not compact");
        let parsed = record(&first_result);
        assert_eq!(parsed["v"], 2);
        assert_eq!(parsed["mode"], mode.as_str());
        assert_eq!(
            first.record.as_ref().map(|(_, json)| json.as_str()),
            Some(text)
        );
        // Written in the record's order: reading sorts the entries, and writing them again
        // gives the same text.
        let read = entries(&parsed);
        assert_eq!(serde_json::to_string(&read).unwrap(), text, "{mode:?}");
        // Sorted: pod first, then initContainers, then containers by name; controls in
        // Control::ALL order within a target.
        let rank = |c: &str, t: &str| {
            let list = match t.split_once('/').map(|(l, _)| l) {
                None => 0,
                Some("initContainers") => 1,
                Some("containers") => 2,
                Some(_) => 3,
            };
            let control = Control::ALL
                .iter()
                .position(|x| x.as_str() == c)
                .expect("known control");
            (list, t.to_owned(), control)
        };
        let change_ranks: Vec<_> = read
            .changes
            .iter()
            .map(|e| rank(&e.control, &e.target))
            .collect();
        let skip_ranks: Vec<_> = read
            .skips
            .iter()
            .map(|e| rank(&e.control, &e.target))
            .collect();
        for (key, ranks) in [("changes", change_ranks), ("skips", skip_ranks)] {
            assert!(!ranks.is_empty(), "{mode:?}: no {key}");
            assert!(
                ranks.windows(2).all(|w| w[0] <= w[1]),
                "{mode:?}: {key} not sorted: {ranks:?}"
            );
        }
    }
}

#[test]
fn reinvocation_hardens_a_new_sidecar_and_merges_the_record() {
    let input = pod(json!({"containers": [container("app")]}));
    let prof = profile(Level::Restricted, Mode::Fill);
    let (_, hardened) = harden_and_apply(&input, &prof);

    // A later webhook injects a sidecar; the API server reinvokes us.
    let mut injected = hardened.clone();
    injected["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(container("sidecar"));
    let (second, result) = harden_and_apply(&injected, &prof);

    let mut expected = without_record(&injected, "/metadata");
    expected["spec"]["containers"][1]["securityContext"] = hardened_sc();
    expected["spec"]["containers"][1]["volumeMounts"] = json!([tmp_mount("pod-hardener-tmp")]);
    assert_eq!(without_record(&result, "/metadata"), expected);
    assert_eq!(
        result["spec"]["containers"][0],
        hardened["spec"]["containers"][0]
    );
    assert_eq!(
        result["spec"]["securityContext"],
        hardened["spec"]["securityContext"]
    );
    assert_eq!(result["spec"]["volumes"], hardened["spec"]["volumes"]);
    assert!(
        second
            .plan
            .changes
            .iter()
            .all(|c| c.target.key() == "containers/sidecar"),
        "{:?}",
        second.plan.changes
    );

    let expected_record = concat!(
        r#"{"v":2,"level":"restricted","mode":"fill","changes":{"#,
        r#""pod":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"},"#,
        r#""tmpVolume":{"emptyDir":{},"name":"pod-hardener-tmp"}},"#,
        r#""containers/app":{"allowPrivilegeEscalation":false,"capabilities":"ALL","#,
        r#""readOnlyRootFilesystem":true,"tmpVolume":{"mountPath":"/tmp","name":"pod-hardener-tmp"}},"#,
        r#""containers/sidecar":{"allowPrivilegeEscalation":false,"capabilities":"ALL","#,
        r#""readOnlyRootFilesystem":true,"tmpVolume":{"mountPath":"/tmp","name":"pod-hardener-tmp"}}"#,
        r#"}}"#
    );
    assert_eq!(record_string(&result, "/metadata"), expected_record);

    // A third invocation changes nothing.
    let third = harden_pod(&result, &prof);
    assert!(third.patch.0.is_empty(), "{:?}", third.patch);
    assert_eq!(apply(&result, &third), result);
}

/// A pod whose `app` container keeps its explicit `readOnlyRootFilesystem: false` (a recorded
/// skip), hardened at restricted in fill mode, and that profile.
fn hardened_with_a_skip() -> (Profile, Value) {
    let input = pod(json!({"containers": [
        container_sc("app", json!({"readOnlyRootFilesystem": false}))]}));
    let prof = profile(Level::Restricted, Mode::Fill);
    let (_, hardened) = harden_and_apply(&input, &prof);
    (prof, hardened)
}

#[test]
fn a_version_1_record_is_merged_into_version_2_on_reinvocation() {
    // A pod hardened by a release that wrote version 1, with a skip, then a sidecar injected and
    // the pod planned again (a rolling upgrade of pod-hardener between the two calls).
    let (prof, hardened) = hardened_with_a_skip();
    let v1 = concat!(
        r#"{"v":1,"level":"restricted","mode":"fill","changes":["#,
        r#"{"control":"runAsNonRoot","target":"pod","value":true},"#,
        r#"{"control":"seccompProfile","target":"pod","value":{"type":"RuntimeDefault"}},"#,
        r#"{"control":"allowPrivilegeEscalation","target":"containers/app","value":false},"#,
        r#"{"control":"capabilities","target":"containers/app","value":"ALL"}],"#,
        r#""skips":[{"control":"readOnlyRootFilesystem","target":"containers/app","#,
        r#""reason":"explicit-value","detail":"readOnlyRootFilesystem: false"}]}"#
    );
    let mut injected = hardened.clone();
    injected["metadata"]["annotations"][RECORD_ANNOTATION] = json!(v1);
    injected["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(container("sidecar"));
    let (_, result) = harden_and_apply(&injected, &prof);
    let expected_record = concat!(
        r#"{"v":2,"level":"restricted","mode":"fill","changes":{"#,
        r#""pod":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"},"#,
        r#""tmpVolume":{"emptyDir":{},"name":"pod-hardener-tmp"}},"#,
        r#""containers/app":{"allowPrivilegeEscalation":false,"capabilities":"ALL"},"#,
        r#""containers/sidecar":{"allowPrivilegeEscalation":false,"capabilities":"ALL","#,
        r#""readOnlyRootFilesystem":true,"tmpVolume":{"mountPath":"/tmp","name":"pod-hardener-tmp"}}},"#,
        r#""skips":{"containers/app":{"readOnlyRootFilesystem":{"reason":"explicit-value","#,
        r#""detail":"readOnlyRootFilesystem: false"}}}}"#
    );
    assert_eq!(record_string(&result, "/metadata"), expected_record);
}

#[test]
fn reinvocation_keeps_earlier_skips_once() {
    let (prof, hardened) = hardened_with_a_skip();
    let mut injected = hardened.clone();
    injected["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(container_sc(
            "sidecar",
            json!({"allowPrivilegeEscalation": true}),
        ));
    let (_, result) = harden_and_apply(&injected, &prof);
    let rec = record(&result);
    assert_eq!(
        all_skips(&rec),
        BTreeSet::from([
            (
                "readOnlyRootFilesystem".to_owned(),
                "containers/app".to_owned(),
                "explicit-value".to_owned()
            ),
            (
                "allowPrivilegeEscalation".to_owned(),
                "containers/sidecar".to_owned(),
                "explicit-value".to_owned()
            ),
        ])
    );
    assert_eq!(entries(&rec).skips.len(), 2, "{rec}");
    let changes = changes(&rec);
    let unique: BTreeSet<&Pair> = changes.iter().collect();
    assert_eq!(unique.len(), changes.len(), "duplicates: {changes:?}");
}

// === workload templates ===

#[test]
fn workload_templates_are_hardened_at_their_pod_spec() {
    struct Case {
        kind: WorkloadKind,
        object: Value,
        spec_pointer: &'static str,
        meta_pointer: &'static str,
    }
    let bare_spec = json!({"containers": [container("app")]});
    let hardened_spec = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "app", "image": "registry.k8s.io/pause",
                        "securityContext": hardened_sc(),
                        "volumeMounts": [tmp_mount("pod-hardener-tmp")]}],
        "volumes": [{"name": "pod-hardener-tmp", "emptyDir": {}}],
    });
    let cases = [
        Case {
            kind: WorkloadKind::Deployment,
            object: json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "d", "annotations": {"deployment": "yes"}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "a"}},
                         "template": {"metadata": {"labels": {"app": "a"}},
                                      "spec": bare_spec.clone()}}}),
            spec_pointer: "/spec/template/spec",
            meta_pointer: "/spec/template/metadata",
        },
        Case {
            kind: WorkloadKind::CronJob,
            object: json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
                "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {
                    "metadata": {"annotations": {"x": "y"}}, "spec": bare_spec.clone()}}}}}),
            spec_pointer: "/spec/jobTemplate/spec/template/spec",
            meta_pointer: "/spec/jobTemplate/spec/template/metadata",
        },
        Case {
            kind: WorkloadKind::PodTemplate,
            object: json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                "template": {"metadata": {}, "spec": bare_spec.clone()}}),
            spec_pointer: "/template/spec",
            meta_pointer: "/template/metadata",
        },
        Case {
            kind: WorkloadKind::Deployment,
            object: json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"selector": {"matchLabels": {"app": "a"}},
                         "template": {"spec": bare_spec.clone()}}}),
            spec_pointer: "/spec/template/spec",
            meta_pointer: "/spec/template/metadata",
        },
    ];
    for case in cases {
        let name = format!("{} at {}", case.kind, case.spec_pointer);
        let prof = profile(Level::Restricted, Mode::Fill);
        let hardening = harden_with(&case.object, case.kind, &prof, Scope::Create);
        let result = apply(&case.object, &hardening);
        let mut expected = case.object.clone();
        *expected.pointer_mut(case.spec_pointer).unwrap() = hardened_spec.clone();
        if case.object.pointer(case.meta_pointer).is_none() {
            // Created by the patch for the record alone; `without_record` leaves it empty.
            let template = expected
                .pointer_mut(case.meta_pointer.trim_end_matches("/metadata"))
                .and_then(Value::as_object_mut)
                .unwrap();
            template.insert("metadata".into(), json!({}));
        }
        assert_eq!(
            without_record(&result, case.meta_pointer),
            expected,
            "{name}"
        );
        let rec: Value = serde_json::from_str(record_string(&result, case.meta_pointer))
            .expect("record is JSON");
        assert_eq!(changes(&rec).len(), 7, "{name}: {rec}");
        // The object's own metadata is left alone.
        assert_eq!(result["metadata"], case.object["metadata"], "{name}");
        // Every patch path lies under the pod template.
        let template = case.meta_pointer.trim_end_matches("/metadata");
        for path in patch_paths(&hardening) {
            assert!(path.starts_with(&format!("{template}/")), "{name}: {path}");
        }
        if case.object.pointer(case.meta_pointer).is_none() {
            let creating: Vec<String> = patch_paths(&hardening)
                .into_iter()
                .filter(|p| p.starts_with(case.meta_pointer))
                .collect();
            assert_eq!(creating, vec![case.meta_pointer.to_owned()], "{name}");
            assert_eq!(
                result
                    .pointer(case.meta_pointer)
                    .map(|m| m.as_object().map(|o| o.len())),
                Some(Some(1)),
                "{name}: metadata has only annotations"
            );
        }
        // Hardening the result again changes nothing.
        let again = harden_with(&result, case.kind, &prof, Scope::Create);
        assert!(again.patch.0.is_empty(), "{name}: {:?}", again.patch);
    }
}

// === JSON Pointer escaping ===

#[test]
fn annotation_keys_are_escaped_in_patch_paths() {
    let input = pod_with_annotations(
        json!({"example.com/owner": "team~a"}),
        json!({"containers": [container("app")]}),
    );
    let (hardening, result) = harden_and_apply(&input, &profile(Level::Restricted, Mode::Fill));
    let paths = patch_paths(&hardening);
    assert!(
        paths.contains(&"/metadata/annotations/pod-hardener.io~1hardened".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .all(|p| !p.contains("pod-hardener.io/hardened")),
        "{paths:?}"
    );
    let serialized = serde_json::to_string(&hardening.patch).unwrap();
    assert!(
        serialized.contains(r#""path":"/metadata/annotations/pod-hardener.io~1hardened""#),
        "{serialized}"
    );
    let annotations = result["metadata"]["annotations"].as_object().unwrap();
    assert_eq!(annotations.len(), 2);
    assert_eq!(annotations["example.com/owner"], "team~a");
    assert!(annotations[RECORD_ANNOTATION].is_string());
}

#[test]
fn run_as_non_root_conflicts_with_a_windows_administrator_user() {
    // The kubelet refuses to start a container whose effective runAsUserName is
    // ContainerAdministrator (compared case-insensitively) under runAsNonRoot: true, and no level
    // forbids that user name: filling runAsNonRoot would make the pod unstartable.
    let admin = |name: &str| json!({"windowsOptions": {"runAsUserName": name}});
    struct Case {
        name: &'static str,
        spec: Value,
        sets: bool,
    }
    let cases = [
        Case {
            name: "pod ContainerAdministrator",
            spec: json!({"os": {"name": "windows"}, "securityContext": admin("ContainerAdministrator"),
                         "containers": [container("app")]}),
            sets: false,
        },
        Case {
            name: "container CONTAINERADMINISTRATOR",
            spec: json!({"os": {"name": "windows"},
                         "containers": [container("app"),
                                        container_sc("admin", admin("CONTAINERADMINISTRATOR"))]}),
            sets: false,
        },
        Case {
            name: "pod ContainerAdministrator overridden by every container",
            spec: json!({"os": {"name": "windows"}, "securityContext": admin("ContainerAdministrator"),
                         "containers": [container_sc("app", admin("ContainerUser"))]}),
            sets: true,
        },
        Case {
            name: "container ContainerAdministrator with its own runAsNonRoot: false",
            spec: json!({"os": {"name": "windows"}, "containers": [container_sc("app",
                json!({"runAsNonRoot": false,
                       "windowsOptions": {"runAsUserName": "ContainerAdministrator"}}))]}),
            sets: true,
        },
        Case {
            name: "ContainerUser",
            spec: json!({"os": {"name": "windows"}, "securityContext": admin("ContainerUser"),
                         "containers": [container("app")]}),
            sets: true,
        },
    ];
    for case in cases {
        let input = pod(case.spec.clone());
        for mode in MODES {
            let (_, result) = harden_and_apply(&input, &profile(Level::Restricted, mode));
            let rec = record(&result);
            if case.sets {
                assert_eq!(
                    result["spec"]["securityContext"]["runAsNonRoot"],
                    json!(true),
                    "{mode:?}, {}",
                    case.name
                );
                assert!(
                    skips_with(&rec, "conflict").is_empty(),
                    "{}: {rec}",
                    case.name
                );
            } else {
                assert_eq!(
                    without_record(&result, "/metadata"),
                    input,
                    "{mode:?}, {}",
                    case.name
                );
                assert_eq!(
                    skips_with(&rec, "conflict"),
                    pairs(&[("runAsNonRoot", "pod")]),
                    "{mode:?}, {}: {rec}",
                    case.name
                );
            }
        }
    }
}

#[test]
fn a_patch_that_does_not_apply_is_reported_not_papered_over() {
    let input = pod(json!({"containers": [container("app")]}));
    let prof = profile(Level::Restricted, Mode::Fill);
    let mut hardening = harden_pod(&input, &prof);
    assert!(hardening.hardened_parts().is_ok());
    // What a bug in the patch builder would produce: an operation on a path the object lacks.
    let bogus = json!({"op": "replace", "path": "/spec/nothing/here", "value": 1});
    hardening
        .patch
        .0
        .push(serde_json::from_value(bogus).expect("a patch operation"));
    let err = hardening
        .hardened_parts()
        .expect_err("the bad patch is reported");
    assert!(
        matches!(
            err,
            HardenError::PatchDidNotApply {
                kind: WorkloadKind::Pod,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("internal error: "), "{err}");
    assert!(hardening.hardened_object().is_err());
}

// === image-aware runAsNonRoot (what the kubelet will do with each image's user) ===

fn image_facts(user: &str, passwd_uid: Option<i64>) -> ImageLookup {
    ImageLookup::Found(ImageFacts {
        digest: format!("sha256:{user}"),
        user: user.to_owned(),
        passwd_uid,
        ..ImageFacts::default()
    })
}

/// The pod's securityContext fields and each container's `runAsNonRoot`/`runAsUser` after
/// hardening, and the runAsNonRoot skips' codes by target.
struct UserOutcome {
    pod: Value,
    containers: Vec<(String, Value, Value)>,
    skips: Vec<(String, String)>,
}

fn user_outcome(object: &Value, hardener: &Hardener) -> UserOutcome {
    let hardening = hardener
        .harden(WorkloadKind::Pod, object, Scope::Create)
        .expect("a pod");
    let result = apply(object, &hardening);
    // Hardening the result again with the same facts changes nothing.
    let again = hardener
        .harden(WorkloadKind::Pod, &result, Scope::Create)
        .expect("a pod");
    assert!(
        again.patch.0.is_empty(),
        "not idempotent: {:?}",
        again.patch
    );
    let sc = &result["spec"]["securityContext"];
    let pod = json!({"runAsNonRoot": sc["runAsNonRoot"], "runAsUser": sc["runAsUser"]});
    let containers = ["initContainers", "containers"]
        .iter()
        .flat_map(|list| result["spec"][list].as_array().cloned().unwrap_or_default())
        .map(|c| {
            let csc = &c["securityContext"];
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                csc["runAsNonRoot"].clone(),
                csc["runAsUser"].clone(),
            )
        })
        .collect();
    let skips = hardening
        .plan
        .skips
        .iter()
        .filter(|s| s.control == Control::RunAsNonRoot)
        .map(|s| (s.target.key(), s.reason.code().to_owned()))
        .collect();
    UserOutcome {
        pod,
        containers,
        skips,
    }
}

#[test]
fn run_as_non_root_follows_each_images_user() {
    let null = Value::Null;
    // (case, init image user, app image user, configured runAsUser, pod runAsUser,
    //  expected pod {runAsNonRoot, runAsUser}, expected (init, app) {runAsNonRoot, runAsUser},
    //  expected skips)
    type Case = (
        &'static str,
        Option<ImageLookup>,
        Option<ImageLookup>,
        Option<i64>,
        Option<i64>,
        (Value, Value),
        [(Value, Value); 2],
        Vec<(&'static str, &'static str)>,
    );
    let cases: Vec<Case> = vec![
        (
            "numeric non-root users: pod-level, as without lookups",
            Some(image_facts("1000", None)),
            Some(image_facts("65532:65532", None)),
            None,
            None,
            (json!(true), null.clone()),
            [(null.clone(), null.clone()), (null.clone(), null.clone())],
            vec![],
        ),
        (
            "a named user found in /etc/passwd becomes the container's runAsUser",
            Some(image_facts("1000", None)),
            Some(image_facts("app:app", Some(1001))),
            None,
            None,
            (json!(true), null.clone()),
            [(null.clone(), null.clone()), (null.clone(), json!(1001))],
            vec![],
        ),
        (
            "a root init container keeps the others hardened, per container",
            Some(image_facts("", None)),
            Some(image_facts("1000", None)),
            None,
            None,
            (null.clone(), null.clone()),
            [(null.clone(), null.clone()), (json!(true), null.clone())],
            vec![("initContainers/init", "image-runs-as-root")],
        ),
        (
            "a name whose UID is 0 is root",
            Some(image_facts("1000", None)),
            Some(image_facts("root", Some(0))),
            None,
            None,
            (null.clone(), null.clone()),
            [(json!(true), null.clone()), (null.clone(), null.clone())],
            vec![("containers/app", "image-runs-as-root")],
        ),
        (
            "a name missing from /etc/passwd cannot be verified",
            Some(image_facts("1000", None)),
            Some(image_facts("nobody", None)),
            None,
            None,
            (null.clone(), null.clone()),
            [(json!(true), null.clone()), (null.clone(), null.clone())],
            vec![("containers/app", "image-user-unverifiable")],
        ),
        (
            "the runAsUser control goes only to the containers that need it",
            Some(image_facts("0", None)),
            Some(image_facts("1000", None)),
            Some(4242),
            None,
            (json!(true), null.clone()),
            [(null.clone(), json!(4242)), (null.clone(), null.clone())],
            vec![],
        ),
        (
            "an image that could not be read is hardened as without lookups, a root one is not",
            Some(ImageLookup::Unavailable("401 Unauthorized".into())),
            Some(image_facts("", None)),
            None,
            None,
            (null.clone(), null.clone()),
            [(json!(true), null.clone()), (null.clone(), null.clone())],
            vec![("containers/app", "image-runs-as-root")],
        ),
        (
            "no lookup for either image: as without lookups",
            None,
            None,
            None,
            None,
            (json!(true), null.clone()),
            [(null.clone(), null.clone()), (null.clone(), null.clone())],
            vec![],
        ),
        (
            "a pod-level runAsUser decides every container",
            Some(image_facts("", None)),
            Some(image_facts("nobody", None)),
            None,
            Some(1000),
            (json!(true), json!(1000)),
            [(null.clone(), null.clone()), (null.clone(), null.clone())],
            vec![],
        ),
    ];
    for (case, init_user, app_user, configured, pod_uid, pod_expected, containers, skips) in cases {
        let mut spec = json!({
            "initContainers": [{"name": "init", "image": "img/init:1"}],
            "containers": [{"name": "app", "image": "img/app:1"}],
        });
        if let Some(uid) = pod_uid {
            spec["securityContext"] = json!({"runAsUser": uid});
        }
        let input = pod(spec);
        let mut catalog = ImageCatalog::new();
        if let Some(l) = init_user {
            catalog.insert("img/init:1", l);
        }
        if let Some(l) = app_user {
            catalog.insert("img/app:1", l);
        }
        let settings = HardeningSettings {
            run_as_user: configured,
            restricted: Control::ALL.into(),
            ..HardeningSettings::default()
        };
        let hardener =
            Hardener::new(Profile::for_level(Level::Restricted, &settings)).with_images(catalog);
        let outcome = user_outcome(&input, &hardener);
        assert_eq!(
            outcome.pod,
            json!({"runAsNonRoot": pod_expected.0, "runAsUser": pod_expected.1}),
            "{case}: pod"
        );
        let expected: Vec<(String, Value, Value)> = ["init", "app"]
            .iter()
            .zip(containers)
            .map(|(n, (nr, u))| ((*n).to_owned(), nr, u))
            .collect();
        assert_eq!(outcome.containers, expected, "{case}: containers");
        let skips: Vec<(String, String)> = skips
            .into_iter()
            .map(|(t, r)| (t.to_owned(), r.to_owned()))
            .collect();
        assert_eq!(outcome.skips, skips, "{case}: skips");
    }
}

#[test]
fn a_root_image_is_still_denied_by_psa_with_the_reason() {
    let input = pod(json!({"containers": [{"name": "app", "image": "img/root:1"}]}));
    let mut catalog = ImageCatalog::new();
    catalog.insert("img/root:1", image_facts("", None));
    let hardener = Hardener::new(profile(Level::Restricted, Mode::Fill)).with_images(catalog);
    let hardening = hardener
        .harden(WorkloadKind::Pod, &input, Scope::Create)
        .unwrap();
    let failing = hardening.still_failing(crate::pss::LevelVersion::restricted_latest());
    let checks: Vec<_> = failing.iter().map(|v| v.check).collect();
    assert_eq!(checks, [crate::pss::CheckId::RunAsNonRoot]);
    let hardened = hardening.hardened_parts().unwrap();
    let exact = crate::pss::evaluate(
        &hardened.metadata,
        &hardened.spec,
        crate::pss::LevelVersion::restricted_latest(),
    );
    assert_eq!(exact.iter().map(|v| v.check).collect::<Vec<_>>(), checks);
    let skip = &hardening.plan.skips[0];
    assert_eq!(
        skip.reason.detail(),
        Some("image img/root:1 sets no user, so it runs as root")
    );
}

#[test]
fn the_record_says_what_was_learned_about_each_image() {
    let input = pod(json!({
        "initContainers": [{"name": "init", "image": "img/init:1"}],
        "containers": [{"name": "app", "image": "img/app:1"},
                       {"name": "own-uid", "image": "img/app:1", "securityContext": {"runAsUser": 7}}],
    }));
    let mut catalog = ImageCatalog::new();
    catalog.insert(
        "img/init:1",
        ImageLookup::Unavailable("registry timed out".into()),
    );
    catalog.insert(
        "img/app:1",
        ImageLookup::Found(ImageFacts {
            digest: "sha256:abc".into(),
            user: "app".into(),
            passwd_uid: Some(1001),
            ..ImageFacts::default()
        }),
    );
    let hardener = Hardener::new(profile(Level::Restricted, Mode::Fill)).with_images(catalog);
    let hardening = hardener
        .harden(WorkloadKind::Pod, &input, Scope::Create)
        .unwrap();
    let result = apply(&input, &hardening);
    let record: Value = serde_json::from_str(record_string(&result, "/metadata")).unwrap();
    // The container with its own runAsUser is not decided by its image, so not listed.
    assert_eq!(
        record["images"],
        json!([
            {"target": "initContainers/init", "image": "img/init:1", "unavailable": "registry timed out"},
            {"target": "containers/app", "image": "img/app:1", "digest": "sha256:abc", "user": "app", "uid": 1001},
        ])
    );
    assert!(
        changes(&record).contains(&("runAsUser".into(), "containers/app".into())),
        "{record}"
    );
    // The same facts give the same bytes.
    let again = hardener
        .harden(WorkloadKind::Pod, &input, Scope::Create)
        .unwrap();
    assert_eq!(again.record.map(|r| r.1), hardening.record.map(|r| r.1));
}
