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

/// What image lookups add to a review once their cache is warm: the cache's answer for the
/// pod's images, and `/mutate` deciding with it; and the memory of a cached image.
fn bench_image_lookups(c: &mut Criterion) {
    use pod_hardener::harden::images::{ImageFacts, ImageLookup};
    use pod_hardener::registry::{ImageLookupConfig, ImageLookups, pod_images, spec_images};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let config = ImageLookupConfig {
        enabled: true,
        ..ImageLookupConfig::default()
    };
    let settings = config.validate().unwrap().unwrap();
    let platform = settings.default_platform.clone();
    let lookups = ImageLookups::new(settings).unwrap();
    let facts = |user: &str| {
        ImageLookup::Found(ImageFacts {
            digest: format!("sha256:{}", "a".repeat(64)),
            user: user.to_owned(),
            passwd_uid: None,
            source: "registry.example".to_owned(),
            credential: None,
        })
    };
    let defaults = DefaultPolicy::default().parse().expect("default policy");
    let policy = NamespacePolicy::defaults(&defaults);
    let admission_settings = AdmissionSettings::default();
    let pod = common::typical_pod();
    let images = pod_images(&pod["spec"], &platform).images;
    for image in &images {
        lookups.prime(image, &platform, facts("65532"));
    }
    c.bench_function(
        &format!("image cache: warm answer for {} images", images.len()),
        |b| b.iter(|| runtime.block_on(lookups.catalog(black_box(&images), &platform, None))),
    );
    let body = common::review_around(pod);
    c.bench_function(
        &format!(
            "/mutate review end to end with warm image lookups / typical 3-container pod ({} B review)",
            body.len()
        ),
        |b| {
            b.iter(|| {
                let Ok(req) = admission::decode(black_box(&body)) else {
                    panic!("review decodes")
                };
                let Some(admission::ReviewObject::Pod(pod)) = req.object.as_ref() else {
                    panic!("a Pod create reads typed")
                };
                let found = spec_images(&pod.parts.spec, &platform);
                let catalog =
                    runtime.block_on(lookups.catalog(&found.images, &found.platform, None));
                admission::mutate::mutate_with_images(&req, &policy, &admission_settings, Some(catalog))
                    .response
                    .into_review_json()
            })
        },
    );
    // Memory: RSS before and after caching 20,000 more images (references as long as a
    // typical one, each with a digest and a user).
    let rss_kib = || {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let count = 20_000u64;
    let memory = ImageLookups::new(
        ImageLookupConfig {
            enabled: true,
            max_cached_images: 100_000,
            ..ImageLookupConfig::default()
        }
        .validate()
        .unwrap()
        .unwrap(),
    )
    .unwrap();
    let before = rss_kib();
    for i in 0..count {
        memory.prime(
            &format!("registry.example.com/team/image-{i}:v1.0.{i}"),
            &platform,
            facts("app"),
        );
    }
    let after = rss_kib();
    eprintln!(
        "image cache memory: {} cached, RSS +{} KiB, about {} bytes per image",
        memory.cached(),
        after.saturating_sub(before),
        after.saturating_sub(before) * 1024 / count
    );
}

criterion_group!(
    benches,
    bench_evaluate,
    bench_harden,
    bench_review,
    bench_image_lookups
);
criterion_main!(benches);
