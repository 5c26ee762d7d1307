//! End to end through a real kube-apiserver, kube-controller-manager and etcd (issue 5,
//! scenarios 1-11): the real `pod-hardener` binary is registered through the webhook
//! configurations of `manifests/base/webhooks.yaml` (rewritten to `clientConfig.url` with the
//! caBundle from `pod-hardener certs`), and every check is made on the object the API server
//! returns or stores.
//!
//! Each scenario starts its own control plane and pod-hardener (see `tests/common/webhook.rs`;
//! at most two at once per test process). Run them alone with
//! `cargo test --test e2e_webhook`.
//!
//! Admission order matters for what a client sees: the API server runs the mutating webhooks,
//! then its built-in PodSecurity plugin, then the validating webhooks. In a namespace labelled
//! `enforce=restricted` PodSecurity therefore rejects a violating Pod before pod-hardener's
//! validating webhook is asked; pod-hardener's own denial (with its "could not fix" explanation)
//! is what a client sees where the API server's PodSecurity is more lenient than pod-hardener,
//! e.g. in an unlabelled namespace: PodSecurity's default is privileged there, pod-hardener's
//! `defaultPolicy` is restricted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

include!("support/shared_data.rs");

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::webhook::{
    IMAGE, MUTATING_WEBHOOK, RECORD_ANNOTATION, Setup, SidecarInjector, VALIDATING_WEBHOOK, WAIT,
    pod,
};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const RESTRICTED: (&str, &str) = ("pod-security.kubernetes.io/enforce", "restricted");
const BASELINE: (&str, &str) = ("pod-security.kubernetes.io/enforce", "baseline");
const MODE_LABEL: &str = "pod-hardener.io/mode";
const PSA_RESTRICTED: &str = r#"violates PodSecurity "restricted:latest""#;
/// The prefix the API server puts before a validating webhook's denial message.
const WEBHOOK_DENIED: &str = r#"admission webhook "validate.pod-hardener.io" denied the request: violates PodSecurity "restricted:latest""#;
const COULD_NOT_FIX: &str = "pod-hardener could not fix";

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// 1. An unmodified Deployment (no securityContext anywhere) in a namespace labelled
///    enforce=restricted: the controller manager's Pods are hardened by pod-hardener and
///    admitted by the API server's own PodSecurity. This also settles the wire format: the
///    response's `patch` is base64 of a JSON Patch, and the API server applies it.
#[tokio::test(flavor = "multi_thread")]
async fn s01_unmodified_deployment_in_restricted_namespace_gets_hardened_pods() {
    let setup = Setup::start(json!({})).await;
    setup.namespace("apps", &[RESTRICTED]).await;
    create_deployment(&setup.client, "apps", &web_deployment()).await;

    let pods = wait_for_pods(&setup, "apps", "app=web", 1).await;
    let pod = to_value(&pods[0]);
    assert_restricted_hardened(&pod, "containers", "web");
    let record = record(&pod).expect("the record annotation");
    assert_eq!(record["level"], "restricted", "{record}");
    assert_eq!(record["mode"], "fill", "{record}");
    assert!(record["changes"]["containers/web"].is_object(), "{record}");
    eprintln!("s01 done in {:.1?}", setup.elapsed());
}

/// 2. The same Deployment in a restricted namespace pod-hardener does not serve (its own
///    namespace `pod-hardener`, which both webhooks' namespaceSelector excludes): PodSecurity
///    rejects its Pods, so PSA is a real oracle. The namespace and everything else in
///    `manifests/` come from `kubectl kustomize manifests`, applied server-side; the shipped
///    webhook configurations are checked by a server-side dry-run apply under another name
///    (the test's rewritten ones hold the real names).
#[tokio::test(flavor = "multi_thread")]
async fn s02_unserved_restricted_namespace_psa_rejects_and_manifests_apply() {
    let setup = Setup::start(json!({})).await;
    let built = kubectl(&setup, &["kustomize", manifests_dir()], None);
    assert!(
        built.status.success(),
        "kubectl kustomize: {}",
        stderr(&built)
    );
    let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_slice(&built.stdout)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect();
    let is_webhook = |d: &Value| {
        d["kind"]
            .as_str()
            .unwrap()
            .ends_with("WebhookConfiguration")
    };
    let (mut webhooks, rest): (Vec<Value>, Vec<Value>) =
        documents.into_iter().partition(is_webhook);
    let mut kinds: Vec<&str> = rest.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]
    );
    let applied = kubectl(
        &setup,
        &["apply", "--server-side", "--field-manager=e2e", "-f", "-"],
        Some(&to_yaml_stream(&rest)),
    );
    assert!(
        applied.status.success(),
        "server-side apply of manifests/: {}\n{}",
        stderr(&applied),
        setup.diagnostics()
    );
    for webhook in &mut webhooks {
        webhook["metadata"]["name"] = "pod-hardener-as-shipped".into();
    }
    let dry = kubectl(
        &setup,
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=e2e",
            "-f",
            "-",
        ],
        Some(&to_yaml_stream(&webhooks)),
    );
    assert!(
        dry.status.success(),
        "dry-run apply of the webhooks: {}",
        stderr(&dry)
    );
    assert_eq!(
        String::from_utf8_lossy(&dry.stdout)
            .matches("(server dry run)")
            .count(),
        2
    );

    // The manifests' own Deployment passes restricted: its two Pods are admitted by PSA.
    let own = wait_for_pods(
        &setup,
        "pod-hardener",
        "app.kubernetes.io/name=pod-hardener",
        2,
    )
    .await;
    for pod in &own {
        assert!(
            record(&to_value(pod)).is_none(),
            "not hardened: the namespace is excluded"
        );
    }

    create_deployment(&setup.client, "pod-hardener", &web_deployment()).await;
    let denial = wait_for_failed_create(&setup, "pod-hardener", "web").await;
    assert!(denial.contains(PSA_RESTRICTED), "{denial}");
    assert!(
        denial.contains("allowPrivilegeEscalation != false"),
        "{denial}"
    );
    assert!(
        !denial.contains("pod-hardener"),
        "PSA's own message: {denial}"
    );
    assert!(
        list_pods(&setup.client, "pod-hardener", "app=web")
            .await
            .is_empty()
    );
    eprintln!("s02 done in {:.1?}", setup.elapsed());
}

