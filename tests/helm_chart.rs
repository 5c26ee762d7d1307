//! pod-hardener's own Helm chart (`manifests/helm/pod-hardener`), rendered by the real helm v3
//! and compared with what the real kubectl builds from `manifests/` (both from
//! `scripts/build-tools.sh`, or `$POD_HARDENER_TOOLS_BIN`): with default values the chart renders
//! the same objects as `kubectl kustomize manifests/`, with cert-manager enabled the same as
//! `kubectl kustomize manifests/overlays/cert-manager`, and each value lands where it says.
//!
//! "The same" is semantic: the same set of objects, each equal as data (YAML formatting, key
//! order and comments aside), and the ConfigMap's embedded `config.yaml` equal as parsed YAML.
//! Installing the chart for real is scenario 2 of `tests/e2e_node.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::tools::{run_tool, tools};
use pod_hardener::manifest::read_documents;
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CHART: &str = "manifests/helm/pod-hardener";

/// Objects by `kind namespace/name`, with each ConfigMap's `config.yaml` parsed.
type Objects = BTreeMap<String, Value>;

fn objects(yaml: &[u8], what: &str) -> Objects {
    let mut out = BTreeMap::new();
    let documents = read_documents(yaml).unwrap_or_else(|e| panic!("{what}: {e}"));
    for document in documents {
        let mut object = document.object;
        if object.is_null() {
            continue;
        }
        if object["kind"] == "ConfigMap"
            && let Some(text) = object["data"]["config.yaml"].as_str()
        {
            let parsed: Value = serde_yaml_ng::from_str(text)
                .unwrap_or_else(|e| panic!("{what}: config.yaml is not YAML: {e}"));
            object["data"]["config.yaml"] = parsed;
        }
        let key = format!(
            "{} {}/{}",
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["namespace"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default()
        );
        assert!(
            out.insert(key.clone(), object).is_none(),
            "{what}: {key} twice"
        );
    }
    out
}

fn checked(command: &mut Command, what: &str) -> Vec<u8> {
    let output = run_tool(command.current_dir(ROOT), b"");
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// `kubectl kustomize DIR` with the pinned kubectl.
fn kustomize(dir: &str) -> Objects {
    let what = format!("kubectl kustomize {dir}");
    objects(
        &checked(
            Command::new(tools().join("kubectl")).args(["kustomize", dir]),
            &what,
        ),
        &what,
    )
}

/// `helm template` of the chart with helm v3, release `pod-hardener` in namespace `default`
/// (the chart creates its own namespace; see values.yaml), and `args` (`--set ...`).
fn helm_template(args: &[&str]) -> Objects {
    let what = format!("helm template {CHART} {args:?}");
    let mut command = Command::new(tools().join("helm3"));
    command
        .args(["template", "pod-hardener", CHART, "--namespace", "default"])
        .args(args);
    objects(&checked(&mut command, &what), &what)
}

/// Panics with the first object that differs, both sides in full.
fn assert_same_objects(chart: &Objects, kustomized: &Objects, what: &str) {
    let chart_keys: Vec<&String> = chart.keys().collect();
    let kustomized_keys: Vec<&String> = kustomized.keys().collect();
    assert_eq!(chart_keys, kustomized_keys, "{what}: not the same objects");
    for (key, object) in chart {
        assert!(
            *object == kustomized[key],
            "{what}: {key} differs\n--- chart:\n{}\n--- kustomize:\n{}",
            serde_json::to_string_pretty(object).unwrap(),
            serde_json::to_string_pretty(&kustomized[key]).unwrap()
        );
    }
}

#[test]
fn helm_lint_passes() {
    checked(
        Command::new(tools().join("helm3")).args(["lint", "--strict", CHART]),
        "helm lint",
    );
}

#[test]
fn default_values_render_what_kustomize_builds() {
    let chart = helm_template(&[]);
    let kustomized = kustomize("manifests");
    assert_same_objects(&chart, &kustomized, "defaults vs manifests/");
    eprintln!(
        "helm chart, default values: the same {} objects as `kubectl kustomize manifests`",
        chart.len()
    );
}

#[test]
fn cert_manager_values_render_what_the_overlay_builds() {
    let chart = helm_template(&["--set", "certificate.certManager.enabled=true"]);
    let kustomized = kustomize("manifests/overlays/cert-manager");
    assert_same_objects(&chart, &kustomized, "cert-manager vs the overlay");
}

#[test]
fn pod_pull_secrets_values_render_what_the_overlay_builds() {
    let chart = helm_template(&["--set", "config.images.podPullSecrets=true"]);
    let kustomized = kustomize("manifests/overlays/pod-pull-secrets");
    assert_same_objects(&chart, &kustomized, "podPullSecrets vs the overlay");
    let role = &chart["ClusterRole /pod-hardener-pull-secrets"];
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    );
    assert!(
        !helm_template(&[])
            .keys()
            .any(|k| k.contains("pull-secrets")),
        "off by default"
    );
}

fn one<'a>(objects: &'a Objects, kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.values().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

#[test]
fn values_land_where_they_say() {
    let chart = helm_template(&[
        "--set",
        "replicas=3,namespace.name=hardener,webhooks.validating.failurePolicy=Ignore,\
         webhooks.mutating.timeoutSeconds=3,webhooks.excludedNamespaces={kube-system,infra},\
         image.repository=registry.example/ph,image.digest=sha256:0123,\
         resources.limits.memory=256Mi,config.hardening.mode=override,\
         certificate.caBundle=Q0E=,certificate.cert=CERT,certificate.key=KEY,\
         networkPolicy.enabled=false,preStopSleepSeconds=7,terminationGracePeriodSeconds=50",
    ]);
    for object in chart.values() {
        let kind = object["kind"].as_str().unwrap();
        if object["metadata"].get("namespace").is_some() {
            assert_eq!(object["metadata"]["namespace"], "hardener", "{kind}");
        }
    }
    assert_eq!(one(&chart, "Namespace")["metadata"]["name"], "hardener");
    assert!(
        chart.values().all(|o| o["kind"] != "NetworkPolicy"),
        "networkPolicy.enabled=false"
    );
    let deployment = one(&chart, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"], 50);
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "registry.example/ph@sha256:0123");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    assert_eq!(container["lifecycle"]["preStop"]["sleep"]["seconds"], 7);
    let config = &one(&chart, "ConfigMap")["data"]["config.yaml"];
    assert_eq!(config["hardening"]["mode"], "override");
    assert_eq!(config["limits"]["drainGrace"], "5s");
    let secret = one(&chart, "Secret");
    assert_eq!(secret["metadata"]["name"], "pod-hardener-tls");
    assert_eq!(
        secret["data"],
        json!({ "tls.crt": "Q0VSVA==", "tls.key": "S0VZ" })
    );
    assert_eq!(
        one(&chart, "ClusterRoleBinding")["subjects"][0]["namespace"],
        "hardener"
    );
    for (kind, policy, timeout) in [
        ("MutatingWebhookConfiguration", "Ignore", 3),
        ("ValidatingWebhookConfiguration", "Ignore", 5),
    ] {
        let hook = &one(&chart, kind)["webhooks"][0];
        assert_eq!(hook["failurePolicy"], policy, "{kind}");
        assert_eq!(hook["timeoutSeconds"], timeout, "{kind}");
        assert_eq!(hook["clientConfig"]["caBundle"], "Q0E=", "{kind}");
        assert_eq!(
            hook["clientConfig"]["service"]["namespace"], "hardener",
            "{kind}"
        );
        // The chart's own namespace is always excluded: no self-deadlock.
        assert_eq!(
            hook["namespaceSelector"]["matchExpressions"][0]["values"],
            json!(["kube-system", "infra", "hardener"]),
            "{kind}"
        );
    }
}
