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
//! `--quick`, `--soak SECONDS` (below); `-- --help` lists them all.
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
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use common::UID;
use pod_hardener::certs::{self, CertRequest};
use pod_hardener::server::tls;

/// The same allocator as `pod-hardener serve`, for the baseline server (and the load generator).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What every good response contains (both servers serialize compact JSON).
const UID_NEEDLE: &str = "\"uid\":\"705ab4f5-6393-11e8-b7cc-42010a800002\"";
/// The baseline's fixed response.
const BASELINE_RESPONSE: &str = "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":\"705ab4f5-6393-11e8-b7cc-42010a800002\",\"allowed\":true}}";
const BASELINE_FLAG: &str = "--baseline-server";
/// Same as pod-hardener's default `limits.maxBodyBytes`.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// One request's deadline, from send to the end of the response body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of requests in one closed-loop phase, whatever the duration.
const MAX_REQUESTS_PER_PHASE: u64 = 20_000_000;
/// How long an open-loop phase may overrun its schedule before its remaining requests are
/// counted as errors.
const OPEN_LOOP_GRACE: Duration = Duration::from_secs(10);
/// Most error messages kept per server and payload.
const ERROR_SAMPLES: usize = 5;
/// The messages of the failures that are timeouts (counted apart from other errors by
/// `Errors::add`): no response within `REQUEST_TIMEOUT`, no connection within `CONNECT_TIMEOUT`,
/// an open-loop request still unsent at the phase's hard deadline.
const NO_RESPONSE: &str = "no response within";
const CONNECT_TIMED_OUT: &str = "connect timed out";
const PAST_DEADLINE: &str = "not sent before the phase's hard deadline";

const PAYLOAD_IDS: [&str; 3] = ["mutate-3k", "mutate-30k", "validate-3k"];

const USAGE: &str = "\
usage: cargo bench --bench load -- [options]
  --seconds N           length of each measured phase (default 10; --quick: 1; --soak: the
                        saturation phase)
  --rounds N            B,P alternations per phase (default 2; --quick: 1)
  --rate R              open-loop rate in reviews/s (default 2000)
  --connections C       connections for both loops (default 64)
  --idle-connections N  idle TLS connections for the RSS figure (default 1000)
  --quick               1 s phases, 1 round, short warm-up: a smoke run
  --soak SECONDS        the soak instead: pod-hardener alone, saturation measured by a closed
                        loop (--seconds, 3 KB /mutate), then an open loop at half that rate for
                        SECONDS (at least 20; the issue's soak is 600) with VmRSS read every
                        10 s; PASS/FAIL for errors, timeouts and RSS drift, exit 1 on FAIL
                        (--connections, --seconds and --hardener-bin apply; scripts/soak.sh)
  --baseline-parses     the baseline also parses each review into a serde_json::Value before
                        its fixed answer: the floor of any webhook that reads its input
  --payload ID          run only this payload (repeatable): mutate-3k, mutate-30k, validate-3k
  --dump-payloads DIR   write the generated reviews to DIR/ID.json and exit (to replay them)
  --hardener-bin PATH   the pod-hardener binary to run (default: the one cargo built), e.g.
                        an unstripped build with symbols to profile with `perf record -p PID`";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(BASELINE_FLAG) {
        return match baseline::main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("baseline server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let opts = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if opts.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if let Some(dir) = &opts.dump_payloads {
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            payloads()
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

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Options {
    seconds: f64,
    rounds: u32,
    rate: u32,
    connections: usize,
    idle_connections: usize,
    hardener_bin: PathBuf,
    /// Payload ids to run; empty: all.
    only: Vec<String>,
    /// Write the payloads there (ID.json) and exit.
    dump_payloads: Option<PathBuf>,
    warmup: Duration,
    quick: bool,
    /// `--soak SECONDS`: the soak instead of the comparison.
    soak: Option<u64>,
    /// `--baseline-parses`: the baseline parses each review as JSON.
    baseline_parses: bool,
    bench_flag: bool,
    help: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut seconds = None;
        let mut rounds = None;
        let mut rate = 2000u32;
        let mut connections = 64usize;
        let mut idle_connections = 1000usize;
        let mut hardener_bin = PathBuf::from(env!("CARGO_BIN_EXE_pod-hardener"));
        let mut only = Vec::new();
        let mut dump_payloads = None;
        let mut quick = false;
        let mut soak = None;
        let mut baseline_parses = false;
        let mut bench_flag = false;
        let mut help = false;
        // Options of the comparison that mean nothing to the soak.
        let mut not_for_soak: Option<&str> = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if matches!(
                arg.as_str(),
                "--quick"
                    | "--rounds"
                    | "--rate"
                    | "--idle-connections"
                    | "--payload"
                    | "--dump-payloads"
                    | "--baseline-parses"
            ) {
                not_for_soak = Some(arg.as_str());
            }
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--bench" => bench_flag = true,
                "--quick" => quick = true,
                "--baseline-parses" => baseline_parses = true,
                "--help" | "-h" => help = true,
                "--seconds" => {
                    let v: f64 = num(&value(arg)?, arg)?;
                    if !(0.1..=600.0).contains(&v) {
                        return Err("--seconds must be between 0.1 and 600".into());
                    }
                    seconds = Some(v);
                }
                "--rounds" => {
                    let v: u32 = num(&value(arg)?, arg)?;
                    if !(1..=20).contains(&v) {
                        return Err("--rounds must be between 1 and 20".into());
                    }
                    rounds = Some(v);
                }
                "--rate" => {
                    rate = num(&value(arg)?, arg)?;
                    if !(1..=200_000).contains(&rate) {
                        return Err("--rate must be between 1 and 200000".into());
                    }
                }
                "--connections" => {
                    connections = num(&value(arg)?, arg)?;
                    if !(1..=512).contains(&connections) {
                        return Err("--connections must be between 1 and 512".into());
                    }
                }
                "--idle-connections" => {
                    idle_connections = num(&value(arg)?, arg)?;
                    if idle_connections > 1000 {
                        // pod-hardener's default limits.maxConnections is 1024.
                        return Err("--idle-connections must be at most 1000".into());
                    }
                }
                "--soak" => {
                    let v: u64 = num(&value(arg)?, arg)?;
                    if !(SOAK_MIN_SECONDS..=86_400).contains(&v) {
                        return Err(format!(
                            "--soak must be between {SOAK_MIN_SECONDS} and 86400 seconds"
                        ));
                    }
                    soak = Some(v);
                }
                "--hardener-bin" => hardener_bin = PathBuf::from(value(arg)?),
                "--dump-payloads" => dump_payloads = Some(PathBuf::from(value(arg)?)),
                "--payload" => {
                    let v = value(arg)?;
                    if !PAYLOAD_IDS.contains(&v.as_str()) {
                        return Err(format!("--payload must be one of {PAYLOAD_IDS:?}"));
                    }
                    only.push(v);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if let (Some(_), Some(flag)) = (soak, not_for_soak) {
            return Err(format!("{flag} does not apply to --soak"));
        }
        Ok(Options {
            seconds: seconds.unwrap_or(if quick { 1.0 } else { 10.0 }),
            rounds: rounds.unwrap_or(if quick { 1 } else { 2 }),
            rate,
            connections,
            idle_connections,
            hardener_bin,
            only,
            dump_payloads,
            warmup: if quick {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(1)
            },
            quick,
            soak,
            baseline_parses,
            bench_flag,
            help,
        })
    }

    fn phase(&self) -> Duration {
        Duration::from_secs_f64(self.seconds)
    }
}

fn num<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{name}: {s:?} is not a number"))
}

// ---------------------------------------------------------------------------------------------
// Payloads

struct Payload {
    /// For `--payload`.
    id: &'static str,
    label: &'static str,
    path: &'static str,
    body: Bytes,
    /// Minimum throughput ratio P/B from the issue, if any.
    throughput_target: Option<f64>,
}

fn payloads() -> Vec<Payload> {
    let typical = Bytes::from(common::review_around(common::typical_pod()));
    let fat = Bytes::from(common::review_around(common::fat_pod()));
    vec![
        Payload {
            id: "mutate-3k",
            label: "3 KB /mutate",
            path: "/mutate",
            body: typical.clone(),
            throughput_target: Some(0.85),
        },
        Payload {
            id: "mutate-30k",
            label: "30 KB /mutate",
            path: "/mutate",
            body: fat,
            throughput_target: Some(0.6),
        },
        Payload {
            id: "validate-3k",
            label: "3 KB /validate",
            path: "/validate",
            body: typical,
            throughput_target: None,
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// The baseline server (this binary, re-executed)

mod baseline {
    use super::*;

    /// The baseline's optional last argument: parse each review before the fixed answer.
    pub(super) const PARSE_FLAG: &str = "--parse";

    /// Whether this baseline parses each review (set once at start-up).
    static PARSES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

    /// `--baseline-server PORT CERT KEY [--parse]`: serves until stdin closes (the harness holds
    /// the other end, so the server also ends if the harness dies).
    pub(super) fn main(args: &[String]) -> anyhow::Result<()> {
        let (port, cert, key, parses) = match args {
            [port, cert, key] => (port, cert, key, false),
            [port, cert, key, flag] if flag == PARSE_FLAG => (port, cert, key, true),
            _ => bail!("usage: {BASELINE_FLAG} PORT CERT KEY [{PARSE_FLAG}]"),
        };
        let _ = PARSES.set(parses);
        let port: u16 = port.parse().context("PORT")?;
        tls::install_crypto_provider();
        // The same certificate store and rustls ServerConfig as pod-hardener: TLS 1.2 and 1.3,
        // ALPN h2 and http/1.1, ring.
        let store = Arc::new(tls::CertStore::load(Path::new(cert), Path::new(key))?);
        let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(store)?));
        std::thread::spawn(|| {
            let mut buf = [0u8; 64];
            while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
        // The same runtime flavor as `pod-hardener serve`.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(serve(port, acceptor))
    }

    async fn serve(port: u16, acceptor: TlsAcceptor) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .with_context(|| format!("bind 127.0.0.1:{port}"))?;
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(Ok(stream)) =
                    tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                else {
                    return;
                };
                // The same builder settings as pod-hardener's connections.
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5));
                builder
                    .http2()
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(128);
                let _ = builder
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle))
                    .await;
            });
        }
    }

    async fn handle(
        req: Request<hyper::body::Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let (status, body) = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            // What any webhook must do at the least: read the review as JSON. A Value, not typed
            // Kubernetes structs, so this is a floor, not a competitor.
            Ok(body) if PARSES.get() == Some(&true) => {
                match serde_json::from_slice::<Value>(&body.to_bytes()) {
                    Ok(review) => {
                        std::hint::black_box(&review);
                        (
                            StatusCode::OK,
                            Bytes::from_static(BASELINE_RESPONSE.as_bytes()),
                        )
                    }
                    Err(_) => (StatusCode::BAD_REQUEST, Bytes::from_static(b"not JSON\n")),
                }
            }
            Ok(_) => (
                StatusCode::OK,
                Bytes::from_static(BASELINE_RESPONSE.as_bytes()),
            ),
            Err(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Bytes::from_static(b"body too large\n"),
            ),
        };
        let mut rsp = Response::new(Full::new(body));
        *rsp.status_mut() = status;
        rsp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(rsp)
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes and /proc