/// 3. hostPath, hostNetwork and privileged Pods: denied by the validating webhook with PSA's
///    reason text and pod-hardener's explanation (in an unlabelled namespace, where only
///    pod-hardener enforces restricted); in a namespace labelled restricted the API server's
///    PodSecurity denies them first.
#[tokio::test(flavor = "multi_thread")]
async fn s03_host_path_host_network_and_privileged_are_denied_by_the_webhook() {
    let setup = Setup::start(json!({})).await;
    setup.namespace("apps", &[]).await;
    setup.namespace("strict", &[RESTRICTED]).await;
    let app = |extra: Value| {
        let mut container = json!({ "name": "app", "image": IMAGE });
        merge(&mut container, extra);
        container
    };
    let cases = [
        (
            "hostpath",
            json!({
                "volumes": [{ "name": "logs", "hostPath": { "path": "/var/log" } }],
                "containers": [app(json!({ "volumeMounts": [{ "name": "logs", "mountPath": "/logs" }] }))],
            }),
            "restricted volume types (volume \"logs\" uses restricted volume type \"hostPath\")",
            "restrictedVolumes (the storage cannot be swapped without breaking the app",
        ),
        (
            "hostnetwork",
            json!({ "hostNetwork": true, "containers": [app(json!({}))] }),
            "host namespaces (hostNetwork=true)",
            "hostNamespaces (host namespaces are a host-level requirement",
        ),
        (
            "privileged",
            json!({ "containers": [app(json!({ "securityContext": { "privileged": true } }))] }),
            "privileged (container \"app\" must not set securityContext.privileged=true)",
            "privileged (the workload asked for full host access",
        ),
    ];
    for (name, spec, reason, explanation) in cases {
        let message = denial(&setup, "apps", &pod(name, spec.clone())).await;
        assert!(message.starts_with(WEBHOOK_DENIED), "{name}: {message}");
        assert!(message.contains(reason), "{name}: {message}");
        assert!(message.contains(COULD_NOT_FIX), "{name}: {message}");
        assert!(message.contains(explanation), "{name}: {message}");

        let message = denial(&setup, "strict", &pod(name, spec)).await;
        assert!(
            message.starts_with(&format!("pods \"{name}\" is forbidden: {PSA_RESTRICTED}")),
            "{name}: PodSecurity answers first: {message}"
        );
        assert!(!message.contains(VALIDATING_WEBHOOK), "{name}: {message}");
    }
    eprintln!("s03 done in {:.1?}", setup.elapsed());
}

/// 4a. An explicit `allowPrivilegeEscalation: true` is left alone in fill mode (the default),
///     so the Pod is denied: by pod-hardener with the reason where it is the enforcer, by
///     PodSecurity in a namespace labelled restricted.
#[tokio::test(flavor = "multi_thread")]
async fn s04a_explicit_privilege_escalation_is_denied_in_fill_mode() {
    let setup = Setup::start(json!({})).await;
    setup.namespace("apps", &[]).await;
    setup.namespace("strict", &[RESTRICTED]).await;
    let escalating = escalating_pod();

    let message = denial(&setup, "apps", &escalating).await;
    assert!(message.starts_with(WEBHOOK_DENIED), "{message}");
    assert!(
        message.contains(
            "allowPrivilegeEscalation != false (container \"app\" must set \
             securityContext.allowPrivilegeEscalation=false)"
        ),
        "{message}"
    );
    assert!(
        message.contains(
            "pod-hardener could not fix: allowPrivilegeEscalation (allowPrivilegeEscalation on \
             containers/app: explicit value left alone in fill mode"
        ),
        "{message}"
    );

    let message = denial(&setup, "strict", &escalating).await;
    assert!(message.contains(PSA_RESTRICTED), "{message}");
    assert!(
        message.contains("allowPrivilegeEscalation != false"),
        "{message}"
    );
    eprintln!("s04a done in {:.1?}", setup.elapsed());
}

/// 4b. In override mode the explicit value is rewritten and recorded, and the Pod is admitted
///     by PodSecurity. Override is a config-level setting (`hardening.mode`); there is no
///     per-namespace label for it, so this runs pod-hardener with that config.
#[tokio::test(flavor = "multi_thread")]
async fn s04b_explicit_privilege_escalation_is_overridden_in_override_mode() {
    let setup = Setup::start(json!({ "hardening": { "mode": "override" } })).await;
    setup.namespace("strict", &[RESTRICTED]).await;
    let created = create_pod(&setup.client, "strict", &escalating_pod()).await;
    let pod = read_back(&setup.client, "strict", &created).await;
    assert_restricted_hardened(&pod, "containers", "app");
    let raw = pod["metadata"]["annotations"][RECORD_ANNOTATION]
        .as_str()
        .unwrap();
    assert!(
        raw.contains(
            r#""overrides":{"containers/app":{"allowPrivilegeEscalation":{"from":true,"to":false}}}"#
        ),
        "{raw}"
    );
    assert_eq!(record(&pod).unwrap()["mode"], "override");
    eprintln!("s04b done in {:.1?}", setup.elapsed());
}

