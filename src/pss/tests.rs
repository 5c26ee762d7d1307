//! Exact-string tests of the evaluator for what PSA's golden fixtures do not pin down.
//!
//! The conformance suite (`tests/psa_conformance.rs`) only checks that a denial contains a
//! substring. These tables assert the full reason and detail of each check, byte for byte, as
//! the conformance reference (`pod-security-standards.md` §3 and §4) gives them, for the gaps
//! listed in its §9: AppArmor fields, `container_engine_t`, ephemeral containers, the `hostUsers: false` and
//! Windows relaxations, every probe and lifecycle handler, the sysctl lists at each breakpoint,
//! pluralization and sorting, and names that need (or must not get) escaping.
//!
//! Every expected string here was written from the reference, not from the evaluator's output.

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::{
    CheckId, Level, LevelVersion, Version, Violation, aggregate_details, aggregate_reasons,
    evaluate, violates_message, would_violate_message,
};

const B: Level = Level::Baseline;
const R: Level = Level::Restricted;
const LATEST: Version = Version::Latest;

const fn v1(minor: u32) -> Version {
    Version::V1(minor)
}

// ------------------------------------------------------------------------------------------------
// Pod builders
// ------------------------------------------------------------------------------------------------

const IMAGE: &str = "registry.k8s.io/pause";

/// A container with no securityContext.
fn ctr(name: &str) -> Value {
    json!({ "name": name, "image": IMAGE })
}

/// A container with the given securityContext.
fn ctr_sc(name: &str, security_context: Value) -> Value {
    json!({ "name": name, "image": IMAGE, "securityContext": security_context })
}

/// A container with the given extra fields merged in (ports, probes, lifecycle, ...).
fn ctr_with(name: &str, extra: Value) -> Value {
    let mut c = ctr(name);
    let (Value::Object(target), Value::Object(source)) = (&mut c, extra) else {
        panic!("ctr_with needs an object");
    };
    target.extend(source);
    c
}

/// A container that satisfies every restricted per-container check.
fn good(name: &str) -> Value {
    ctr_sc(name, restricted_container_sc())
}

