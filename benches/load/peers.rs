//! The peers comparison (`--peers BIN_DIR`, run by `benches/peers.sh`): pod-hardener, the
//! harness's baseline and a peer webhook, alternating on the same payloads, each against the
//! tests' real control plane: Kubernetes' standalone Pod Security Admission webhook on /validate,
//! OPA Gatekeeper's mutation webhook on /mutate (with the mutators of
//! `benches/peers/gatekeeper/mutators.yaml`). BIN_DIR holds `pod-security-webhook` and
//! `gatekeeper`, as `scripts/build-peers.sh` builds them.
//!
//! Before anything is timed, the answers must agree: PSA's verdict, code and message are
//! pod-hardener /validate's (pod-hardener's message is PSA's, plus what pod-hardener could not
//! fix), and Gatekeeper's patch applied to each Pod gives the object pod-hardener's /mutate patch
//! gives, once pod-hardener's record annotation is taken out. A difference is printed and ends
//! the run.
//!
//! Fair pinning: every server under test runs on CPU 1 alone (`taskset -c 1`: Go's GOMAXPROCS and
//! tokio's worker count both follow the affinity, so each gets one thread of work), while this
//! process, the load generator, and the control plane it starts run on CPU 0.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio_rustls::TlsConnector;

use crate::client::{Target, client_tls, review};
use crate::compare::measure_round;
use crate::control_plane::ControlPlane;
use crate::options::Options;
use crate::payload::{Payload, payloads};
use crate::phases::closed_loop;
use crate::process::{
    Fixture, Kind, Placement, Server, all_still_running, clock_ticks, command_on, fixture, launch,
    metrics_ready, proc_status_kib, start_server_placed,
};
use crate::report::{
    Tally, cpu_per_1k, fmt_count, fmt_mib, fmt_ns, other_load, quantile, today_utc, verdict,
};

/// The CPU of every server under test; the load generator and the control plane get the other.
const SERVER_CPU: usize = 1;
const HARNESS_CPU: usize = 0;
/// The namespace of the benchmark's Pods (`common::typical_pod`), labelled as PSA reads it.
const NAMESPACE: &str = "shop";
/// Gatekeeper's own namespace (`POD_NAMESPACE`), which it never mutates.
const GATEKEEPER_NAMESPACE: &str = "gatekeeper-system";
/// Gatekeeper's mutation webhook path (PSA's webhook answers on every path).
const GATEKEEPER_MUTATE_PATH: &str = "/v1/mutate";
/// The Gatekeeper module whose release manifest holds its CRDs.
const GATEKEEPER_MODULE: &str = "github.com/open-policy-agent/gatekeeper/v3";
/// Readiness probes for a Go peer: Gatekeeper discovers the API before it serves (25 ms apart,
/// each bounded to 1 s: at most about 2.5 minutes, usually seconds).
const PEER_STARTUP_PROBES: u32 = 3_000;
/// Each request's deadline, for every server compared: the API server's largest webhook timeout.
/// At 64 concurrent 30 KB reviews Gatekeeper's answers take longer than the client's default 5 s,
/// and a throughput needs them answered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Gatekeeper may take to ingest the mutators before its answers must agree.
const MUTATORS_INGESTED_WITHIN: Duration = Duration::from_secs(60);
/// How long each CRD may take to be established.
const CRD_ESTABLISHED_WITHIN: Duration = Duration::from_secs(60);
/// The warm-up closed loop whose rate sets each payload's open-loop rate.
const RATE_PROBE: Duration = Duration::from_secs(2);
/// The open loop runs at this share of the slowest server's saturation (or `--rate`, if lower),
/// so that latency is measured below every server's saturation rather than in its queue.
const OPEN_LOOP_SHARE: f64 = 0.5;
/// The targets: pod-hardener's throughput against each peer's, and its memory.
const PSA_THROUGHPUT_TARGET: f64 = 10.0;
const GATEKEEPER_THROUGHPUT_TARGET: f64 = 30.0;
const MEMORY_SHARE_TARGET: f64 = 0.25;

