//! Property tests of the hardening contract over generated Pods: the patch applies, hardening is
//! idempotent and deterministic, fill mode never changes a value that was set, the result is
//! never API-invalid (`allowPrivilegeEscalation: false` beside `privileged: true` or an added
//! `SYS_ADMIN`), and Windows pods only ever gain `runAsNonRoot` and the record.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use json_patch::Patch;
use pod_hardener::harden::{self, HardeningSettings, Mode, Profile, RECORD_ANNOTATION, Scope};
use pod_hardener::pss::Level;
use pod_hardener::workload::WorkloadKind;
use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};

// === generators ===

/// A field that is absent, `null`, or set.
#[derive(Debug, Clone)]
enum Slot {
    Absent,
    Null,
    Set(Value),
}

fn slot(values: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Slot> {
    prop_oneof![
        3 => Just(Slot::Absent),
        1 => Just(Slot::Null),
        3 => values.prop_map(Slot::Set),
    ]
    .boxed()
}

fn put(map: &mut Map<String, Value>, key: &str, slot: Slot) {
    match slot {
        Slot::Absent => {}
        Slot::Null => {
            map.insert(key.to_owned(), Value::Null);
        }
        Slot::Set(v) => {
            map.insert(key.to_owned(), v);
        }
    }
}

fn boolean() -> BoxedStrategy<Value> {
    any::<bool>().prop_map(Value::Bool).boxed()
}

fn uid() -> BoxedStrategy<Value> {
    prop_oneof![Just(json!(0)), Just(json!(1000))].boxed()
}

fn capability_list() -> BoxedStrategy<Value> {
    let names = vec![
        "ALL",
        "NET_RAW",
        "SYS_ADMIN",
        "CAP_SYS_ADMIN",
        "NET_BIND_SERVICE",
    ];
    subsequence(names, 0..=3)
        .prop_shuffle()
        .prop_map(|v| json!(v))
        .boxed()
}

fn capabilities() -> BoxedStrategy<Value> {
    (slot(capability_list()), slot(capability_list()))
        .prop_map(|(add, drop)| {
            let mut m = Map::new();
            put(&mut m, "add", add);
            put(&mut m, "drop", drop);
            Value::Object(m)
        })
        .boxed()
}

fn seccomp_profile() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!({"type": "RuntimeDefault"})),
        Just(json!({"type": "Unconfined"})),
        Just(json!({"type": "Localhost", "localhostProfile": "profiles/audit.json"})),
    ]
    .boxed()
}

fn windows_options() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!({"runAsUserName": "ContainerUser"})),
        Just(json!({"runAsUserName": "ContainerAdministrator"})),
        Just(json!({"runAsUserName": "containeradministrator"})),
    ]
    .boxed()
}

fn proc_mount() -> BoxedStrategy<Value> {
    prop_oneof![Just(json!("Default")), Just(json!("Unmasked"))].boxed()
}

fn container_security_context() -> BoxedStrategy<Slot> {
    let fields = (
        slot(boolean()),
        slot(boolean()),
        slot(boolean()),
        slot(boolean()),
        slot(uid()),
        slot(capabilities()),
        slot(seccomp_profile()),
        slot(proc_mount()),
        slot(windows_options()),
    );
    slot(fields.prop_map(
        |(escalation, privileged, read_only, non_root, user, caps, seccomp, proc, windows)| {
            let mut m = Map::new();
            put(&mut m, "allowPrivilegeEscalation", escalation);
            put(&mut m, "privileged", privileged);
            put(&mut m, "readOnlyRootFilesystem", read_only);
            put(&mut m, "runAsNonRoot", non_root);
            put(&mut m, "runAsUser", user);
            put(&mut m, "capabilities", caps);
            put(&mut m, "seccompProfile", seccomp);
            put(&mut m, "procMount", proc);
            put(&mut m, "windowsOptions", windows);
            Value::Object(m)
        },
    ))
}

