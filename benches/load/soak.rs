//! The soak (`--soak SECONDS`): pod-hardener alone at half its measured saturation rate, RSS
//! sampled, PASS/FAIL on errors, timeouts and RSS drift.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::client::{client_tls, describe_response, review};
use crate::options::Options;
use crate::payload::{Payload, payloads};
use crate::phases::{ERROR_SAMPLES, Errors, MAX_REQUESTS_PER_PHASE, closed_loop, open_loop};
use crate::process::{
    Kind, clock_ticks, fixture, metrics_ready, proc_exited, proc_status_kib, start_server,
};
use crate::report::{fmt_count, fmt_mib, fmt_ns, machine, quantile, today_utc};

/// Shortest `--soak`: room for a warm-up window and RSS samples after it.
pub(crate) const SOAK_MIN_SECONDS: u64 = 20;
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
    pub(crate) kib: u64,
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
pub(crate) async fn soak(opts: &Options, seconds: u64) -> anyhow::Result<bool> {
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