/// 5. A Windows Pod without any securityContext in a restricted namespace: admitted with
///    `runAsNonRoot: true` only; no Linux-only field anywhere (the API server rejects them).
#[tokio::test(flavor = "multi_thread")]
async fn s05_windows_pod_gets_run_as_non_root_only() {
    let setup = Setup::start(json!({})).await;
    setup.namespace("win", &[RESTRICTED]).await;
    let windows = pod(
        "win",
        json!({
            "os": { "name": "windows" },
            "containers": [{ "name": "app", "image": IMAGE }],
        }),
    );
    let created = create_pod(&setup.client, "win", &windows).await;
    let pod = read_back(&setup.client, "win", &created).await;
    assert_eq!(
        pod["spec"]["securityContext"],
        json!({ "runAsNonRoot": true }),
        "{pod}"
    );
    assert!(
        pod["spec"]["containers"][0]
            .get("securityContext")
            .is_none(),
        "{pod}"
    );
    let text = pod["spec"].to_string();
    for linux_only in [
        "seccompProfile",
        "allowPrivilegeEscalation",
        "capabilities",
        "readOnlyRootFilesystem",
        "procMount",
        "seLinuxOptions",
        "appArmorProfile",
        "pod-hardener-tmp",
    ] {
        assert!(!text.contains(linux_only), "{linux_only} in {text}");
    }
    let record = record(&pod).unwrap();
    assert_eq!(
        record["changes"],
        json!({"pod": {"runAsNonRoot": true}}),
        "{record}"
    );
    eprintln!("s05 done in {:.1?}", setup.elapsed());
}

/// 6. An ephemeral container added through the `pods/ephemeralcontainers` subresource with a
///    strategic merge patch, as `kubectl debug` does: the new container is hardened (so the
///    restricted namespace's PodSecurity admits it), everything else is untouched.
#[tokio::test(flavor = "multi_thread")]
async fn s06_ephemeral_container_is_hardened_and_the_rest_untouched() {
    let setup = Setup::start(json!({})).await;
    setup.namespace("debug", &[RESTRICTED]).await;
    let target = pod(
        "target",
        json!({ "containers": [{ "name": "app", "image": IMAGE }] }),
    );
    let created = create_pod(&setup.client, "debug", &target).await;
    let before = read_back(&setup.client, "debug", &created).await;
    assert_restricted_hardened(&before, "containers", "app");

    // kubectl debug itself: a strategic merge patch of pods/ephemeralcontainers. The legacy
    // profile sets no securityContext (newer profiles would add capabilities of their own).
    let debugged = kubectl(
        &setup,
        &[
            "debug",
            "-n",
            "debug",
            "target",
            "--image=busybox:1.36",
            "--container=debugger",
            "--target=app",
            "--profile=legacy",
            "--",
            "sh",
        ],
        None,
    );
    assert!(
        debugged.status.success(),
        "kubectl debug: {}\n{}",
        stderr(&debugged),
        setup.diagnostics()
    );
    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), "debug");
    let after = to_value(&pods.get("target").await.unwrap());
    let debugger = &after["spec"]["ephemeralContainers"][0];
    assert_eq!(debugger["name"], "debugger", "{after}");
    assert_eq!(debugger["targetContainerName"], "app", "{after}");
    assert_ephemeral_hardened(debugger, &after);
    assert_untouched(&before, &after);

    // A second one through kube's subresource API: it is hardened, the first is left as it was.
    let second = json!({
        "spec": {
            "ephemeralContainers": [
                debugger,
                { "name": "debugger-2", "image": "busybox:1.36", "command": ["sh"],
                  "stdin": true, "tty": true },
            ],
        },
    });
    pods.patch_subresource(
        "ephemeralcontainers",
        "target",
        &PatchParams::default(),
        &Patch::Strategic(&second),
    )
    .await
    .unwrap_or_else(|err| panic!("add an ephemeral container: {err}\n{}", setup.diagnostics()));
    let last = to_value(&pods.get("target").await.unwrap());
    assert_eq!(last["spec"]["ephemeralContainers"][0], *debugger, "{last}");
    let debugger_2 = &last["spec"]["ephemeralContainers"][1];
    assert_eq!(debugger_2["name"], "debugger-2", "{last}");
    assert_ephemeral_hardened(debugger_2, &last);
    assert_untouched(&before, &last);
    eprintln!("s06 done in {:.1?}", setup.elapsed());
}

