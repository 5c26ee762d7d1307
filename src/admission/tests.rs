//! Decision tests of `/mutate` and `/validate` over built AdmissionRequests. Patches are checked
//! by applying them.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;
use crate::policy::{DefaultPolicy, HardenMode, NamespacePolicy};
use crate::pss::{self, LevelVersion};

fn request(
    operation: &str,
    kind: (&str, &str, &str),
    object: Value,
    old: Option<Value>,
) -> AdmissionRequest {
    let (group, k, resource) = kind;
    let request = json!({
        "uid": "uid-1", "kind": {"group": group, "version": "v1", "kind": k},
        "resource": {"group": group, "version": "v1", "resource": resource},
        "name": object["metadata"]["name"], "namespace": "team", "operation": operation,
        "userInfo": {"username": "alice"}, "object": object, "oldObject": old
    });
    decode(&review::review_in_wire_order(request.as_object().unwrap())).unwrap()
}

const POD: (&str, &str, &str) = ("", "Pod", "pods");
const DEPLOYMENT: (&str, &str, &str) = ("apps", "Deployment", "deployments");

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "team"}, "spec": {"containers": containers}})
}

fn plain_pod() -> Value {
    pod(json!([{"name": "app", "image": "app:1"}]))
}

fn policy(labels: &[(&str, &str)]) -> NamespacePolicy {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    NamespacePolicy::from_labels(Some(&labels), &DefaultPolicy::default().parse().unwrap())
}

fn restricted() -> NamespacePolicy {
    policy(&[("pod-security.kubernetes.io/enforce", "restricted")])
}

fn apply(object: &Value, rsp: &AdmissionResponse) -> Value {
    let mut out = object.clone();
    if let Some(patch) = &rsp.patch {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut out, &patch.0).unwrap();
    }
    out
}

fn allowed_at(object: &Value, lv: LevelVersion) -> bool {
    let parts = crate::workload::extract(crate::workload::WorkloadKind::Pod, object).unwrap();
    pss::evaluate(&parts.metadata, &parts.spec, lv).is_empty()
}

#[test]
fn mutate_hardens_a_pod_create_so_validate_admits_it() {
    let req = request("CREATE", POD, plain_pod(), None);
    let out = mutate::mutate(&req, &restricted(), &AdmissionSettings::default());
    assert_eq!(out.decision, Decision::Patched);
    assert_eq!(out.response.uid, "uid-1");
    assert_eq!(out.response.patch_type, Some("JSONPatch"));
    let hardened = apply(&req.object.as_ref().unwrap().to_json(), &out.response);
    assert!(allowed_at(&hardened, LevelVersion::restricted_latest()));
    assert!(
        out.response
            .audit_annotations
            .contains_key(mutate::AUDIT_HARDENED)
    );
    assert_eq!(
        out.response.warnings,
        [
            "pod-hardener set: runAsNonRoot, seccompProfile, allowPrivilegeEscalation, capabilities, readOnlyRootFilesystem, tmpVolume"
        ]
    );

    let req = request("CREATE", POD, hardened, None);
    let out = validate::validate(&req, &restricted(), &AdmissionSettings::default());
    assert!(out.response.allowed, "{:?}", out.response);
    assert_eq!(
        out.response.audit_annotations["enforce-policy"],
        "restricted:latest"
    );
}

#[test]
fn mutate_leaves_other_requests_alone() {
    let settings = AdmissionSettings::default();
    for (operation, sub) in [
        ("UPDATE", None),
        ("DELETE", None),
        ("CREATE", Some("binding")),
        ("UPDATE", Some("status")),
    ] {
        let mut req = request(operation, POD, plain_pod(), Some(plain_pod()));
        req.sub_resource = sub.map(str::to_owned);
        let out = mutate::mutate(&req, &restricted(), &settings);
        assert_eq!(
            (out.decision, out.response.patch.is_none()),
            (Decision::Allowed, true),
            "{operation} {sub:?}"
        );
    }
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}});
    let out = mutate::mutate(
        &request("CREATE", DEPLOYMENT, deployment, None),
        &restricted(),
        &settings,
    );
    assert!(out.response.patch.is_none());
}