/// Pins this process (every thread it has now, and so every thread and child it starts later) to
/// [`HARNESS_CPU`]; call it before the runtime and the control plane start.
pub(crate) fn pin_harness() -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    ensure!(
        cpus > SERVER_CPU,
        "the peers comparison pins the servers to CPU {SERVER_CPU} and itself to CPU \
         {HARNESS_CPU}: it needs 2 CPUs, this process may use {cpus}"
    );
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &HARNESS_CPU.to_string()])
        .arg(std::process::id().to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .context("run taskset (util-linux)")?;
    ensure!(status.success(), "taskset -a -p failed: {status}");
    Ok(())
}

/// What a payload is compared on: its review, and which peer answers it.
struct Group {
    payload: Arc<Payload>,
    peer: Kind,
    throughput_target: f64,
    /// The open loop's rate, set from the warm-up.
    rate: u32,
    /// Baseline, pod-hardener, peer.
    tallies: Vec<Tally>,
}

/// Runs the comparison; `Ok(false)` when requests failed or a server exited.
pub(crate) async fn peers(
    opts: &Options,
    bin_dir: &Path,
    machine: &str,
    control_plane: &ControlPlane,
) -> anyhow::Result<bool> {
    let hz = clock_ticks();
    let date = today_utc();
    println!("# pod-hardener against its peers");
    println!("machine: {machine}");
    println!(
        "pinning: servers on CPU {SERVER_CPU} (taskset -c {SERVER_CPU}), the load generator and the control plane on CPU {HARNESS_CPU}"
    );
    let fixture = fixture()?;
    let connector = client_tls(&fixture.ca_pem)?;
    let all = payloads();
    let mut groups: Vec<Group> = all
        .into_iter()
        .filter(|p| opts.only.is_empty() || opts.only.iter().any(|id| id == p.id))
        .map(|p| {
            let (peer, throughput_target) = if p.path == "/validate" {
                (Kind::PsaWebhook, PSA_THROUGHPUT_TARGET)
            } else {
                (Kind::Gatekeeper, GATEKEEPER_THROUGHPUT_TARGET)
            };
            Group {
                payload: Arc::new(p),
                peer,
                throughput_target,
                rate: opts.rate,
                tallies: (0..3).map(|_| Tally::default()).collect(),
            }
        })
        .collect();
    for g in &groups {
        println!(
            "payload {}: {} bytes, peer {}",
            g.payload.label,
            g.payload.body.len(),
            g.peer.name()
        );
    }

    let client = control_plane.admin_client().await;
    prepare_cluster(&client).await?;
    let kubeconfig = control_plane.kubeconfig_path();
    let placement = Placement {
        kubeconfig: Some(kubeconfig),
        cpu: Some(SERVER_CPU),
        request_timeout: Some(REQUEST_TIMEOUT),
    };
    let probe = groups[0].payload.clone();
    let baseline_kind = if opts.baseline_parses {
        Kind::ParsingBaseline
    } else {
        Kind::Baseline
    };
    let baseline = start_server_placed(
        baseline_kind,
        &opts.hardener_bin,
        &fixture,
        &connector,
        &probe,
        Placement {
            kubeconfig: None,
            ..placement
        },
    )
    .await?;
    let hardener = start_server_placed(
        Kind::PodHardener,
        &opts.hardener_bin,
        &fixture,
        &connector,
        &probe,
        placement,
    )
    .await?;
    metrics_ready(&hardener, &fixture)?;
    let wanted = |kind: Kind| groups.iter().any(|g| g.peer == kind);
    let psa = if wanted(Kind::PsaWebhook) {
        let probe = groups.iter().find(|g| g.peer == Kind::PsaWebhook);
        let probe = &probe.expect("a /validate payload").payload;
        Some(start_psa(bin_dir, &fixture, &connector, kubeconfig, probe).await?)
    } else {
        None
    };
    let gatekeeper = if wanted(Kind::Gatekeeper) {
        let probe = groups.iter().find(|g| g.peer == Kind::Gatekeeper);
        let probe = &probe.expect("a /mutate payload").payload;
        Some(start_gatekeeper(bin_dir, &fixture, &connector, kubeconfig, probe).await?)
    } else {
        None
    };
    let peer_of = |kind: Kind| -> &Server {
        match kind {
            Kind::PsaWebhook => psa.as_ref(),
            _ => gatekeeper.as_ref(),
        }
        .expect("started above when a payload needs it")
    };
    let mut everyone = vec![&baseline, &hardener];
    everyone.extend(psa.iter().chain(gatekeeper.iter()));
    for s in &everyone {
        println!(
            "{}: pid {}, {}, ready in {} ms, idle RSS {}",
            s.kind.name(),
            s.pid(),
            s.target.addr,
            s.startup.as_millis(),
            fmt_mib(s.idle_rss_kib)
        );
    }

    // The answers must agree before anything is timed.
    let mut agreed = true;
    for g in &groups {
        let peer = peer_of(g.peer);
        let outcome = if g.peer == Kind::PsaWebhook {
            validations_agree(&hardener, peer, &g.payload).await
        } else {
            mutations_agree(&hardener, peer, &g.payload).await
        };
        match outcome {
            Ok(summary) => println!("agree {} {}: {summary}", g.peer.name(), g.payload.label),
            Err(e) => {
                agreed = false;
                println!("DIFFER {} {}: {e:#}", g.peer.name(), g.payload.label);
            }
        }
    }
    if !agreed {
        bail!("the peers' answers differ from pod-hardener's (above): nothing measured");
    }

    // Warm-up, not measured, which also sets each open loop's rate below the slowest server's
    // saturation.
    for g in &mut groups {
        let servers = [&baseline, &hardener, peer_of(g.peer)];
        let mut slowest = f64::INFINITY;
        for (j, s) in servers.iter().enumerate() {
            let w = closed_loop(s, &g.payload, opts.connections, RATE_PROBE).await;
            slowest = slowest.min(w.ok as f64 / w.elapsed.as_secs_f64());
            g.tallies[j].errors.merge(w.errors);
        }
        g.rate = open_loop_rate(opts.rate, slowest);
        println!(
            "{}: warm-up saturation of the slowest server {} reviews/s, open loop at {}/s",
            g.payload.label,
            fmt_count(slowest),
            g.rate
        );
    }

    let mut others: Vec<f64> = Vec::new();
    for round in 1..=opts.rounds {
        for g in &mut groups {
            let servers = [&baseline, &hardener, peer_of(g.peer)];
            let mut group_opts = opts.clone();
            group_opts.rate = g.rate;
            measure_round(
                &servers,
                &g.payload,
                &mut g.tallies,
                &group_opts,
                hz,
                round,
                &mut others,
            )
            .await;
        }
    }
    let peak_kib = |s: &Server| proc_status_kib(s.pid(), "VmHWM:");
    // The quantiles below read sorted samples.
    for t in groups.iter_mut().flat_map(|g| g.tallies.iter_mut()) {
        t.latencies_ns.sort_unstable();
        t.service_ns.sort_unstable();
        t.pacer_lag_ns.sort_unstable();
    }

    let mut out = String::new();
    let _ = writeln!(out, "\n## Peers ({date})\n");
    let _ = writeln!(out, "Machine: {machine}.");
    let (others_mean, others_max, quiet) = other_load(&others);
    let _ = writeln!(
        out,
        "Other processes (the control plane included) used {others_mean:.2} cores on average during the measured phases (at most {others_max:.2}){}",
        if !quiet {
            ": the machine was NOT quiet, figures are disturbed."
        } else {
            ": quiet."
        }
    );
    let _ = writeln!(
        out,
        "Settings: {} s phases × {} round(s), baseline, pod-hardener and the peer alternating; servers on CPU {SERVER_CPU}, \
         the load generator on CPU {HARNESS_CPU}; closed loop with {} keep-alive HTTP/1.1 connections over TLS 1.3; \
         open loop over {} connections, latency from the scheduled send time.\n",
        opts.seconds, opts.rounds, opts.connections, opts.connections
    );
    let _ = writeln!(
        out,
        "| metric | payload | {} (B) | pod-hardener (P) | peer | P / peer | target |",
        baseline.kind.name()
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---|");
    let mut all_errors = 0u64;
    for g in &groups {
        let [b, h, p] = [&g.tallies[0], &g.tallies[1], &g.tallies[2]];
        let peer = g.peer.name();
        let ratio = h.rps() / p.rps();
        let _ = writeln!(
            out,
            "| throughput, {} conns (reviews/s) | {} | {} | {} | {peer} {} | {ratio:.1}× | ≥ {}× {} |",
            opts.connections,
            g.payload.label,
            fmt_count(b.rps()),
            fmt_count(h.rps()),
            fmt_count(p.rps()),
            g.throughput_target,
            verdict(ratio >= g.throughput_target)
        );
        for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
            let [bq, hq, pq] = [b, h, p].map(|t| quantile(&t.latencies_ns, q));
            let _ = writeln!(
                out,
                "| {name} at {}/s | {} | {} | {} | {} | {:.2}× | — |",
                fmt_count(f64::from(g.rate)),
                g.payload.label,
                fmt_ns(bq),
                fmt_ns(hq),
                fmt_ns(pq),
                hq as f64 / pq.max(1) as f64
            );
        }
        let [bc, hc, pc] = [b, h, p].map(|t| cpu_per_1k(t.closed_cpu.server, t.closed_ok, hz));
        let _ = writeln!(
            out,
            "| CPU s / 1,000 reviews, saturated | {} | {bc:.3} | {hc:.3} | {pc:.3} | {:.3}× | — |",
            g.payload.label,
            hc / pc
        );
        let errors = [b, h, p].map(|t| t.errors.count);
        all_errors += errors.iter().sum::<u64>();
        let _ = writeln!(
            out,
            "| errors | {} | {} | {} | {} | | 0 {} |",
            g.payload.label,
            errors[0],
            errors[1],
            errors[2],
            verdict(errors.iter().all(|&e| e == 0))
        );
    }
    for peer in [psa.as_ref(), gatekeeper.as_ref()].into_iter().flatten() {
        for (what, [b, h, p]) in [
            (
                "idle RSS after start-up",
                [&baseline, &hardener, peer].map(|s| s.idle_rss_kib),
            ),
            (
                "peak RSS (VmHWM) after the load",
                [&baseline, &hardener, peer].map(peak_kib),
            ),
        ] {
            let share = h as f64 / p.max(1) as f64;
            let _ = writeln!(
                out,
                "| {what} | — | {} | {} | {} {} | {share:.2}× | ≤ {MEMORY_SHARE_TARGET}× {} |",
                fmt_mib(b),
                fmt_mib(h),
                peer.kind.name(),
                fmt_mib(p),
                verdict(share <= MEMORY_SHARE_TARGET)
            );
        }
    }
    let _ = writeln!(out, "\nDetails:");
    for g in &groups {
        let servers = [&baseline, &hardener, peer_of(g.peer)];
        for (s, t) in servers.iter().zip(&g.tallies) {
            let rounds: Vec<String> = t.rounds_rps.iter().map(|r| fmt_count(*r)).collect();
            let _ = writeln!(
                out,
                "- {} {}: reviews/s per round [{}]; load generator {:.2} cores while saturating; \
                 at {}/s: p99.9 {}, service time p99 {}, pacer lag p99 {}, {} samples",
                s.kind.name(),
                g.payload.label,
                rounds.join(", "),
                t.closed_cpu.client as f64 / hz / t.closed_secs.max(1e-9),
                g.rate,
                fmt_ns(quantile(&t.latencies_ns, 0.999)),
                fmt_ns(quantile(&t.service_ns, 0.99)),
                fmt_ns(quantile(&t.pacer_lag_ns, 0.99)),
                t.latencies_ns.len(),
            );
        }
    }
    print!("{out}");

    let clean = all_errors == 0;
    if !clean {
        println!("\nERRORS ({all_errors}):");
        for g in &groups {
            let servers = [&baseline, &hardener, peer_of(g.peer)];
            for (s, t) in servers.iter().zip(&g.tallies) {
                for e in &t.errors.samples {
                    println!("- {} {}: {e}", s.kind.name(), g.payload.label);
                }
            }
        }
    }
    Ok(all_still_running(everyone) && clean)
}