/// 7. Reinvocation: a second mutating webhook, registered in a configuration whose name sorts
///    after pod-hardener's (`sidecar-injector` > `pod-hardener`), injects a sidecar after
///    pod-hardener ran; pod-hardener's `reinvocationPolicy: IfNeeded` hardens the sidecar too.
#[tokio::test(flavor = "multi_thread")]
async fn s07_sidecar_injected_after_pod_hardener_is_hardened_on_reinvocation() {
    let setup = Setup::start(json!({})).await;
    const INJECT: (&str, &str) = ("e2e.pod-hardener.io/inject", "true");
    setup.namespace("injected", &[RESTRICTED, INJECT]).await;
    let injector = SidecarInjector::start(json!({ "name": "sidecar", "image": IMAGE })).await;
    let config: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": { "name": "sidecar-injector" },
        "webhooks": [{
            "name": "inject.sidecar.e2e.test",
            "clientConfig": {
                "url": format!("https://127.0.0.1:{}/inject", injector.port),
                "caBundle": injector.ca_bundle,
            },
            "rules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                "resources": ["pods"], "scope": "Namespaced",
            }],
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
            "namespaceSelector": { "matchLabels": { INJECT.0: INJECT.1 } },
        }],
    }))
    .unwrap();
    let configs = Api::<MutatingWebhookConfiguration>::all(setup.client.clone());
    configs
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    let mut names: Vec<String> = configs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["pod-hardener", "sidecar-injector"],
        "webhooks run in name order"
    );
    let ours = configs.get("pod-hardener").await.unwrap();
    assert_eq!(
        ours.webhooks.unwrap()[0].reinvocation_policy.as_deref(),
        Some("IfNeeded")
    );

    // Wait until the API server calls the injector (dry-run creates are side-effect free).
    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), "injected");
    let bare = pod(
        "app",
        json!({ "containers": [{ "name": "app", "image": IMAGE }] }),
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        if let Ok(pod) = pods.create(&dry_run, &bare).await
            && pod.spec.unwrap().containers.len() == 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the injector was not called within {WAIT:?} ({} calls)\n{}",
            injector.calls(),
            setup.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    const PATCHED: &str =
        r#"pod_hardener_admission_requests_total{endpoint="mutate",decision="patched"}"#;
    let patched_before = setup.hardener.metric(PATCHED).await;
    let injected_before = injector.calls();
    let created = create_pod(&setup.client, "injected", &bare).await;
    // pod-hardener patched twice (first the app, then, reinvoked, the sidecar); the injector,
    // not reinvocable, was called once.
    assert_eq!(setup.hardener.metric(PATCHED).await - patched_before, 2.0);
    assert_eq!(injector.calls() - injected_before, 1);
    let pod = read_back(&setup.client, "injected", &created).await;
    let containers: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(containers, ["app", "sidecar"]);
    assert_restricted_hardened(&pod, "containers", "app");
    assert_restricted_hardened(&pod, "containers", "sidecar");
    let record = record(&pod).unwrap();
    for target in ["containers/app", "containers/sidecar"] {
        assert_eq!(
            record["changes"][target]["allowPrivilegeEscalation"], false,
            "{target} in {record}"
        );
    }
    eprintln!("s07 done in {:.1?}", setup.elapsed());
}

/// 8. Baseline, shadow and off namespaces, an exempt namespace and an exempt user, each as
///    documented: baseline applies its subset (seccompProfile, allowPrivilegeEscalation);
///    shadow sends no patch but tells the client what it would set; off does nothing; exempt
///    requests are neither changed nor denied.
#[tokio::test(flavor = "multi_thread")]
async fn s08_baseline_shadow_off_and_exemptions() {
    let setup = Setup::start(json!({
        "exemptions": { "namespaces": ["exempt"], "usernames": ["exempt-user"] },
    }))
    .await;
    setup.namespace("base", &[BASELINE]).await;
    setup
        .namespace("shadow", &[BASELINE, (MODE_LABEL, "shadow")])
        .await;
    setup
        .namespace("off", &[BASELINE, (MODE_LABEL, "off")])
        .await;
    setup.namespace("exempt", &[]).await;
    setup.namespace("plain", &[]).await;
    let bare = pod(
        "bare",
        json!({ "containers": [{ "name": "app", "image": IMAGE }] }),
    );
    let host = pod(
        "host",
        json!({ "hostNetwork": true, "containers": [{ "name": "app", "image": IMAGE }] }),
    );

    // Baseline: seccompProfile and allowPrivilegeEscalation only.
    let created = raw_create(&setup.client, "base", &bare, false).await.ok();
    let pod = read_back(&setup.client, "base", &created.object).await;
    assert_eq!(
        pod["spec"]["securityContext"],
        json!({ "seccompProfile": { "type": "RuntimeDefault" } }),
        "{pod}"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["securityContext"],
        json!({ "allowPrivilegeEscalation": false }),
        "{pod}"
    );
    assert!(
        !pod["spec"].to_string().contains("pod-hardener-tmp"),
        "{pod}"
    );
    assert_eq!(record(&pod).unwrap()["level"], "baseline");
    assert!(
        created.has_warning("pod-hardener set: seccompProfile, allowPrivilegeEscalation"),
        "{:?}",
        created.warnings
    );
    // Auditors find the same record in the API server's audit log, under the webhook's name,
    // with the level the validating webhook enforced.
    let audit = audit_annotations(&setup, "base", "bare").await;
    assert_eq!(
        audit[format!("{MUTATING_WEBHOOK}/hardened")],
        pod["metadata"]["annotations"]["pod-hardener.io/hardened"],
        "{audit}"
    );
    assert_eq!(
        audit[format!("{VALIDATING_WEBHOOK}/enforce-policy")],
        "baseline:latest",
        "{audit}"
    );

    // Shadow: nothing changed, the client is told what would have been.
    let created = raw_create(&setup.client, "shadow", &bare, false).await.ok();
    let pod = read_back(&setup.client, "shadow", &created.object).await;
    assert_unchanged(&pod);
    assert!(
        created.has_warning(
            "pod-hardener (shadow mode) would set: seccompProfile, allowPrivilegeEscalation"
        ),
        "{:?}",
        created.warnings
    );
    // The audit log says what shadow mode would have recorded, and records no change.
    let audit = audit_annotations(&setup, "shadow", "bare").await;
    let shadow: Value = serde_json::from_str(
        audit[format!("{MUTATING_WEBHOOK}/shadow")]
            .as_str()
            .unwrap_or_else(|| panic!("no shadow audit annotation: {audit}")),
    )
    .unwrap();
    assert_eq!(shadow["level"], "baseline", "{shadow}");
    assert!(
        audit.get(format!("{MUTATING_WEBHOOK}/hardened")).is_none(),
        "{audit}"
    );

    // Off: nothing changed, nothing said by the mutating webhook.
    let created = raw_create(&setup.client, "off", &bare, false).await.ok();
    let pod = read_back(&setup.client, "off", &created.object).await;
    assert_unchanged(&pod);
    assert!(
        !created
            .warnings
            .iter()
            .any(|w| w.starts_with("pod-hardener")),
        "{:?}",
        created.warnings
    );

    // An unlabelled namespace gets pod-hardener's defaultPolicy (restricted): the control case
    // for the exemptions below.
    let created = raw_create(&setup.client, "plain", &bare, false).await.ok();
    let pod = read_back(&setup.client, "plain", &created.object).await;
    assert_restricted_hardened(&pod, "containers", "app");
    let message = denial(&setup, "plain", &host).await;
    assert!(message.starts_with(WEBHOOK_DENIED), "{message}");

    // Exempt namespace: not changed, not denied, and the audit log says why.
    for pod_in in [&bare, &host] {
        let created = raw_create(&setup.client, "exempt", pod_in, false)
            .await
            .ok();
        let pod = read_back(&setup.client, "exempt", &created.object).await;
        assert_unchanged(&pod);
        let name = pod_in.metadata.name.as_deref().unwrap();
        let audit = audit_annotations(&setup, "exempt", name).await;
        assert_eq!(
            audit[format!("{VALIDATING_WEBHOOK}/exempt")],
            "namespace",
            "{audit}"
        );
    }

    // Exempt user, in the otherwise restricted unlabelled namespace.
    let exempt_user = setup
        .control_plane
        .client_as("exempt-user", &["system:masters"])
        .await;
    for (name, spec) in [("user-bare", &bare), ("user-host", &host)] {
        let mut pod_in = spec.clone();
        pod_in.metadata.name = Some(name.to_owned());
        let created = raw_create(&exempt_user, "plain", &pod_in, false).await.ok();
        let pod = read_back(&setup.client, "plain", &created.object).await;
        assert_unchanged(&pod);
        let audit = audit_annotations(&setup, "plain", name).await;
        assert_eq!(
            audit[format!("{VALIDATING_WEBHOOK}/exempt")],
            "user",
            "{audit}"
        );
    }
    eprintln!("s08 done in {:.1?}", setup.elapsed());
}