#[test]
fn mutate_follows_the_namespace_mode_and_level() {
    let settings = AdmissionSettings::default();
    let req = request("CREATE", POD, plain_pod(), None);

    let off = policy(&[
        ("pod-security.kubernetes.io/enforce", "restricted"),
        ("pod-hardener.io/mode", "off"),
    ]);
    assert_eq!(
        mutate::mutate(&req, &off, &settings).decision,
        Decision::Allowed
    );

    let shadow = policy(&[
        ("pod-security.kubernetes.io/enforce", "restricted"),
        ("pod-hardener.io/mode", "shadow"),
    ]);
    let out = mutate::mutate(&req, &shadow, &settings);
    assert_eq!(out.decision, Decision::Shadowed);
    assert!(out.response.patch.is_none());
    assert!(
        out.response
            .audit_annotations
            .contains_key(mutate::AUDIT_SHADOW)
    );
    assert!(
        out.response.warnings[0].starts_with("pod-hardener (shadow mode) would set: runAsNonRoot")
    );
    assert!(out.response.warnings[1].starts_with(
        "pod-hardener: this pod will still be denied by PodSecurity \"restricted:latest\""
    ));

    let baseline = policy(&[("pod-security.kubernetes.io/enforce", "baseline")]);
    let out = mutate::mutate(&req, &baseline, &settings);
    let hardened = apply(&req.object.as_ref().unwrap().to_json(), &out.response);
    assert_eq!(
        hardened["spec"]["securityContext"],
        json!({"seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        hardened["spec"]["containers"][0]["securityContext"],
        json!({"allowPrivilegeEscalation": false})
    );

    let privileged = policy(&[("pod-security.kubernetes.io/enforce", "privileged")]);
    assert_eq!(
        mutate::mutate(&req, &privileged, &settings).decision,
        Decision::Allowed
    );
}

#[test]
fn exemptions_skip_hardening_and_validation() {
    let mut settings = AdmissionSettings::default();
    settings.exemptions.usernames.insert("alice".into());
    let req = request("CREATE", POD, plain_pod(), None);
    assert_eq!(
        mutate::mutate(&req, &restricted(), &settings).decision,
        Decision::Allowed
    );
    let out = validate::validate(&req, &restricted(), &settings);
    assert_eq!(
        (out.decision, out.response.allowed),
        (Decision::Exempt, true)
    );
    assert_eq!(out.response.audit_annotations["exempt"], "user");

    let mut settings = AdmissionSettings::default();
    settings
        .exemptions
        .runtime_class_names
        .insert("kata".into());
    let mut object = plain_pod();
    object["spec"]["runtimeClassName"] = json!("kata");
    let req = request("CREATE", POD, object, None);
    assert!(
        mutate::mutate(&req, &restricted(), &settings)
            .response
            .patch
            .is_none()
    );
    assert_eq!(
        validate::validate(&req, &restricted(), &settings)
            .response
            .audit_annotations["exempt"],
        "runtimeClass"
    );

    let mut settings = AdmissionSettings::default();
    settings.exemptions.namespaces.insert("team".into());
    let out = validate::validate(
        &request("CREATE", POD, plain_pod(), None),
        &restricted(),
        &settings,
    );
    assert_eq!(out.response.audit_annotations["exempt"], "namespace");
}

#[test]
fn validate_denies_with_psas_message_and_says_what_hardening_left() {
    let object = pod(
        json!([{"name": "app", "image": "app:1", "securityContext": {"allowPrivilegeEscalation": true}}]),
    );
    let req = request("CREATE", POD, object.clone(), None);
    let hardened = apply(
        &object,
        &mutate::mutate(&req, &restricted(), &AdmissionSettings::default()).response,
    );
    let out = validate::validate(
        &request("CREATE", POD, hardened, None),
        &restricted(),
        &AdmissionSettings::default(),
    );
    assert_eq!(out.decision, Decision::Denied);
    let status = out.response.status.unwrap();
    assert_eq!(status.code, Some(403));
    assert_eq!(
        status.message,
        "violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false); pod-hardener could not fix: allowPrivilegeEscalation (allowPrivilegeEscalation on containers/app: explicit value left alone in fill mode (allowPrivilegeEscalation: true))"
    );
    assert_eq!(out.violations, [pss::CheckId::AllowPrivilegeEscalation]);

    let host = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "h"}, "spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "a"}]}});
    let out = validate::validate(
        &request("CREATE", POD, host, None),
        &policy(&[("pod-security.kubernetes.io/enforce", "baseline")]),
        &AdmissionSettings::default(),
    );
    assert_eq!(
        out.response.status.unwrap().message,
        "violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true); pod-hardener could not fix: hostNamespaces (host namespaces are a host-level requirement; remove hostNetwork/hostPID/hostIPC)"
    );
}

#[test]
fn validate_warns_and_audits_at_their_own_levels() {
    let p = policy(&[
        ("pod-security.kubernetes.io/enforce", "baseline"),
        ("pod-security.kubernetes.io/warn", "restricted"),
        ("pod-security.kubernetes.io/audit", "restricted"),
        ("pod-security.kubernetes.io/audit-version", "v1.30"),
    ]);
    let out = validate::validate(
        &request("CREATE", POD, plain_pod(), None),
        &p,
        &AdmissionSettings::default(),
    );
    assert_eq!(out.decision, Decision::Warned);
    assert!(out.response.allowed);
    assert!(out.response.warnings[0].starts_with(
        "would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"
    ));
    assert!(
        out.response.audit_annotations["audit-violations"]
            .starts_with("would violate PodSecurity \"restricted:v1.30\": ")
    );
    assert_eq!(
        out.response.audit_annotations["enforce-policy"],
        "baseline:latest"
    );
}

#[test]
fn a_denied_pods_audit_message_is_pss_own_when_audit_equals_enforce() {
    // The denial's audit annotation shares the enforce message's aggregated details: it must
    // still be exactly what PSA's would-violate message says, without pod-hardener's addition.
    for (labels, audit) in [
        (
            vec![("pod-security.kubernetes.io/enforce", "restricted")],
            "restricted:latest",
        ),
        (
            vec![
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/enforce-version", "v1.30"),
                ("pod-security.kubernetes.io/audit", "restricted"),
                ("pod-security.kubernetes.io/audit-version", "v1.30"),
            ],
            "restricted:v1.30",
        ),
        (
            vec![
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/audit", "baseline"),
            ],
            "baseline:latest",
        ),
    ] {
        let p = policy(&labels);
        let mut pod = plain_pod();
        pod["spec"]["hostNetwork"] = json!(true);
        let out = validate::validate(
            &request("CREATE", POD, pod.clone(), None),
            &p,
            &AdmissionSettings::default(),
        );
        assert_eq!(out.decision, Decision::Denied, "{labels:?}");
        let parts = crate::workload::extract(crate::workload::WorkloadKind::Pod, &pod).unwrap();
        assert_eq!(p.audit.to_string(), audit);
        let violations = crate::pss::evaluate(&parts.metadata, &parts.spec, p.audit);
        assert_eq!(
            out.response.audit_annotations["audit-violations"],
            crate::pss::would_violate_message(p.audit, &violations),
            "{labels:?}"
        );
    }
}

#[test]
fn validate_skips_insignificant_pod_updates_and_ignored_subresources() {
    let old = plain_pod();
    let mut relabelled = plain_pod();
    relabelled["metadata"]["labels"] = json!({"new": "label"});
    let settings = AdmissionSettings::default();
    assert!(
        validate::validate(
            &request("UPDATE", POD, relabelled, Some(old.clone())),
            &restricted(),
            &settings
        )
        .response
        .allowed
    );
    let mut new_image = plain_pod();
    new_image["spec"]["containers"][0]["image"] = json!("app:2");
    assert!(
        !validate::validate(
            &request("UPDATE", POD, new_image, Some(old.clone())),
            &restricted(),
            &settings
        )
        .response
        .allowed
    );
    let mut req = request("UPDATE", POD, plain_pod(), Some(old));
    req.sub_resource = Some("status".into());
    assert!(
        validate::validate(&req, &restricted(), &settings)
            .response
            .allowed
    );
}

#[test]
fn ephemeral_container_updates_harden_only_the_new_container() {
    let mut old = plain_pod();
    old["spec"]["securityContext"] = json!({"runAsNonRoot": true});
    old["spec"]["ephemeralContainers"] = json!([{"name": "debug-1", "image": "busybox"}]);
    let mut new = old.clone();
    new["spec"]["ephemeralContainers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "debug-2", "image": "busybox"}));
    let mut req = request("UPDATE", POD, new.clone(), Some(old));
    req.sub_resource = Some("ephemeralcontainers".into());
    let out = mutate::mutate(&req, &restricted(), &AdmissionSettings::default());
    let patched = apply(&new, &out.response);
    assert_eq!(
        patched["spec"]["ephemeralContainers"][0],
        json!({"name": "debug-1", "image": "busybox"})
    );
    assert_eq!(
        patched["spec"]["ephemeralContainers"][1]["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(patched["spec"]["containers"], new["spec"]["containers"]);
    assert_eq!(
        patched["metadata"], new["metadata"],
        "the subresource ignores metadata, so none is sent"
    );
    assert!(
        out.response
            .audit_annotations
            .contains_key(mutate::AUDIT_HARDENED)
    );
}

#[test]
fn workloads_get_warnings_about_the_hardened_template_only() {
    let deployment = |sc: Value| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"metadata": {}, "spec": {"containers": [{"name": "a", "image": "a", "securityContext": sc}]}}}})
    };
    let settings = AdmissionSettings::default();
    // Hardening fixes everything: no warning, although the template as written violates.
    let out = validate::validate(
        &request("CREATE", DEPLOYMENT, deployment(json!({})), None),
        &restricted(),
        &settings,
    );
    assert!(out.response.allowed);
    assert!(
        out.response.warnings.is_empty(),
        "{:?}",
        out.response.warnings
    );
    // An explicit value hardening leaves alone: warned at apply time, never denied.
    let out = validate::validate(
        &request(
            "CREATE",
            DEPLOYMENT,
            deployment(json!({"privileged": true})),
            None,
        ),
        &restricted(),
        &settings,
    );
    assert!(out.response.allowed);
    assert_eq!(out.decision, Decision::Warned);
    assert!(out.response.warnings[0].starts_with("would violate PodSecurity \"restricted:latest\": privileged (container \"a\" must not set securityContext.privileged=true), allowPrivilegeEscalation != false"), "{:?}", out.response.warnings);
    assert!(out.response.warnings[0].contains(
        "pod-hardener could not fix: privileged (the workload asked for full host access"
    ));
    // With hardening off, the template is judged as written.
    let off = policy(&[
        ("pod-security.kubernetes.io/enforce", "restricted"),
        ("pod-hardener.io/mode", "off"),
    ]);
    let out = validate::validate(
        &request("CREATE", DEPLOYMENT, deployment(json!({})), None),
        &off,
        &settings,
    );
    assert!(
        out.response.warnings[0].contains("the pod was not hardened"),
        "{:?}",
        out.response.warnings
    );
}

