#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::harden::images::{ImageFacts, ImageLookup};
use crate::policy::{Defaults, NamespacePolicy};
use crate::pss::{Level, LevelVersion, Version};

fn policy(labels: &[(&str, &str)]) -> NamespacePolicy {
    let restricted = LevelVersion::new(Level::Restricted, Version::Latest);
    let defaults = Defaults {
        enforce: restricted,
        warn: restricted,
        audit: restricted,
        mode: HardenMode::Harden,
    };
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    NamespacePolicy::from_labels(Some(&labels), &defaults)
}

fn deployment(pod_security: Value, container: Value) -> Value {
    let mut c = json!({"name": "app", "image": "registry.test/app:1"});
    c.as_object_mut()
        .unwrap()
        .extend(container.as_object().unwrap().clone());
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"template": {"metadata": {}, "spec": {
            "securityContext": pod_security,
            "containers": [c],
        }}}
    })
}

fn with_runtime_class(mut deployment: Value, class: &str) -> Value {
    deployment["spec"]["template"]["spec"]["runtimeClassName"] = json!(class);
    deployment
}

fn hardened_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "image": "registry.test/app:1", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
                "readOnlyRootFilesystem": true}}]
        }
    })
}

fn catalog(user: &str, passwd_uid: Option<i64>) -> ImageCatalog {
    let mut c = ImageCatalog::new();
    c.insert(
        "registry.test/app:1",
        ImageLookup::Found(ImageFacts {
            digest: "sha256:00".into(),
            user: user.into(),
            passwd_uid,
            ..ImageFacts::default()
        }),
    );
    c
}

struct Case {
    name: &'static str,
    kind: WorkloadKind,
    object: Value,
    labels: &'static [(&'static str, &'static str)],
    settings: AdmissionSettings,
    images: Option<ImageCatalog>,
    class: Class,
    /// (check, reason) of each unfixable check.
    unfixable: &'static [(&'static str, &'static str)],
    risks: &'static [RiskKind],
}

fn case(name: &'static str, object: Value, class: Class) -> Case {
    Case {
        name,
        kind: WorkloadKind::of_document(&object).unwrap(),
        object,
        labels: &[],
        settings: AdmissionSettings::default(),
        images: None,
        class,
        unfixable: &[],
        risks: &[],
    }
}