/// 9. Creating a Deployment whose Pods will be denied returns pod-hardener's warning to the
///    client (`kubectl apply` prints it), computed on the template as it will be after
///    hardening: only what hardening cannot fix, with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn s09_deployment_whose_pods_will_be_denied_gets_a_warning() {
    let setup = Setup::start(json!({})).await;
    setup.namespace("apps", &[RESTRICTED]).await;
    let mut deployment = web_deployment();
    deployment["metadata"]["namespace"] = "apps".into();
    deployment["spec"]["template"]["spec"]["hostNetwork"] = true.into();
    let applied = kubectl(
        &setup,
        &["apply", "-f", "-"],
        Some(&serde_json::to_string(&deployment).unwrap()),
    );
    let err = stderr(&applied);
    assert!(applied.status.success(), "kubectl apply: {err}");
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| {
            l.starts_with("Warning: would violate PodSecurity") && l.contains(COULD_NOT_FIX)
        })
        .collect();
    assert_eq!(ours.len(), 1, "one warning from pod-hardener in:\n{err}");
    let warning = ours[0];
    assert!(
        warning.starts_with(
            "Warning: would violate PodSecurity \"restricted:latest\": host namespaces \
             (hostNetwork=true); pod-hardener could not fix: hostNamespaces (host namespaces are a \
             host-level requirement"
        ),
        "{warning}"
    );
    assert!(
        !warning.contains("allowPrivilegeEscalation"),
        "hardening fixes it: {warning}"
    );

    let denial = wait_for_failed_create(&setup, "apps", "web").await;
    assert!(denial.contains(PSA_RESTRICTED), "{denial}");
    assert!(denial.contains("host namespaces"), "{denial}");
    eprintln!("s09 done in {:.1?}", setup.elapsed());
}