#[test]
fn malformed_objects_get_a_bad_request_with_the_uid() {
    let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": "nope"}});
    let req = request("CREATE", POD, bad, None);
    for out in [
        mutate::mutate(&req, &restricted(), &AdmissionSettings::default()),
        validate::validate(&req, &restricted(), &AdmissionSettings::default()),
    ] {
        assert_eq!(out.decision, Decision::Invalid);
        assert_eq!(out.response.uid, "uid-1");
        assert_eq!(out.response.status.as_ref().unwrap().code, Some(400));
    }
}

#[test]
fn label_errors_fail_closed_and_are_audited() {
    let p = policy(&[("pod-security.kubernetes.io/enforce", "strict")]);
    let out = validate::validate(
        &request("CREATE", POD, plain_pod(), None),
        &p,
        &AdmissionSettings::default(),
    );
    assert!(!out.response.allowed);
    assert!(
        out.response.audit_annotations["error"]
            .starts_with("Failed to parse policy: pod-security.kubernetes.io/enforce")
    );
    assert_eq!(p.mode, HardenMode::Harden);
}

/// Every v1.37 Pod of Kubernetes' PSA fixtures at the baseline and restricted levels, passing
/// and failing, with its path.
pub(crate) fn v1_37_fixtures() -> Vec<(std::path::PathBuf, Value)> {
    let root = psa_fixtures_dir();
    let mut fixtures = Vec::new();
    for level in ["baseline", "restricted"] {
        for outcome in ["pass", "fail"] {
            for entry in std::fs::read_dir(root.join(level).join("v1.37").join(outcome)).unwrap() {
                let path = entry.unwrap().path();
                let object =
                    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                fixtures.push((path, object));
            }
        }
    }
    fixtures
}

