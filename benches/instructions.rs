//! A fixed number of in-process reviews, bytes in to bytes out, for counting instructions under
//! callgrind: deterministic where wall-clock figures on a shared 2-core machine are not.
//!
//! ```sh
//! CARGO_TARGET_DIR=target cargo bench --bench instructions --no-run
//! BIN=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -1)
//! for n in 0 1000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" mutate typical $n; done
//! ```
//!
//! Instructions per review = (total at 1000 − total at 0) / 1000. Endpoints: `mutate`,
//! `validate`, and `parse` (the load harness's parsing baseline: the review read into a
//! `serde_json::Value`, the floor of any webhook that reads its input); pods: `typical` (3.7 KB
//! review), `fat` (37 KB review), `hardened` (the typical pod once hardened, as the validating
//! webhook and a reinvoked mutating webhook see it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::hint::black_box;

use base64::Engine as _;
use pod_hardener::admission::{self, AdmissionSettings};
use pod_hardener::policy::{DefaultPolicy, NamespacePolicy};
use serde_json::Value;

/// The server's allocator, so the counts are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The typical pod as `/mutate` leaves it.
fn hardened_typical_pod(policy: &NamespacePolicy, settings: &AdmissionSettings) -> Value {
    let mut pod = common::typical_pod();
    let body = common::review_around(pod.clone());
    let req = admission::decode(&body).expect("review decodes");
    let out = admission::mutate::mutate(&req, policy, settings);
    let patch = out.response.patch.expect("the typical pod is patched");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("a JSON patch");
    json_patch::patch(&mut pod, &patch.0).expect("the patch applies");
    pod
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match &args[..] {
        [endpoint, pod, count] => {
            let count: usize = count.parse().expect("a count");
            run(endpoint, pod, count);
        }
        // `cargo test --all-targets` (no arguments) and a bare `cargo bench` (`--bench`): each
        // review once, so the driver is known to work when callgrind needs it.
        [] | [_] => {
            for endpoint in ["mutate", "validate", "parse"] {
                for pod in ["typical", "fat", "hardened"] {
                    run(endpoint, pod, 1);
                }
            }
            println!(
                "usage under callgrind: instructions mutate|validate|parse typical|fat|hardened COUNT"
            );
        }
        _ => {
            eprintln!("usage: instructions mutate|validate|parse typical|fat|hardened COUNT");
            std::process::exit(2);
        }
    }
}

/// Decides `count` reviews of `pod` at `endpoint`, bytes in to bytes out.
fn run(endpoint: &str, pod: &str, count: usize) {
    let defaults = DefaultPolicy::default().parse().expect("default policy");
    let policy = NamespacePolicy::defaults(&defaults);
    let settings = AdmissionSettings::default();
    let object = match pod {
        "typical" => common::typical_pod(),
        "fat" => common::fat_pod(),
        "hardened" => hardened_typical_pod(&policy, &settings),
        other => panic!("unknown pod {other:?}"),
    };
    let body = common::review_around(object);
    let mut answered = 0usize;
    for _ in 0..count {
        if endpoint == "parse" {
            // The load harness's parsing baseline (`--baseline-parses`): the review read into a
            // `serde_json::Value`, and nothing else (its answer is a fixed string).
            let review: Value = serde_json::from_slice(black_box(&body)).expect("JSON");
            black_box(&review);
            continue;
        }
        let req = admission::decode(black_box(&body)).expect("review decodes");
        let outcome = match endpoint {
            "mutate" => admission::mutate::mutate(&req, &policy, &settings),
            "validate" => admission::validate::validate(&req, &policy, &settings),
            other => panic!("unknown endpoint {other:?}"),
        };
        answered += black_box(outcome.response.into_review_json()).len();
    }
    println!(
        "{endpoint} {pod}: {count} reviews of {} B, {} B answered per review",
        body.len(),
        answered.checked_div(count).unwrap_or(0)
    );
}
