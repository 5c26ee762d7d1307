//! The install manifests under `manifests/` keep the failure modes DESIGN.md promises: read-only
//! RBAC, fail-open mutation, bounded timeouts, self-exclusion, a restricted-compliant webhook Pod
//! that outlives its drain deadline, and more than one replica behind a PodDisruptionBudget. Both
//! kustomizations build when `kubectl` is available.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pod_hardener::manifest::read_documents;
use pod_hardener::pss::{self, LevelVersion};
use pod_hardener::workload::{self, WorkloadKind};
use serde_json::{Value, json};

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests");
/// What the shipped webhook configurations leave out is what `audit` reports exempt.
use pod_hardener::cli::audit::EXCLUDED_NAMESPACES;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    out.sort();
    out
}

fn is_kustomization(path: &Path) -> bool {
    path.file_stem().is_some_and(|s| s == "kustomization")
}

/// Every object of the base: each YAML file of `manifests/base` except the kustomization.
fn base_objects() -> Vec<Value> {
    let mut objects = Vec::new();
    for path in yaml_files(&Path::new(MANIFESTS).join("base")) {
        if is_kustomization(&path) {
            continue;
        }
        let docs = read_documents(&fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        objects.extend(docs.into_iter().map(|d| d.object));
    }
    assert!(!objects.is_empty());
    objects
}

fn all_of<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = all_of(objects, kind);
    assert_eq!(found.len(), 1, "expected exactly one {kind}");
    found[0]
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn set(v: &Value) -> BTreeSet<&str> {
    strings(v).into_iter().collect()
}

#[test]
fn kustomization_lists_every_base_file() {
    let dir = Path::new(MANIFESTS).join("base");
    let kustomization: Value =
        serde_yaml_ng::from_slice(&fs::read(dir.join("kustomization.yaml")).unwrap()).unwrap();
    let listed = set(&kustomization["resources"]);
    let present: BTreeSet<String> = yaml_files(&dir)
        .iter()
        .filter(|p| !is_kustomization(p))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let present: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    assert_eq!(listed, present);
    assert_eq!(kustomization["namespace"], "pod-hardener");
    let images = kustomization["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["name"], "ghcr.io/pod-hardener/pod-hardener");
    assert!(images[0]["newTag"].as_str().is_some_and(|t| !t.is_empty()));
}

#[test]
fn cluster_role_only_reads_namespaces() {
    let objects = base_objects();
    assert!(all_of(&objects, "Role").is_empty());
    assert!(all_of(&objects, "RoleBinding").is_empty());
    let role = one(&objects, "ClusterRole");
    let rules = role["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    let rule = rules[0].as_object().unwrap();
    let keys: BTreeSet<&str> = rule.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["apiGroups", "resources", "verbs"]));
    assert_eq!(strings(&rule["apiGroups"]), [""]);
    assert_eq!(strings(&rule["resources"]), ["namespaces"]);
    assert_eq!(
        set(&rule["verbs"]),
        BTreeSet::from(["get", "list", "watch"])
    );
    assert_eq!(strings(&rule["verbs"]).len(), 3);

    let binding = one(&objects, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let sa = one(&objects, "ServiceAccount");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "pod-hardener"}])
    );
}

/// The single webhook of the configuration of `kind`, after the checks common to both.
fn webhook<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let config = one(objects, kind);
    assert_eq!(config["metadata"]["name"], "pod-hardener");
    let hooks = config["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1, "{kind}");
    let hook = &hooks[0];
    assert_eq!(hook["sideEffects"], "None", "{kind}");
    assert_eq!(hook["admissionReviewVersions"], json!(["v1"]), "{kind}");
    let timeout = hook["timeoutSeconds"].as_u64().unwrap();
    assert!(
        (1..=10).contains(&timeout),
        "{kind}: timeoutSeconds {timeout}"
    );
    assert_eq!(hook["matchPolicy"], "Equivalent", "{kind}");

    let selector = &hook["namespaceSelector"];
    assert!(selector.get("matchLabels").is_none(), "{kind}");
    let exprs = selector["matchExpressions"].as_array().unwrap();
    assert_eq!(exprs.len(), 1, "{kind}");
    assert_eq!(exprs[0]["key"], "kubernetes.io/metadata.name");
    assert_eq!(exprs[0]["operator"], "NotIn");
    assert_eq!(
        set(&exprs[0]["values"]),
        BTreeSet::from(EXCLUDED_NAMESPACES),
        "{kind}"
    );

    // The Service it calls exists, on 443, targeting the container's https port.
    let svc = &hook["clientConfig"]["service"];
    assert_eq!(svc["namespace"], "pod-hardener");
    assert_eq!(svc["port"], 443);
    assert!(hook["clientConfig"].get("url").is_none());
    // Left out, so that re-applying never resets what install-dev.sh, a patch or cainjector set.
    assert!(hook["clientConfig"].get("caBundle").is_none(), "{kind}");
    let service = one(objects, "Service");
    assert_eq!(service["metadata"]["name"], svc["name"]);
    let ports = service["spec"]["ports"].as_array().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p["port"] == 443 && p["targetPort"] == "https"),
        "{ports:?}"
    );
    hook
}

