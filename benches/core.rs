//! Benchmarks of the pure core: evaluating a pod against the Pod Security Standards, and
//! planning + patching + recording its hardening.
//!
//! Run: `cargo bench --bench core`. Figures in the README come from this file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pod_hardener::admission::{self, AdmissionSettings};
use pod_hardener::harden::{Hardener, Profile, Scope};
use pod_hardener::policy::{DefaultPolicy, NamespacePolicy};
use pod_hardener::pss::{self, LevelVersion};
use pod_hardener::workload::{self, WorkloadKind};
use serde_json::Value;

/// The server's allocator, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

include!("../tests/support/shared_data.rs");

fn bench_evaluate(c: &mut Criterion) {
    let base_yaml =
        std::fs::read_to_string(psa_fixtures_dir().join("restricted/v1.37/pass/base.yaml"))
            .expect("the restricted base fixture");
    let base: Value = serde_yaml_ng::from_str(&base_yaml).expect("fixture parses");
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
        let hardener = Hardener::new(profile.clone());
        // The entry point reads the typed parts itself: subtract "extract typed parts" for the
        // planner alone.
        c.bench_function(&format!("extract + plan + patch + record / {name}"), |b| {
            b.iter(|| hardener.harden(WorkloadKind::Pod, black_box(&pod), Scope::Create))
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