fn volume_mounts() -> BoxedStrategy<Slot> {
    let tmp = json!({"name": "scratch", "mountPath": "/tmp"});
    let tmp_slash = json!({"name": "scratch", "mountPath": "/tmp/"});
    let data = json!({"name": "data", "mountPath": "/data"});
    slot(prop_oneof![
        Just(json!([])),
        Just(json!([tmp.clone()])),
        Just(json!([tmp_slash])),
        Just(json!([data.clone()])),
        Just(json!([data, tmp])),
    ])
}

/// A container without its name (given by position).
fn container() -> BoxedStrategy<Map<String, Value>> {
    (container_security_context(), volume_mounts())
        .prop_map(|(sc, mounts)| {
            let mut c = Map::new();
            c.insert("image".into(), json!("registry.k8s.io/pause"));
            put(&mut c, "securityContext", sc);
            put(&mut c, "volumeMounts", mounts);
            c
        })
        .boxed()
}

fn pod_security_context() -> BoxedStrategy<Slot> {
    slot(
        (
            slot(boolean()),
            slot(uid()),
            slot(seccomp_profile()),
            slot(windows_options()),
        )
            .prop_map(|(non_root, user, seccomp, windows)| {
                let mut m = Map::new();
                put(&mut m, "runAsNonRoot", non_root);
                put(&mut m, "runAsUser", user);
                put(&mut m, "seccompProfile", seccomp);
                put(&mut m, "windowsOptions", windows);
                Value::Object(m)
            }),
    )
}

fn volumes() -> BoxedStrategy<Slot> {
    let taken = json!({"name": "pod-hardener-tmp", "configMap": {"name": "cm"}});
    let ours = json!({"name": "pod-hardener-tmp", "emptyDir": {}});
    let data = json!({"name": "data", "emptyDir": {}});
    let scratch = json!({"name": "scratch", "emptyDir": {}});
    slot(prop_oneof![
        Just(json!([])),
        Just(json!([taken.clone()])),
        Just(json!([data.clone(), scratch.clone()])),
        Just(json!([taken, data.clone(), scratch])),
        Just(json!([data, ours])),
    ])
}

fn skip_annotation() -> BoxedStrategy<Option<&'static str>> {
    prop::option::weighted(
        0.3,
        prop_oneof![
            Just("readOnlyRootFilesystem"),
            Just("c0/capabilities"),
            Just("c0/all, i0/readOnlyRootFilesystem"),
            Just("runAsNonRoot, bogus"),
            Just("tmpVolume"),
            Just("e0/allowPrivilegeEscalation, c1/tmpVolume"),
            Just("seccompProfile, c0/seccompProfile"),
            Just("all"),
        ],
    )
    .boxed()
}

fn named(prefix: &str, containers: Vec<Map<String, Value>>) -> Value {
    Value::Array(
        containers
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                c.insert("name".into(), json!(format!("{prefix}{i}")));
                Value::Object(c)
            })
            .collect(),
    )
}

/// Pods; `windows` forces (or forbids) `os.name: windows`, `None` picks at random.
fn pod(windows: Option<bool>) -> BoxedStrategy<Value> {
    let windows = match windows {
        Some(w) => Just(w).boxed(),
        None => proptest::bool::weighted(0.2).boxed(),
    };
    (
        prop::collection::vec(container(), 1..=4),
        prop::collection::vec(container(), 0..=2),
        prop::collection::vec(container(), 0..=1),
        pod_security_context(),
        windows,
        volumes(),
        skip_annotation(),
    )
        .prop_map(
            |(containers, init, ephemeral, sc, windows, volumes, skip)| {
                let mut spec = Map::new();
                spec.insert("containers".into(), named("c", containers));
                if !init.is_empty() {
                    spec.insert("initContainers".into(), named("i", init));
                }
                if !ephemeral.is_empty() {
                    spec.insert("ephemeralContainers".into(), named("e", ephemeral));
                }
                put(&mut spec, "securityContext", sc);
                if windows {
                    spec.insert("os".into(), json!({"name": "windows"}));
                }
                put(&mut spec, "volumes", volumes);
                let mut metadata = json!({"name": "p", "namespace": "ns"});
                if let Some(skip) = skip {
                    metadata["annotations"] = json!({harden::SKIP_ANNOTATION: skip});
                }
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                       "spec": Value::Object(spec)})
            },
        )
        .boxed()
}