fn exempt_settings() -> AdmissionSettings {
    let mut s = AdmissionSettings::default();
    s.exemptions.namespaces.insert("kube-system".into());
    s.exemptions.runtime_class_names.insert("kata".into());
    s
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            risks: &[],
            ..case("hardened pod as is", hardened_pod(), Class::Compliant)
        },
        Case {
            risks: &[RiskKind::ReadOnlyRoot, RiskKind::ImageUserUnknown],
            ..case(
                "plain deployment, no lookups",
                deployment(json!({}), json!({})),
                Class::Hardened,
            )
        },
        Case {
            images: Some(catalog("1000", None)),
            risks: &[RiskKind::ReadOnlyRoot],
            ..case(
                "plain deployment, numeric image user",
                deployment(json!({}), json!({})),
                Class::Hardened,
            )
        },
        Case {
            images: Some(catalog("app", Some(1001))),
            risks: &[RiskKind::ReadOnlyRoot],
            ..case(
                "named image user resolved: runAsUser is set",
                deployment(json!({}), json!({})),
                Class::Hardened,
            )
        },
        Case {
            images: Some(catalog("", None)),
            unfixable: &[("runAsNonRoot", "image-runs-as-root")],
            ..case(
                "root image with lookups: denied, saying why",
                deployment(json!({}), json!({})),
                Class::Denied,
            )
        },
        Case {
            risks: &[RiskKind::ReadOnlyRoot],
            ..case(
                "runAsUser in effect: the image's user does not matter",
                deployment(json!({"runAsUser": 1000}), json!({})),
                Class::Hardened,
            )
        },
        Case {
            unfixable: &[("runAsNonRoot", "explicit-value")],
            ..case(
                "explicit runAsNonRoot false in fill mode",
                deployment(json!({"runAsNonRoot": false}), json!({})),
                Class::Denied,
            )
        },
        Case {
            // allowPrivilegeEscalation: false is invalid beside privileged: true.
            unfixable: &[
                ("privileged", "never-fixable"),
                ("allowPrivilegeEscalation", "api-invalid"),
            ],
            ..case(
                "privileged container",
                deployment(json!({}), json!({"securityContext": {"privileged": true}})),
                Class::Denied,
            )
        },
        Case {
            labels: &[("pod-security.kubernetes.io/enforce", "privileged")],
            ..case(
                "privileged namespace",
                deployment(json!({}), json!({"securityContext": {"privileged": true}})),
                Class::Compliant,
            )
        },
        Case {
            labels: &[("pod-hardener.io/mode", "shadow")],
            unfixable: &[
                ("allowPrivilegeEscalation", "not-hardened"),
                ("capabilities_restricted", "not-hardened"),
                ("runAsNonRoot", "not-hardened"),
                ("seccompProfile_restricted", "not-hardened"),
            ],
            ..case(
                "shadow mode: not hardened",
                deployment(json!({}), json!({})),
                Class::Denied,
            )
        },
        Case {
            labels: &[("pod-security.kubernetes.io/enforce", "baseline")],
            ..case(
                "baseline namespace, plain deployment",
                deployment(json!({}), json!({})),
                Class::Compliant,
            )
        },
        Case {
            settings: exempt_settings(),
            ..case(
                "exempt runtime class",
                with_runtime_class(deployment(json!({}), json!({})), "kata"),
                Class::Exempt,
            )
        },
        Case {
            // Windows: no runAsNonRoot image rules (the kubelet checks names there).
            risks: &[],
            ..case(
                "windows pod",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"},
                       "spec": {"os": {"name": "windows"}, "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                                "containers": [{"name": "app", "image": "registry.test/app:1",
                                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}),
                Class::Hardened,
            )
        },
        Case {
            // Judged as created again: without the privileged debug container kubectl added.
            ..case(
                "pod with a privileged ephemeral container",
                {
                    let mut pod = hardened_pod();
                    pod["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox",
                        "securityContext": {"privileged": true}}]);
                    pod
                },
                Class::Compliant,
            )
        },
        Case {
            ..case(
                "unreadable spec",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                       "spec": {"containers": "not a list"}}),
                Class::Unreadable,
            )
        },
    ]
}

#[test]
fn classifies_each_written_case() {
    for c in cases() {
        let finding = classify(
            c.kind,
            &c.object,
            "apps",
            &policy(c.labels),
            &c.settings,
            c.images.clone(),
        );
        assert_eq!(finding.class, c.class, "{}: {finding:#?}", c.name);
        let unfixable: Vec<(&str, &str)> = finding
            .unfixable
            .iter()
            .map(|u| (u.check.as_str(), u.reason.as_str()))
            .collect();
        assert_eq!(unfixable, c.unfixable, "{}: {finding:#?}", c.name);
        let risks: Vec<RiskKind> = finding.risks.iter().map(|r| r.kind).collect();
        assert_eq!(risks, c.risks, "{}: {finding:#?}", c.name);
        match finding.class {
            Class::Denied => {
                let message = finding.message.as_deref().unwrap();
                assert!(
                    message.starts_with("violates PodSecurity \"restricted:latest\": "),
                    "{}: {message}",
                    c.name
                );
            }
            Class::Compliant | Class::Hardened => assert_eq!(finding.message, None, "{}", c.name),
            Class::Exempt | Class::Unreadable => assert!(finding.message.is_some(), "{}", c.name),
        }
    }
}