/// The "will still be denied" warning, computed from the plan without building the hardened pod,
/// names exactly the reasons the hardened pod fails with, on every v1.37 PSA fixture.
#[test]
fn still_denied_warning_matches_the_hardened_pod_on_every_fixture() {
    let mut checked = 0;
    for (path, object) in v1_37_fixtures() {
        // Defaulting can only add violations the warning also sees (volumes without a source
        // are what the API server defaults; the raw fixture keeps them).
        if path.ends_with("restrictedvolumes0.yaml") {
            continue;
        }
        let req = request("CREATE", POD, object.clone(), None);
        let out = mutate::mutate(&req, &restricted(), &AdmissionSettings::default());
        let hardened = apply(&object, &out.response);
        let mut parts =
            crate::workload::extract(crate::workload::WorkloadKind::Pod, &hardened).unwrap();
        crate::pss::defaulting::apply_api_server_defaults(
            &mut parts.spec,
            crate::pss::defaulting::SpecOwner::Pod,
        );
        let violations = pss::evaluate(
            &parts.metadata,
            &parts.spec,
            LevelVersion::restricted_latest(),
        );
        let expected = (!violations.is_empty()).then(|| {
            format!("pod-hardener: this pod will still be denied by PodSecurity \"restricted:latest\": {}", pss::aggregate_reasons(&violations))
        });
        // PSA's part, exactly; then, when hardening skipped something, what it could not fix.
        let actual = out
            .response
            .warnings
            .iter()
            .find(|w| w.contains("will still be denied"))
            .map(|w| match w.split_once("; pod-hardener could not fix: ") {
                Some((psa, why)) => {
                    assert!(!why.is_empty(), "{}", path.display());
                    psa.to_owned()
                }
                None => w.clone(),
            });
        assert_eq!(actual, expected, "{}", path.display());
        checked += 1;
    }
    assert!(checked > 140, "{checked}");
}