// === hardening ===

fn profiles() -> Vec<Profile> {
    let with = |level, mode| {
        Profile::for_level(
            level,
            &HardeningSettings {
                mode,
                ..HardeningSettings::default()
            },
        )
    };
    vec![
        with(Level::Restricted, Mode::Fill),
        with(Level::Restricted, Mode::Override),
        with(Level::Baseline, Mode::Fill),
        with(Level::Baseline, Mode::Override),
        // The optional controls configured.
        Profile::for_level(
            Level::Restricted,
            &HardeningSettings {
                tmp_size_limit: Some("64Mi".into()),
                run_as_user: Some(1000),
                run_as_group: Some(3000),
                fs_group: Some(2000),
                ..HardeningSettings::default()
            },
        ),
    ]
}

fn label(profile: &Profile) -> String {
    format!(
        "{} {} (runAsUser {:?})",
        profile.level.as_str(),
        profile.mode.as_str(),
        profile.run_as_user
    )
}

fn harden_pod<'o>(object: &'o Value, profile: &Profile) -> harden::Hardening<'o> {
    harden::Hardener::new(profile.clone())
        .harden(WorkloadKind::Pod, object, Scope::Create)
        .expect("the pod has a spec")
}

fn apply(object: &Value, patch: &Patch) -> Result<Value, TestCaseError> {
    let mut out = object.clone();
    json_patch::patch(&mut out, &patch.0).map_err(|e| {
        TestCaseError::fail(format!("patch {patch:?} does not apply to {object}: {e}"))
    })?;
    Ok(out)
}

fn record_annotation(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(RECORD_ANNOTATION))
        .and_then(Value::as_str)
}

/// Every container of a pod object, as (list, index, container).
fn containers(pod: &Value) -> Vec<(&'static str, usize, &Value)> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(|list| {
            pod["spec"][list]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(move |(i, c)| (list, i, c))
        })
        .collect()
}