#[test]
fn an_exempt_namespace_is_neither_hardened_nor_checked() {
    let finding = classify(
        WorkloadKind::Deployment,
        &deployment(json!({}), json!({"securityContext": {"privileged": true}})),
        "kube-system",
        &policy(&[]),
        &exempt_settings(),
        None,
    );
    assert_eq!(finding.class, Class::Exempt);
    assert_eq!(finding.message.as_deref(), Some("exempt namespace"));
    assert!(finding.changes.is_empty());
}

#[test]
fn changes_are_listed_per_target_in_record_order() {
    let finding = classify(
        WorkloadKind::Deployment,
        &deployment(json!({}), json!({})),
        "apps",
        &policy(&[]),
        &AdmissionSettings::default(),
        None,
    );
    let changes: Vec<(String, Vec<&str>)> = finding
        .changes
        .iter()
        .map(|t| {
            (
                t.target.clone(),
                t.controls.iter().map(|c| c.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (
                "pod".to_owned(),
                vec!["runAsNonRoot", "seccompProfile", "tmpVolume"]
            ),
            (
                "containers/app".to_owned(),
                vec![
                    "allowPrivilegeEscalation",
                    "capabilities",
                    "readOnlyRootFilesystem",
                    "tmpVolume"
                ]
            ),
        ]
    );
}

/// The request `/mutate` and `/validate` get for `pod` being created in namespace `team`.
fn pod_create(pod: &Value) -> crate::admission::AdmissionRequest {
    let request = json!({
        "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": "p", "namespace": "team", "operation": "CREATE",
        "userInfo": {"username": "alice"}, "object": pod,
    });
    crate::admission::decode(&crate::admission::review::review_in_wire_order(
        request.as_object().unwrap(),
    ))
    .unwrap()
}

/// On every v1.37 PSA fixture, at both levels and in both modes, the class is what the webhook
/// does to the Pod: `/validate` of it as is, then `/mutate` and `/validate` of the patched Pod.
#[test]
fn classifies_every_fixture_as_mutate_then_validate_decide_it() {
    use crate::admission::{mutate::mutate, validate::validate};
    use crate::harden::Mode;
    let mut seen = std::collections::BTreeSet::new();
    for (path, fixture) in crate::admission::tests::v1_37_fixtures() {
        // As the API server stores it, the form the webhook (and the audit) gets: defaulted.
        let mut fixture = fixture;
        let mut parts = workload::extract(WorkloadKind::Pod, &fixture).unwrap();
        crate::pss::defaulting::apply_api_server_defaults(
            &mut parts.spec,
            WorkloadKind::Pod.spec_owner(),
        );
        fixture["spec"] = serde_json::to_value(&parts.spec).unwrap();
        for level in ["baseline", "restricted"] {
            for mode in [Mode::Fill, Mode::Override] {
                let policy = policy(&[("pod-security.kubernetes.io/enforce", level)]);
                let mut settings = AdmissionSettings::default();
                settings.hardening.mode = mode;
                let allowed = |pod: &Value| {
                    validate(&pod_create(pod), &policy, &settings)
                        .response
                        .allowed
                };
                let mutated = mutate(&pod_create(&fixture), &policy, &settings);
                let mut hardened = fixture.clone();
                if let Some(patch) = &mutated.response.patch {
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(patch)
                        .unwrap();
                    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
                    json_patch::patch(&mut hardened, &patch.0).unwrap();
                }
                let expected = match (allowed(&fixture), allowed(&hardened)) {
                    (_, false) => Class::Denied,
                    (true, true) => Class::Compliant,
                    (false, true) => Class::Hardened,
                };
                let finding = classify(
                    WorkloadKind::Pod,
                    &fixture,
                    "team",
                    &policy,
                    &settings,
                    None,
                );
                assert_eq!(
                    finding.class,
                    expected,
                    "{} at {level} ({mode:?}): {finding:#?}",
                    path.display()
                );
                seen.insert(expected);
            }
        }
    }
    assert_eq!(seen.len(), 3, "every class is exercised: {seen:?}");
}