/// `--rate`, or less: [`OPEN_LOOP_SHARE`] of the slowest server's saturation, to two significant
/// digits.
fn open_loop_rate(rate: u32, slowest: f64) -> u32 {
    let below = slowest * OPEN_LOOP_SHARE;
    if below >= f64::from(rate) {
        return rate;
    }
    let magnitude = 10f64.powf(below.max(1.0).log10().floor() - 1.0).max(1.0);
    ((below / magnitude).floor() * magnitude).max(1.0) as u32
}

/// The benchmark's namespace at restricted, Gatekeeper's namespace, Gatekeeper's CRDs (from its
/// module's release manifest) and the mutators.
async fn prepare_cluster(client: &kube::Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (name, labels) in [
        (
            NAMESPACE,
            json!({"pod-security.kubernetes.io/enforce": "restricted"}),
        ),
        (GATEKEEPER_NAMESPACE, json!({})),
    ] {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": name, "labels": labels}});
        namespaces
            .create(&PostParams::default(), &serde_json::from_value(ns)?)
            .await
            .with_context(|| format!("create namespace {name}"))?;
    }

    let manifest = gatekeeper_source()?.join("deploy/gatekeeper.yaml");
    let text = std::fs::read(&manifest).with_context(|| manifest.display().to_string())?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for doc in pod_hardener::manifest::read_documents(&text)? {
        if doc.object["kind"] != "CustomResourceDefinition" {
            continue;
        }
        let crd: CustomResourceDefinition = serde_json::from_value(doc.object)?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.create(&PostParams::default(), &crd)
            .await
            .with_context(|| format!("create CRD {name}"))?;
        names.push(name);
    }
    ensure!(
        !names.is_empty(),
        "no CustomResourceDefinition in {}",
        manifest.display()
    );
    let deadline = Instant::now() + CRD_ESTABLISHED_WITHIN;
    for name in &names {
        loop {
            let crd = crds.get(name).await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "CRD {name} not established within {CRD_ESTABLISHED_WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!(
        "Gatekeeper: {} CRDs from {} established",
        names.len(),
        manifest.display()
    );

    let mutators =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/gatekeeper/mutators.yaml");
    let text = std::fs::read(&mutators).with_context(|| mutators.display().to_string())?;
    let mut created = 0;
    for doc in pod_hardener::manifest::read_documents(&text)? {
        let o = doc.object;
        let (api_version, kind) = (
            o["apiVersion"].as_str().unwrap_or_default().to_owned(),
            o["kind"].as_str().unwrap_or_default().to_owned(),
        );
        let (group, version) = api_version
            .split_once('/')
            .ok_or_else(|| anyhow!("mutator apiVersion {api_version:?}"))?;
        // Gatekeeper's mutator CRDs name their plural as the lowercased kind (`assign`).
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, &kind),
            &kind.to_lowercase(),
        );
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let name = o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        api.create(&PostParams::default(), &serde_json::from_value(o)?)
            .await
            .with_context(|| format!("create {kind} {name}"))?;
        created += 1;
    }
    println!("Gatekeeper: {created} mutators from {}", mutators.display());
    Ok(())
}