/// Checks that every non-null leaf of `original` keeps its value in `result`, arrays only
/// growing (existing elements stay in place). Subtrees under a key in `ignored` are not checked.
fn leaves_kept(original: &Value, result: &Value, at: &str, ignored: &[&str]) -> Result<(), String> {
    match original {
        Value::Null => Ok(()),
        Value::Object(map) => {
            let Some(out) = result.as_object() else {
                return Err(format!("{at}: object became {result}"));
            };
            for (k, v) in map {
                if v.is_null() || ignored.contains(&k.as_str()) {
                    continue;
                }
                let here = format!("{at}/{k}");
                let Some(r) = out.get(k) else {
                    return Err(format!("{here}: {v} was removed"));
                };
                leaves_kept(v, r, &here, ignored)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            let Some(out) = result.as_array() else {
                return Err(format!("{at}: array became {result}"));
            };
            if out.len() < items.len() {
                return Err(format!("{at}: array shrank from {original} to {result}"));
            }
            for (i, (v, r)) in items.iter().zip(out).enumerate() {
                leaves_kept(v, r, &format!("{at}/{i}"), ignored)?;
            }
            Ok(())
        }
        scalar => {
            if scalar == result {
                Ok(())
            } else {
                Err(format!("{at}: {scalar} became {result}"))
            }
        }
    }
}

/// `value` without `runAsNonRoot` keys, nulls and (then) empty objects.
fn normalized_without_run_as_non_root(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(map) => {
            let out: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| k.as_str() != "runAsNonRoot")
                .filter_map(|(k, v)| Some((k.clone(), normalized_without_run_as_non_root(v)?)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .map(|v| normalized_without_run_as_non_root(v).unwrap_or(Value::Null))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

fn without_record(object: &Value) -> Value {
    let mut out = object.clone();
    if let Some(a) = out
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(RECORD_ANNOTATION);
    }
    out
}

fn adds_sys_admin(sc: &Value) -> bool {
    sc["capabilities"]["add"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN")
}

/// A container's effective `securityContext` field (its own, else the pod's), ignoring nulls.
fn effective<'v>(pod: &'v Value, container: &'v Value, pointer: &str) -> Option<&'v Value> {
    let own = |v: &'v Value| v.pointer(pointer).filter(|x| !x.is_null());
    own(&container["securityContext"]).or_else(|| own(&pod["spec"]["securityContext"]))
}

/// Whether the kubelet regards the container's effective user as root.
fn runs_as_root(pod: &Value, container: &Value) -> bool {
    effective(pod, container, "/runAsUser") == Some(&json!(0))
        || effective(pod, container, "/windowsOptions/runAsUserName")
            .and_then(Value::as_str)
            .is_some_and(|u| u.eq_ignore_ascii_case("ContainerAdministrator"))
}

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    }
}

proptest! {
    #![proptest_config(config())]

    /// (a) The patch applies; (b) hardening the result again changes nothing and keeps the
    /// record byte-identical; the same input always yields the same patch.
    #[test]
    fn patches_apply_and_hardening_is_idempotent(input in pod(None)) {
        for profile in profiles() {
            let name = label(&profile);
            let first = harden_pod(&input, &profile);
            let again = harden_pod(&input, &profile);
            prop_assert_eq!(&first.patch, &again.patch, "{}: not deterministic", name);
            // The record as written reads back as the record built (nothing lost by grouping
            // entries by target and control).
            if let Some((record, json)) = &first.record {
                let read: Result<harden::Record, _> = serde_json::from_str(json);
                prop_assert_eq!(read.as_ref().ok(), Some(record), "{}: {}", name, json);
            }
            let hardened = apply(&input, &first.patch)?;

            let second = harden_pod(&hardened, &profile);
            prop_assert!(
                second.patch.0.is_empty(),
                "{}: second pass patched {:?}\ninput: {}\nhardened: {}",
                name, second.patch, input, hardened
            );
            prop_assert!(second.plan.changes.is_empty(), "{}: {:?}", name, second.plan.changes);
            let twice = apply(&hardened, &second.patch)?;
            prop_assert_eq!(&twice, &hardened, "{}", name);
            prop_assert_eq!(record_annotation(&twice), record_annotation(&hardened), "{}", name);
            // A pod that changed carries a record of it.
            if !first.plan.changes.is_empty() {
                prop_assert!(record_annotation(&hardened).is_some(), "{}", name);
            }
        }
    }

    /// (c) Fill mode never changes a value that was set: every non-null leaf of the original
    /// object keeps its value and arrays only grow. Override mode only ever rewrites
    /// `securityContext` fields.
    #[test]
    fn fill_never_changes_a_set_value(input in pod(None)) {
        for profile in profiles() {
            let name = label(&profile);
            let hardened = apply(&input, &harden_pod(&input, &profile).patch)?;
            let ignored: &[&str] = match profile.mode {
                Mode::Fill => &[],
                Mode::Override => &["securityContext"],
            };
            if let Err(e) = leaves_kept(&input, &hardened, "", ignored) {
                return Err(TestCaseError::fail(format!(
                    "{name}: {e}\ninput: {input}\nhardened: {hardened}"
                )));
            }
        }
    }

    /// (d) No container ends up with `allowPrivilegeEscalation: false` beside `privileged: true`
    /// or an added `SYS_ADMIN`/`CAP_SYS_ADMIN` unless it had it before; a container that lost its
    /// SYS_ADMIN to override mode is recorded as overridden.
    #[test]
    fn never_api_invalid_allow_privilege_escalation(input in pod(None)) {
        for profile in profiles() {
            let name = label(&profile);
            let hardening = harden_pod(&input, &profile);
            let hardened = apply(&input, &hardening.patch)?;
            let before = containers(&input);
            for (list, i, c) in containers(&hardened) {
                let sc = &c["securityContext"];
                let original = &before
                    .iter()
                    .find(|(l, j, _)| *l == list && *j == i)
                    .expect("containers are never added")
                    .2["securityContext"];
                let newly_false = sc["allowPrivilegeEscalation"] == json!(false)
                    && original["allowPrivilegeEscalation"] != json!(false);
                if !newly_false {
                    continue;
                }
                prop_assert!(
                    sc["privileged"] != json!(true) && !adds_sys_admin(sc),
                    "{}: {}/{} is API-invalid: {}\ninput: {}", name, list, i, sc, input
                );
                prop_assert_eq!(&sc["privileged"], &original["privileged"]);
                if adds_sys_admin(original) {
                    let target = format!("{list}/{}", c["name"].as_str().unwrap_or_default());
                    prop_assert!(
                        hardening.plan.changes.iter().any(|ch| {
                            ch.control == harden::Control::Capabilities
                                && ch.target.key() == target
                                && ch.overrides.is_some()
                        }),
                        "{}: {} lost SYS_ADMIN without a recorded override", name, target
                    );
                }
            }
        }
    }

    /// (e) A Windows pod never gains any field other than `runAsNonRoot` (only ever `true`) and
    /// the record annotation.
    #[test]
    fn windows_pods_only_gain_run_as_non_root(input in pod(Some(true))) {
        for profile in profiles() {
            let name = label(&profile);
            let hardening = harden_pod(&input, &profile);
            let hardened = apply(&input, &hardening.patch)?;
            prop_assert_eq!(
                normalized_without_run_as_non_root(&without_record(&hardened)),
                normalized_without_run_as_non_root(&input),
                "{}: input {}\nhardened {}", name, input, hardened
            );
            let mut places = vec![("pod".to_owned(), &input["spec"], &hardened["spec"])];
            let before = containers(&input);
            for ((list, i, c), (_, _, h)) in before.iter().zip(containers(&hardened)) {
                places.push((format!("{list}/{i}"), *c, h));
            }
            for (place, original, now) in places {
                let was = &original["securityContext"]["runAsNonRoot"];
                let is = &now["securityContext"]["runAsNonRoot"];
                prop_assert!(
                    is == was || *is == json!(true),
                    "{}: {} runAsNonRoot {} became {}", name, place, was, is
                );
                if profile.mode == Mode::Fill && place != "pod" {
                    prop_assert_eq!(is, was, "{}: {} gained runAsNonRoot in fill mode", name, place);
                }
            }
            for change in &hardening.plan.changes {
                prop_assert_eq!(change.control, harden::Control::RunAsNonRoot, "{}", name);
            }
        }
    }

    /// (f) Fill mode never makes a pod unstartable: no container newly gets an effective
    /// `runAsNonRoot: true` while its effective user (`runAsUser: 0`, or the Windows
    /// `ContainerAdministrator`) is root; such pods get a `conflict` skip instead.
    #[test]
    fn fill_never_makes_root_containers_unstartable(input in pod(None)) {
        for profile in profiles().into_iter().filter(|p| p.mode == Mode::Fill) {
            let name = label(&profile);
            let hardening = harden_pod(&input, &profile);
            let hardened = apply(&input, &hardening.patch)?;
            for ((list, i, before), (_, _, after)) in
                containers(&input).into_iter().zip(containers(&hardened))
            {
                let was = effective(&input, before, "/runAsNonRoot") == Some(&json!(true));
                let is = effective(&hardened, after, "/runAsNonRoot") == Some(&json!(true));
                prop_assert!(
                    was || !is || !runs_as_root(&hardened, after),
                    "{}: {}/{} runs as root under a filled runAsNonRoot\ninput: {}\nhardened: {}",
                    name, list, i, input, hardened
                );
            }
        }
    }
}