/// `(group, resource, operation)` triples covered by a webhook's rules.
fn coverage(hook: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in hook["rules"].as_array().unwrap() {
        assert_eq!(rule["apiVersions"], json!(["v1"]));
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for op in strings(&rule["operations"]) {
                    out.insert((group.into(), resource.into(), op.into()));
                }
            }
        }
    }
    out
}

fn triple(group: &str, resource: &str, op: &str) -> (String, String, String) {
    (group.into(), resource.into(), op.into())
}

#[test]
fn mutating_webhook_fails_open_and_only_touches_creates() {
    let objects = base_objects();
    let hook = webhook(&objects, "MutatingWebhookConfiguration");
    assert_eq!(hook["name"], "harden.pod-hardener.io");
    assert_eq!(hook["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
    assert_eq!(
        coverage(hook),
        BTreeSet::from([
            triple("", "pods", "CREATE"),
            triple("", "pods/ephemeralcontainers", "UPDATE"),
        ])
    );
}

/// The API server skips `/mutate` only under the `matchConditions` generated from the control
/// table for the shipped configuration (`admission::match_conditions`); the validating webhook
/// has none, so every Pod is still judged. On a mismatch the message is the YAML to ship.
#[test]
fn mutating_webhook_is_skipped_only_where_the_shipped_config_changes_nothing() {
    use pod_hardener::admission::match_conditions::mutate_match_conditions;
    use pod_hardener::config::ConfigFile;
    let objects = base_objects();
    let config_map = one(&objects, "ConfigMap");
    let config = ConfigFile::parse(config_map["data"]["config.yaml"].as_str().unwrap()).unwrap();
    let expected = mutate_match_conditions(&config.hardening, &config.exemptions);
    let hook = webhook(&objects, "MutatingWebhookConfiguration");
    let mut yaml = String::from("    matchConditions:\n");
    for c in &expected {
        yaml.push_str(&format!(
            "      - name: {}\n        expression: |-\n",
            c.name
        ));
        for line in c.expression.lines() {
            yaml.push_str(&format!("          {line}\n"));
        }
    }
    assert_eq!(
        hook["matchConditions"],
        serde_json::to_value(&expected).unwrap(),
        "manifests/base/webhooks.yaml should have:\n{yaml}"
    );
    let validating = webhook(&objects, "ValidatingWebhookConfiguration");
    assert_eq!(validating.get("matchConditions"), None);
}

#[test]
fn validating_webhook_covers_pods_and_workloads() {
    let objects = base_objects();
    let hook = webhook(&objects, "ValidatingWebhookConfiguration");
    assert_eq!(hook["name"], "validate.pod-hardener.io");
    assert_eq!(hook["clientConfig"]["service"]["path"], "/validate");
    assert_eq!(hook["failurePolicy"], "Fail");
    let mut expected = BTreeSet::new();
    for (group, resource) in [
        ("", "pods"),
        ("", "pods/ephemeralcontainers"),
        ("", "replicationcontrollers"),
        ("", "podtemplates"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    ] {
        for op in ["CREATE", "UPDATE"] {
            expected.insert(triple(group, resource, op));
        }
    }
    assert_eq!(coverage(hook), expected);
}

#[test]
fn deployment_is_restricted_highly_available_and_drains() {
    let objects = base_objects();
    let deployment = one(&objects, "Deployment");
    let parts = workload::extract(WorkloadKind::Deployment, deployment).unwrap();
    let violations = pss::evaluate(
        &parts.metadata,
        &parts.spec,
        LevelVersion::restricted_latest(),
    );
    assert!(violations.is_empty(), "{violations:#?}");

    let spec = &deployment["spec"];
    assert!(spec["replicas"].as_u64().unwrap() >= 2);
    let pod = &spec["template"]["spec"];
    // A replica goes in three steps, all before the kubelet's SIGKILL: the preStop sleep (still
    // serving while the API server learns the endpoint is gone), then after SIGTERM the drain
    // grace (serving, `Connection: close`), then the drain deadline (in-flight reviews).
    let pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("a preStop sleep");
    let config: Value = serde_yaml_ng::from_str(
        one(&objects, "ConfigMap")["data"]["config.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let seconds = |field: &str, default: u64| {
        config["limits"][field].as_str().map_or(default, |d| {
            d.strip_suffix('s').unwrap().parse::<u64>().unwrap()
        })
    };
    let (grace, drain) = (seconds("drainGrace", 0), seconds("drainTimeout", 20));
    assert!(grace > 0, "no drain grace in the shipped config");
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap() > pre_stop + grace + drain,
        "terminationGracePeriodSeconds must exceed preStop {pre_stop} s + drainGrace {grace} s \
         + drainTimeout {drain} s"
    );
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert!(pod.get("priorityClassName").is_none());
    assert!(pod["affinity"]["podAntiAffinity"].is_object());

    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        c["args"],
        json!(["serve", "--config", "/etc/pod-hardener/config.yaml"])
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let port = |name: &str| {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no port {name}"))["containerPort"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(port("https"), 8443);
    assert_eq!(port("metrics"), 9090);
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path);
        assert_eq!(get["port"], "metrics");
        assert_eq!(get["scheme"], "HTTP");
    }

    // The PodDisruptionBudget keeps one replica through voluntary disruptions.
    let pdb = one(&objects, "PodDisruptionBudget");
    assert!(pdb["spec"]["minAvailable"].as_u64().unwrap() >= 1);
    assert_eq!(pdb["spec"]["selector"], spec["selector"]);
}

#[test]
fn config_and_tls_land_where_the_server_reads_them() {
    let objects = base_objects();
    let config_map = one(&objects, "ConfigMap");
    assert_eq!(config_map["metadata"]["name"], "pod-hardener-config");
    let config: Value =
        serde_yaml_ng::from_str(config_map["data"]["config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        config,
        json!({
            "listen": "0.0.0.0:8443",
            "metricsListen": "0.0.0.0:9090",
            "tls": {
                "certFile": "/etc/pod-hardener/tls/tls.crt",
                "keyFile": "/etc/pod-hardener/tls/tls.key",
            },
            "limits": { "drainGrace": "5s" },
            "images": { "enabled": true },
        })
    );

    // Files in the container: mount path + projected item path.
    let pod = &one(&objects, "Deployment")["spec"]["template"]["spec"];
    let mut files = BTreeSet::new();
    for mount in pod["containers"][0]["volumeMounts"].as_array().unwrap() {
        assert_eq!(mount["readOnly"], true);
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        for source in volume["projected"]["sources"].as_array().unwrap() {
            let (kind, src) = source.as_object().unwrap().iter().next().unwrap();
            for item in src["items"].as_array().unwrap() {
                files.insert(format!(
                    "{kind}/{}:{}/{}",
                    src["name"].as_str().unwrap(),
                    mount["mountPath"].as_str().unwrap(),
                    item["path"].as_str().unwrap()
                ));
            }
        }
    }
    assert_eq!(
        files,
        BTreeSet::from([
            "configMap/pod-hardener-config:/etc/pod-hardener/config.yaml".to_owned(),
            "secret/pod-hardener-tls:/etc/pod-hardener/tls/tls.crt".to_owned(),
            "secret/pod-hardener-tls:/etc/pod-hardener/tls/tls.key".to_owned(),
        ])
    );
}

#[test]
fn own_namespace_enforces_restricted() {
    let objects = base_objects();
    let ns = one(&objects, "Namespace");
    assert_eq!(ns["metadata"]["name"], "pod-hardener");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let policy = one(&objects, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
}

/// Runs `kubectl kustomize <dir>`; `None` when kubectl is not installed.
fn kustomize(dir: &str) -> Option<Vec<Value>> {
    let output = match Command::new("kubectl")
        .args(["kustomize", &format!("{MANIFESTS}/{dir}")])
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("note: kubectl is not on PATH; skipping `kubectl kustomize manifests/{dir}`");
            return None;
        }
        Err(e) => panic!("running kubectl: {e}"),
    };
    assert!(
        output.status.success(),
        "kubectl kustomize manifests/{dir} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(
        read_documents(&output.stdout)
            .unwrap()
            .into_iter()
            .map(|d| d.object)
            .collect(),
    )
}

#[test]
fn kustomize_builds_the_base() {
    let Some(objects) = kustomize(".") else {
        return;
    };
    for object in &objects {
        let kind = object["kind"].as_str().unwrap();
        let namespaced = !matches!(
            kind,
            "Namespace"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "MutatingWebhookConfiguration"
                | "ValidatingWebhookConfiguration"
        );
        if namespaced {
            assert_eq!(object["metadata"]["namespace"], "pod-hardener", "{kind}");
        }
    }
    let deployment = one(&objects, "Deployment");
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(
        image.starts_with("ghcr.io/pod-hardener/pod-hardener:"),
        "{image}"
    );
    webhook(&objects, "MutatingWebhookConfiguration");
    webhook(&objects, "ValidatingWebhookConfiguration");
}

#[test]
fn kustomize_builds_the_cert_manager_overlay() {
    let Some(objects) = kustomize("overlays/cert-manager") else {
        return;
    };
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let config = one(&objects, kind);
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "pod-hardener/pod-hardener-serving",
            "{kind}"
        );
        assert!(
            config["webhooks"][0]["clientConfig"]
                .get("caBundle")
                .is_none()
        );
        webhook(&objects, kind);
    }
    let serving = objects
        .iter()
        .find(|o| o["kind"] == "Certificate" && o["metadata"]["name"] == "pod-hardener-serving")
        .expect("the serving Certificate");
    assert_eq!(serving["metadata"]["namespace"], "pod-hardener");
    assert_eq!(serving["spec"]["secretName"], "pod-hardener-tls");
    assert!(set(&serving["spec"]["dnsNames"]).contains("pod-hardener.pod-hardener.svc"));
    assert_eq!(all_of(&objects, "Issuer").len(), 2);
    one(&objects, "Deployment");
}