/// The object of a review read as lean JSON, as `decode` reads any object but a Pod create's.
fn lean_json(object: &Value) -> Value {
    let text = object.to_string();
    let mut json = serde_json::Deserializer::from_str(&text);
    object::deserialize(&mut json).unwrap().unwrap()
}

/// Decoding drops fields no check reads (`object::SKIPPED_CONTAINER_FIELDS`,
/// `SKIPPED_METADATA_FIELDS` and `SKIPPED_PROJECTED_FIELDS`), and reads a Pod create straight
/// into typed parts: every fixture, given such fields, is decided exactly as with the full object in JSON form, typed or lean,
/// and the patch computed on the lean object applied to the full one leaves the dropped fields
/// as they were. The hardened fixture is decided alike too (what the validating webhook and a
/// reinvoked mutating webhook see).
#[test]
fn the_lean_object_is_decided_as_the_full_object_on_every_fixture() {
    let settings = AdmissionSettings::default();
    let policies = [
        restricted(),
        policy(&[("pod-security.kubernetes.io/enforce", "baseline")]),
    ];
    let mut checked = 0;
    for (path, mut full) in v1_37_fixtures() {
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            let Some(containers) = full["spec"][list].as_array_mut() else {
                continue;
            };
            for c in containers {
                let c = c.as_object_mut().unwrap();
                c.insert("env".into(), json!([{"name": "SECRET", "value": "s3cr3t"}]));
                c.insert("envFrom".into(), json!([{"secretRef": {"name": "s"}}]));
                c.insert("args".into(), json!(["--flag"]));
                c.insert("command".into(), json!(["/bin/app"]));
                c.insert("resources".into(), json!({"limits": {"memory": "1Gi"}}));
            }
        }
        full["metadata"]["managedFields"] =
            json!([{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]);
        // The token volume the ServiceAccount admission plugin adds to every Pod.
        let token_volume = json!({"name": "kube-api-access-x2k9p", "projected": {
            "defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}});
        match full["spec"]["volumes"].as_array_mut() {
            Some(volumes) => volumes.push(token_volume),
            None => full["spec"]["volumes"] = json!([token_volume]),
        }
        let typed = request("CREATE", POD, full.clone(), None);
        assert!(
            matches!(typed.object, Some(ReviewObject::Pod(_))),
            "{}",
            path.display()
        );
        let lean_object = lean_json(&full);
        assert_ne!(lean_object, full, "{}", path.display());
        let with_json = |json: &Value| {
            let mut req = typed.clone();
            req.object = Some(ReviewObject::Json(json.clone()));
            req
        };
        let (lean, whole) = (with_json(&lean_object), with_json(&full));
        for policy in &policies {
            let (a, b, c) = (
                mutate::mutate(&typed, policy, &settings),
                mutate::mutate(&lean, policy, &settings),
                mutate::mutate(&whole, policy, &settings),
            );
            assert_eq!(a.response, b.response, "mutate {}", path.display());
            assert_eq!(a.response, c.response, "mutate {}", path.display());
            // Hardening commutes with leaving the fields out: the full object patched, then
            // decoded lean, is the lean object patched.
            let hardened_full = apply(&full, &a.response);
            assert_eq!(
                lean_json(&hardened_full),
                apply(&lean_object, &a.response),
                "{}",
                path.display()
            );
            for req in [&lean, &whole] {
                assert_eq!(
                    validate::validate(&typed, policy, &settings).response,
                    validate::validate(req, policy, &settings).response,
                    "validate {}",
                    path.display()
                );
            }
            let hardened_typed = request("CREATE", POD, hardened_full.clone(), None);
            let hardened_json = with_json(&hardened_full);
            assert_eq!(
                mutate::mutate(&hardened_typed, policy, &settings).response,
                mutate::mutate(&hardened_json, policy, &settings).response,
                "mutate hardened {}",
                path.display()
            );
            assert_eq!(
                validate::validate(&hardened_typed, policy, &settings).response,
                validate::validate(&hardened_json, policy, &settings).response,
                "validate hardened {}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} fixtures");
}

#[test]
fn mutate_with_image_facts_never_admits_a_pod_the_kubelet_would_refuse() {
    use crate::harden::{ImageCatalog, ImageFacts, ImageLookup};
    let req = request("CREATE", POD, plain_pod(), None);
    let settings = AdmissionSettings::default();
    let facts = |user: &str| {
        ImageLookup::Found(ImageFacts {
            digest: "sha256:1".into(),
            user: user.into(),
            passwd_uid: None,
            ..ImageFacts::default()
        })
    };
    // A root image: runAsNonRoot is not filled, so PSA's denial (not the kubelet's
    // CreateContainerConfigError) is what the user sees, and the warning says so now.
    let mut catalog = ImageCatalog::new();
    catalog.insert("app:1", facts(""));
    let out = mutate::mutate_with_images(&req, &restricted(), &settings, Some(catalog));
    let hardened = apply(&req.object.as_ref().unwrap().to_json(), &out.response);
    assert_eq!(
        hardened["spec"]["securityContext"].get("runAsNonRoot"),
        None
    );
    assert_eq!(
        hardened["spec"]["containers"][0]["securityContext"].get("runAsNonRoot"),
        None
    );
    assert!(
        out.response
            .warnings
            .iter()
            .any(|w| w.contains("will still be denied") && w.contains("runAsNonRoot")),
        "{:?}",
        out.response.warnings
    );
    // A registry that could not be read: hardened as without lookups, and said.
    let mut catalog = ImageCatalog::new();
    catalog.insert(
        "app:1",
        ImageLookup::Unavailable("connection refused".into()),
    );
    let out = mutate::mutate_with_images(&req, &restricted(), &settings, Some(catalog));
    let hardened = apply(&req.object.as_ref().unwrap().to_json(), &out.response);
    assert_eq!(hardened["spec"]["securityContext"]["runAsNonRoot"], true);
    assert!(out.response.warnings.contains(
        &"pod-hardener could not read the user of image app:1: connection refused; runAsNonRoot was planned without it".to_owned()
    ), "{:?}", out.response.warnings);
    // A numeric non-root user: as without lookups.
    let mut catalog = ImageCatalog::new();
    catalog.insert("app:1", facts("1000"));
    let with = mutate::mutate_with_images(&req, &restricted(), &settings, Some(catalog));
    let without = mutate::mutate(&req, &restricted(), &settings);
    let object = req.object.as_ref().unwrap().to_json();
    let (with, without) = (
        apply(&object, &with.response),
        apply(&object, &without.response),
    );
    assert_eq!(with["spec"], without["spec"]);
    let record: Value = serde_json::from_str(
        with["metadata"]["annotations"][crate::harden::RECORD_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record["images"][0]["user"], "1000", "{record}");
}

include!("../../tests/support/shared_data.rs");

/// The answer written by hand (`wire`) is the one serde_json writes for the same response, on
/// every v1.37 PSA fixture at both endpoints, in fill, override and shadow mode: the same
/// members, and a patch that decodes to the same operations.
#[test]
fn answers_are_the_responses_serde_json_writes_on_every_fixture() {
    fn decoded_patch(answer: &mut Value) -> Option<Value> {
        let patch = answer["response"].as_object_mut()?.remove("patch")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch.as_str().unwrap())
            .unwrap();
        Some(serde_json::from_slice(&bytes).unwrap())
    }
    let mut shadow = restricted();
    shadow.mode = HardenMode::Shadow;
    let mut overriding = AdmissionSettings::default();
    overriding.hardening.mode = crate::harden::Mode::Override;
    let cases = [
        (restricted(), AdmissionSettings::default()),
        (restricted(), overriding),
        (shadow, AdmissionSettings::default()),
    ];
    let mut patched = 0;
    for (path, object) in v1_37_fixtures() {
        let req = request("CREATE", POD, object, None);
        for (policy, settings) in &cases {
            for outcome in [
                mutate::mutate(&req, policy, settings),
                validate::validate(&req, policy, settings),
            ] {
                let rsp = outcome.response;
                let mut expected: Value =
                    serde_json::from_slice(&wire::serde_review_json(&rsp)).unwrap();
                let mut written: Value = serde_json::from_slice(&rsp.into_review_json()).unwrap();
                let (expected_patch, written_patch) =
                    (decoded_patch(&mut expected), decoded_patch(&mut written));
                patched += usize::from(written_patch.is_some());
                assert_eq!(written_patch, expected_patch, "{}", path.display());
                assert_eq!(written, expected, "{}", path.display());
            }
        }
    }
    assert!(patched > 200, "only {patched} patched answers");
}