/// A child process killed (SIGKILL) and reaped when dropped, panics included.
struct ChildGuard {
    child: Child,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Baseline,
    /// The baseline that also parses each review (`--baseline-parses`).
    ParsingBaseline,
    PodHardener,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::ParsingBaseline => "baseline (parses)",
            Kind::PodHardener => "pod-hardener",
        }
    }
}

struct Server {
    kind: Kind,
    guard: ChildGuard,
    target: Target,
    stderr_path: PathBuf,
    startup: Duration,
    idle_rss_kib: u64,
}

impl Server {
    fn pid(&self) -> u32 {
        self.guard.child.id()
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

/// A free loopback port: bind port 0 and release it (the child binds it right after).
fn free_port() -> anyhow::Result<u16> {
    let l = StdListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Busy ticks of the whole machine (user, nice, system, irq, softirq) from /proc/stat.
fn system_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum()
}

/// CPU ticks used by the server, by this process (the load generator) and by everything else
/// on the machine over a phase.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUsage {
    server: u64,
    client: u64,
    others: u64,
}

impl std::ops::AddAssign for CpuUsage {
    fn add_assign(&mut self, o: Self) {
        self.server += o.server;
        self.client += o.client;
        self.others += o.others;
    }
}

struct CpuMeter {
    pid: u32,
    start: CpuUsage,
}

impl CpuMeter {
    fn start(pid: u32) -> Self {
        CpuMeter {
            pid,
            start: CpuMeter::read(pid),
        }
    }

    /// Server, client and whole-machine ticks (the last in `others`).
    fn read(pid: u32) -> CpuUsage {
        CpuUsage {
            server: proc_cpu_ticks(pid),
            client: proc_cpu_ticks(std::process::id()),
            others: system_busy_ticks(),
        }
    }

