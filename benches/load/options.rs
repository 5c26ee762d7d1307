//! The harness's command line (`cargo bench --bench load -- [options]`), read by clap, checked
//! ranges included, and resolved into [`Options`] (the defaults that depend on `--quick`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use clap::builder::PossibleValuesParser;

use crate::payload::PAYLOAD_IDS;
use crate::soak::SOAK_MIN_SECONDS;

/// The options of the comparison that mean nothing to the soak.
const NOT_FOR_SOAK: [&str; 7] = [
    "quick",
    "rounds",
    "rate",
    "idle_connections",
    "only",
    "dump_payloads",
    "baseline_parses",
];

/// The load harness: pod-hardener against a bare baseline server on the same stack, or the soak.
#[derive(Debug, Parser)]
#[command(
    name = "load",
    override_usage = "cargo bench --bench load -- [OPTIONS]"
)]
struct Args {
    /// Length of each measured phase, in seconds (default 10; --quick: 1; --soak: the
    /// saturation phase)
    #[arg(long, value_name = "N", value_parser = parse_seconds)]
    seconds: Option<f64>,
    /// B,P alternations per phase (default 2; --quick: 1)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: Option<u32>,
    /// Open-loop rate in reviews/s
    #[arg(long, value_name = "R", default_value_t = 2000,
          value_parser = clap::value_parser!(u32).range(1..=200_000))]
    rate: u32,
    /// Connections for both loops
    #[arg(long, value_name = "C", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=512))]
    connections: u16,
    /// Idle TLS connections for the RSS figure (at most 1000: pod-hardener's default
    /// limits.maxConnections is 1024)
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    idle_connections: u16,
    /// 1 s phases, 1 round, short warm-up: a smoke run
    #[arg(long)]
    quick: bool,
    /// The soak instead: pod-hardener alone, saturation measured by a closed loop (--seconds,
    /// 3 KB /mutate), then an open loop at half that rate for SECONDS (the soak is 600)
    /// with VmRSS read every 10 s; PASS/FAIL for errors, timeouts and RSS drift, exit 1 on FAIL
    /// (--connections, --seconds and --hardener-bin apply; scripts/soak.sh)
    #[arg(long, value_name = "SECONDS", conflicts_with_all = NOT_FOR_SOAK,
          value_parser = clap::value_parser!(u64).range(SOAK_MIN_SECONDS..=86_400))]
    soak: Option<u64>,
    /// The baseline also parses each review into a serde_json::Value before its fixed answer:
    /// the floor of any webhook that reads its input
    #[arg(long)]
    baseline_parses: bool,
    /// Run only this payload (repeatable)
    #[arg(long = "payload", value_name = "ID", value_parser = PossibleValuesParser::new(PAYLOAD_IDS))]
    only: Vec<String>,
    /// Write the generated reviews to DIR/ID.json and exit (to replay them)
    #[arg(long, value_name = "DIR")]
    dump_payloads: Option<PathBuf>,
    /// The peers comparison instead (benches/peers.sh): pod-hardener, the baseline and a peer
    /// built into BIN_DIR by scripts/build-peers.sh (Kubernetes' PSA webhook on /validate, OPA
    /// Gatekeeper on /mutate), against the tests' control plane, every server pinned to CPU 1;
    /// the open loop runs at --rate or half the slowest server's saturation, whichever is lower
    #[arg(long, value_name = "BIN_DIR", conflicts_with_all = ["soak", "dump_payloads"])]
    peers: Option<PathBuf>,
    /// The pod-hardener binary to run (default: the one cargo built), e.g. an unstripped build
    /// with symbols to profile with `perf record -p PID`
    #[arg(long, value_name = "PATH", default_value = env!("CARGO_BIN_EXE_pod-hardener"))]
    hardener_bin: PathBuf,
    /// Passed by `cargo bench`; without it (`cargo test --all-targets`) the harness does nothing.
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.1..=600.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0.1 and 600".into())
    }
}

/// What the harness runs with.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) seconds: f64,
    pub(crate) rounds: u32,
    pub(crate) rate: u32,
    pub(crate) connections: usize,
    pub(crate) idle_connections: usize,
    pub(crate) hardener_bin: PathBuf,
    /// Payload ids to run; empty: all.
    pub(crate) only: Vec<String>,
    /// Write the payloads there (ID.json) and exit.
    pub(crate) dump_payloads: Option<PathBuf>,
    pub(crate) warmup: Duration,
    pub(crate) quick: bool,
    /// `--soak SECONDS`: the soak instead of the comparison.
    pub(crate) soak: Option<u64>,
    /// `--baseline-parses`: the baseline parses each review as JSON.
    pub(crate) baseline_parses: bool,
    /// `--peers BIN_DIR`: the peers comparison, the peers' binaries there.
    pub(crate) peers: Option<PathBuf>,
    pub(crate) bench_flag: bool,
}

impl Options {
    /// Parses `args` (without the program name); on `--help` or a usage error, prints and exits
    /// as clap does (0, or 2).
    pub(crate) fn parse(args: &[String]) -> Self {
        let args = Args::parse_from(std::iter::once("load".to_owned()).chain(args.iter().cloned()));
        let quick = args.quick;
        Options {
            seconds: args.seconds.unwrap_or(if quick { 1.0 } else { 10.0 }),
            rounds: args.rounds.unwrap_or(if quick { 1 } else { 2 }),
            rate: args.rate,
            connections: usize::from(args.connections),
            idle_connections: usize::from(args.idle_connections),
            hardener_bin: args.hardener_bin,
            only: args.only,
            dump_payloads: args.dump_payloads,
            warmup: if quick {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(1)
            },
            quick,
            soak: args.soak,
            baseline_parses: args.baseline_parses,
            peers: args.peers,
            bench_flag: args.bench,
        }
    }

    pub(crate) fn phase(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}