/// 10. pod-hardener stopped: the mutating webhook fails open (`failurePolicy: Ignore`, the API
///     server logs it), and the validating webhook's documented `failurePolicy: Fail` refuses
///     Pods in the selected namespaces, also unlabelled ones; namespaces the selector excludes
///     are unaffected. With the validating webhook switched to `Ignore` (the documented
///     availability trade-off), Pod creation in an ordinary namespace succeeds, unhardened.
#[tokio::test(flavor = "multi_thread")]
async fn s10_pod_hardener_stopped() {
    let mut setup = Setup::start(json!({})).await;
    setup.namespace("plain", &[]).await;
    setup.namespace("pod-hardener", &[]).await;
    setup.hardener.stop();

    let bare = pod(
        "bare",
        json!({ "containers": [{ "name": "app", "image": IMAGE }] }),
    );
    let message = denial(&setup, "plain", &bare).await;
    assert!(
        message.contains(&format!("failed calling webhook \"{VALIDATING_WEBHOOK}\"")),
        "{message}"
    );
    assert!(!message.contains(MUTATING_WEBHOOK), "{message}");
    let log = setup.control_plane.logs_dir().join("kube-apiserver.log");
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .any(|line| line.contains("failing open") && line.contains(MUTATING_WEBHOOK))
    {
        assert!(
            Instant::now() < deadline,
            "the API server did not log that {MUTATING_WEBHOOK} failed open\n{}",
            setup.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The excluded namespace is unaffected.
    let created = create_pod(&setup.client, "pod-hardener", &bare).await;
    assert_unchanged(&read_back(&setup.client, "pod-hardener", &created).await);

    // With the validating webhook failing open too, an ordinary namespace admits the Pod.
    let validating = Api::<ValidatingWebhookConfiguration>::all(setup.client.clone());
    let patch =
        json!([{ "op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore" }]);
    let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
    validating
        .patch(
            "pod-hardener",
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), "plain");
    let deadline = Instant::now() + WAIT;
    let created = loop {
        match pods.create(&PostParams::default(), &bare).await {
            Ok(pod) => break pod,
            Err(err) => assert!(
                Instant::now() < deadline,
                "Pod creation still refused {WAIT:?} after failurePolicy: Ignore: {err}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_unchanged(&read_back(&setup.client, "plain", &to_value(&created)).await);
    eprintln!("s10 done in {:.1?}", setup.elapsed());
}

/// 11. A server-side dry-run create is hardened exactly like the real create.
#[tokio::test(flavor = "multi_thread")]
async fn s11_dry_run_creates_are_hardened_identically() {
    let setup = Setup::start(json!({})).await;
    setup.namespace("apps", &[RESTRICTED]).await;
    let twin = pod(
        "twin",
        json!({
            "initContainers": [{ "name": "init", "image": IMAGE }],
            "containers": [
                { "name": "app", "image": IMAGE },
                { "name": "proxy", "image": IMAGE, "securityContext": { "runAsUser": 1000 } },
            ],
        }),
    );
    let dry = raw_create(&setup.client, "apps", &twin, true).await.ok();
    let pods: Api<Pod> = Api::namespaced(setup.client.clone(), "apps");
    assert!(
        pods.get_opt("twin").await.unwrap().is_none(),
        "a dry run persists nothing"
    );
    let real = raw_create(&setup.client, "apps", &twin, false).await.ok();
    let stored = read_back(&setup.client, "apps", &real.object).await;
    assert_restricted_hardened(&stored, "containers", "app");
    assert_restricted_hardened(&stored, "initContainers", "init");
    for (what, other) in [("create response", &real.object), ("stored pod", &stored)] {
        assert_eq!(
            normalized_spec(&dry.object),
            normalized_spec(other),
            "dry run vs {what}"
        );
        assert_eq!(
            dry.object["metadata"]["annotations"], other["metadata"]["annotations"],
            "dry run vs {what}"
        );
    }
    assert_eq!(dry.warnings, real.warnings);
    eprintln!("s11 done in {:.1?}", setup.elapsed());
}

/// 12. The mutating webhook's `matchConditions` (manifests/base/webhooks.yaml): the API server
///     does not call `/mutate` for a Pod that already carries every control and the record, does
///     call it for an unhardened one, and skips none that hardening would change. Every v1.37 PSA
///     fixture is dry-run created as it is and as hardened offline (fill and override mode); for
///     each create the API server did not send to `/mutate` (pod-hardener's request counter did
///     not move), hardening the object the API server answered with gives an empty patch at
///     either level and in either mode.
#[tokio::test(flavor = "multi_thread")]
async fn s12_already_hardened_pods_are_not_sent_to_mutate() {
    use pod_hardener::harden::{Hardener, HardeningSettings, Mode, Profile, Scope};
    use pod_hardener::pss::Level;
    use pod_hardener::workload::WorkloadKind;

    let setup = Setup::start(json!({})).await;
    setup.namespace("cel", &[]).await;
    let mutate_calls = || async {
        let metrics = setup.hardener.metrics().await;
        metrics
            .lines()
            .filter(|l| l.starts_with(r#"pod_hardener_admission_requests_total{endpoint="mutate""#))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>()
    };
    // (created object, whether /mutate was called)
    let create = |pod: Value| {
        let setup = &setup;
        async move {
            let before = mutate_calls().await;
            let typed: Pod = serde_json::from_value(pod.clone()).unwrap();
            let created = match raw_create(&setup.client, "cel", &typed, true).await {
                RawResult::Ok(created) => created.object,
                RawResult::Err(..) => pod,
            };
            let called = mutate_calls().await > before;
            (created, called)
        }
    };
    let harden_offline = |pod: &Value, level: Level, mode: Mode| {
        let settings = HardeningSettings {
            mode,
            ..HardeningSettings::default()
        };
        let hardener = Hardener::new(Profile::for_level(level, &settings));
        let hardening = hardener
            .harden(WorkloadKind::Pod, pod, Scope::Create)
            .unwrap();
        (
            hardening.hardened_object().unwrap(),
            hardening.patch.0.len(),
        )
    };

    // An unhardened Pod is sent and hardened; the same Pod as hardened is not sent again.
    let bare = to_value(&pod(
        "bare",
        json!({"containers": [{"name": "app", "image": IMAGE}]}),
    ));
    let (hardened, called) = create(bare).await;
    assert!(called, "an unhardened Pod goes to /mutate");
    assert!(record(&hardened).is_some(), "{hardened}");
    let again = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "again", "annotations": hardened["metadata"]["annotations"]},
        "spec": hardened["spec"]});
    let (created, called) = create(again.clone()).await;
    assert!(!called, "an already hardened Pod is not sent to /mutate");
    assert_eq!(created["spec"], hardened["spec"]);

    let root = psa_fixtures_dir();
    let (mut sent, mut skipped) = (0, 0);
    for level in ["baseline", "restricted"] {
        for outcome in ["pass", "fail"] {
            let dir = root.join(level).join("v1.37").join(outcome);
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            for path in files {
                let fixture: Value =
                    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let mut variants = vec![("as is", fixture.clone())];
                for mode in [Mode::Fill, Mode::Override] {
                    let (hardened, _) = harden_offline(&fixture, Level::Restricted, mode);
                    variants.push((
                        if mode == Mode::Fill {
                            "fill"
                        } else {
                            "override"
                        },
                        hardened,
                    ));
                }
                for (i, (variant, mut pod)) in variants.into_iter().enumerate() {
                    let name = format!(
                        "{level}-{outcome}-{i}-{}",
                        path.file_stem().unwrap().to_string_lossy()
                    )
                    .replace('_', "-")
                    .to_lowercase();
                    pod["metadata"]["name"] = json!(name);
                    let (created, called) = create(pod).await;
                    if called {
                        sent += 1;
                        continue;
                    }
                    skipped += 1;
                    for level in [Level::Restricted, Level::Baseline] {
                        for mode in [Mode::Fill, Mode::Override] {
                            let (_, changes) = harden_offline(&created, level, mode);
                            assert_eq!(
                                changes,
                                0,
                                "{} ({variant}) was not sent to /mutate, yet hardening at {level:?} in {mode:?} mode changes it: {created}",
                                path.display()
                            );
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "s12: {sent} creates sent to /mutate, {skipped} not, in {:.1?}",
        setup.elapsed()
    );
    assert!(skipped > 0 && sent > 0, "{sent} sent, {skipped} skipped");
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A typical chart's Deployment: no securityContext anywhere.
fn web_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": IMAGE }] },
            },
        },
    })
}

fn escalating_pod() -> Pod {
    pod(
        "escalating",
        json!({
            "containers": [{
                "name": "app",
                "image": IMAGE,
                "securityContext": { "allowPrivilegeEscalation": true },
            }],
        }),
    )
}

/// The audit annotations the API server logged for the create of Pod `namespace/name`.
async fn audit_annotations(setup: &Setup, namespace: &str, name: &str) -> Value {
    let event = setup
        .control_plane
        .audit_event(&format!("the create of {namespace}/{name}"), |e| {
            e["verb"] == "create"
                && e["stage"] == "ResponseComplete"
                && e["objectRef"]["namespace"] == namespace
                && e["objectRef"]["name"] == name
                && e["objectRef"]["subresource"].is_null()
        })
        .await;
    event["annotations"].clone()
}

fn manifests_dir() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/manifests")
}

fn to_value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap()
}

/// Merges the object `extra` into the object `base`, shallowly.
fn merge(base: &mut Value, extra: Value) {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
}

fn to_yaml_stream(documents: &[Value]) -> String {
    documents
        .iter()
        .map(|d| serde_yaml_ng::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The parsed record annotation, if any.
fn record(pod: &Value) -> Option<Value> {
    let raw = pod["metadata"]["annotations"][RECORD_ANNOTATION].as_str()?;
    Some(serde_json::from_str(raw).expect("the record is JSON"))
}

/// The Pod and the container `list/name` carry the restricted profile's fields.
fn assert_restricted_hardened(pod: &Value, list: &str, name: &str) {
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{pod}");
    assert_eq!(
        spec["securityContext"]["seccompProfile"],
        json!({ "type": "RuntimeDefault" }),
        "{pod}"
    );
    let container = spec[list]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {list}/{name} in {pod}"));
    let sc = &container["securityContext"];
    assert_eq!(
        sc["allowPrivilegeEscalation"], false,
        "{list}/{name}: {pod}"
    );
    assert_eq!(
        sc["capabilities"]["drop"],
        json!(["ALL"]),
        "{list}/{name}: {pod}"
    );
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{list}/{name}: {pod}");
    assert!(
        container["volumeMounts"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["mountPath"] == "/tmp")),
        "{list}/{name} has a writable /tmp: {pod}"
    );
    assert!(record(pod).is_some(), "{pod}");
}

/// An ephemeral container carries what restricted requires of it.
fn assert_ephemeral_hardened(container: &Value, pod: &Value) {
    let sc = &container["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{pod}");
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{pod}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{pod}");
    assert!(
        container["volumeMounts"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["mountPath"] == "/tmp")),
        "a writable /tmp: {pod}"
    );
}

/// Adding ephemeral containers changed nothing else of the Pod.
fn assert_untouched(before: &Value, after: &Value) {
    for field in ["containers", "initContainers", "securityContext", "volumes"] {
        assert_eq!(
            after["spec"][field], before["spec"][field],
            "spec.{field} changed"
        );
    }
    assert_eq!(
        after["metadata"]["annotations"], before["metadata"]["annotations"],
        "annotations changed"
    );
}

/// Nothing of pod-hardener's on the Pod.
fn assert_unchanged(pod: &Value) {
    assert!(record(pod).is_none(), "{pod}");
    let sc = &pod["spec"]["securityContext"];
    assert!(sc.is_null() || sc == &json!({}), "{pod}");
    for container in pod["spec"]["containers"].as_array().unwrap() {
        assert!(container.get("securityContext").is_none(), "{pod}");
    }
    assert!(
        !pod["spec"].to_string().contains("pod-hardener-tmp"),
        "{pod}"
    );
}

/// The spec without the randomly named service-account token volume suffix.
fn normalized_spec(pod: &Value) -> String {
    let text = pod["spec"].to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    const PREFIX: &str = "kube-api-access-";
    while let Some(at) = rest.find(PREFIX) {
        out.push_str(&rest[..at + PREFIX.len()]);
        rest = &rest[at + PREFIX.len()..];
        rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        out.push_str("XXXXX");
    }
    out.push_str(rest);
    out
}

async fn create_deployment(client: &Client, namespace: &str, deployment: &Value) {
    let deployment: Deployment = serde_json::from_value(deployment.clone()).unwrap();
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap_or_else(|err| panic!("create Deployment in {namespace}: {err}"));
}

async fn create_pod(client: &Client, namespace: &str, pod: &Pod) -> Value {
    let created = Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), pod)
        .await
        .unwrap_or_else(|err| panic!("create Pod in {namespace}: {err}"));
    to_value(&created)
}