    fn stop(&self) -> CpuUsage {
        let end = CpuMeter::read(self.pid);
        let server = end.server.saturating_sub(self.start.server);
        let client = end.client.saturating_sub(self.start.client);
        let machine = end.others.saturating_sub(self.start.others);
        CpuUsage {
            server,
            client,
            others: machine.saturating_sub(server + client),
        }
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

struct Fixture {
    dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    ca_pem: String,
}

fn fixture() -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let mut req = CertRequest::new("pod-hardener", "pod-hardener");
    req.extra_dns.push("localhost".into());
    req.extra_ips.push("127.0.0.1".parse()?);
    let generated = certs::generate(&req)?;
    let written = certs::write_files(&generated, &dir.path().join("tls"))?;
    Ok(Fixture {
        cert: written.cert,
        key: written.key,
        ca_pem: generated.ca_pem,
        dir,
    })
}

async fn start_server(
    kind: Kind,
    hardener_bin: &Path,
    fixture: &Fixture,
    connector: &TlsConnector,
    probe: &Payload,
) -> anyhow::Result<Server> {
    let mut last_error = None;
    // A released port can be taken by someone else before the child binds it: try a few.
    for attempt in 0..3 {
        let port = free_port()?;
        let stderr_path = fixture
            .dir
            .path()
            .join(format!("{}-{attempt}.stderr", kind.name()));
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut cmd = match kind {
            Kind::Baseline | Kind::ParsingBaseline => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg(BASELINE_FLAG)
                    .arg(port.to_string())
                    .arg(&fixture.cert)
                    .arg(&fixture.key);
                if kind == Kind::ParsingBaseline {
                    c.arg(baseline::PARSE_FLAG);
                }
                c
            }
            Kind::PodHardener => {
                let metrics_port = free_port()?;
                let config = fixture.dir.path().join("config.yaml");
                std::fs::write(
                    &config,
                    format!(
                        "listen: 127.0.0.1:{port}\n\
                         metricsListen: 127.0.0.1:{metrics_port}\n\
                         tls:\n  certFile: {}\n  keyFile: {}\n\
                         namespaceSource: static\n\
                         log:\n  level: warn\n",
                        fixture.cert.display(),
                        fixture.key.display()
                    ),
                )?;
                let mut c = Command::new(hardener_bin);
                c.arg("serve").arg("--config").arg(&config);
                // Nothing from the environment overrides the file.
                for var in [
                    "POD_HARDENER_CONFIG",
                    "POD_HARDENER_LISTEN",
                    "POD_HARDENER_METRICS_LISTEN",
                    "POD_HARDENER_TLS_CERT",
                    "POD_HARDENER_TLS_KEY",
                    "POD_HARDENER_LOG_FORMAT",
                    "POD_HARDENER_LOG_LEVEL",
                    "KUBECONFIG",
                ] {
                    c.env_remove(var);
                }
                c
            }
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        let spawned = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", kind.name()))?;
        let mut guard = ChildGuard { child };
        let target = Target::new(SocketAddr::from(([127, 0, 0, 1], port)), connector.clone());
        // Ready when a review is answered: at most 200 tries over about 10 s.
        let mut ready = false;
        for _ in 0..200 {
            if let Ok(Some(status)) = guard.child.try_wait() {
                last_error = Some(anyhow!(
                    "{} exited during start-up ({status}): {}",
                    kind.name(),
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ));
                break;
            }
            let probe_result = tokio::time::timeout(Duration::from_secs(1), async {
                let mut conn = target.connect().await.map_err(|e| e.to_string())?;
                review(&mut conn, &target, probe).await
            })
            .await;
            if matches!(probe_result, Ok(Ok(_))) {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let startup = spawned.elapsed();
        if !ready {
            if last_error.is_none() {
                last_error = Some(anyhow!(
                    "{} did not answer within 10 s: {}",
                    kind.name(),
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ));
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle_rss_kib = proc_status_kib(guard.child.id(), "VmRSS:");
        return Ok(Server {
            kind,
            guard,
            target,
            stderr_path,
            startup,
            idle_rss_kib,
        });
    }
    Err(last_error.unwrap_or_else(|| anyhow!("{} did not start", kind.name())))
}

/// pod-hardener's plain-HTTP readiness endpoint answers 200 (one blocking request, bounded).
fn metrics_ready(server: &Server, fixture: &Fixture) -> anyhow::Result<()> {
    use std::io::Write as _;
    let config = std::fs::read_to_string(fixture.dir.path().join("config.yaml"))?;
    let addr: SocketAddr = config
        .lines()
        .find_map(|l| l.strip_prefix("metricsListen: "))
        .context("metricsListen in the config")?
        .parse()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut rsp = String::new();
    let _ = s.take(64 * 1024).read_to_string(&mut rsp);
    if !rsp.starts_with("HTTP/1.1 200") {
        bail!(
            "{} /readyz answered {:?}",
            server.kind.name(),
            rsp.lines().next()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The client

type Sender = http1::SendRequest<Full<Bytes>>;

#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    connector: TlsConnector,
}

impl Target {
    fn new(addr: SocketAddr, connector: TlsConnector) -> Self {
        Target {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header"),
            connector,
        }
    }

    /// TCP + TLS 1.3 handshake + HTTP/1.1 handshake, bounded.
    async fn connect(&self) -> anyhow::Result<Sender> {
        tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect(self.addr).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::IpAddress(self.addr.ip().into());
            let stream = self.connector.connect(name, tcp).await?;
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            anyhow::Ok(sender)
        })
        .await
        .map_err(|_| anyhow!("{CONNECT_TIMED_OUT}"))?
    }
}

fn client_tls(ca_pem: &str) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(der?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One review on a kept-alive connection: the response must be a 200 carrying the uid.
async fn review(conn: &mut Sender, target: &Target, payload: &Payload) -> Result<Bytes, String> {
    let work = async {
        conn.ready()
            .await
            .map_err(|e| format!("connection unusable: {e}"))?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(payload.path)
            .header(HOST, target.host.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(payload.body.clone()))
            .map_err(|e| e.to_string())?;
        let rsp = conn
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = rsp.status();
        let body = rsp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("response body: {e}"))?
            .to_bytes();
        if status != StatusCode::OK {
            let shown = &body[..body.len().min(200)];
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(shown).trim()
            ));
        }
        if memchr::memmem::find(&body, UID_NEEDLE.as_bytes()).is_none() {
            return Err("the response does not carry the request's uid".into());
        }
        Ok(body)
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("{NO_RESPONSE} {REQUEST_TIMEOUT:?}")),
    }
}

/// Opens `n` connections, 32 handshakes at a time.
async fn connect_many(target: &Target, n: usize) -> (Vec<Sender>, Vec<String>) {
    let mut conns = Vec::with_capacity(n);
    let mut errors = Vec::new();
    let mut remaining = n;
    while remaining > 0 {
        let batch = remaining.min(32);
        remaining -= batch;
        let mut set = JoinSet::new();
        for _ in 0..batch {
            let t = target.clone();
            set.spawn(async move { t.connect().await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(c)) => conns.push(c),
                Ok(Err(e)) => errors.push(format!("connect: {e:#}")),
                Err(e) => errors.push(format!("connect task: {e}")),
            }
        }
    }
    (conns, errors)
}

/// The full check of one response, beyond the uid the hot path checks.
fn describe_response(body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["apiVersion"] != "admission.k8s.io/v1" || v["kind"] != "AdmissionReview" {
        return Err(format!("not an admission.k8s.io/v1 AdmissionReview: {v}"));
    }
    let r = &v["response"];
    if r["uid"] != UID {
        return Err(format!("response.uid is {}", r["uid"]));
    }
    let Some(allowed) = r["allowed"].as_bool() else {
        return Err("response.allowed is not a boolean".into());
    };
    let patch = r["patch"].as_str().map_or(0, str::len);
    let warnings = r["warnings"].as_array().map_or(0, Vec::len);
    Ok(format!(
        "allowed={allowed}, patch {patch} B (base64), {warnings} warnings, response {} B",
        body.len()
    ))
}

// ---------------------------------------------------------------------------------------------
// Phases

#[derive(Default)]
struct Errors {
    /// All failures, timeouts included.
    count: u64,
    /// The failures that are timeouts (see `NO_RESPONSE`).
    timeouts: u64,
    samples: Vec<String>,
}

impl Errors {
    fn add(&mut self, e: String) {
        self.count += 1;
        if [NO_RESPONSE, CONNECT_TIMED_OUT, PAST_DEADLINE]
            .iter()
            .any(|m| e.contains(m))
        {
            self.timeouts += 1;
        }
        if self.samples.len() < ERROR_SAMPLES && !self.samples.contains(&e) {
            self.samples.push(e);
        }
    }

    fn merge(&mut self, other: Errors) {
        self.count += other.count;
        self.timeouts += other.timeouts;
        for s in other.samples {
            if self.samples.len() < ERROR_SAMPLES && !self.samples.contains(&s) {
                self.samples.push(s);
            }
        }
    }
}

struct ClosedResult {
    ok: u64,
    elapsed: Duration,
    cpu: CpuUsage,
    errors: Errors,
}

/// Closed loop: `conns` connections each sending the next request as soon as the previous
/// response arrived, for `duration`.
async fn closed_loop(
    server: &Server,
    payload: &Arc<Payload>,
    conns: usize,
    duration: Duration,
) -> ClosedResult {
    let (senders, connect_errors) = connect_many(&server.target, conns).await;
    let mut errors = Errors::default();
    for e in connect_errors {
        errors.add(e);
    }
    let meter = CpuMeter::start(server.pid());
    let start = Instant::now();
    let deadline = start + duration;
    let per_conn_cap = MAX_REQUESTS_PER_PHASE / conns as u64;
    let mut set = JoinSet::new();
    for mut conn in senders {
        let target = server.target.clone();
        let payload = payload.clone();
        set.spawn(async move {
            let mut ok = 0u64;
            let mut errors = Errors::default();
            let mut sent = 0u64;
            while Instant::now() < deadline && sent < per_conn_cap {
                sent += 1;
                match review(&mut conn, &target, &payload).await {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        errors.add(e);
                        match target.connect().await {
                            Ok(c) => conn = c,
                            Err(e) => {
                                errors.add(format!("reconnect: {e:#}"));
                                break;
                            }
                        }
                    }
                }
            }
            (ok, errors, conn)
        });
    }
    let mut ok = 0;
    let mut keep = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok((n, e, conn)) => {
                ok += n;
                errors.merge(e);
                keep.push(conn);
            }
            Err(e) => errors.add(format!("load task: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let cpu = meter.stop();
    drop(keep);
    ClosedResult {
        ok,
        elapsed,
        cpu,
        errors,
    }
}

struct OpenResult {
    ok: u64,
    /// Requests scheduled (`rate` × `duration`, at most `MAX_REQUESTS_PER_PHASE`).
    scheduled: u64,
    /// The three sample vectors hold one value per `keep_every` requests (by schedule index).
    keep_every: u64,
    /// From the scheduled send time to the end of the response (coordinated-omission corrected).
    latencies_ns: Vec<u64>,
    /// From the actual send to the end of the response (what a naive client would report).
    service_ns: Vec<u64>,
    /// How late the pacer handed each request out (the client's own share of the latency).
    pacer_lag_ns: Vec<u64>,
    elapsed: Duration,
    cpu: CpuUsage,
    errors: Errors,
}

/// Open loop: requests scheduled at a fixed rate, spread round-robin over `conns` kept-alive
/// connections (as wrk2 does). A request whose connection is still busy at its scheduled time
/// waits, and that wait counts in its latency. Request `i` sends `mix[i % mix.len()]` (one
/// payload, or a fixed proportion of several).
///
/// Memory: the samples (latency, service time, pacer lag: 3 × u64) are kept for the requests
/// whose index is a multiple of `keep_every` (1: all of them), a systematic sample; the run is
/// at most `MAX_REQUESTS_PER_PHASE` requests whatever the rate and duration.
async fn open_loop(
    server: &Server,
    mix: &[Arc<Payload>],
    conns: usize,
    rate: u32,
    duration: Duration,
    keep_every: u64,
) -> OpenResult {
    let keep_every = keep_every.max(1);
    let (senders, connect_errors) = connect_many(&server.target, conns).await;
    let mut errors = Errors::default();
    for e in connect_errors {
        errors.add(e);
    }
    let total = ((f64::from(rate) * duration.as_secs_f64()).round() as u64)
        .clamp(1, MAX_REQUESTS_PER_PHASE);
    let kept = total.div_ceil(keep_every) as usize;
    let n = senders.len();
    if n == 0 || mix.is_empty() {
        errors.add("open loop: no connection could be opened, or no payload".into());
        return OpenResult {
            ok: 0,
            scheduled: total,
            keep_every,
            latencies_ns: Vec::new(),
            service_ns: Vec::new(),
            pacer_lag_ns: Vec::new(),
            elapsed: Duration::ZERO,
            cpu: CpuUsage::default(),
            errors,
        };
    }
    let meter = CpuMeter::start(server.pid());
    // A little slack for the tasks to start waiting.
    let start = Instant::now() + Duration::from_millis(20);
    let hard_deadline = start + duration + OPEN_LOOP_GRACE;
    let mix: Arc<[Arc<Payload>]> = mix.into();
    let mut txs = Vec::with_capacity(n);
    let mut set = JoinSet::new();
    for mut conn in senders {
        // (scheduled send time, request index)
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, u64)>();
        txs.push(tx);
        let target = server.target.clone();
        let mix = mix.clone();
        set.spawn(async move {
            let mut ok = 0u64;
            let mut lat = Vec::new();
            let mut svc = Vec::new();
            let mut errors = Errors::default();
            let mut usable = true;
            while let Some((intended, i)) = rx.recv().await {
                if !usable || Instant::now() > hard_deadline {
                    errors.add(if usable {
                        PAST_DEADLINE.into()
                    } else {
                        "connection lost".into()
                    });
                    continue;
                }
                let sent = Instant::now();
                let payload = &mix[(i % mix.len() as u64) as usize];
                match review(&mut conn, &target, payload).await {
                    Ok(_) => {
                        let done = Instant::now();
                        ok += 1;
                        if i % keep_every == 0 {
                            lat.push(done.saturating_duration_since(intended).as_nanos() as u64);
                            svc.push(done.saturating_duration_since(sent).as_nanos() as u64);
                        }
                    }
                    Err(e) => {
                        errors.add(e);
                        match target.connect().await {
                            Ok(c) => conn = c,
                            Err(e) => {
                                errors.add(format!("reconnect: {e:#}"));
                                usable = false;
                            }
                        }
                    }
                }
            }
            (ok, lat, svc, errors, conn)
        });
    }
    // The pacer: a plain thread sleeping to each scheduled time (nanosleep, tens of µs of
    // slack, where tokio's timer has 1 ms granularity).
    let rate_f = f64::from(rate);
    let pacer = tokio::task::spawn_blocking(move || {
        let mut lag = Vec::with_capacity(kept);
        for i in 0..total {
            let intended = start + Duration::from_secs_f64(i as f64 / rate_f);
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            if i % keep_every == 0 {
                lag.push(
                    Instant::now()
                        .saturating_duration_since(intended)
                        .as_nanos() as u64,
                );
            }
            let _ = txs[(i % n as u64) as usize].send((intended, i));
        }
        lag
    });
    let pacer_lag_ns = pacer.await.unwrap_or_default();
    let mut ok = 0;
    let mut latencies_ns = Vec::with_capacity(kept);
    let mut service_ns = Vec::with_capacity(kept);
    let mut keep = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok((k, l, s, e, conn)) => {
                ok += k;
                latencies_ns.extend(l);
                service_ns.extend(s);
                errors.merge(e);
                keep.push(conn);
            }
            Err(e) => errors.add(format!("load task: {e}")),
        }
    }
    let elapsed = start.elapsed();
    let cpu = meter.stop();
    drop(keep);
    OpenResult {
        ok,
        scheduled: total,
        keep_every,
        latencies_ns,
        service_ns,
        pacer_lag_ns,
        elapsed,
        cpu,
        errors,
    }
}

struct IdleResult {
    opened: usize,
    rss_kib: u64,
    errors: Errors,
}

/// Opens `n` connections, answers one review on each (an API server's idle keep-alive
/// connection has served requests), reads the server's RSS, and closes them.
async fn idle_connections(server: &Server, payload: &Arc<Payload>, n: usize) -> IdleResult {
    let (mut conns, connect_errors) = connect_many(&server.target, n).await;
    let mut errors = Errors::default();
    for e in connect_errors {
        errors.add(e);
    }
    // One review on each, 32 at a time; each connection moves into its task and back.
    let mut done = Vec::with_capacity(conns.len());
    while !conns.is_empty() {
        let batch: Vec<Sender> = conns.drain(..conns.len().min(32)).collect();
        let mut set = JoinSet::new();
        for mut conn in batch {
            let target = server.target.clone();
            let payload = payload.clone();
            set.spawn(async move {
                let r = review(&mut conn, &target, &payload).await;
                (conn, r)
            });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok((conn, Ok(_))) => done.push(conn),
                Ok((_, Err(e))) => errors.add(e),
                Err(e) => errors.add(format!("idle task: {e}")),
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_kib = proc_status_kib(server.pid(), "VmRSS:");
    let opened = done.len();
    drop(done);
    tokio::time::sleep(Duration::from_millis(300)).await;
    IdleResult {
        opened,
        rss_kib,
        errors,
    }
}

// ---------------------------------------------------------------------------------------------
// Aggregation

#[derive(Default)]
struct Tally {
    closed_ok: u64,
    closed_secs: f64,
    closed_cpu: CpuUsage,
    rounds_rps: Vec<f64>,
    open_ok: u64,
    open_secs: f64,
    open_cpu: CpuUsage,
    latencies_ns: Vec<u64>,
    service_ns: Vec<u64>,
    pacer_lag_ns: Vec<u64>,
    errors: Errors,
    check: String,
}

impl Tally {
    fn rps(&self) -> f64 {
        if self.closed_secs > 0.0 {
            self.closed_ok as f64 / self.closed_secs
        } else {
            0.0
        }
    }
}

fn cpu_per_1k(ticks: u64, ok: u64, hz: f64) -> f64 {
    if ok == 0 {
        return f64::NAN;
    }
    ticks as f64 / hz / ok as f64 * 1000.0
}

/// The value at quantile `q` of sorted samples (nearest rank).
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn fmt_ns(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1_000_000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn fmt_count(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn fmt_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn today_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores (nproc), {model}, {:.0} GiB, Linux {}",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

// ---------------------------------------------------------------------------------------------
// The run

fn run(opts: &Options) -> anyhow::Result<bool> {
    tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match opts.soak {
        Some(seconds) => runtime.block_on(soak(opts, seconds)),
        None => runtime.block_on(run_async(opts)),
    }
}

async fn run_async(opts: &Options) -> anyhow::Result<bool> {
    let hz = clock_ticks();
    let machine = machine();
    let date = today_utc();
    let payloads: Vec<Arc<Payload>> = payloads()
        .into_iter()
        .filter(|p| opts.only.is_empty() || opts.only.iter().any(|id| id == p.id))
        .map(Arc::new)
        .collect();
    let phase = opts.phase();
    println!("# pod-hardener load harness");
    println!("machine: {machine}");
    println!(
        "settings: {} s phases, {} round(s) B,P alternating, {} connections, open loop {} reviews/s, {} idle connections{}",
        opts.seconds,
        opts.rounds,
        opts.connections,
        opts.rate,
        opts.idle_connections,
        if opts.quick { " (--quick)" } else { "" }
    );
    for p in &payloads {
        println!("payload {}: {} bytes", p.label, p.body.len());
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "note: the load generator runs on the same {cores} cores as the server under test and competes with it for CPU; \
         absolute figures are lower than on a dedicated machine, the ratios compare both servers measured the same way."
    );

    let fixture = fixture()?;
    let connector = client_tls(&fixture.ca_pem)?;
    let probe = payloads[0].clone();
    let baseline_kind = if opts.baseline_parses {
        Kind::ParsingBaseline
    } else {
        Kind::Baseline
    };
    let baseline = start_server(
        baseline_kind,
        &opts.hardener_bin,
        &fixture,
        &connector,
        &probe,
    )
    .await?;
    let hardener = start_server(
        Kind::PodHardener,
        &opts.hardener_bin,
        &fixture,
        &connector,
        &probe,
    )
    .await?;
    metrics_ready(&hardener, &fixture)?;
    let servers = [&baseline, &hardener];
    for s in servers {
        println!(
            "{}: pid {}, {} , ready in {} ms, idle RSS {}",
            s.kind.name(),
            s.pid(),
            s.target.addr,
            s.startup.as_millis(),
            fmt_mib(s.idle_rss_kib)
        );
    }

    // Correctness: negotiated protocol, and a full check of one response per payload.
    let mut tallies: Vec<[Tally; 2]> = payloads.iter().map(|_| Default::default()).collect();
    {
        let tcp = TcpStream::connect(hardener.target.addr).await?;
        let stream = connector
            .connect(ServerName::IpAddress(hardener.target.addr.ip().into()), tcp)
            .await?;
        let (_, session) = stream.get_ref();
        let (version, alpn) = (session.protocol_version(), session.alpn_protocol());
        if version != Some(rustls::ProtocolVersion::TLSv1_3) || alpn != Some(b"http/1.1") {
            bail!("negotiated {version:?} with ALPN {alpn:?}, expected TLS 1.3 and http/1.1");
        }
        println!("negotiated: TLS 1.3, ALPN http/1.1, keep-alive");
    }
    for (i, p) in payloads.iter().enumerate() {
        for (j, s) in servers.iter().enumerate() {
            let result = async {
                let mut conn = s.target.connect().await.map_err(|e| format!("{e:#}"))?;
                let body = review(&mut conn, &s.target, p).await?;
                describe_response(&body)
            }
            .await;
            match result {
                Ok(d) => {
                    println!("check {} {}: {d}", s.kind.name(), p.label);
                    tallies[i][j].check = d;
                }
                Err(e) => tallies[i][j].errors.add(format!("check: {e}")),
            }
        }
    }

    // Warm-up, not measured.
    for (i, p) in payloads.iter().enumerate() {
        for (j, s) in servers.iter().enumerate() {
            let w = closed_loop(s, p, opts.connections, opts.warmup).await;
            tallies[i][j].errors.merge(w.errors);
        }
    }

    // Cores used by other processes in each measured phase: the harness cannot stop them, it
    // reports them.
    let mut others: Vec<f64> = Vec::new();
    for round in 1..=opts.rounds {
        for (i, p) in payloads.iter().enumerate() {
            for (j, s) in servers.iter().enumerate() {
                let r = closed_loop(s, p, opts.connections, phase).await;
                let t = &mut tallies[i][j];
                let rps = r.ok as f64 / r.elapsed.as_secs_f64();
                println!(
                    "round {round} {:<14} {:<12} closed loop: {:>7} reviews/s, {} errors; cores used: server {:.2}, load generator {:.2}, other processes {:.2}",
                    p.label,
                    s.kind.name(),
                    fmt_count(rps),
                    r.errors.count,
                    r.cpu.server as f64 / hz / r.elapsed.as_secs_f64(),
                    r.cpu.client as f64 / hz / r.elapsed.as_secs_f64(),
                    r.cpu.others as f64 / hz / r.elapsed.as_secs_f64(),
                );
                t.closed_ok += r.ok;
                t.closed_secs += r.elapsed.as_secs_f64();
                t.closed_cpu += r.cpu;
                others.push(r.cpu.others as f64 / hz / r.elapsed.as_secs_f64());
                t.rounds_rps.push(rps);
                t.errors.merge(r.errors);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            for (j, s) in servers.iter().enumerate() {
                let mut r = open_loop(
                    s,
                    std::slice::from_ref(p),
                    opts.connections,
                    opts.rate,
                    phase,
                    1,
                )
                .await;
                r.latencies_ns.sort_unstable();
                r.pacer_lag_ns.sort_unstable();
                println!(
                    "round {round} {:<14} {:<12} open loop {}/s: p50 {} p99 {} p99.9 {}, {} errors, pacer lag p99 {}; cores used: server {:.2}, other processes {:.2}",
                    p.label,
                    s.kind.name(),
                    opts.rate,
                    fmt_ns(quantile(&r.latencies_ns, 0.5)),
                    fmt_ns(quantile(&r.latencies_ns, 0.99)),
                    fmt_ns(quantile(&r.latencies_ns, 0.999)),
                    r.errors.count,
                    fmt_ns(quantile(&r.pacer_lag_ns, 0.99)),
                    r.cpu.server as f64 / hz / r.elapsed.as_secs_f64(),
                    r.cpu.others as f64 / hz / r.elapsed.as_secs_f64(),
                );
                others.push(r.cpu.others as f64 / hz / r.elapsed.as_secs_f64());
                let t = &mut tallies[i][j];
                t.open_ok += r.ok;
                t.open_secs += r.elapsed.as_secs_f64();
                t.open_cpu += r.cpu;
                t.latencies_ns.extend(r.latencies_ns);
                t.service_ns.extend(r.service_ns);
                t.pacer_lag_ns.extend(r.pacer_lag_ns);
                t.errors.merge(r.errors);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    let peak_kib = servers.map(|s| proc_status_kib(s.pid(), "VmHWM:"));
    let mut idle_results = Vec::new();
    for s in servers {
        let r = idle_connections(s, &payloads[0], opts.idle_connections).await;
        println!(
            "{}: {} idle TLS connections open, RSS {}",
            s.kind.name(),
            r.opened,
            fmt_mib(r.rss_kib)
        );
        idle_results.push(r);
    }

    // Report.
    for t in &mut tallies {
        for s in t.iter_mut() {
            s.latencies_ns.sort_unstable();
            s.service_ns.sort_unstable();
            s.pacer_lag_ns.sort_unstable();
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "\n## Results ({date})\n");
    let _ = writeln!(
        out,
        "Machine: {machine}. The load generator shares these cores with the server under test."
    );
    let others_mean = others.iter().sum::<f64>() / others.len().max(1) as f64;
    let others_max = others.iter().copied().fold(0.0, f64::max);
    let _ = writeln!(
        out,
        "Other processes on the machine used {others_mean:.2} cores on average during the measured phases (at most {others_max:.2}){}",
        if others_mean > 0.15 || others_max > 0.5 {
            ": the machine was NOT quiet, figures are disturbed; run again on an idle machine."
        } else {
            ": quiet."
        }
    );
    let _ = writeln!(
        out,
        "Settings: {} s phases × {} round(s), B and P alternating; closed loop with {} keep-alive HTTP/1.1 connections over TLS 1.3; \
         open loop at {} reviews/s over {} connections, latency from the scheduled send time.\n",
        opts.seconds, opts.rounds, opts.connections, opts.rate, opts.connections
    );
    if opts.baseline_parses {
        let _ = writeln!(
            out,
            "Baseline: parses each review into a serde_json::Value before its fixed answer (--baseline-parses).\n"
        );
    }
    let _ = writeln!(
        out,
        "| metric | payload | {} (B) | pod-hardener (P) | P/B | target |",
        baseline.kind.name()
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---|");
    let mut all_errors = 0u64;
    for (i, p) in payloads.iter().enumerate() {
        let [b, h] = &tallies[i];
        let ratio = h.rps() / b.rps();
        let target = match p.throughput_target {
            Some(min) => format!("≥ {min:.2}× {}", verdict(ratio >= min)),
            None => "—".into(),
        };
        let _ = writeln!(
            out,
            "| throughput, {} conns (reviews/s) | {} | {} | {} | {:.2}× | {target} |",
            opts.connections,
            p.label,
            fmt_count(b.rps()),
            fmt_count(h.rps()),
            ratio
        );
        for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
            let (bq, hq) = (quantile(&b.latencies_ns, q), quantile(&h.latencies_ns, q));
            let r = hq as f64 / bq.max(1) as f64;
            let target = if name == "p99" {
                let pass = r <= 1.5 && hq < 1_000_000;
                let overload = [b, h]
                    .iter()
                    .zip(["B", "P"])
                    .filter(|(t, _)| t.rps() < f64::from(opts.rate))
                    .map(|(t, who)| {
                        format!(" ({who} saturates at {}/s: queueing)", fmt_count(t.rps()))
                    })
                    .collect::<String>();
                format!("≤ 1.5× B and < 1 ms {}{overload}", verdict(pass))
            } else {
                "—".into()
            };
            let _ = writeln!(
                out,
                "| {name} at {}/s | {} | {} | {} | {r:.2}× | {target} |",
                fmt_count(f64::from(opts.rate)),
                p.label,
                fmt_ns(bq),
                fmt_ns(hq)
            );
        }
        let (bs, hs) = (
            cpu_per_1k(b.closed_cpu.server, b.closed_ok, hz),
            cpu_per_1k(h.closed_cpu.server, h.closed_ok, hz),
        );
        let _ = writeln!(
            out,
            "| CPU s / 1,000 reviews, saturated | {} | {bs:.3} | {hs:.3} | {:.2}× | — |",
            p.label,
            hs / bs
        );
        let (bo, ho) = (
            cpu_per_1k(b.open_cpu.server, b.open_ok, hz),
            cpu_per_1k(h.open_cpu.server, h.open_ok, hz),
        );
        let _ = writeln!(
            out,
            "| CPU s / 1,000 reviews at {}/s | {} | {bo:.3} | {ho:.3} | {:.2}× | — |",
            fmt_count(f64::from(opts.rate)),
            p.label,
            ho / bo
        );
        let errs = b.errors.count + h.errors.count;
        all_errors += errs;
        let _ = writeln!(
            out,
            "| errors | {} | {} | {} | | 0 {} |",
            p.label,
            b.errors.count,
            h.errors.count,
            verdict(errs == 0)
        );
    }
    let [bi, hi] = [baseline.idle_rss_kib, hardener.idle_rss_kib];
    let _ = writeln!(
        out,
        "| idle RSS after start-up | — | {} | {} | {:.2}× | < 16 MiB {} |",
        fmt_mib(bi),
        fmt_mib(hi),
        hi as f64 / bi.max(1) as f64,
        verdict(hi < 16 * 1024)
    );
    let _ = writeln!(
        out,
        "| peak RSS (VmHWM) after the load | — | {} | {} | {:.2}× | — |",
        fmt_mib(peak_kib[0]),
        fmt_mib(peak_kib[1]),
        peak_kib[1] as f64 / peak_kib[0].max(1) as f64
    );
    let (bc, hc) = (&idle_results[0], &idle_results[1]);
    let _ = writeln!(
        out,
        "| RSS with {} idle TLS connections | — | {} | {} | {:.2}× | < 64 MiB {} |",
        fmt_count(opts.idle_connections as f64),
        fmt_mib(bc.rss_kib),
        fmt_mib(hc.rss_kib),
        hc.rss_kib as f64 / bc.rss_kib.max(1) as f64,
        verdict(hc.rss_kib < 64 * 1024 && hc.opened == opts.idle_connections)
    );
    let _ = writeln!(
        out,
        "| start-up to first answered review | — | {} ms | {} ms | | — |",
        baseline.startup.as_millis(),
        hardener.startup.as_millis()
    );
    for r in &idle_results {
        all_errors += r.errors.count;
    }
    // Details that explain the table.
    let _ = writeln!(out, "\nDetails:");
    for (i, p) in payloads.iter().enumerate() {
        for (j, s) in servers.iter().enumerate() {
            let t = &tallies[i][j];
            let rounds: Vec<String> = t.rounds_rps.iter().map(|r| fmt_count(*r)).collect();
            let _ = writeln!(
                out,
                "- {} {}: reviews/s per round [{}]; load generator {:.2} cores while saturating; \
                 at {}/s service time (from the actual send) p50 {} p99 {}, pacer lag p99 {}, {} samples; {}",
                s.kind.name(),
                p.label,
                rounds.join(", "),
                t.closed_cpu.client as f64 / hz / t.closed_secs.max(1e-9),
                opts.rate,
                fmt_ns(quantile(&t.service_ns, 0.5)),
                fmt_ns(quantile(&t.service_ns, 0.99)),
                fmt_ns(quantile(&t.pacer_lag_ns, 0.99)),
                t.latencies_ns.len(),
                if t.check.is_empty() {
                    "no checked response"
                } else {
                    &t.check
                },
            );
        }
    }
    print!("{out}");

    let mut clean = all_errors == 0;
    if !clean {
        println!("\nERRORS ({all_errors}):");
        for (i, p) in payloads.iter().enumerate() {
            for (j, s) in servers.iter().enumerate() {
                for e in &tallies[i][j].errors.samples {
                    println!("- {} {}: {e}", s.kind.name(), p.label);
                }
            }
        }
        for (s, r) in servers.iter().zip(&idle_results) {
            for e in &r.errors.samples {
                println!("- {} idle connections: {e}", s.kind.name());
            }
        }
    }
    for s in servers {
        if let Some(status) = proc_exited(s) {
            clean = false;
            println!(
                "{} exited during the run ({status}):\n{}",
                s.kind.name(),
                s.stderr_tail()
            );
        }
    }
    Ok(clean)
}

/// Whether the server process has already exited (it must still be running at the end).
fn proc_exited(s: &Server) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.pid())).ok();
    match stat {
        None => Some("gone".into()),
        Some(st) => {
            let state = st
                .rfind(')')
                .and_then(|i| st[i + 1..].split_whitespace().next().map(str::to_owned));
            match state.as_deref() {
                Some("Z") | Some("X") => Some("exited".into()),
                _ => None,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The soak (--soak SECONDS)

/// Shortest `--soak`: room for a warm-up window and RSS samples after it.
const SOAK_MIN_SECONDS: u64 = 20;
/// How often the sampler reads the server's VmRSS during the soak.
const SOAK_RSS_EVERY: Duration = Duration::from_secs(10);
/// A progress line every this many RSS samples (every minute).
const SOAK_PROGRESS_EVERY: usize = 6;
/// Closed-loop warm-up on each payload of the mix before the saturation phase; not measured.
const SOAK_WARMUP: Duration = Duration::from_secs(2);
/// Most samples the soak's open loop keeps per vector (latency, service time, pacer lag): past
/// it, every k-th request is kept (a systematic sample), so the load generator's memory does not
/// grow with the soak's length: at most 3 × 8 B × 1,000,000 = 24 MB, and p99.9 still rests on
/// 1,000 samples.
const SOAK_MAX_SAMPLES: u64 = 1_000_000;
/// The criterion: RSS at the end less than 2% above the reference sample.
const SOAK_MAX_DRIFT_PERCENT: f64 = 2.0;
/// The soak's requests repeat in cycles of 20, see `soak_mix_id`.
const SOAK_MIX_CYCLE: u64 = 20;
const SOAK_MIX_TEXT: &str =
    "each 20 requests: 17 × 3 KB /mutate, 2 × 3 KB /validate, 1 × 30 KB /mutate";

/// The payload of request `k` of a cycle: the 30 KB review costs about 4× a 3 KB /mutate in
/// server CPU and /validate about 0.6×, so the mix costs about 1.1× the 3 KB /mutate the
/// saturation is measured with (the report prints the server's cores used in both phases).
fn soak_mix_id(k: u64) -> &'static str {
    match k {
        19 => "mutate-30k",
        4 | 14 => "validate-3k",
        _ => "mutate-3k",
    }
}

struct RssSample {
    /// Since the start of the soak.
    at: Duration,
    kib: u64,
}

/// Where the RSS drift's reference sample is taken: after the later of 60 s and 10% of the run,
/// but no later than half the run (so that short runs still compare two samples).
fn soak_warmup_window(seconds: u64) -> Duration {
    let s = seconds as f64;
    Duration::from_secs_f64((s * 0.1).max(60.0).min(s / 2.0))
}

/// Samples per window of the RSS drift: one reading can be a few percent off its neighbours (the
/// allocator returns pages to the OS in bursts), a median of three is not.
const SOAK_DRIFT_WINDOW: usize = 3;

/// The RSS drift of a soak: `end` against `reference`, in percent of `reference`.
struct Drift<'a> {
    /// The first `k` samples at or after the warm-up window, and their median.
    reference: &'a [RssSample],
    reference_kib: f64,
    /// The last `k` samples (all taken under load), and their median.
    end: &'a [RssSample],
    end_kib: f64,
    percent: f64,
}

/// RSS drift: the median of the last `k` samples against the median of the first `k` samples
/// taken at or after `warmup`, k = `SOAK_DRIFT_WINDOW` or fewer so that the two windows never
/// overlap (short runs). `None` when fewer than two samples were taken after `warmup`.
fn rss_drift(samples: &[RssSample], warmup: Duration) -> Option<Drift<'_>> {
    let first = samples.iter().position(|s| s.at >= warmup)?;
    let after = &samples[first..];
    let k = SOAK_DRIFT_WINDOW.min(after.len() / 2);
    if k == 0 {
        return None;
    }
    let median = |w: &[RssSample]| {
        let mut v: Vec<u64> = w.iter().map(|s| s.kib).collect();
        v.sort_unstable();
        let m = v.len() / 2;
        if v.len().is_multiple_of(2) {
            (v[m - 1] + v[m]) as f64 / 2.0
        } else {
            v[m] as f64
        }
    };
    let (reference, end) = (&after[..k], &after[after.len() - k..]);
    let (reference_kib, end_kib) = (median(reference), median(end));
    if reference_kib <= 0.0 {
        return None;
    }
    Some(Drift {
        reference,
        reference_kib,
        end,
        end_kib,
        percent: (end_kib - reference_kib) / reference_kib * 100.0,
    })
}

/// "40, 50, 60 s"
fn fmt_at(w: &[RssSample]) -> String {
    let secs: Vec<String> = w.iter().map(|s| s.at.as_secs().to_string()).collect();
    format!("{} s", secs.join(", "))
}

fn pass_fail(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// `--soak SECONDS`: pod-hardener alone; warm-up; saturation by a closed loop on the 3 KB
/// /mutate review; then an open loop at half that rate for SECONDS over the mix, VmRSS read
/// every `SOAK_RSS_EVERY`. PASS (Ok(true)) when there was no error, no timeout, the RSS drift is
/// under `SOAK_MAX_DRIFT_PERCENT` and the server still runs.
async fn soak(opts: &Options, seconds: u64) -> anyhow::Result<bool> {
    let hz = clock_ticks();
    let machine = machine();
    let date = today_utc();
    let all: Vec<Arc<Payload>> = payloads().into_iter().map(Arc::new).collect();
    let by_id = |id: &str| {
        all.iter()
            .find(|p| p.id == id)
            .cloned()
            .with_context(|| format!("no payload {id}"))
    };
    let mix = (0..SOAK_MIX_CYCLE)
        .map(|k| by_id(soak_mix_id(k)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let small = by_id("mutate-3k")?;
    let duration = Duration::from_secs(seconds);
    let warmup_window = soak_warmup_window(seconds);
    println!("# pod-hardener soak");
    println!("machine: {machine}");
    println!(
        "settings: saturation by a {} s closed loop on {} over {} connections, then {seconds} s at half \
         that rate over {} connections ({SOAK_MIX_TEXT}), the server's VmRSS read every {} s",
        opts.seconds,
        small.label,
        opts.connections,
        opts.connections,
        SOAK_RSS_EVERY.as_secs()
    );
    for p in &all {
        println!("payload {}: {} bytes", p.label, p.body.len());
    }

    let fixture = fixture()?;
    let connector = client_tls(&fixture.ca_pem)?;
    let server = start_server(
        Kind::PodHardener,
        &opts.hardener_bin,
        &fixture,
        &connector,
        &small,
    )
    .await?;
    metrics_ready(&server, &fixture)?;
    let pid = server.pid();
    println!(
        "pod-hardener: pid {pid}, {}, ready in {} ms, idle RSS {}",
        server.target.addr,
        server.startup.as_millis(),
        fmt_mib(server.idle_rss_kib)
    );

    // Before the soak: one fully checked response per payload, warm-up, saturation. Their
    // failures count in the verdict too.
    let mut before = Errors::default();
    for p in &all {
        let result = async {
            let mut conn = server
                .target
                .connect()
                .await
                .map_err(|e| format!("{e:#}"))?;
            let body = review(&mut conn, &server.target, p).await?;
            describe_response(&body)
        }
        .await;
        match result {
            Ok(d) => println!("check {}: {d}", p.label),
            Err(e) => before.add(format!("check {}: {e}", p.label)),
        }
    }
    for p in &all {
        let w = closed_loop(&server, p, opts.connections, SOAK_WARMUP).await;
        before.merge(w.errors);
    }
    let sat = closed_loop(&server, &small, opts.connections, opts.phase()).await;
    let sat_secs = sat.elapsed.as_secs_f64().max(1e-9);
    let saturation = sat.ok as f64 / sat_secs;
    let sat_server_cores = sat.cpu.server as f64 / hz / sat_secs;
    println!(
        "saturation: {} reviews/s ({} in {:.1} s), {} errors; cores used: server {:.2}, load generator {:.2}, other processes {:.2}",
        fmt_count(saturation),
        fmt_count(sat.ok as f64),
        sat_secs,
        sat.errors.count,
        sat_server_cores,
        sat.cpu.client as f64 / hz / sat_secs,
        sat.cpu.others as f64 / hz / sat_secs,
    );
    before.merge(sat.errors);
    let rate = (saturation / 2.0).round();
    if rate < 1.0 {
        bail!("the saturation phase answered nothing: no rate to soak at");
    }
    let rate = rate.min(f64::from(u32::MAX)) as u32;
    let planned = (f64::from(rate) * seconds as f64).round() as u64;
    if planned > MAX_REQUESTS_PER_PHASE {
        bail!(
            "{seconds} s at {rate} reviews/s is {planned} requests, more than the open loop's cap of \
             {MAX_REQUESTS_PER_PHASE}: use a shorter --soak"
        );
    }
    let keep_every = planned.div_ceil(SOAK_MAX_SAMPLES).max(1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hwm_before = proc_status_kib(pid, "VmHWM:");
    println!(
        "soak: {} reviews/s for {seconds} s, {} requests; latency kept for {}; RSS drift reference: the first sample at or after {} s",
        fmt_count(f64::from(rate)),
        fmt_count(planned as f64),
        if keep_every == 1 {
            "every request".to_owned()
        } else {
            format!("1 request in {keep_every}")
        },
        warmup_window.as_secs_f64()
    );

    // The sampler: one VmRSS reading every SOAK_RSS_EVERY (the first at once) until the open
    // loop has returned; at most seconds / 10 + 2 samples.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(SOAK_RSS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let s = RssSample { at: started.elapsed(), kib: proc_status_kib(pid, "VmRSS:") };
                    if samples.len() % SOAK_PROGRESS_EVERY == 0 {
                        println!("soak: {:>5} s of {seconds}, RSS {}", s.at.as_secs(), fmt_mib(s.kib));
                    }
                    samples.push(s);
                }
                _ = &mut stop_rx => break,
            }
        }
        samples
    });
    let mut r = open_loop(&server, &mix, opts.connections, rate, duration, keep_every).await;
    let _ = stop_tx.send(());
    let samples = sampler.await.unwrap_or_default();
    let hwm_after = proc_status_kib(pid, "VmHWM:");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = proc_status_kib(pid, "VmRSS:");
    let exited = proc_exited(&server);
    r.latencies_ns.sort_unstable();
    r.service_ns.sort_unstable();
    r.pacer_lag_ns.sort_unstable();

    // Report.
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let others = r.cpu.others as f64 / hz / secs;
    let mut out = String::new();
    let _ = writeln!(out, "\n## Soak results ({date})\n");
    let _ = writeln!(
        out,
        "machine: {machine}; the load generator shares these cores with the server"
    );
    let _ = writeln!(
        out,
        "other processes used {others:.2} cores on average during the soak{}",
        if others > 0.15 {
            ": the machine was NOT quiet (latency and the saturation rate are disturbed)"
        } else {
            ": quiet"
        }
    );
    let _ = writeln!(
        out,
        "target rate: {} reviews/s, half the saturation rate ({} reviews/s, closed loop, {} connections, {})",
        fmt_count(f64::from(rate)),
        fmt_count(saturation),
        opts.connections,
        small.label
    );
    let _ = writeln!(
        out,
        "achieved rate: {} reviews/s ({} answered in {:.1} s, from the first scheduled send to the last answer; {SOAK_MIX_TEXT})",
        fmt_count(r.ok as f64 / secs),
        fmt_count(r.ok as f64),
        secs
    );
    let soak_errors = r.errors.count - r.errors.timeouts;
    let before_errors = before.count - before.timeouts;
    let _ = writeln!(
        out,
        "requests: {} scheduled, {} answered correctly, {} errors, {} timeouts (before the soak: {} errors, {} timeouts)",
        fmt_count(r.scheduled as f64),
        fmt_count(r.ok as f64),
        soak_errors,
        r.errors.timeouts,
        before_errors,
        before.timeouts
    );
    let _ = writeln!(
        out,
        "latency from the scheduled send: p50 {} p99 {} p99.9 {} max {} ({} samples, {})",
        fmt_ns(quantile(&r.latencies_ns, 0.5)),
        fmt_ns(quantile(&r.latencies_ns, 0.99)),
        fmt_ns(quantile(&r.latencies_ns, 0.999)),
        fmt_ns(r.latencies_ns.last().copied().unwrap_or(0)),
        fmt_count(r.latencies_ns.len() as f64),
        if r.keep_every == 1 {
            "every request".to_owned()
        } else {
            format!("1 request in {}", r.keep_every)
        }
    );
    let _ = writeln!(
        out,
        "service time from the actual send: p50 {} p99 {}; pacer lag p99 {}",
        fmt_ns(quantile(&r.service_ns, 0.5)),
        fmt_ns(quantile(&r.service_ns, 0.99)),
        fmt_ns(quantile(&r.pacer_lag_ns, 0.99))
    );
    let soak_server_cores = r.cpu.server as f64 / hz / secs;
    let load = soak_server_cores / sat_server_cores.max(1e-9);
    let _ = writeln!(
        out,
        "cores used during the soak: server {soak_server_cores:.2} ({:.0}% of its {sat_server_cores:.2} while saturated), load generator {:.2}",
        load * 100.0,
        r.cpu.client as f64 / hz / secs
    );
    if load >= 0.8 {
        let _ = writeln!(
            out,
            "note: at half the rate the server used {:.0}% of the CPU it used while saturated: a review costs \
             more CPU at a lower rate (fewer reviews per wake-up and system call), so CPU here is no measure of \
             headroom",
            load * 100.0
        );
    }
    let _ = writeln!(
        out,
        "RSS every {} s (MiB), from the start of the soak:",
        SOAK_RSS_EVERY.as_secs()
    );
    for row in samples.chunks(12) {
        let values: Vec<String> = row
            .iter()
            .map(|s| format!("{:.1}", s.kib as f64 / 1024.0))
            .collect();
        let _ = writeln!(out, "  {:>5} s: {}", row[0].at.as_secs(), values.join(" "));
    }
    let drift = rss_drift(&samples, warmup_window);
    match &drift {
        Some(d) => {
            let _ = writeln!(
                out,
                "RSS drift: {:+.2}% (end: median {:.1} MiB of the samples at {}; reference: median {:.1} MiB of \
                 the first samples at or after the warm-up window, max(60 s, 10% of the run) capped at half the \
                 run = {} s: {})",
                d.percent,
                d.end_kib / 1024.0,
                fmt_at(d.end),
                d.reference_kib / 1024.0,
                warmup_window.as_secs_f64(),
                fmt_at(d.reference)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "RSS drift: not measurable ({} samples, fewer than two at or after {} s)",
                samples.len(),
                warmup_window.as_secs_f64()
            );
        }
    }
    let max_sample = samples.iter().map(|s| s.kib).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "RSS: idle after start-up {}, highest sample {}, 1 s after the load {}; peak (VmHWM) {} before the soak \
         (warm-up and saturation included), {} after it",
        fmt_mib(server.idle_rss_kib),
        fmt_mib(max_sample),
        fmt_mib(rss_after),
        fmt_mib(hwm_before),
        fmt_mib(hwm_after)
    );

    let errors = soak_errors + before_errors;
    let timeouts = r.errors.timeouts + before.timeouts;
    let drift_ok = matches!(&drift, Some(d) if d.percent < SOAK_MAX_DRIFT_PERCENT);
    let checks = [
        ("errors = 0".to_owned(), errors.to_string(), errors == 0),
        (
            "timeouts = 0".to_owned(),
            timeouts.to_string(),
            timeouts == 0,
        ),
        (
            format!("RSS drift < {SOAK_MAX_DRIFT_PERCENT}%"),
            drift.map_or("not measurable".to_owned(), |d| {
                format!("{:+.2}%", d.percent)
            }),
            drift_ok,
        ),
        (
            "server running at the end".to_owned(),
            exited.clone().unwrap_or_else(|| "running".into()),
            exited.is_none(),
        ),
    ];
    let _ = writeln!(out, "\nverdict:");
    for (name, value, pass) in &checks {
        let _ = writeln!(out, "  {name}: {value} {}", pass_fail(*pass));
    }
    let pass = checks.iter().all(|(_, _, pass)| *pass);
    let _ = writeln!(out, "SOAK {}", pass_fail(pass));
    print!("{out}");

    if before.count + r.errors.count > 0 {
        println!("\nERRORS (first {ERROR_SAMPLES} of each kind):");
        for e in before.samples.iter().chain(&r.errors.samples) {
            println!("- {e}");
        }
    }
    if exited.is_some() {
        println!("pod-hardener's stderr:\n{}", server.stderr_tail());
    }
    Ok(pass)
}