fn restricted_container_sc() -> Value {
    json!({ "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } })
}

fn restricted_pod_sc() -> Value {
    json!({ "runAsNonRoot": true, "seccompProfile": { "type": "RuntimeDefault" } })
}

/// A spec with only regular containers.
fn spec_of(containers: Vec<Value>) -> Value {
    json!({ "containers": containers })
}

/// A spec with init containers, containers and ephemeral containers.
fn spec_lists(init: Vec<Value>, containers: Vec<Value>, ephemeral: Vec<Value>) -> Value {
    json!({ "initContainers": init, "containers": containers, "ephemeralContainers": ephemeral })
}

/// Sets `key` on a spec object.
fn with(mut spec: Value, key: &str, value: Value) -> Value {
    spec.as_object_mut()
        .expect("spec is an object")
        .insert(key.to_owned(), value);
    spec
}

/// A spec with a pod-level securityContext.
fn with_pod_sc(spec: Value, security_context: Value) -> Value {
    with(spec, "securityContext", security_context)
}

fn parse(annotations: &Value, spec: &Value) -> (ObjectMeta, PodSpec) {
    let meta: ObjectMeta =
        serde_json::from_value(json!({ "name": "p", "annotations": annotations })).unwrap();
    let spec: PodSpec = serde_json::from_value(spec.clone())
        .unwrap_or_else(|e| panic!("bad test PodSpec {spec}: {e}"));
    (meta, spec)
}

fn eval_annotated(
    annotations: &Value,
    spec: &Value,
    level: Level,
    version: Version,
) -> Vec<Violation> {
    let (meta, spec) = parse(annotations, spec);
    evaluate(&meta, &spec, LevelVersion::new(level, version))
}

fn eval(spec: &Value, level: Level, version: Version) -> Vec<Violation> {
    eval_annotated(&json!({}), spec, level, version)
}

fn violation(check: CheckId, reason: &'static str, detail: &str) -> Violation {
    Violation {
        check,
        reason,
        detail: detail.to_owned(),
    }
}

// ------------------------------------------------------------------------------------------------
// Table runner
// ------------------------------------------------------------------------------------------------

/// One row: evaluate `spec` (and `annotations`) at `level:version`, then compare what `check`
/// reports with `expected` (`None` = the check does not fail or does not run).
struct Case {
    name: &'static str,
    annotations: Value,
    spec: Value,
    level: Level,
    version: Version,
    check: CheckId,
    expected: Option<(&'static str, String)>,
}

struct CaseBuilder(Case);

fn case(
    name: &'static str,
    level: Level,
    version: Version,
    check: CheckId,
    spec: Value,
) -> CaseBuilder {
    CaseBuilder(Case {
        name,
        annotations: json!({}),
        spec,
        level,
        version,
        check,
        expected: None,
    })
}

impl CaseBuilder {
    fn annotated(mut self, annotations: Value) -> Self {
        self.0.annotations = annotations;
        self
    }

    fn fails(mut self, reason: &'static str, detail: impl Into<String>) -> Case {
        self.0.expected = Some((reason, detail.into()));
        self.0
    }

    fn passes(self) -> Case {
        self.0
    }
}

fn run(cases: Vec<Case>) {
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for c in &cases {
        let lv = LevelVersion::new(c.level, c.version);
        let violations = eval_annotated(&c.annotations, &c.spec, c.level, c.version);
        let for_check: Vec<&Violation> = violations.iter().filter(|v| v.check == c.check).collect();
        assert!(
            for_check.len() <= 1,
            "{}: {} reported twice",
            c.name,
            c.check
        );
        let actual = for_check.first().map(|v| (v.reason, v.detail.clone()));
        if actual != c.expected {
            failures.push(format!(
                "case {:?} at {lv}, check {}:\n    expected {:?}\n    actual   {:?}",
                c.name, c.check, c.expected, actual
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ------------------------------------------------------------------------------------------------
// appArmorProfile (§3.2)
// ------------------------------------------------------------------------------------------------

const AA: &str = "container.apparmor.security.beta.kubernetes.io/";

fn aa_key(suffix: &str) -> String {
    format!("{AA}{suffix}")
}

#[test]
fn app_armor_profile_fields_and_annotations() {
    use CheckId::AppArmorProfile as C;
    let unconfined = json!({ "appArmorProfile": { "type": "Unconfined" } });
    let one = "forbidden AppArmor profile";
    let many = "forbidden AppArmor profiles";
    run(vec![
        case(
            "pod-level Unconfined field",
            B,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr("c")]), unconfined.clone()),
        )
        .fails(one, r#"pod must not set AppArmor profile type to "Unconfined""#),
        case(
            "container-level Unconfined field",
            B,
            LATEST,
            C,
            spec_of(vec![ctr("bar"), ctr_sc("foo", unconfined.clone())]),
        )
        .fails(one, r#"container "foo" must not set AppArmor profile type to "Unconfined""#),
        case(
            "fields are checked at v1.0 too",
            B,
            v1(0),
            C,
            with_pod_sc(spec_of(vec![ctr("c")]), unconfined.clone()),
        )
        .fails(one, r#"pod must not set AppArmor profile type to "Unconfined""#),
        case(
            "fields are checked at restricted",
            R,
            LATEST,
            C,
            spec_of(vec![ctr_sc("c", unconfined.clone())]),
        )
        .fails(one, r#"container "c" must not set AppArmor profile type to "Unconfined""#),
        case(
            "RuntimeDefault and Localhost are allowed everywhere",
            B,
            LATEST,
            C,
            with_pod_sc(
                spec_lists(
                    vec![ctr_sc("i", json!({ "appArmorProfile": { "type": "RuntimeDefault" } }))],
                    vec![ctr_sc(
                        "c",
                        json!({ "appArmorProfile": { "type": "Localhost", "localhostProfile": "unconfined" } }),
                    )],
                    vec![ctr_sc("e", json!({ "appArmorProfile": { "type": "RuntimeDefault" } }))],
                ),
                json!({ "appArmorProfile": { "type": "Localhost", "localhostProfile": "x" } }),
            ),
        )
        .passes(),
        case(
            "pod and container with the same bad type: one value, singular reason",
            B,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr_sc("c", unconfined.clone())]), unconfined.clone()),
        )
        .fails(one, r#"pod and container "c" must not set AppArmor profile type to "Unconfined""#),
        case(
            "pod and all three container lists, two bad types sorted, plural",
            B,
            LATEST,
            C,
            with_pod_sc(
                spec_lists(
                    vec![ctr_sc("z-init", unconfined.clone())],
                    vec![ctr("ok"), ctr_sc("m", json!({ "appArmorProfile": { "type": "Bogus" } }))],
                    vec![ctr_sc("a-eph", unconfined.clone())],
                ),
                unconfined.clone(),
            ),
        )
        .fails(
            many,
            r#"pod and containers "z-init", "m", "a-eph" must not set AppArmor profile type to "Bogus", "Unconfined""#,
        ),
        case(
            "bad annotations only: the reference example with nested quotes",
            B,
            LATEST,
            C,
            spec_of(vec![ctr("c")]),
        )
        .annotated(json!({
            aa_key("f"): "unknown",
            aa_key(""): "bogus",
            aa_key("e"): "unconfined",
            aa_key("c"): "runtime/default",
        }))
        .fails(
            many,
            r#"annotations must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/="bogus"", "container.apparmor.security.beta.kubernetes.io/e="unconfined"", "container.apparmor.security.beta.kubernetes.io/f="unknown"""#,
        ),
        case(
            "one annotation for a container that does not exist",
            B,
            v1(0),
            C,
            spec_of(vec![ctr("c")]),
        )
        .annotated(json!({ aa_key("ghost"): "unconfined" }))
        .fails(
            one,
            r#"annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/ghost="unconfined"""#,
        ),
        case("allowed annotation values", B, LATEST, C, spec_of(vec![ctr("a")]))
            .annotated(json!({
                aa_key("a"): "runtime/default",
                aa_key("b"): "localhost/my-profile",
                aa_key("c"): "",
                aa_key("d"): "localhost/",
                "apparmor.security.beta.kubernetes.io/other": "unconfined",
            }))
            .passes(),
        case(
            "fields and annotations together: types first, then annotations",
            B,
            LATEST,
            C,
            spec_of(vec![ctr("a"), ctr_sc("c", unconfined.clone())]),
        )
        .annotated(json!({ aa_key("c"): "unconfined" }))
        .fails(
            many,
            r#"container "c" and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/c="unconfined"""#,
        ),
        case(
            "pod, containers and annotations all bad",
            B,
            LATEST,
            C,
            with_pod_sc(
                spec_of(vec![ctr_sc("b", unconfined.clone()), ctr_sc("a", unconfined.clone())]),
                unconfined.clone(),
            ),
        )
        .annotated(json!({ aa_key("b"): "unconfined", aa_key("a"): "Unconfined" }))
        .fails(
            many,
            r#"pod and containers "b", "a" and annotations must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/a="Unconfined"", "container.apparmor.security.beta.kubernetes.io/b="unconfined"""#,
        ),
        case(
            "annotation value is Go-%q-escaped, the key is not",
            B,
            LATEST,
            C,
            spec_of(vec![ctr("c")]),
        )
        .annotated(json!({ aa_key("ü\"x"): "un\"conf\\ïned\t\u{1}\u{200b}" }))
        .fails(
            one,
            r#"annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/ü"x="un\"conf\\ïned\t\x01\u200b"""#,
        ),
    ]);
}

// ------------------------------------------------------------------------------------------------
// seLinuxOptions (§3.14)
// ------------------------------------------------------------------------------------------------

#[test]
fn se_linux_options() {
    use CheckId::SeLinuxOptions as C;
    let se = |opts: Value| json!({ "seLinuxOptions": opts });
    let engine = se(json!({ "type": "container_engine_t" }));
    let r = "seLinuxOptions";
    run(vec![
        case(
            "container_engine_t is allowed at v1.31",
            B,
            v1(31),
            C,
            with_pod_sc(spec_of(vec![ctr_sc("c", engine.clone())]), engine.clone()),
        )
        .passes(),
        case(
            "container_engine_t is allowed at latest",
            R,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr_sc("c", engine.clone())]), engine.clone()),
        )
        .passes(),
        case(
            "container_engine_t on the pod is denied at v1.30",
            B,
            v1(30),
            C,
            with_pod_sc(spec_of(vec![ctr("c")]), engine.clone()),
        )
        .fails(r, r#"pod set forbidden securityContext.seLinuxOptions: type "container_engine_t""#),
        case(
            "container_engine_t on a container is denied at restricted v1.30",
            R,
            v1(30),
            C,
            spec_of(vec![ctr_sc("c", engine.clone())]),
        )
        .fails(
            r,
            r#"container "c" set forbidden securityContext.seLinuxOptions: type "container_engine_t""#,
        ),
        case(
            "the v1.0 types, an empty type and any level are allowed",
            B,
            v1(0),
            C,
            with_pod_sc(
                spec_lists(
                    vec![ctr_sc("i", se(json!({ "type": "container_init_t", "level": "s0:c1,c2" })))],
                    vec![ctr_sc("c", se(json!({ "type": "container_t" })))],
                    vec![ctr_sc("e", se(json!({ "type": "container_kvm_t" })))],
                ),
                se(json!({ "type": "", "level": "s0" })),
            ),
        )
        .passes(),
        case(
            "user only",
            B,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr("c")]), se(json!({ "user": "system_u" }))),
        )
        .fails(r, "pod set forbidden securityContext.seLinuxOptions: user may not be set"),
        case(
            "role only, on a container",
            B,
            LATEST,
            C,
            spec_of(vec![ctr_sc("c", se(json!({ "role": "system_r", "type": "container_t" })))]),
        )
        .fails(r, r#"container "c" set forbidden securityContext.seLinuxOptions: role may not be set"#),
        case(
            "empty user and role are not set",
            B,
            LATEST,
            C,
            spec_of(vec![ctr_sc("c", se(json!({ "role": "", "user": "" })))]),
        )
        .passes(),
        case(
            "the reference multi-setter example",
            B,
            LATEST,
            C,
            with_pod_sc(
                spec_lists(
                    vec![ctr_sc("e", se(json!({ "type": "bar" })))],
                    vec![
                        ctr_sc("ok", se(json!({ "type": "container_t" }))),
                        ctr_sc("f", se(json!({ "role": "object_r" }))),
                    ],
                    vec![ctr_sc("g", se(json!({ "type": "foo", "user": "u" })))],
                ),
                se(json!({ "type": "foo", "user": "system_u" })),
            ),
        )
        .fails(
            r,
            r#"pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: types "bar", "foo"; user may not be set; role may not be set"#,
        ),
        case(
            "type and role without user",
            B,
            v1(0),
            C,
            spec_of(vec![ctr_sc("c", se(json!({ "type": "spc_t", "role": "r" })))]),
        )
        .fails(
            r,
            r#"container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; role may not be set"#,
        ),
    ]);
}

// ------------------------------------------------------------------------------------------------
// Ephemeral containers and visit order (§1)
// ------------------------------------------------------------------------------------------------

#[test]
fn ephemeral_containers_are_visited_last() {
    // Names are chosen so that visit order (init, containers, ephemeral) differs from both
    // alphabetical order and the order of the keys in the JSON.
    let spec = with_pod_sc(
        json!({
            "ephemeralContainers": [ctr("a-debug")],
            "containers": [good("ok"), ctr("m-app")],
            "initContainers": [ctr("z-init")],
        }),
        restricted_pod_sc(),
    );
    assert_eq!(
        eval(&spec, R, LATEST),
        vec![
            violation(
                CheckId::AllowPrivilegeEscalation,
                "allowPrivilegeEscalation != false",
                r#"containers "z-init", "m-app", "a-debug" must set securityContext.allowPrivilegeEscalation=false"#,
            ),
            violation(
                CheckId::CapabilitiesRestricted,
                "unrestricted capabilities",
                r#"containers "z-init", "m-app", "a-debug" must set securityContext.capabilities.drop=["ALL"]"#,
            ),
        ]
    );

    let ephemeral_only = |sc: Value| {
        with_pod_sc(
            spec_lists(
                vec![good("init")],
                vec![good("app")],
                vec![ctr_sc("debugger", sc)],
            ),
            restricted_pod_sc(),
        )
    };
    run(vec![
        case(
            "an ephemeral container alone fails allowPrivilegeEscalation",
            R,
            LATEST,
            CheckId::AllowPrivilegeEscalation,
            ephemeral_only(json!({ "allowPrivilegeEscalation": true, "capabilities": { "drop": ["ALL"] } })),
        )
        .fails(
            "allowPrivilegeEscalation != false",
            r#"container "debugger" must set securityContext.allowPrivilegeEscalation=false"#,
        ),
        case(
            "an ephemeral container adding capabilities",
            R,
            LATEST,
            CheckId::CapabilitiesRestricted,
            ephemeral_only(json!({
                "allowPrivilegeEscalation": false,
                "capabilities": { "drop": ["ALL"], "add": ["SYS_PTRACE"] },
            })),
        )
        .fails(
            "unrestricted capabilities",
            r#"container "debugger" must not include "SYS_PTRACE" in securityContext.capabilities.add"#,
        ),
        case(
            "an ephemeral container that is privileged",
            B,
            LATEST,
            CheckId::Privileged,
            ephemeral_only(json!({ "privileged": true })),
        )
        .fails("privileged", r#"container "debugger" must not set securityContext.privileged=true"#),
        case(
            "an ephemeral container running as root",
            R,
            LATEST,
            CheckId::RunAsUser,
            ephemeral_only(json!({ "runAsUser": 0 })),
        )
        .fails("runAsUser=0", r#"container "debugger" must not set runAsUser=0"#),
        case(
            "an ephemeral container with runAsNonRoot=false",
            R,
            LATEST,
            CheckId::RunAsNonRoot,
            ephemeral_only(json!({ "runAsNonRoot": false })),
        )
        .fails(
            "runAsNonRoot != true",
            r#"container "debugger" must not set securityContext.runAsNonRoot=false"#,
        ),
        case(
            "an ephemeral container with Unconfined seccomp",
            R,
            LATEST,
            CheckId::SeccompProfileRestricted,
            ephemeral_only(json!({ "seccompProfile": { "type": "Unconfined" } })),
        )
        .fails(
            "seccompProfile",
            r#"container "debugger" must not set securityContext.seccompProfile.type to "Unconfined""#,
        ),
        case(
            "an ephemeral container with Unmasked procMount",
            R,
            LATEST,
            CheckId::ProcMountRestricted,
            ephemeral_only(json!({ "procMount": "Unmasked" })),
        )
        .fails(
            "procMount",
            r#"container "debugger" must not set securityContext.procMount to "Unmasked""#,
        ),
        case(
            "an ephemeral container with hostProcess",
            B,
            LATEST,
            CheckId::WindowsHostProcess,
            ephemeral_only(json!({ "windowsOptions": { "hostProcess": true } })),
        )
        .fails(
            "hostProcess",
            r#"container "debugger" must not set securityContext.windowsOptions.hostProcess=true"#,
        ),
        case(
            "baseline capabilities in init, regular and ephemeral containers",
            B,
            LATEST,
            CheckId::CapabilitiesBaseline,
            spec_lists(
                vec![ctr_sc("z", json!({ "capabilities": { "add": ["SYS_ADMIN"] } }))],
                vec![ctr_sc("y", json!({ "capabilities": { "add": ["CHOWN"] } }))],
                vec![ctr_sc("x", json!({ "capabilities": { "add": ["NET_RAW"] } }))],
            ),
        )
        .fails(
            "non-default capabilities",
            r#"containers "z", "x" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add"#,
        ),
    ]);
}

// ------------------------------------------------------------------------------------------------
// hostUsers: false (§1, §3.10, §3.12, §3.13)
// ------------------------------------------------------------------------------------------------

#[test]
fn user_namespace_relaxation_exists_only_from_v1_35() {
    // A restricted pod that fails only runAsNonRoot (explicitly), runAsUser and procMount.
    let pod = |host_users: Option<bool>| {
        let mut spec = with_pod_sc(
            spec_of(vec![ctr_sc(
                "c",
                json!({
                    "allowPrivilegeEscalation": false,
                    "capabilities": { "drop": ["ALL"] },
                    "runAsNonRoot": false,
                    "runAsUser": 0,
                    "procMount": "Unmasked",
                }),
            )]),
            json!({ "runAsUser": 0, "seccompProfile": { "type": "RuntimeDefault" } }),
        );
        if let Some(h) = host_users {
            spec = with(spec, "hostUsers", json!(h));
        }
        spec
    };
    let proc_mount = r#"container "c" must not set securityContext.procMount to "Unmasked""#;
    let non_root = r#"container "c" must not set securityContext.runAsNonRoot=false"#;
    let user = r#"pod and container "c" must not set runAsUser=0"#;

    // v1.35 and later: runAsNonRoot and runAsUser relaxed; procMount_restricted never is.
    for version in [v1(35), v1(36), v1(37), LATEST] {
        assert_eq!(
            eval(&pod(Some(false)), R, version),
            vec![violation(
                CheckId::ProcMountRestricted,
                "procMount",
                proc_mount
            )],
            "restricted {version} with hostUsers=false"
        );
        assert_eq!(
            eval(&pod(Some(false)), B, version),
            vec![],
            "baseline {version} with hostUsers=false"
        );
    }
    // v1.34: nothing is relaxed; procMount is still the baseline check at restricted.
    assert_eq!(
        eval(&pod(Some(false)), R, v1(34)),
        vec![
            violation(CheckId::ProcMount, "procMount", proc_mount),
            violation(CheckId::RunAsNonRoot, "runAsNonRoot != true", non_root),
            violation(CheckId::RunAsUser, "runAsUser=0", user),
        ]
    );
    assert_eq!(
        eval(&pod(Some(false)), B, v1(34)),
        vec![violation(CheckId::ProcMount, "procMount", proc_mount)]
    );
    assert_eq!(
        eval(&pod(Some(false)), B, v1(0)),
        vec![violation(CheckId::ProcMount, "procMount", proc_mount)]
    );
    // hostUsers true or unset never relaxes.
    for host_users in [Some(true), None] {
        assert_eq!(
            eval(&pod(host_users), R, LATEST),
            vec![
                violation(CheckId::ProcMountRestricted, "procMount", proc_mount),
                violation(CheckId::RunAsNonRoot, "runAsNonRoot != true", non_root),
                violation(CheckId::RunAsUser, "runAsUser=0", user),
            ],
            "hostUsers={host_users:?}"
        );
        assert_eq!(
            eval(&pod(host_users), B, LATEST),
            vec![violation(CheckId::ProcMount, "procMount", proc_mount)],
            "hostUsers={host_users:?}"
        );
    }

    // The implicit runAsNonRoot failure is relaxed too.
    let implicit = |host_users: bool| {
        with(
            with_pod_sc(
                spec_of(vec![good("a"), good("b")]),
                json!({ "seccompProfile": { "type": "RuntimeDefault" } }),
            ),
            "hostUsers",
            json!(host_users),
        )
    };
    assert_eq!(eval(&implicit(false), R, v1(35)), vec![]);
    assert_eq!(eval(&implicit(false), R, LATEST), vec![]);
    assert_eq!(
        eval(&implicit(false), R, v1(34)),
        vec![violation(
            CheckId::RunAsNonRoot,
            "runAsNonRoot != true",
            r#"pod or containers "a", "b" must set securityContext.runAsNonRoot=true"#,
        )]
    );
    assert_eq!(
        eval(&implicit(true), R, LATEST),
        vec![violation(
            CheckId::RunAsNonRoot,
            "runAsNonRoot != true",
            r#"pod or containers "a", "b" must set securityContext.runAsNonRoot=true"#,
        )]
    );
}

// ------------------------------------------------------------------------------------------------
// Windows (§1)
// ------------------------------------------------------------------------------------------------

#[test]
fn windows_relaxations() {
    let windows = |spec: Value| with(spec, "os", json!({ "name": "windows" }));
    // The base_windows fixture: only runAsNonRoot.
    let base_windows = windows(with_pod_sc(
        spec_lists(vec![ctr("init")], vec![ctr("c")], vec![]),
        json!({ "runAsNonRoot": true }),
    ));
    for version in [v1(25), v1(29), v1(35), LATEST] {
        assert_eq!(
            eval(&base_windows, R, version),
            vec![],
            "restricted {version}"
        );
    }
    let relaxed_from_1_25 = vec![
        violation(
            CheckId::AllowPrivilegeEscalation,
            "allowPrivilegeEscalation != false",
            r#"containers "init", "c" must set securityContext.allowPrivilegeEscalation=false"#,
        ),
        violation(
            CheckId::CapabilitiesRestricted,
            "unrestricted capabilities",
            r#"containers "init", "c" must set securityContext.capabilities.drop=["ALL"]"#,
        ),
        violation(
            CheckId::SeccompProfileRestricted,
            "seccompProfile",
            r#"pod or containers "init", "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#,
        ),
    ];
    assert_eq!(eval(&base_windows, R, v1(24)), relaxed_from_1_25);
    // Linux (or no OS) is not relaxed.
    let linux = with(
        with_pod_sc(
            spec_lists(vec![ctr("init")], vec![ctr("c")], vec![]),
            json!({ "runAsNonRoot": true }),
        ),
        "os",
        json!({ "name": "linux" }),
    );
    assert_eq!(eval(&linux, R, LATEST), relaxed_from_1_25);

    // Explicitly bad values are exempt as well, from v1.25 on.
    let explicit = windows(with_pod_sc(
        spec_of(vec![ctr_sc(
            "c",
            json!({
                "allowPrivilegeEscalation": true,
                "capabilities": { "add": ["SYS_ADMIN"] },
                "seccompProfile": { "type": "Unconfined" },
            }),
        )]),
        json!({ "runAsNonRoot": true, "seccompProfile": { "type": "Unconfined" } }),
    ));
    assert_eq!(eval(&explicit, R, v1(25)), vec![]);
    assert_eq!(
        eval(&explicit, R, v1(24)),
        vec![
            violation(
                CheckId::AllowPrivilegeEscalation,
                "allowPrivilegeEscalation != false",
                r#"container "c" must set securityContext.allowPrivilegeEscalation=false"#,
            ),
            violation(
                CheckId::CapabilitiesRestricted,
                "unrestricted capabilities",
                r#"container "c" must set securityContext.capabilities.drop=["ALL"]; container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add"#,
            ),
            violation(
                CheckId::SeccompProfileRestricted,
                "seccompProfile",
                r#"pod and container "c" must not set securityContext.seccompProfile.type to "Unconfined""#,
            ),
        ]
    );
    // No baseline check is relaxed for Windows: seccompProfile_baseline and capabilities_baseline.
    assert_eq!(
        eval(&explicit, B, LATEST),
        vec![
            violation(
                CheckId::CapabilitiesBaseline,
                "non-default capabilities",
                r#"container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add"#,
            ),
            violation(
                CheckId::SeccompProfileBaseline,
                "seccompProfile",
                r#"pod and container "c" must not set securityContext.seccompProfile.type to "Unconfined""#,
            ),
        ]
    );

    // runAsNonRoot, runAsUser and restrictedVolumes are not relaxed.
    let no_non_root = windows(spec_of(vec![ctr("c")]));
    assert_eq!(
        eval(&no_non_root, R, LATEST),
        vec![violation(
            CheckId::RunAsNonRoot,
            "runAsNonRoot != true",
            r#"pod or container "c" must set securityContext.runAsNonRoot=true"#,
        )]
    );
    let root_with_host_path = with(
        windows(with_pod_sc(
            spec_of(vec![ctr("c")]),
            json!({ "runAsNonRoot": false, "runAsUser": 0 }),
        )),
        "volumes",
        json!([{ "name": "h", "hostPath": { "path": "C:\\" } }]),
    );
    assert_eq!(
        eval(&root_with_host_path, R, LATEST),
        vec![
            violation(
                CheckId::RestrictedVolumes,
                "restricted volume types",
                r#"volume "h" uses restricted volume type "hostPath""#,
            ),
            violation(
                CheckId::RunAsNonRoot,
                "runAsNonRoot != true",
                "pod must not set securityContext.runAsNonRoot=false",
            ),
            violation(
                CheckId::RunAsUser,
                "runAsUser=0",
                "pod must not set runAsUser=0"
            ),
        ]
    );
    // Windows host process at baseline is unaffected by os.name.
    let host_process = windows(with_pod_sc(
        spec_of(vec![
            ctr_sc("e", json!({ "windowsOptions": { "hostProcess": true } })),
            ctr("x"),
        ]),
        json!({ "windowsOptions": { "hostProcess": true } }),
    ));
    assert_eq!(
        eval(&host_process, B, LATEST),
        vec![violation(
            CheckId::WindowsHostProcess,
            "hostProcess",
            r#"pod and container "e" must not set securityContext.windowsOptions.hostProcess=true"#,
        )]
    );
}

// ------------------------------------------------------------------------------------------------
// hostProbesAndHostLifecycle (§3.8)
// ------------------------------------------------------------------------------------------------

fn http_get(host: &str) -> Value {
    json!({ "httpGet": { "host": host, "port": 8080, "path": "/healthz" } })
}

fn tcp_socket(host: &str) -> Value {
    json!({ "tcpSocket": { "host": host, "port": 5432 } })
}

#[test]
fn host_probes_and_lifecycle_every_handler() {
    use CheckId::HostProbesAndHostLifecycle as C;
    let r = "probe or lifecycle host";
    // Every handler kind, alone in one container.
    let handlers: Vec<(&'static str, Value)> = vec![
        (
            "livenessProbe httpGet",
            json!({ "livenessProbe": http_get("liveness-http.example") }),
        ),
        (
            "livenessProbe tcpSocket",
            json!({ "livenessProbe": tcp_socket("liveness-tcp.example") }),
        ),
        (
            "readinessProbe httpGet",
            json!({ "readinessProbe": http_get("readiness-http.example") }),
        ),
        (
            "readinessProbe tcpSocket",
            json!({ "readinessProbe": tcp_socket("readiness-tcp.example") }),
        ),
        (
            "startupProbe httpGet",
            json!({ "startupProbe": http_get("startup-http.example") }),
        ),
        (
            "startupProbe tcpSocket",
            json!({ "startupProbe": tcp_socket("startup-tcp.example") }),
        ),
        (
            "postStart httpGet",
            json!({ "lifecycle": { "postStart": http_get("poststart-http.example") } }),
        ),
        (
            "postStart tcpSocket",
            json!({ "lifecycle": { "postStart": tcp_socket("poststart-tcp.example") } }),
        ),
        (
            "preStop httpGet",
            json!({ "lifecycle": { "preStop": http_get("prestop-http.example") } }),
        ),
        (
            "preStop tcpSocket",
            json!({ "lifecycle": { "preStop": tcp_socket("prestop-tcp.example") } }),
        ),
    ];
    let expected_hosts = [
        "liveness-http.example",
        "liveness-tcp.example",
        "readiness-http.example",
        "readiness-tcp.example",
        "startup-http.example",
        "startup-tcp.example",
        "poststart-http.example",
        "poststart-tcp.example",
        "prestop-http.example",
        "prestop-tcp.example",
    ];
    let mut cases = Vec::new();
    for ((label, extra), host) in handlers.into_iter().zip(expected_hosts) {
        let spec = spec_of(vec![ctr("ok"), ctr_with("app", extra)]);
        let detail = format!(r#"container "app" uses probe or lifecycle host "{host}""#);
        cases.push(case(label, B, v1(34), C, spec.clone()).fails(r, detail.clone()));
        cases.push(case(label, B, LATEST, C, spec.clone()).fails(r, detail.clone()));
        cases.push(case(label, R, LATEST, C, spec.clone()).fails(r, detail));
        cases.push(case(label, B, v1(33), C, spec.clone()).passes());
        cases.push(case(label, R, v1(33), C, spec).passes());
    }

    cases.extend([
        case(
            "loopback hosts fail too; one container, several hosts sorted",
            B,
            LATEST,
            C,
            spec_of(vec![ctr_with(
                "c",
                json!({
                    "livenessProbe": http_get("localhost"),
                    "readinessProbe": tcp_socket("127.0.0.1"),
                    "lifecycle": { "preStop": http_get("::1") },
                }),
            )]),
        )
        .fails(r, r#"container "c" uses probe or lifecycle hosts "127.0.0.1", "::1", "localhost""#),
        case(
            "two containers sharing one host: use, singular host",
            B,
            LATEST,
            C,
            spec_of(vec![
                ctr_with("b", json!({ "livenessProbe": http_get("x.example") })),
                ctr_with("a", json!({ "lifecycle": { "postStart": tcp_socket("x.example") } })),
            ]),
        )
        .fails(r, r#"containers "a", "b" use probe or lifecycle host "x.example""#),
        case(
            "container names and hosts are sorted across the three lists",
            B,
            LATEST,
            C,
            spec_lists(
                vec![ctr_with("zeta", json!({ "startupProbe": tcp_socket("b.com") }))],
                vec![
                    ctr("clean"),
                    ctr_with(
                        "alpha",
                        json!({
                            "livenessProbe": http_get("c.com"),
                            "lifecycle": { "preStop": tcp_socket("a.com") },
                        }),
                    ),
                ],
                vec![ctr_with("mid", json!({ "readinessProbe": http_get("b.com") }))],
            ),
        )
        .fails(r, r#"containers "alpha", "mid", "zeta" use probe or lifecycle hosts "a.com", "b.com", "c.com""#),
        case(
            "the reference plural example",
            B,
            LATEST,
            C,
            spec_of(vec![
                ctr_with("invalid2", json!({ "readinessProbe": http_get("b.com") })),
                ctr("valid"),
                ctr_with("invalid1", json!({ "livenessProbe": tcp_socket("a.com") })),
            ]),
        )
        .fails(r, r#"containers "invalid1", "invalid2" use probe or lifecycle hosts "a.com", "b.com""#),
        case(
            "empty hosts, grpc and exec handlers are allowed",
            B,
            LATEST,
            C,
            spec_of(vec![ctr_with(
                "c",
                json!({
                    "livenessProbe": http_get(""),
                    "readinessProbe": { "grpc": { "port": 9000, "service": "health" } },
                    "startupProbe": { "exec": { "command": ["true"] } },
                    "lifecycle": {
                        "postStart": { "exec": { "command": ["true"] } },
                        "preStop": tcp_socket(""),
                    },
                }),
            )]),
        )
        .passes(),
    ]);
    run(cases);
}

// ------------------------------------------------------------------------------------------------
// sysctls (§3.17)
// ------------------------------------------------------------------------------------------------

#[test]
fn sysctls_allowed_list_at_each_breakpoint() {
    use CheckId::Sysctls as C;
    // Every name ever allowed, written out from the reference table, in a spec order that is
    // neither the table order nor sorted.
    let all_names = [
        "net.ipv4.tcp_notsent_lowat",
        "kernel.shm_rmid_forced",
        "net.ipv4.tcp_wmem",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_slow_start_after_idle",
        "net.ipv4.ping_group_range",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_rmem",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_keepalive_probes",
    ];
    let spec = with_pod_sc(
        spec_of(vec![ctr("c")]),
        json!({ "sysctls": all_names.iter().map(|n| json!({ "name": n, "value": "1" })).collect::<Vec<_>>() }),
    );
    let since_1_27 = [
        "net.ipv4.tcp_notsent_lowat",
        "net.ipv4.tcp_wmem",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_slow_start_after_idle",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_keepalive_probes",
    ]
    .join(", ");
    let forbidden_at = |minor: u32| -> Option<String> {
        match minor {
            0..=26 => Some(
                "net.ipv4.tcp_notsent_lowat, net.ipv4.tcp_wmem, net.ipv4.ip_local_reserved_ports, net.ipv4.tcp_keepalive_time, net.ipv4.tcp_fin_timeout, net.ipv4.tcp_slow_start_after_idle, net.ipv4.tcp_keepalive_intvl, net.ipv4.tcp_rmem, net.ipv4.tcp_keepalive_probes"
                    .to_owned(),
            ),
            27 | 28 => Some(since_1_27.clone()),
            29..=31 => Some(
                "net.ipv4.tcp_notsent_lowat, net.ipv4.tcp_wmem, net.ipv4.tcp_slow_start_after_idle, net.ipv4.tcp_rmem"
                    .to_owned(),
            ),
            32..=36 => Some("net.ipv4.tcp_notsent_lowat, net.ipv4.tcp_slow_start_after_idle".to_owned()),
            _ => None,
        }
    };
    let mut cases = Vec::new();
    for minor in [0, 1, 26, 27, 28, 29, 31, 32, 35, 36, 37, 99] {
        for level in [B, R] {
            let c = case("every name ever allowed", level, v1(minor), C, spec.clone());
            cases.push(match forbidden_at(minor) {
                Some(detail) => c.fails("forbidden sysctls", detail),
                None => c.passes(),
            });
        }
    }
    cases.push(case("every name ever allowed", B, LATEST, C, spec.clone()).passes());

    let sysctls = |names: &[&str]| {
        with_pod_sc(
            spec_of(vec![ctr("c")]),
            json!({ "sysctls": names.iter().map(|n| json!({ "name": n, "value": "0" })).collect::<Vec<_>>() }),
        )
    };
    cases.extend([
        case(
            "spec order, unquoted, duplicates kept",
            B,
            LATEST,
            C,
            sysctls(&[
                "kernel.msgmax",
                "kernel.msgmax",
                "net.ipv4.tcp_syncookies",
                "net.core.somaxconn",
                "kernel.msgmax",
            ]),
        )
        .fails(
            "forbidden sysctls",
            "kernel.msgmax, kernel.msgmax, net.core.somaxconn, kernel.msgmax",
        ),
        case(
            "one forbidden name still has the plural reason",
            B,
            v1(0),
            C,
            sysctls(&["vm.swappiness"]),
        )
        .fails("forbidden sysctls", "vm.swappiness"),
        case(
            "exact match only: slashes and case",
            B,
            LATEST,
            C,
            sysctls(&[
                "net/ipv4/ip_local_port_range",
                "Kernel.shm_rmid_forced",
                "kernel.shm_rmid_forced ",
            ]),
        )
        .fails(
            "forbidden sysctls",
            "net/ipv4/ip_local_port_range, Kernel.shm_rmid_forced, kernel.shm_rmid_forced ",
        ),
        case("an empty list is allowed", B, LATEST, C, sysctls(&[])).passes(),
    ]);
    run(cases);
}

// ------------------------------------------------------------------------------------------------
// hostPorts (§3.7)
// ------------------------------------------------------------------------------------------------

fn ports(ports: &[(i32, Option<i32>)]) -> Value {
    let list: Vec<Value> = ports
        .iter()
        .map(|(container, host)| match host {
            Some(h) => json!({ "containerPort": container, "hostPort": h }),
            None => json!({ "containerPort": container }),
        })
        .collect();
    json!({ "ports": list })
}

#[test]
fn host_ports() {
    use CheckId::HostPorts as C;
    let r = "hostPort";
    run(vec![
        case(
            "ports sorted as strings across containers",
            B,
            LATEST,
            C,
            spec_of(vec![
                ctr_with("a", ports(&[(1, Some(9)), (2, Some(8080))])),
                ctr_with("ok", ports(&[(80, None), (81, Some(0))])),
                ctr_with("b", ports(&[(3, Some(20)), (4, Some(10))])),
            ]),
        )
        .fails(r, r#"containers "a", "b" use hostPorts 10, 20, 8080, 9"#),
        case(
            "one container, one port",
            B,
            v1(0),
            C,
            spec_of(vec![ctr_with("a", ports(&[(80, Some(80))]))]),
        )
        .fails(r, r#"container "a" uses hostPort 80"#),
        case(
            "one container, two ports",
            R,
            LATEST,
            C,
            spec_of(vec![ctr_with(
                "a",
                ports(&[(80, Some(81)), (80, Some(80))]),
            )]),
        )
        .fails(r, r#"container "a" uses hostPorts 80, 81"#),
        case(
            "two containers, the same port: plural verb, singular port",
            B,
            LATEST,
            C,
            spec_of(vec![
                ctr_with("b", ports(&[(80, Some(443))])),
                ctr_with("a", ports(&[(80, Some(443))])),
            ]),
        )
        .fails(r, r#"containers "b", "a" use hostPort 443"#),
        case(
            "init, regular and ephemeral containers in visit order",
            B,
            LATEST,
            C,
            spec_lists(
                vec![ctr_with("z", ports(&[(1, Some(1))]))],
                vec![ctr_with("y", ports(&[(2, Some(2))]))],
                vec![ctr_with("x", ports(&[(3, Some(3))]))],
            ),
        )
        .fails(r, r#"containers "z", "y", "x" use hostPorts 1, 2, 3"#),
        case(
            "hostPort 0 and hostIP alone are allowed",
            B,
            LATEST,
            C,
            spec_of(vec![
                ctr_with("a", ports(&[(80, Some(0)), (81, None)])),
                ctr_with(
                    "b",
                    json!({ "ports": [{ "containerPort": 53, "hostIP": "127.0.0.1" }] }),
                ),
            ]),
        )
        .passes(),
    ]);
}

// ------------------------------------------------------------------------------------------------
// hostPathVolumes (§3.6) and restrictedVolumes (§3.11)
// ------------------------------------------------------------------------------------------------

#[test]
fn restricted_volumes() {
    use CheckId::RestrictedVolumes as C;
    let r = "restricted volume types";
    let vols = |v: Value| with(spec_of(vec![ctr("c")]), "volumes", v);
    // Each forbidden source with the name PSA gives it.
    let forbidden: Vec<(&'static str, Value)> = vec![
        ("hostPath", json!({ "path": "/var/run" })),
        ("gcePersistentDisk", json!({ "pdName": "d" })),
        ("awsElasticBlockStore", json!({ "volumeID": "v" })),
        (
            "gitRepo",
            json!({ "repository": "https://example.com/r.git" }),
        ),
        ("nfs", json!({ "server": "s", "path": "/" })),
        (
            "iscsi",
            json!({ "targetPortal": "t", "iqn": "iqn.2001-04.com.example:storage", "lun": 0 }),
        ),
        ("glusterfs", json!({ "endpoints": "e", "path": "p" })),
        ("rbd", json!({ "monitors": ["m"], "image": "i" })),
        ("flexVolume", json!({ "driver": "d" })),
        ("cinder", json!({ "volumeID": "v" })),
        ("cephfs", json!({ "monitors": ["m"] })),
        ("flocker", json!({ "datasetName": "d" })),
        ("fc", json!({ "wwids": ["w"] })),
        ("azureFile", json!({ "secretName": "s", "shareName": "sh" })),
        ("vsphereVolume", json!({ "volumePath": "p" })),
        ("quobyte", json!({ "registry": "r", "volume": "v" })),
        ("azureDisk", json!({ "diskName": "n", "diskURI": "u" })),
        ("photonPersistentDisk", json!({ "pdID": "p" })),
        ("portworxVolume", json!({ "volumeID": "v" })),
        (
            "scaleIO",
            json!({ "gateway": "g", "system": "s", "secretRef": { "name": "x" } }),
        ),
        ("storageos", json!({ "volumeName": "v" })),
    ];
    let mut cases = Vec::new();
    for (source, body) in forbidden {
        let spec = vols(json!([{ "name": "ok", "emptyDir": {} }, { "name": "v", source: body }]));
        cases.push(case(source, R, LATEST, C, spec.clone()).fails(
            r,
            format!(r#"volume "v" uses restricted volume type "{source}""#),
        ));
        cases.push(case(source, R, v1(0), C, spec.clone()).fails(
            r,
            format!(r#"volume "v" uses restricted volume type "{source}""#),
        ));
        // Baseline only cares about hostPath.
        let baseline = case(source, B, LATEST, CheckId::HostPathVolumes, spec);
        cases.push(if source == "hostPath" {
            baseline.fails("hostPath volumes", r#"volume "v""#)
        } else {
            baseline.passes()
        });
    }
    cases.extend([
        case(
            "several volumes and types, unknown, names in spec order, types sorted",
            R,
            LATEST,
            C,
            vols(json!([
                { "name": "hp", "hostPath": { "path": "/" } },
                { "name": "fine", "secret": { "secretName": "s" } },
                { "name": "nfs1", "nfs": { "server": "s", "path": "/" } },
                { "name": "none" },
                { "name": "gce", "gcePersistentDisk": { "pdName": "d" } },
                { "name": "hp2", "hostPath": { "path": "/tmp" } },
            ])),
        )
        .fails(
            r,
            r#"volumes "hp", "nfs1", "none", "gce", "hp2" use restricted volume types "gcePersistentDisk", "hostPath", "nfs", "unknown""#,
        ),
        case(
            "two volumes of one type: use, singular type",
            R,
            LATEST,
            C,
            vols(json!([
                { "name": "b", "hostPath": { "path": "/" } },
                { "name": "a", "hostPath": { "path": "/" } },
            ])),
        )
        .fails(r, r#"volumes "b", "a" use restricted volume type "hostPath""#),
        case(
            "a volume with no source is unknown (no defaulting in the evaluator)",
            R,
            LATEST,
            C,
            vols(json!([{ "name": "volume0" }])),
        )
        .fails(r, r#"volume "volume0" uses restricted volume type "unknown""#),
        case(
            "classification order decides a volume with two forbidden sources",
            R,
            LATEST,
            C,
            vols(json!([
                { "name": "x", "nfs": { "server": "s", "path": "/" }, "gitRepo": { "repository": "r" } },
                { "name": "y", "storageos": {}, "hostPath": { "path": "/" } },
            ])),
        )
        .fails(r, r#"volumes "x", "y" use restricted volume types "gitRepo", "hostPath""#),
        case(
            "an allowed source wins over a forbidden one",
            R,
            LATEST,
            C,
            vols(json!([{ "name": "x", "emptyDir": {}, "hostPath": { "path": "/" } }])),
        )
        .passes(),
        case(
            "every allowed source",
            R,
            LATEST,
            C,
            vols(json!([
                { "name": "a", "configMap": { "name": "cm" } },
                { "name": "b", "csi": { "driver": "d" } },
                { "name": "c", "downwardAPI": {} },
                { "name": "d", "emptyDir": {} },
                { "name": "e", "ephemeral": { "volumeClaimTemplate": { "spec": {} } } },
                { "name": "f", "image": { "reference": "registry.k8s.io/pause" } },
                { "name": "g", "persistentVolumeClaim": { "claimName": "pvc" } },
                { "name": "h", "projected": { "sources": [] } },
                { "name": "i", "secret": { "secretName": "s" } },
            ])),
        )
        .passes(),
        case(
            "hostPathVolumes at baseline lists names in spec order",
            B,
            LATEST,
            CheckId::HostPathVolumes,
            vols(json!([
                { "name": "b", "hostPath": { "path": "/" } },
                { "name": "nfs", "nfs": { "server": "s", "path": "/" } },
                { "name": "a", "hostPath": { "path": "/" } },
            ])),
        )
        .fails("hostPath volumes", r#"volumes "b", "a""#),
        case(
            "hostPathVolumes does not run at restricted",
            R,
            LATEST,
            CheckId::HostPathVolumes,
            vols(json!([{ "name": "a", "hostPath": { "path": "/" } }])),
        )
        .passes(),
    ]);
    run(cases);
}

// ------------------------------------------------------------------------------------------------
// runAsNonRoot (§3.12) and runAsUser (§3.13)
// ------------------------------------------------------------------------------------------------

#[test]
fn run_as_non_root_explicit_and_implicit() {
    use CheckId::RunAsNonRoot as C;
    let r = "runAsNonRoot != true";
    let nr = |v: bool| json!({ "runAsNonRoot": v });
    run(vec![
        case(
            "the reference explicit example",
            R,
            LATEST,
            C,
            with_pod_sc(
                spec_lists(
                    vec![ctr_sc("c", nr(false))],
                    vec![ctr("e"), ctr_sc("d", nr(false))],
                    vec![],
                ),
                nr(false),
            ),
        )
        .fails(
            r,
            r#"pod and containers "c", "d" must not set securityContext.runAsNonRoot=false"#,
        ),
        case(
            "the reference implicit example",
            R,
            v1(0),
            C,
            spec_of(vec![
                ctr("a"),
                ctr_sc("ok", nr(true)),
                ctr_sc("b", json!({ "runAsUser": 1000 })),
            ]),
        )
        .fails(
            r,
            r#"pod or containers "a", "b" must set securityContext.runAsNonRoot=true"#,
        ),
        case(
            "pod false alone: explicit wins over implicit",
            R,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr("a"), ctr("b")]), nr(false)),
        )
        .fails(r, "pod must not set securityContext.runAsNonRoot=false"),
        case(
            "pod true, one container false",
            R,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr("a"), ctr_sc("x", nr(false))]), nr(true)),
        )
        .fails(
            r,
            r#"container "x" must not set securityContext.runAsNonRoot=false"#,
        ),
        case(
            "pod unset, one container false, one unset: explicit only",
            R,
            LATEST,
            C,
            spec_of(vec![ctr("a"), ctr_sc("x", nr(false))]),
        )
        .fails(
            r,
            r#"container "x" must not set securityContext.runAsNonRoot=false"#,
        ),
        case(
            "pod unset, every container true",
            R,
            LATEST,
            C,
            spec_lists(
                vec![ctr_sc("i", nr(true))],
                vec![ctr_sc("c", nr(true))],
                vec![ctr_sc("e", nr(true))],
            ),
        )
        .passes(),
        case(
            "pod true covers containers without a value",
            R,
            LATEST,
            C,
            with_pod_sc(
                spec_lists(vec![ctr("i")], vec![ctr("c")], vec![ctr("e")]),
                nr(true),
            ),
        )
        .passes(),
        case(
            "pod securityContext without runAsNonRoot",
            R,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr("only")]), json!({ "runAsUser": 1000 })),
        )
        .fails(
            r,
            r#"pod or container "only" must set securityContext.runAsNonRoot=true"#,
        ),
        case(
            "not a baseline check",
            B,
            LATEST,
            C,
            spec_of(vec![ctr("a")]),
        )
        .passes(),
    ]);
}

#[test]
fn run_as_user() {
    use CheckId::RunAsUser as C;
    let r = "runAsUser=0";
    let uid = |u: i64| json!({ "runAsUser": u });
    run(vec![
        case(
            "pod",
            R,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr("a")]), uid(0)),
        )
        .fails(r, "pod must not set runAsUser=0"),
        case(
            "two containers",
            R,
            v1(23),
            C,
            spec_of(vec![
                ctr_sc("c", uid(0)),
                ctr_sc("x", uid(1000)),
                ctr_sc("d", uid(0)),
            ]),
        )
        .fails(r, r#"containers "c", "d" must not set runAsUser=0"#),
        case(
            "pod and a container",
            R,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr_sc("c", uid(0))]), uid(0)),
        )
        .fails(r, r#"pod and container "c" must not set runAsUser=0"#),
        case(
            "non-zero and unset",
            R,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr_sc("c", uid(1))]), uid(65534)),
        )
        .passes(),
        case(
            "absent before v1.23",
            R,
            v1(22),
            C,
            with_pod_sc(spec_of(vec![ctr("a")]), uid(0)),
        )
        .passes(),
    ]);
}

// ------------------------------------------------------------------------------------------------
// seccompProfile (§3.15, §3.16)
// ------------------------------------------------------------------------------------------------

const SECCOMP_POD: &str = "seccomp.security.alpha.kubernetes.io/pod";

fn seccomp_container_key(name: &str) -> String {
    format!("container.seccomp.security.alpha.kubernetes.io/{name}")
}

#[test]
fn seccomp_profile_restricted() {
    use CheckId::SeccompProfileRestricted as C;
    let r = "seccompProfile";
    let sp = |t: &str| json!({ "seccompProfile": { "type": t } });
    let localhost =
        json!({ "seccompProfile": { "type": "Localhost", "localhostProfile": "p.json" } });
    run(vec![
        case(
            "implicit: nothing set",
            R,
            v1(19),
            C,
            spec_lists(vec![ctr("i")], vec![ctr("c")], vec![ctr("e")]),
        )
        .fails(
            r,
            r#"pod or containers "i", "c", "e" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#,
        ),
        case(
            "implicit: one container set, the other not",
            R,
            LATEST,
            C,
            spec_of(vec![ctr_sc("a", sp("RuntimeDefault")), ctr("b")]),
        )
        .fails(
            r,
            r#"pod or container "b" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#,
        ),
        case("pod RuntimeDefault covers all", R, LATEST, C, with_pod_sc(spec_of(vec![ctr("a")]), sp("RuntimeDefault")))
            .passes(),
        case("pod Localhost covers all", R, LATEST, C, with_pod_sc(spec_of(vec![ctr("a")]), localhost.clone()))
            .passes(),
        case(
            "every container set, pod unset",
            R,
            LATEST,
            C,
            spec_lists(vec![ctr_sc("i", localhost.clone())], vec![ctr_sc("c", sp("RuntimeDefault"))], vec![]),
        )
        .passes(),
        case(
            "explicit: pod Unconfined with unset containers",
            R,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr("a")]), sp("Unconfined")),
        )
        .fails(r, r#"pod must not set securityContext.seccompProfile.type to "Unconfined""#),
        case(
            "explicit: container Unconfined under a valid pod",
            R,
            LATEST,
            C,
            with_pod_sc(spec_of(vec![ctr("a"), ctr_sc("c", sp("Unconfined"))]), sp("RuntimeDefault")),
        )
        .fails(r, r#"container "c" must not set securityContext.seccompProfile.type to "Unconfined""#),
        case(
            "explicit: the reference example",
            R,
            LATEST,
            C,
            with_pod_sc(
                spec_of(vec![ctr_sc("c", sp("Unconfined")), ctr("x"), ctr_sc("d", sp("Unconfined"))]),
                sp("Unconfined"),
            ),
        )
        .fails(r, r#"pod and containers "c", "d" must not set securityContext.seccompProfile.type to "Unconfined""#),
        case(
            "explicit wins over implicit; bad types sorted",
            R,
            LATEST,
            C,
            spec_of(vec![ctr("a"), ctr_sc("z", sp("Unconfined")), ctr_sc("y", sp("Bogus"))]),
        )
        .fails(r, r#"containers "z", "y" must not set securityContext.seccompProfile.type to "Bogus", "Unconfined""#),
        case("absent before v1.19", R, v1(18), C, spec_of(vec![ctr("a")])).passes(),
    ]);
}

#[test]
fn seccomp_profile_baseline_annotations_then_fields() {
    use CheckId::SeccompProfileBaseline as C;
    let r = "seccompProfile";
    let sp = |t: &str| json!({ "seccompProfile": { "type": t } });
    let unconfined_fields = with_pod_sc(
        spec_of(vec![
            ctr_sc("c", sp("Unconfined")),
            ctr("x"),
            ctr_sc("d", sp("Unconfined")),
        ]),
        sp("Unconfined"),
    );
    let bad_annotations =
        json!({ SECCOMP_POD: "unconfined", seccomp_container_key("a"): "unconfined" });
    run(vec![
        case("the reference annotation example", B, v1(18), C, spec_of(vec![ctr("a"), ctr("b")]))
            .annotated(bad_annotations.clone())
            .fails(
                r,
                r#"forbidden annotations container.seccomp.security.alpha.kubernetes.io/a="unconfined", seccomp.security.alpha.kubernetes.io/pod="unconfined""#,
            ),
        case("annotations at restricted v1.18", R, v1(18), C, spec_of(vec![ctr("a")]))
            .annotated(bad_annotations.clone())
            .fails(
                r,
                r#"forbidden annotations container.seccomp.security.alpha.kubernetes.io/a="unconfined", seccomp.security.alpha.kubernetes.io/pod="unconfined""#,
            ),
        case("one annotation; an empty value fails", B, v1(0), C, spec_of(vec![ctr("a")]))
            .annotated(json!({ SECCOMP_POD: "" }))
            .fails(r, r#"forbidden annotation seccomp.security.alpha.kubernetes.io/pod="""#),
        case(
            "container annotations count only for containers in the spec, all three lists",
            B,
            v1(18),
            C,
            spec_lists(vec![ctr("init")], vec![ctr("app")], vec![ctr("dbg")]),
        )
        .annotated(json!({
            seccomp_container_key("ghost"): "unconfined",
            seccomp_container_key("dbg"): "unconfined",
            seccomp_container_key("init"): "localhost/",
            seccomp_container_key("app"): "docker/default",
        }))
        .fails(r, r#"forbidden annotation container.seccomp.security.alpha.kubernetes.io/dbg="unconfined""#),
        case("allowed annotation values", B, v1(18), C, spec_of(vec![ctr("a"), ctr("b")]))
            .annotated(json!({
                SECCOMP_POD: "runtime/default",
                seccomp_container_key("a"): "docker/default",
                seccomp_container_key("b"): "localhost/profile.json",
            }))
            .passes(),
        case("fields are ignored before v1.19", B, v1(18), C, unconfined_fields.clone()).passes(),
        case("annotation values are Go-%q-escaped", B, v1(10), C, spec_of(vec![ctr("a")]))
            .annotated(json!({ SECCOMP_POD: "ünconfined\"\\\n\u{feff}" }))
            .fails(r, r#"forbidden annotation seccomp.security.alpha.kubernetes.io/pod="ünconfined\"\\\n\ufeff""#),
        case("annotations are ignored from v1.19", B, v1(19), C, spec_of(vec![ctr("a")]))
            .annotated(bad_annotations.clone())
            .passes(),
        case("fields from v1.19: the reference example", B, v1(19), C, unconfined_fields.clone())
            .fails(r, r#"pod and containers "c", "d" must not set securityContext.seccompProfile.type to "Unconfined""#),
        case(
            "fields: unset is allowed, Localhost and RuntimeDefault too",
            B,
            LATEST,
            C,
            with_pod_sc(
                spec_of(vec![ctr("a"), ctr_sc("b", json!({ "seccompProfile": { "type": "Localhost", "localhostProfile": "x" } }))]),
                sp("RuntimeDefault"),
            ),
        )
        .passes(),
        case(
            "fields: container only, two bad types",
            B,
            LATEST,
            C,
            spec_lists(vec![ctr_sc("i", sp("Unconfined"))], vec![], vec![ctr_sc("e", sp("Other"))]),
        )
        .fails(r, r#"containers "i", "e" must not set securityContext.seccompProfile.type to "Other", "Unconfined""#),
        case("not run at restricted from v1.19", R, v1(19), C, unconfined_fields).passes(),
    ]);
}

// ------------------------------------------------------------------------------------------------
// Capabilities (§3.3, §3.4)
// ------------------------------------------------------------------------------------------------

#[test]
fn capabilities_baseline_and_restricted() {
    let caps =
        |add: &[&str], drop: &[&str]| json!({ "capabilities": { "add": add, "drop": drop } });
    let add = |a: &[&str]| json!({ "capabilities": { "add": a } });
    let rb = "non-default capabilities";
    let rr = "unrestricted capabilities";
    let defaults = [
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ];
    run(vec![
        case(
            "baseline: the 13 defaults are allowed, drop is ignored",
            B,
            LATEST,
            CheckId::CapabilitiesBaseline,
            spec_of(vec![ctr_sc("a", caps(&defaults, &["NET_RAW", "whatever"]))]),
        )
        .passes(),
        case("baseline: lower-case chown", B, LATEST, CheckId::CapabilitiesBaseline, spec_of(vec![ctr_sc("a", add(&["chown"]))]))
            .fails(rb, r#"container "a" must not include "chown" in securityContext.capabilities.add"#),
        case(
            "baseline: CAP_ prefix and NET_RAW",
            B,
            v1(0),
            CheckId::CapabilitiesBaseline,
            spec_of(vec![ctr_sc("a", add(&["NET_RAW", "CHOWN", "CAP_CHOWN"]))]),
        )
        .fails(rb, r#"container "a" must not include "CAP_CHOWN", "NET_RAW" in securityContext.capabilities.add"#),
        case(
            "baseline: the reference example, caps sorted and de-duplicated",
            B,
            LATEST,
            CheckId::CapabilitiesBaseline,
            spec_of(vec![
                ctr_sc("a", add(&["FOO", "BAR"])),
                ctr_sc("ok", add(&["KILL"])),
                ctr_sc("b", add(&["BAZ", "FOO", "CHOWN"])),
            ]),
        )
        .fails(rb, r#"containers "a", "b" must not include "BAR", "BAZ", "FOO" in securityContext.capabilities.add"#),
        case(
            "baseline runs at restricted before v1.22",
            R,
            v1(21),
            CheckId::CapabilitiesBaseline,
            spec_of(vec![ctr_sc("a", add(&["NET_RAW"]))]),
        )
        .fails(rb, r#"container "a" must not include "NET_RAW" in securityContext.capabilities.add"#),
        case(
            "baseline does not run at restricted from v1.22",
            R,
            v1(22),
            CheckId::CapabilitiesBaseline,
            spec_of(vec![ctr_sc("a", add(&["NET_RAW"]))]),
        )
        .passes(),
        case(
            "restricted: the reference two-part example",
            R,
            LATEST,
            CheckId::CapabilitiesRestricted,
            spec_of(vec![
                ctr_sc("a", add(&["FOO"])),
                ctr_sc("b", caps(&["BAR"], &["all"])),
                ctr_sc("c", caps(&["BAZ", "CHOWN", "NET_BIND_SERVICE"], &["ALL"])),
                ctr_sc("ok", caps(&["NET_BIND_SERVICE"], &["ALL"])),
            ]),
        )
        .fails(
            rr,
            r#"containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; containers "a", "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add"#,
        ),
        case(
            "restricted: add part only",
            R,
            v1(22),
            CheckId::CapabilitiesRestricted,
            spec_of(vec![ctr_sc("c", caps(&["SYS_ADMIN", "SYS_ADMIN"], &["ALL"]))]),
        )
        .fails(rr, r#"container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add"#),
        case(
            "restricted: dropping every capability by name is not drop ALL",
            R,
            LATEST,
            CheckId::CapabilitiesRestricted,
            spec_of(vec![ctr_sc("c", caps(&[], &defaults)), ctr_sc("d", json!({}))]),
        )
        .fails(rr, r#"containers "c", "d" must set securityContext.capabilities.drop=["ALL"]"#),
        case(
            "restricted: drop ALL plus NET_BIND_SERVICE",
            R,
            LATEST,
            CheckId::CapabilitiesRestricted,
            spec_of(vec![ctr_sc("c", caps(&["NET_BIND_SERVICE"], &["NET_RAW", "ALL"]))]),
        )
        .passes(),
    ]);
}

// ------------------------------------------------------------------------------------------------
// Other baseline checks' formats (§3.5, §3.9, §3.10, §3.18)
// ------------------------------------------------------------------------------------------------

#[test]
fn other_baseline_formats() {
    run(vec![
        case(
            "all host namespaces, fixed order",
            B,
            LATEST,
            CheckId::HostNamespaces,
            json!({ "hostIPC": true, "hostPID": true, "hostNetwork": true, "containers": [ctr("c")] }),
        )
        .fails("host namespaces", "hostNetwork=true, hostPID=true, hostIPC=true"),
        case(
            "hostPID and hostIPC",
            B,
            LATEST,
            CheckId::HostNamespaces,
            json!({ "hostIPC": true, "hostPID": true, "hostNetwork": false, "containers": [ctr("c")] }),
        )
        .fails("host namespaces", "hostPID=true, hostIPC=true"),
        case(
            "privileged in two containers",
            B,
            LATEST,
            CheckId::Privileged,
            spec_lists(
                vec![ctr_sc("i", json!({ "privileged": true }))],
                vec![ctr_sc("c", json!({ "privileged": false })), ctr_sc("d", json!({ "privileged": true }))],
                vec![],
            ),
        )
        .fails("privileged", r#"containers "i", "d" must not set securityContext.privileged=true"#),
        case(
            "procMount: types sorted and de-duplicated, Default allowed",
            B,
            v1(34),
            CheckId::ProcMount,
            spec_of(vec![
                ctr_sc("d", json!({ "procMount": "Unmasked" })),
                ctr_sc("ok", json!({ "procMount": "Default" })),
                ctr_sc("e", json!({ "procMount": "other" })),
                ctr_sc("f", json!({ "procMount": "Unmasked" })),
            ]),
        )
        .fails("procMount", r#"containers "d", "e", "f" must not set securityContext.procMount to "Unmasked", "other""#),
        case(
            "hostProcess: pod and containers",
            B,
            LATEST,
            CheckId::WindowsHostProcess,
            with_pod_sc(
                spec_of(vec![
                    ctr_sc("e", json!({ "windowsOptions": { "hostProcess": true } })),
                    ctr_sc("x", json!({ "windowsOptions": { "hostProcess": false } })),
                    ctr_sc("f", json!({ "windowsOptions": { "hostProcess": true } })),
                ]),
                json!({ "windowsOptions": { "hostProcess": true } }),
            ),
        )
        .fails(
            "hostProcess",
            r#"pod and containers "e", "f" must not set securityContext.windowsOptions.hostProcess=true"#,
        ),
    ]);
}

// ------------------------------------------------------------------------------------------------
// Composed messages and order (§1, §4)
// ------------------------------------------------------------------------------------------------

#[test]
fn reference_enforce_message_for_a_bare_pod() {
    let spec = spec_of(vec![ctr("c")]);
    let policy = LevelVersion::restricted_latest();
    let violations = eval(&spec, R, LATEST);
    assert_eq!(
        violates_message(policy, &violations),
        r#"violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
    );
    assert_eq!(
        aggregate_reasons(&violations),
        "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"
    );
    // A bare pod is fine at baseline and at privileged.
    assert_eq!(eval(&spec, B, LATEST), vec![]);
    assert_eq!(eval(&spec, Level::Privileged, LATEST), vec![]);
    // The minimal restricted pod passes.
    let minimal = with_pod_sc(
        spec_lists(
            vec![good("initcontainer1")],
            vec![good("container1")],
            vec![],
        ),
        restricted_pod_sc(),
    );
    assert_eq!(eval(&minimal, R, LATEST), vec![]);
}

/// A pod that fails every check that exists at some level.
fn everything_wrong() -> (Value, Value) {
    let annotations = json!({ aa_key("c"): "unconfined" });
    let spec = json!({
        "hostNetwork": true,
        "hostPID": true,
        "hostIPC": true,
        "securityContext": { "sysctls": [{ "name": "kernel.msgmax", "value": "1" }] },
        "volumes": [{ "name": "host", "hostPath": { "path": "/" } }],
        "containers": [{
            "name": "c",
            "image": IMAGE,
            "ports": [{ "containerPort": 8080, "hostPort": 8080 }],
            "livenessProbe": http_get("evil.example"),
            "securityContext": {
                "allowPrivilegeEscalation": true,
                "appArmorProfile": { "type": "Unconfined" },
                "capabilities": { "add": ["SYS_ADMIN"] },
                "privileged": true,
                "procMount": "Unmasked",
                "runAsNonRoot": false,
                "runAsUser": 0,
                "seLinuxOptions": { "type": "spc_t" },
                "seccompProfile": { "type": "Unconfined" },
                "windowsOptions": { "hostProcess": true },
            },
        }],
    });
    (annotations, spec)
}

#[test]
fn full_message_order_at_restricted_latest() {
    let (annotations, spec) = everything_wrong();
    let violations = eval_annotated(&annotations, &spec, R, LATEST);
    let ids: Vec<&str> = violations.iter().map(|v| v.check.as_str()).collect();
    assert_eq!(
        ids,
        [
            "appArmorProfile",
            "hostNamespaces",
            "hostPorts",
            "hostProbesAndHostLifecycle",
            "privileged",
            "seLinuxOptions",
            "sysctls",
            "windowsHostProcess",
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "procMount_restricted",
            "restrictedVolumes",
            "runAsNonRoot",
            "runAsUser",
            "seccompProfile_restricted",
        ]
    );
    assert_eq!(
        violates_message(LevelVersion::restricted_latest(), &violations),
        concat!(
            r#"violates PodSecurity "restricted:latest": "#,
            r#"forbidden AppArmor profiles (container "c" and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/c="unconfined""), "#,
            r#"host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), "#,
            r#"hostPort (container "c" uses hostPort 8080), "#,
            r#"probe or lifecycle host (container "c" uses probe or lifecycle host "evil.example"), "#,
            r#"privileged (container "c" must not set securityContext.privileged=true), "#,
            r#"seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"), "#,
            r#"forbidden sysctls (kernel.msgmax), "#,
            r#"hostProcess (container "c" must not set securityContext.windowsOptions.hostProcess=true), "#,
            r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), "#,
            r#"unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]; container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add), "#,
            r#"procMount (container "c" must not set securityContext.procMount to "Unmasked"), "#,
            r#"restricted volume types (volume "host" uses restricted volume type "hostPath"), "#,
            r#"runAsNonRoot != true (container "c" must not set securityContext.runAsNonRoot=false), "#,
            r#"runAsUser=0 (container "c" must not set runAsUser=0), "#,
            r#"seccompProfile (container "c" must not set securityContext.seccompProfile.type to "Unconfined")"#,
        )
    );
    // The label text is kept, not the resolved minor.
    let v99 = LevelVersion::new(R, v1(99));
    assert_eq!(
        would_violate_message(v99, &violations[..1]),
        r#"would violate PodSecurity "restricted:v1.99": forbidden AppArmor profiles (container "c" and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/c="unconfined"")"#
    );
    assert_eq!(eval_annotated(&annotations, &spec, R, v1(99)), violations);
    assert_eq!(
        eval_annotated(&annotations, &spec, Level::Privileged, LATEST),
        vec![]
    );
}

#[test]
fn full_order_at_baseline_latest_and_old_restricted() {
    let (annotations, spec) = everything_wrong();
    let ids = |level, version| -> Vec<&'static str> {
        eval_annotated(&annotations, &spec, level, version)
            .iter()
            .map(|v| v.check.as_str())
            .collect()
    };
    assert_eq!(
        ids(B, LATEST),
        [
            "appArmorProfile",
            "capabilities_baseline",
            "hostNamespaces",
            "hostPathVolumes",
            "hostPorts",
            "hostProbesAndHostLifecycle",
            "privileged",
            "procMount",
            "seLinuxOptions",
            "seccompProfile_baseline",
            "sysctls",
            "windowsHostProcess",
        ]
    );
    // restricted v1.18: seccomp annotations (none here, so no seccomp entry), no capabilities_restricted,
    // no runAsUser, no probes; hostPathVolumes replaced by restrictedVolumes.
    assert_eq!(
        ids(R, v1(18)),
        [
            "appArmorProfile",
            "capabilities_baseline",
            "hostNamespaces",
            "hostPorts",
            "privileged",
            "procMount",
            "seLinuxOptions",
            "sysctls",
            "windowsHostProcess",
            "allowPrivilegeEscalation",
            "restrictedVolumes",
            "runAsNonRoot",
        ]
    );
    let baseline = eval_annotated(&annotations, &spec, B, LATEST);
    assert_eq!(
        aggregate_details(&baseline[1..3]),
        r#"non-default capabilities (container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add), host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"#
    );
    assert_eq!(
        would_violate_message(
            LevelVersion::new(B, v1(30)),
            &eval_annotated(&annotations, &spec, B, v1(30))[..1]
        ),
        r#"would violate PodSecurity "baseline:v1.30": forbidden AppArmor profiles (container "c" and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/c="unconfined"")"#
    );
}

// ------------------------------------------------------------------------------------------------
// Names with quotes and unicode (§1: joinQuote does not escape)
// ------------------------------------------------------------------------------------------------

#[test]
fn names_are_wrapped_without_escaping() {
    run(vec![
        case(
            "a quote and a backslash in a container name",
            R,
            LATEST,
            CheckId::AllowPrivilegeEscalation,
            spec_of(vec![ctr(r#"we"ird\name"#), ctr("ü-容器-☕")]),
        )
        .fails(
            "allowPrivilegeEscalation != false",
            r#"containers "we"ird\name", "ü-容器-☕" must set securityContext.allowPrivilegeEscalation=false"#,
        ),
        case(
            "unicode names in hostPorts",
            B,
            LATEST,
            CheckId::HostPorts,
            spec_of(vec![ctr_with("café", ports(&[(1, Some(7))]))]),
        )
        .fails("hostPort", r#"container "café" uses hostPort 7"#),
        case(
            "a tab and a quote in a volume name",
            R,
            LATEST,
            CheckId::RestrictedVolumes,
            with(spec_of(vec![ctr("c")]), "volumes", json!([{ "name": "a\t\"b", "hostPath": { "path": "/" } }])),
        )
        .fails("restricted volume types", "volume \"a\t\"b\" uses restricted volume type \"hostPath\""),
        case(
            "a quoted host and a unicode container in probes, sorted by bytes",
            B,
            LATEST,
            CheckId::HostProbesAndHostLifecycle,
            spec_of(vec![
                ctr_with("é", json!({ "livenessProbe": http_get("ex\"ample") })),
                ctr_with("z", json!({ "livenessProbe": http_get("b") })),
            ]),
        )
        .fails(
            "probe or lifecycle host",
            r#"containers "z", "é" use probe or lifecycle hosts "b", "ex"ample""#,
        ),
        case(
            "field values are not escaped either (AppArmor type)",
            B,
            LATEST,
            CheckId::AppArmorProfile,
            spec_of(vec![ctr_sc("c\"", json!({ "appArmorProfile": { "type": "Un\"confined" } }))]),
        )
        .fails(
            "forbidden AppArmor profile",
            r#"container "c"" must not set AppArmor profile type to "Un"confined""#,
        ),
        case(
            "sysctl names are printed raw",
            B,
            LATEST,
            CheckId::Sysctls,
            with_pod_sc(spec_of(vec![ctr("c")]), json!({ "sysctls": [{ "name": "kernel.\"ü\"", "value": "1" }] })),
        )
        .fails("forbidden sysctls", "kernel.\"ü\""),
    ]);
}
