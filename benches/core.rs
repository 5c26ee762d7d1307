//! Benchmarks of the pure core: evaluating a pod against the Pod Security Standards, and
//! planning + patching + recording its hardening.
//!
//! Run: `cargo bench --bench core`. Figures in the README come from this file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pod_hardener::admission::{self, AdmissionSettings};
use pod_hardener::harden::{self, OptOuts, Profile, RecordPlacement, Scope};
use pod_hardener::policy::{DefaultPolicy, NamespacePolicy};
use pod_hardener::pss::{self, LevelVersion};
use pod_hardener::workload::{self, WorkloadKind};
use serde_json::{Value, json};

/// The server's allocator, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RESTRICTED_BASE: &str = include_str!("../tests/fixtures/psa/restricted/v1.37/pass/base.yaml");

/// A typical chart's pod: an app, a sidecar and an init container, no securityContext.
fn typical_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-5d8f7c9b4-x2k9p", "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "5d8f7c9b4"},
            "annotations": {"prometheus.io/scrape": "true"}},
        "spec": {
            "initContainers": [{"name": "migrate", "image": "registry.example.com/web:1.2.3",
                "command": ["/app/migrate"], "env": [{"name": "DB_HOST", "value": "db"}]}],
            "containers": [
                {"name": "web", "image": "registry.example.com/web:1.2.3",
                 "ports": [{"containerPort": 8080, "name": "http"}],
                 "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "DB_HOST", "value": "db"}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                 "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                 "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}]},
                {"name": "proxy", "image": "envoyproxy/envoy:v1.31",
                 "ports": [{"containerPort": 9901}],
                 "volumeMounts": [{"name": "config", "mountPath": "/etc/envoy"}]}
            ],
            "volumes": [{"name": "config", "configMap": {"name": "web"}}],
            "serviceAccountName": "web"
        }
    })
}

/// A fat pod (~30 KB of JSON): 12 containers with many env vars, mounts and ports.
fn fat_pod() -> Value {
    let containers: Vec<Value> = (0..12)
        .map(|i| {
            let env: Vec<Value> = (0..40)
                .map(|j| json!({"name": format!("VARIABLE_NUMBER_{j}"), "value": format!("value-{i}-{j}-some-longer-text")}))
                .collect();
            json!({"name": format!("container-{i}"), "image": format!("registry.example.com/team/image-{i}:v1.0.{i}"),
                "env": env,
                "ports": [{"containerPort": 8000 + i}],
                "volumeMounts": [{"name": format!("data-{i}"), "mountPath": format!("/data/{i}")}]})
        })
        .collect();
    let volumes: Vec<Value> = (0..12)
        .map(|i| json!({"name": format!("data-{i}"), "emptyDir": {}}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fat"},
        "spec": {"containers": containers, "volumes": volumes}})
}

fn bench_evaluate(c: &mut Criterion) {
    let base: Value = serde_yaml_ng::from_str(RESTRICTED_BASE).expect("fixture parses");
    for (name, pod) in [
        ("restricted base pod", base),
        ("typical 3-container pod", typical_pod()),
    ] {
        let parts = workload::extract(WorkloadKind::Pod, &pod).expect("pod parts");
        c.bench_function(&format!("evaluate restricted:latest / {name}"), |b| {
            b.iter(|| {
                pss::evaluate(
                    black_box(&parts.metadata),
                    black_box(&parts.spec),
                    LevelVersion::restricted_latest(),
                )
            })
        });
    }
}

fn bench_harden(c: &mut Criterion) {
    let profile = Profile::restricted();
    for (name, pod) in [
        ("typical 3-container pod", typical_pod()),
        ("fat pod", fat_pod()),
    ] {
        let parts = workload::extract(WorkloadKind::Pod, &pod).expect("pod parts");
        let opt_outs = OptOuts::default();
        c.bench_function(&format!("plan + patch + record / {name}"), |b| {
            b.iter(|| {
                harden::harden(
                    black_box(&pod),
                    WorkloadKind::Pod,
                    black_box(&parts),
                    &profile,
                    &opt_outs,
                    Scope::Create,
                    RecordPlacement::Annotation,
                )
            })
        });
        c.bench_function(&format!("extract typed parts / {name}"), |b| {
            b.iter(|| workload::extract(WorkloadKind::Pod, black_box(&pod)))
        });
    }
}

/// An AdmissionReview for creating `pod`, as the API server sends it.
fn review_of(pod: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "web-5d8f7c9b4-x2k9p", "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "a9d2c4e1-0b7f-4d3e-9c61-2f8e5a7b3d10",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
            "object": pod,
            "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    }))
    .expect("review serializes")
}

/// The whole review as the `/mutate` route handles it, minus HTTP and TLS: bytes in, bytes out.
fn bench_review(c: &mut Criterion) {
    let defaults = DefaultPolicy::default().parse().expect("default policy");
    let policy = NamespacePolicy::defaults(&defaults);
    let settings = AdmissionSettings::default();
    for (name, pod) in [
        ("typical 3-container pod", typical_pod()),
        ("fat pod", fat_pod()),
    ] {
        let body = review_of(&pod);
        c.bench_function(&format!("decode / {name} ({} B review)", body.len()), |b| {
            b.iter(|| admission::decode(black_box(&body)))
        });
        c.bench_function(
            &format!(
                "/mutate review end to end / {name} ({} B review)",
                body.len()
            ),
            |b| {
                b.iter(|| {
                    let Ok(req) = admission::decode(black_box(&body)) else {
                        panic!("review decodes")
                    };
                    admission::mutate::mutate(&req, &policy, &settings)
                        .response
                        .into_review_json()
                })
            },
        );
    }
}

criterion_group!(benches, bench_evaluate, bench_harden, bench_review);
criterion_main!(benches);
