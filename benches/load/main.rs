//! Load harness: the real `pod-hardener serve` release binary side by side with a bare baseline
//! server on the same stack (hyper 1 + hyper-util auto::Builder + tokio-rustls, same rustls
//! settings and certificate, same tokio runtime flavor) that reads the body and returns a fixed
//! AdmissionReview. The baseline is the physical limit of the stack on this machine. With
//! `--baseline-parses` it also parses each review into a `serde_json::Value` first: the floor of
//! any webhook that reads its input.
//!
//! Run: `cargo bench --bench load` (full: 10 s phases, 2 rounds, about 5 minutes) or
//! `cargo bench --bench load -- --quick` (1 s phases, 1 round: a correctness smoke for CI).
//! Options: `--seconds N`, `--rounds N`, `--rate R`, `--connections C`, `--idle-connections N`,
//! `--quick`, `--soak SECONDS` (below); `-- --help` lists them all (clap, `options.rs`).
//!
//! What it does, all on 127.0.0.1, every loop bounded in time and count:
//! - generates a certificate into a temporary directory, starts both servers as child processes
//!   (the baseline is this binary re-executed with `--baseline-server PORT CERT KEY`), and kills
//!   them on exit, panics included;
//! - the load generator speaks keep-alive HTTP/1.1 over TLS 1.3 (ALPN http/1.1), as the API
//!   server calls webhooks;
//! - per payload (3 KB review on /mutate and /validate, 30 KB review on /mutate), alternately
//!   for the baseline and pod-hardener (B, P, B, P, ...): (a) closed-loop saturation with C
//!   connections → reviews/s; (b) an open loop at a fixed rate, latency measured from each
//!   request's scheduled send time (coordinated-omission correction) → p50/p99/p99.9;
//! - CPU seconds per 1,000 reviews of each server process (/proc/PID/stat), idle RSS, peak RSS
//!   (VmHWM) and RSS with N idle open TLS connections (/proc/PID/status).
//!
//! The targets are printed beside each figure as PASS/MISS and never asserted; the
//! process exits 1 only when requests failed or a server could not be run.
//!
//! Soak (`cargo bench --bench load -- --soak SECONDS`, or `scripts/soak.sh`, 600 s by default):
//! pod-hardener alone, the same pieces in another order. After a one-response check and a 2 s
//! warm-up per payload, a closed loop (`--seconds`, default 10 s, `--connections`, default 64,
//! 3 KB /mutate) measures the saturation rate; an open loop then runs at half that rate for
//! SECONDS, each 20 requests being 17 × 3 KB /mutate, 2 × 3 KB /validate and 1 × 30 KB /mutate,
//! while a sampler reads the server's VmRSS every 10 s. It prints the target and achieved rates,
//! requests answered, errors and timeouts (apart), latency p50/p99/p99.9 (at most 1,000,000
//! samples kept: past that every k-th request), the RSS series, the RSS drift and VmHWM, then
//! PASS/FAIL for: no error, no timeout (the check, warm-up and saturation count too), RSS drift
//! under 2%, the server still running; the process exits 1 when any fails. RSS drift: the median
//! of the last 3 samples against the median of the first 3 samples taken at or after the warm-up
//! window, max(60 s, 10% of the run) but at most half the run, as a percentage of the latter
//! (fewer than 3 per window in runs too short for two windows of 3).
//!
//! Peers (`-- --peers BIN_DIR`, or `benches/peers.sh`, which builds them): pod-hardener, the
//! baseline and Kubernetes' Pod Security Admission webhook (/validate) or OPA Gatekeeper's
//! mutation webhook (/mutate), all against the tests' real control plane, their answers checked
//! equal first; see `peers.rs`.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

// The tests' real control plane, which the peers comparison runs the webhooks against.
#[allow(dead_code)]
#[path = "../../tests/common/control_plane.rs"]
mod control_plane;

mod baseline;
mod client;
mod compare;
mod options;
mod payload;
mod peers;
mod phases;
mod process;
mod report;
mod soak;

use std::process::ExitCode;
use std::time::Instant;

use options::Options;

/// The same allocator as `pod-hardener serve`, for the baseline server (and the load generator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(baseline::BASELINE_FLAG) {
        return match baseline::main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("baseline server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = Options::parse(&args);
    if let Some(dir) = &opts.dump_payloads {
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            payload::payloads()
                .iter()
                .filter(|p| p.path == "/mutate")
                .try_for_each(|p| {
                    let file = dir.join(format!("{}.json", p.id.trim_start_matches("mutate-")));
                    println!("{}: {} bytes", file.display(), p.body.len());
                    std::fs::write(file, &p.body)
                })
        });
        return match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write the payloads: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if !opts.bench_flag {
        // `cargo test --all-targets` runs bench targets without `--bench`: nothing to time there.
        println!("load harness: skipped (run it with `cargo bench --bench load [-- --quick]`)");
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    let outcome = run(&opts);
    println!("\nwall time: {:.1} s", started.elapsed().as_secs_f64());
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("load harness failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The comparison, the peers comparison or the soak, on a runtime of the same flavor as
/// `pod-hardener serve`.
fn run(opts: &Options) -> anyhow::Result<bool> {
    pod_hardener::server::tls::install_crypto_provider();
    if let Some(bin_dir) = &opts.peers {
        // The machine as it is, before this process sees one CPU of it.
        let machine = report::machine();
        // Before any thread or child exists, so that all of them inherit the harness's CPU.
        peers::pin_harness()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let control_plane = control_plane::ControlPlane::start();
        return runtime.block_on(peers::peers(opts, bin_dir, &machine, &control_plane));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match opts.soak {
        Some(seconds) => runtime.block_on(soak::soak(opts, seconds)),
        None => runtime.block_on(compare::compare(opts)),
    }
}
