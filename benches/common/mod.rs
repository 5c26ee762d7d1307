//! The Pods and reviews both benchmarks measure, so the core bench's figures and the load
//! harness's are for the same payloads: a typical chart's Pod (a ~3.7 KB review) and a fat Pod
//! (a ~37 KB review).

use serde_json::{Value, json};

/// The uid every generated review carries and the baseline's fixed response echoes.
pub const UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

/// The example review the README's quick start sends.
const EXAMPLE_REVIEW: &str = include_str!("../../examples/admission-review.json");

/// The example review's envelope around `object`, with the harness's uid, its fields in the
/// order the API server writes them.
pub fn review_around(object: Value) -> Vec<u8> {
    let mut review: Value = serde_json::from_str(EXAMPLE_REVIEW).expect("the example parses");
    let request = review["request"]
        .as_object_mut()
        .expect("the example has a request");
    request.insert("uid".into(), json!(UID));
    request.insert("name".into(), object["metadata"]["name"].clone());
    request.insert("object".into(), object);
    pod_hardener::admission::review::review_in_wire_order(request)
}

/// A typical chart's pod as the API server hands it to admission after defaulting: an app, a
/// sidecar and an init container, no securityContext, the service account token volume.
pub fn typical_pod() -> Value {
    let mounts = |extra: Value| {
        let mut m = vec![json!({"name": "kube-api-access-7xk2m", "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})];
        if !extra.is_null() {
            m.insert(0, extra);
        }
        m
    };
    let defaults = |c: Value| {
        let mut c = c;
        let o = c.as_object_mut().expect("object");
        o.insert("imagePullPolicy".into(), json!("IfNotPresent"));
        o.insert(
            "terminationMessagePath".into(),
            json!("/dev/termination-log"),
        );
        o.insert("terminationMessagePolicy".into(), json!("File"));
        o.entry("resources").or_insert(json!({}));
        c
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-5d8f7c9b4-x2k9p", "generateName": "web-5d8f7c9b4-", "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "5d8f7c9b4"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9901"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f7c9b4",
                "uid": "0d4c5b62-3f7e-4a55-9d0b-2f9c7c1e8a41", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {
            "initContainers": [defaults(json!({"name": "migrate", "image": "registry.example.com/web:1.2.3",
                "command": ["/app/migrate"], "env": [{"name": "DB_HOST", "value": "db"}],
                "volumeMounts": mounts(Value::Null)}))],
            "containers": [
                defaults(json!({"name": "web", "image": "registry.example.com/web:1.2.3",
                 "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                 "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_HOST", "value": "db"}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                    "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                 "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                    "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                 "volumeMounts": mounts(json!({"name": "config", "mountPath": "/etc/web"}))})),
                defaults(json!({"name": "proxy", "image": "envoyproxy/envoy:v1.31",
                 "ports": [{"containerPort": 9901, "protocol": "TCP"}],
                 "volumeMounts": mounts(json!({"name": "config", "mountPath": "/etc/envoy"}))}))
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "web", "defaultMode": 420}},
                {"name": "kube-api-access-7xk2m", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}
            ],
            "serviceAccountName": "web", "serviceAccount": "web",
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "securityContext": {}, "schedulerName": "default-scheduler", "enableServiceLinks": true,
            "priority": 0, "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ]
        }
    })
}

/// A fat pod: 12 containers with 40 env vars each, a volume and a mount each.
pub fn fat_pod() -> Value {
    let containers: Vec<Value> = (0..12)
        .map(|i| {
            let env: Vec<Value> = (0..40)
                .map(|j| json!({"name": format!("VARIABLE_NUMBER_{j}"), "value": format!("value-{i}-{j}-some-longer-text")}))
                .collect();
            json!({"name": format!("container-{i}"), "image": format!("registry.example.com/team/image-{i}:v1.0.{i}"),
                "imagePullPolicy": "IfNotPresent",
                "env": env,
                "ports": [{"containerPort": 8000 + i, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                "volumeMounts": [{"name": format!("data-{i}"), "mountPath": format!("/data/{i}")}]})
        })
        .collect();
    let volumes: Vec<Value> = (0..12)
        .map(|i| json!({"name": format!("data-{i}"), "emptyDir": {}}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "fat-7c9d8b6f5-q4w2e", "namespace": "shop", "labels": {"app": "fat"}},
        "spec": {"containers": containers, "volumes": volumes, "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default"}})
}
