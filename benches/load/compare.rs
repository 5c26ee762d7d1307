//! The comparison: per payload, baseline and pod-hardener alternately, closed loop then open
//! loop, then idle connections; the table with the targets.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::client::{client_tls, describe_response, review};
use crate::options::Options;
use crate::payload::{Payload, payloads};
use crate::phases::{closed_loop, idle_connections, open_loop};
use crate::process::{
    Kind, Server, all_still_running, clock_ticks, fixture, metrics_ready, proc_status_kib,
    start_server,
};
use crate::report::{
    Tally, cpu_per_1k, fmt_count, fmt_mib, fmt_ns, machine, other_load, quantile, today_utc,
    verdict,
};

/// Runs the comparison; `Ok(false)` when requests failed or a server exited.
pub(crate) async fn compare(opts: &Options) -> anyhow::Result<bool> {
    let hz = clock_ticks();
    let machine = machine();
    let date = today_utc();
    let payloads: Vec<Arc<Payload>> = payloads()
        .into_iter()
        .filter(|p| opts.only.is_empty() || opts.only.iter().any(|id| id == p.id))
        .map(Arc::new)
        .collect();
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
            measure_round(&servers, p, &mut tallies[i], opts, hz, round, &mut others).await;
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
    let (others_mean, others_max, quiet) = other_load(&others);
    let _ = writeln!(
        out,
        "Other processes on the machine used {others_mean:.2} cores on average during the measured phases (at most {others_max:.2}){}",
        if !quiet {
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

    let clean = all_errors == 0;
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
    Ok(all_still_running(servers) && clean)
}

/// One round of a payload: the closed loop, then the open loop, on each server in turn; the
/// figures go to `tallies` (one per server) and the cores other processes used to `others`.
pub(crate) async fn measure_round(
    servers: &[&Server],
    p: &Arc<Payload>,
    tallies: &mut [Tally],
    opts: &Options,
    hz: f64,
    round: u32,
    others: &mut Vec<f64>,
) {
    let phase = opts.phase();
    for (j, s) in servers.iter().enumerate() {
        let r = closed_loop(s, p, opts.connections, phase).await;
        let t = &mut tallies[j];
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
        let t = &mut tallies[j];
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