/// The Gatekeeper module's directory in the Go module cache, at the version pinned in
/// `benches/peers/gatekeeper/go.mod` (its CRDs are read there, never copied into this repo).
fn gatekeeper_source() -> anyhow::Result<PathBuf> {
    let module_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/gatekeeper");
    let go = if Path::new("/usr/local/go/bin/go").is_file() {
        "/usr/local/go/bin/go"
    } else {
        "go"
    };
    let output = Command::new(go)
        .args(["list", "-m", "-f", "{{.Dir}}", GATEKEEPER_MODULE])
        .current_dir(&module_dir)
        .output()
        .context("run go list (the Go toolchain)")?;
    ensure!(
        output.status.success(),
        "go list -m {GATEKEEPER_MODULE}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = String::from_utf8(output.stdout)?.trim().to_owned();
    ensure!(
        !dir.is_empty(),
        "go list names no directory for {GATEKEEPER_MODULE}: run scripts/build-peers.sh"
    );
    Ok(PathBuf::from(dir))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// PSA's webhook with the defaults of pod-hardener's static policy (restricted:latest for
/// enforce, audit and warn); the namespace label decides, as for pod-hardener.
async fn start_psa(
    bin_dir: &Path,
    fixture: &Fixture,
    connector: &TlsConnector,
    kubeconfig: &Path,
    probe: &Payload,
) -> anyhow::Result<Server> {
    let config = fixture.dir.path().join("pod-security-configuration.yaml");
    std::fs::write(
        &config,
        "apiVersion: pod-security.admission.config.k8s.io/v1\n\
         kind: PodSecurityConfiguration\n\
         defaults:\n  enforce: restricted\n  enforce-version: latest\n  \
         audit: restricted\n  audit-version: latest\n  warn: restricted\n  warn-version: latest\n\
         exemptions:\n  usernames: []\n  runtimeClasses: []\n  namespaces: []\n",
    )?;
    let port = free_port()?;
    let mut cmd = command_on(Some(SERVER_CPU), &bin_dir.join("pod-security-webhook"));
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--config")
        .arg(&config)
        .args([
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
        ])
        .arg("--tls-cert-file")
        .arg(&fixture.cert)
        .arg("--tls-private-key-file")
        .arg(&fixture.key)
        .env_remove("KUBECONFIG");
    let target = Target::new(([127, 0, 0, 1], port).into(), connector.clone());
    launch_peer(Kind::PsaWebhook, cmd, target, fixture, probe).await
}

/// Waits for a peer on [`PEER_STARTUP_PROBES`], its requests given [`REQUEST_TIMEOUT`].
async fn launch_peer(
    kind: Kind,
    cmd: Command,
    target: Target,
    fixture: &Fixture,
    probe: &Payload,
) -> anyhow::Result<Server> {
    let stderr = fixture
        .dir
        .path()
        .join(format!("{}.stderr", kind.name().replace(' ', "-")));
    let target = target.with_request_timeout(REQUEST_TIMEOUT);
    launch(kind, cmd, target, stderr, probe, PEER_STARTUP_PROBES).await
}

/// Gatekeeper with its mutation webhook and the controller that loads mutators, nothing else:
/// no validation webhook, audit, external data or expansion; the harness's certificate, no
/// rotation; health on a free loopback port, metrics off.
async fn start_gatekeeper(
    bin_dir: &Path,
    fixture: &Fixture,
    connector: &TlsConnector,
    kubeconfig: &Path,
    probe: &Payload,
) -> anyhow::Result<Server> {
    let cert_dir = fixture.dir.path().join("gatekeeper-certs");
    std::fs::create_dir_all(&cert_dir)?;
    std::fs::copy(&fixture.cert, cert_dir.join("tls.crt"))?;
    std::fs::copy(&fixture.key, cert_dir.join("tls.key"))?;
    let (port, health_port) = (free_port()?, free_port()?);
    let mut cmd = command_on(Some(SERVER_CPU), &bin_dir.join("gatekeeper"));
    cmd.args([
        "--operation=mutation-webhook",
        "--operation=mutation-controller",
        "--enable-external-data=false",
        "--enable-generator-resource-expansion=false",
        "--disable-cert-rotation",
        "--host=127.0.0.1",
        "--metrics-addr=0",
        "--log-level=WARNING",
    ])
    .arg(format!("--port={port}"))
    .arg(format!("--health-addr=127.0.0.1:{health_port}"))
    .arg(format!("--cert-dir={}", cert_dir.display()))
    .env("KUBECONFIG", kubeconfig)
    .env("POD_NAMESPACE", GATEKEEPER_NAMESPACE);
    let target = Target::new(([127, 0, 0, 1], port).into(), connector.clone())
        .with_path(GATEKEEPER_MUTATE_PATH);
    launch_peer(Kind::Gatekeeper, cmd, target, fixture, probe).await
}

/// One review's answer, the `response` of the AdmissionReview.
async fn answer(server: &Server, payload: &Payload) -> anyhow::Result<Value> {
    let mut conn = server.target.connect().await?;
    let body = review(&mut conn, &server.target, payload)
        .await
        .map_err(|e| anyhow!("{}: {e}", server.kind.name()))?;
    let v: Value = serde_json::from_slice(&body)?;
    Ok(v["response"].clone())
}

/// PSA's verdict, status code, reason and message equal pod-hardener's. Two parts of the
/// messages are not PSA's verdict and are compared as what they are: PSA's webhook wraps its
/// verdict in the API's Forbidden error (`pods "NAME" is forbidden: `), which pod-hardener leaves
/// to the API server's own `admission webhook "..." denied the request: `; pod-hardener's message
/// goes on, after PSA's, with `; pod-hardener could not fix: ...`.
async fn validations_agree(
    hardener: &Server,
    psa: &Server,
    payload: &Payload,
) -> anyhow::Result<String> {
    let (h, p) = (
        answer(hardener, payload).await?,
        answer(psa, payload).await?,
    );
    let fields = |r: &Value| {
        (
            r["allowed"].clone(),
            r["status"]["code"].clone(),
            r["status"]["reason"].clone(),
        )
    };
    let h_message = h["status"]["message"].as_str().unwrap_or_default();
    let p_message = p["status"]["message"].as_str().unwrap_or_default();
    let psa_part = h_message
        .split_once("; pod-hardener could not fix: ")
        .map_or(h_message, |(psa_part, _)| psa_part);
    let review: Value = serde_json::from_slice(&payload.body)?;
    let forbidden = format!(
        "{} {} is forbidden: ",
        review["request"]["resource"]["resource"]
            .as_str()
            .unwrap_or_default(),
        review["request"]["name"]
    );
    let expected = if psa_part.is_empty() {
        String::new()
    } else {
        format!("{forbidden}{psa_part}")
    };
    if fields(&h) != fields(&p) || expected != p_message {
        bail!(
            "pod-hardener answered allowed={} code={} reason={} message {h_message:?}\n\
             PSA webhook answered allowed={} code={} reason={} message {p_message:?}\n\
             expected from PSA: {expected:?}",
            h["allowed"],
            h["status"]["code"],
            h["status"]["reason"],
            p["allowed"],
            p["status"]["code"],
            p["status"]["reason"],
        );
    }
    Ok(format!(
        "allowed={}, code {}, reason {}, PSA's message {p_message:?}, pod-hardener's {h_message:?}",
        p["allowed"], p["status"]["code"], p["status"]["reason"]
    ))
}

/// The object the answer's patch makes of the review's object.
fn patched(payload: &Payload, response: &Value) -> anyhow::Result<Value> {
    let review: Value = serde_json::from_slice(&payload.body)?;
    let mut object = review["request"]["object"].clone();
    if let Some(encoded) = response["patch"].as_str() {
        let patch: json_patch::Patch =
            serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(encoded)?)?;
        json_patch::patch(&mut object, &patch)?;
    }
    Ok(object)
}

/// Gatekeeper's patch and pod-hardener's give the same object, pod-hardener's record annotation
/// aside. Gatekeeper loads mutators asynchronously: asked again until it agrees, at most
/// [`MUTATORS_INGESTED_WITHIN`].
async fn mutations_agree(
    hardener: &Server,
    gatekeeper: &Server,
    payload: &Payload,
) -> anyhow::Result<String> {
    let h = answer(hardener, payload).await?;
    let mut expected = patched(payload, &h)?;
    let original: Value = serde_json::from_slice(&payload.body)?;
    let had_annotations = original["request"]["object"]["metadata"]
        .get("annotations")
        .is_some();
    if let Some(annotations) = expected["metadata"]["annotations"].as_object_mut() {
        annotations.remove(pod_hardener::harden::record::RECORD_ANNOTATION);
        if annotations.is_empty() && !had_annotations {
            expected["metadata"]
                .as_object_mut()
                .expect("metadata is an object")
                .remove("annotations");
        }
    }
    let deadline = Instant::now() + MUTATORS_INGESTED_WITHIN;
    loop {
        let g = answer(gatekeeper, payload).await?;
        let got = patched(payload, &g)?;
        let differences = differences(&expected, &got);
        if differences.is_empty() {
            let ops = |r: &Value| {
                r["patch"]
                    .as_str()
                    .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
                    .and_then(|p| serde_json::from_slice::<Vec<Value>>(&p).ok())
                    .map_or(0, |p| p.len())
            };
            return Ok(format!(
                "the same patched Pod (pod-hardener {} patch operations, Gatekeeper {})",
                ops(&h),
                ops(&g)
            ));
        }
        if Instant::now() >= deadline {
            bail!(
                "after pod-hardener's patch (left) and Gatekeeper's (right), the Pods differ:\n{}",
                differences.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Where two JSON values differ, as `POINTER: LEFT != RIGHT` lines (at most 50).
fn differences(left: &Value, right: &Value) -> Vec<String> {
    fn walk(at: &str, l: &Value, r: &Value, out: &mut Vec<String>) {
        if out.len() >= 50 || l == r {
            return;
        }
        match (l, r) {
            (Value::Object(a), Value::Object(b)) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    walk(
                        &p,
                        a.get(k).unwrap_or(&Value::Null),
                        b.get(k).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    walk(&format!("{at}/{i}"), x, y, out);
                }
            }
            _ => out.push(format!("{at}: {l} != {r}")),
        }
    }
    let mut out = Vec::new();
    walk("", left, right, &mut out);
    out
}
