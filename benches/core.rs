//! Benchmarks of the pure core: evaluating a pod against the Pod Security Standards, and
//! planning + patching + recording its hardening.
//!
//! Run: `cargo bench --bench core`. Figures in the README come from this file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pod_hardener::admission::{self, AdmissionSettings};
use pod_hardener::harden::{self, OptOuts, Profile, RecordPlacement, Scope};
use pod_hardener::policy::{DefaultPolicy, NamespacePolicy};
use pod_hardener::pss::{self, LevelVersion};
use pod_hardener::workload::{self, WorkloadKind};
use serde_json::Value;

/// The server's allocator, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RESTRICTED_BASE: &str = include_str!("../tests/fixtures/psa/restricted/v1.37/pass/base.yaml");

fn bench_evaluate(c: &mut Criterion) {
    let base: Value = serde_yaml_ng::from_str(RESTRICTED_BASE).expect("fixture parses");
    for (name, pod) in [
        ("restricted base pod", base),
        ("typical 3-container pod", common::typical_pod()),
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
        ("typical 3-container pod", common::typical_pod()),
        ("fat pod", common::fat_pod()),
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

/// The whole review as the `/mutate` route handles it, minus HTTP and TLS: bytes in, bytes out.
fn bench_review(c: &mut Criterion) {
    let defaults = DefaultPolicy::default().parse().expect("default policy");
    let policy = NamespacePolicy::defaults(&defaults);
    let settings = AdmissionSettings::default();
    for (name, pod) in [
        ("typical 3-container pod", common::typical_pod()),
        ("fat pod", common::fat_pod()),
    ] {
        let body = common::review_around(pod);
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
