//! The measured phases: a closed loop (saturation), an open loop at a fixed rate (latency,
//! coordinated-omission corrected), idle connections (RSS); and the errors each counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::client::{CONNECT_TIMED_OUT, NO_RESPONSE, PAST_DEADLINE, Sender, connect_many, review};
use crate::payload::Payload;
use crate::process::{CpuMeter, CpuUsage, Server, proc_status_kib};

/// Upper bound of requests in one closed-loop phase, whatever the duration.
pub(crate) const MAX_REQUESTS_PER_PHASE: u64 = 20_000_000;
/// How long an open-loop phase may overrun its schedule before its remaining requests are
/// counted as errors.
const OPEN_LOOP_GRACE: Duration = Duration::from_secs(10);
/// Most error messages kept per server and payload.
pub(crate) const ERROR_SAMPLES: usize = 5;

#[derive(Default)]
pub(crate) struct Errors {
    /// All failures, timeouts included.
    pub(crate) count: u64,
    /// The failures that are timeouts (see `NO_RESPONSE`).
    pub(crate) timeouts: u64,
    pub(crate) samples: Vec<String>,
}

impl Errors {
    pub(crate) fn add(&mut self, e: String) {
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

    pub(crate) fn merge(&mut self, other: Errors) {
        self.count += other.count;
        self.timeouts += other.timeouts;
        for s in other.samples {
            if self.samples.len() < ERROR_SAMPLES && !self.samples.contains(&s) {
                self.samples.push(s);
            }
        }
    }
}

/// Opens `n` connections to `server`, the failures counted as the phase's errors.
async fn connect(server: &Server, n: usize) -> (Vec<Sender>, Errors) {
    let (senders, failures) = connect_many(&server.target, n).await;
    let mut errors = Errors::default();
    for e in failures {
        errors.add(e);
    }
    (senders, errors)
}

pub(crate) struct ClosedResult {
    pub(crate) ok: u64,
    pub(crate) elapsed: Duration,
    pub(crate) cpu: CpuUsage,
    pub(crate) errors: Errors,
}

/// Closed loop: `conns` connections each sending the next request as soon as the previous
/// response arrived, for `duration`.
pub(crate) async fn closed_loop(
    server: &Server,
    payload: &Arc<Payload>,
    conns: usize,
    duration: Duration,
) -> ClosedResult {
    let (senders, mut errors) = connect(server, conns).await;
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

pub(crate) struct OpenResult {
    pub(crate) ok: u64,
    /// Requests scheduled (`rate` × `duration`, at most `MAX_REQUESTS_PER_PHASE`).
    pub(crate) scheduled: u64,
    /// The three sample vectors hold one value per `keep_every` requests (by schedule index).
    pub(crate) keep_every: u64,
    /// From the scheduled send time to the end of the response (coordinated-omission corrected).
    pub(crate) latencies_ns: Vec<u64>,
    /// From the actual send to the end of the response (what a naive client would report).
    pub(crate) service_ns: Vec<u64>,
    /// How late the pacer handed each request out (the client's own share of the latency).
    pub(crate) pacer_lag_ns: Vec<u64>,
    pub(crate) elapsed: Duration,
    pub(crate) cpu: CpuUsage,
    pub(crate) errors: Errors,
}

/// Open loop: requests scheduled at a fixed rate, spread round-robin over `conns` kept-alive
/// connections (as wrk2 does). A request whose connection is still busy at its scheduled time
/// waits, and that wait counts in its latency. Request `i` sends `mix[i % mix.len()]` (one
/// payload, or a fixed proportion of several).
///
/// Memory: the samples (latency, service time, pacer lag: 3 × u64) are kept for the requests
/// whose index is a multiple of `keep_every` (1: all of them), a systematic sample; the run is
/// at most `MAX_REQUESTS_PER_PHASE` requests whatever the rate and duration.
pub(crate) async fn open_loop(
    server: &Server,
    mix: &[Arc<Payload>],
    conns: usize,
    rate: u32,
    duration: Duration,
    keep_every: u64,
) -> OpenResult {
    let keep_every = keep_every.max(1);
    let (senders, mut errors) = connect(server, conns).await;
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

pub(crate) struct IdleResult {
    pub(crate) opened: usize,
    pub(crate) rss_kib: u64,
    pub(crate) errors: Errors,
}

/// Opens `n` connections, answers one review on each (an API server's idle keep-alive
/// connection has served requests), reads the server's RSS, and closes them.
pub(crate) async fn idle_connections(
    server: &Server,
    payload: &Arc<Payload>,
    n: usize,
) -> IdleResult {
    let (mut conns, mut errors) = connect(server, n).await;
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
