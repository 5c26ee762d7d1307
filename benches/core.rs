//! Benchmarks of the pure core: evaluating a pod against the Pod Security Standards, and
//! planning + patching + recording its hardening.
//!
//! Run: `cargo bench --bench core`. Figures in the README come from this file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pod_hardener::harden::{self, OptOuts, Profile, RecordPlacement, Scope};
use pod_hardener::pss::{self, LevelVersion};
use pod_hardener::workload::{self, WorkloadKind};
use serde_json::{Value, json};

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

criterion_group!(benches, bench_evaluate, bench_harden);
criterion_main!(benches);