/// The Pod as stored, read back by name.
async fn read_back(client: &Client, namespace: &str, created: &Value) -> Value {
    let name = created["metadata"]["name"].as_str().unwrap();
    to_value(
        &Api::<Pod>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .unwrap_or_else(|err| panic!("read back Pod {namespace}/{name}: {err}")),
    )
}

/// The message of the API server's refusal to create `pod` (for real, not dry run).
async fn denial(setup: &Setup, namespace: &str, pod: &Pod) -> String {
    let name = pod.metadata.name.clone().unwrap();
    match Api::<Pod>::namespaced(setup.client.clone(), namespace)
        .create(&PostParams::default(), pod)
        .await
    {
        Err(kube::Error::Api(status)) => status.message.clone(),
        Err(err) => panic!("creating {namespace}/{name}: {err}"),
        Ok(_) => panic!(
            "{namespace}/{name} was admitted, expected a denial\n{}",
            setup.diagnostics()
        ),
    }
}

async fn list_pods(client: &Client, namespace: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
}

/// Waits until `count` Pods match `selector`.
async fn wait_for_pods(setup: &Setup, namespace: &str, selector: &str, count: usize) -> Vec<Pod> {
    let deadline = Instant::now() + WAIT;
    loop {
        let pods = list_pods(&setup.client, namespace, selector).await;
        if pods.len() >= count {
            return pods;
        }
        assert!(
            Instant::now() < deadline,
            "{count} Pods {selector} in {namespace} did not appear within {WAIT:?} ({} did)\n{}",
            pods.len(),
            setup.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the ReplicaSet of Deployment `name` reports that its Pod was refused, through
/// its `ReplicaFailure` condition or a `FailedCreate` event; returns the message.
async fn wait_for_failed_create(setup: &Setup, namespace: &str, name: &str) -> String {
    let replicasets: Api<ReplicaSet> = Api::namespaced(setup.client.clone(), namespace);
    let events: Api<Event> = Api::namespaced(setup.client.clone(), namespace);
    let deadline = Instant::now() + WAIT;
    loop {
        let owned: Vec<ReplicaSet> = replicasets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "Deployment" && o.name == name)
            })
            .collect();
        let condition = owned
            .iter()
            .flat_map(|rs| rs.status.iter().flat_map(|s| s.conditions.iter().flatten()))
            .filter(|c| c.type_.as_deref() == Some("ReplicaFailure"))
            .find_map(|c| c.message.clone());
        if let Some(message) = condition {
            return message;
        }
        if !owned.is_empty() {
            let listed = events
                .list(&ListParams::default().fields("reason=FailedCreate"))
                .await
                .unwrap();
            if let Some(message) = listed.items.into_iter().find_map(|e| e.message) {
                return message;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no FailedCreate for Deployment {namespace}/{name} within {WAIT:?}\n{}",
            setup.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A create answered by the API server, with the `Warning` headers kube's typed API drops.
struct Created {
    object: Value,
    warnings: Vec<String>,
}

impl Created {
    fn has_warning(&self, text: &str) -> bool {
        self.warnings.iter().any(|w| w.contains(text))
    }
}

/// What [`raw_create`] got: the object and warnings, or the status code and body.
enum RawResult {
    Ok(Created),
    Err(u16, String),
}

impl RawResult {
    fn ok(self) -> Created {
        match self {
            RawResult::Ok(created) => created,
            RawResult::Err(code, body) => panic!("create failed with {code}: {body}"),
        }
    }
}

/// `POST /api/v1/namespaces/{namespace}/pods`, reading the response's `Warning` headers.
async fn raw_create(client: &Client, namespace: &str, pod: &Pod, dry_run: bool) -> RawResult {
    let params = PostParams {
        dry_run,
        ..PostParams::default()
    };
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
        .create(&params, serde_json::to_vec(pod).unwrap())
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| warning_text(&String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let body = response.into_body().collect_bytes().await.unwrap();
    if status >= 300 {
        return RawResult::Err(status, String::from_utf8_lossy(&body).into_owned());
    }
    RawResult::Ok(Created {
        object: serde_json::from_slice(&body).unwrap(),
        warnings,
    })
}

/// The text of a `Warning: 299 - "text"` header value (RFC 7234 §5.5).
fn warning_text(header: &str) -> String {
    let quoted = header.splitn(3, ' ').nth(2).unwrap_or(header);
    serde_json::from_str::<String>(quoted).unwrap_or_else(|_| quoted.to_owned())
}

/// Runs `kubectl --kubeconfig <admin>` with `args`, feeding `stdin`; killed after [`WAIT`].
fn kubectl(setup: &Setup, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = setup.control_plane.dir();
    let (out_path, err_path) = (
        dir.join(format!("kubectl-{run}.out")),
        dir.join(format!("kubectl-{run}.err")),
    );
    tokio::task::block_in_place(|| {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(setup.control_plane.kubeconfig_path())
            .args(args)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .expect("run kubectl: the kustomize, apply and debug scenarios need it on PATH");
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .unwrap();
        drop(input);
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: std::fs::read(&out_path).unwrap(),
            stderr: std::fs::read(&err_path).unwrap(),
        }
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
