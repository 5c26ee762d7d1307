//! The in-flight body budget under a flood (issue 16, item 4): many HTTP/2 connections, each
//! with as many concurrent streams as the server allows, each stream POSTing a large body, at the
//! real TLS server running in this process. Without the budget the server would buffer every
//! body at once (connections × streams × body size); with it, what the server holds stays under
//! `limits.maxInFlightBodyBytes` plus a fixed amount per connection, and an ordinary review on
//! another connection is still answered meanwhile.
//!
//! The server runs in this process, so its memory is this process's `VmRSS`, sampled every few
//! milliseconds; the clients share the process, but all their bodies are one shared buffer, so
//! they add a fixed amount per connection, not per body. Figures are printed (`cargo test --test
//! server_body_budget -- --nocapture`) and in docs/reliability.md. Every wait is bounded and
//! everything stays on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use tokio::task::JoinSet;

use pod_hardener::config::HumanDuration;
use support::tls::{
    CertDir, Client, Sender, WAIT, body, check_mutated, read_answer, short_limits, start_server,
};
use support::{EXAMPLE_REVIEW, rss_mib};

const MIB: usize = 1024 * 1024;
/// `limits.maxInFlightBodyBytes` of the flooded server.
const BUDGET: usize = 16 * MIB;
/// Flooding connections, each with this many concurrent streams (the default
/// `limits.maxConcurrentStreams`), each stream one body of this size: 512 MiB offered at once.
const FLOOD_CONNECTIONS: usize = 8;
const STREAMS_PER_CONNECTION: usize = 32;
const FLOOD_BODY: usize = 2 * MIB;
/// What the process may hold besides the budget: per flooding connection, the server's HTTP/2
/// connection window of unread body bytes ((32 streams + 1) × 64 KiB = 2.06 MiB) and the TLS
/// and HTTP/2 buffers of both ends; and once, the allocator's slack (glibc keeps freed memory in
/// per-thread arenas, and a 16 KiB frame kept unread pins the read buffer it was cut from) and
/// what the ordinary client and the answers hold. Measured: 54 to 65 MiB of growth against the
/// 88 MiB allowed; without the budget the growth is every body at once, 532 MiB with the budget
/// raised to 1 GiB.
const OVERHEAD_PER_CONNECTION_MIB: f64 = 3.0;
const OVERHEAD_FIXED_MIB: f64 = 48.0;
/// `limits.requestTimeout`: a flood request waits this long for room, then gets 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Samples this process's RSS every 5 ms until stopped; the highest reading.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let (stop, peak_kib) = (stop.clone(), peak_kib.clone());
            move || {
                // Bounded: the flood is bounded by WAIT-based timeouts, this loop by them too.
                let deadline = Instant::now() + Duration::from_secs(300);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    peak_kib.fetch_max(support::proc_status_kib("VmRSS"), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        RssSampler {
            stop,
            peak_kib,
            thread,
        }
    }

    fn peak_mib(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

/// How the flood's requests were answered.
#[derive(Debug, Default)]
struct FloodAnswers {
    /// Read and decided (a 200 AdmissionReview: the body is no review, so not allowed).
    decided: usize,
    /// Refused for want of room within the request timeout (503 with a reason).
    no_room: usize,
    /// Anything else: a failure.
    other: Vec<String>,
}

#[test]
fn a_flood_of_large_bodies_stays_within_the_budget_and_reviews_are_still_answered() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(flood());
    runtime.shutdown_timeout(Duration::from_secs(2));
}

async fn flood() {
    let mut limits = short_limits(Duration::from_secs(5), Duration::from_secs(60), WAIT);
    limits.max_in_flight_body_bytes = BUDGET;
    limits.request_timeout = HumanDuration(REQUEST_TIMEOUT);
    let server = start_server(CertDir::new, limits, |_| {}).await;
    let h2 = server.client_config(&[b"h2"]);
    // Not JSON: the server reads it in full, then answers with an invalid-review denial at once,
    // so what is measured is the reading, not the decoding.
    let flood_body = Bytes::from(vec![b'x'; FLOOD_BODY]);

    // Warm-up, so that the allocator's first growth is not counted: one review, one large body.
    let mut ordinary = Client::connect(server.addr, h2.clone()).await.unwrap();
    check_mutated(
        &ordinary
            .post("/mutate", EXAMPLE_REVIEW, WAIT)
            .await
            .unwrap(),
    )
    .unwrap();
    let warm = ordinary
        .post("/validate", flood_body.clone(), WAIT)
        .await
        .unwrap();
    assert_eq!(warm.status, StatusCode::OK, "{}", warm.text());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_mib();

    let sampler = RssSampler::start();
    let flood_started = Instant::now();
    let unanswered = Arc::new(AtomicUsize::new(FLOOD_CONNECTIONS * STREAMS_PER_CONNECTION));
    let mut clients = Vec::new();
    let mut flood = JoinSet::new();
    for _ in 0..FLOOD_CONNECTIONS {
        let client = Client::connect(server.addr, h2.clone()).await.unwrap();
        let Sender::H2(sender) = &client.sender else {
            panic!("ALPN did not choose h2")
        };
        for _ in 0..STREAMS_PER_CONNECTION {
            let mut sender = sender.clone();
            let req = client
                .request(Method::POST, "/validate")
                .header(CONTENT_TYPE, "application/json")
                .header(CONTENT_LENGTH, FLOOD_BODY)
                .body(body(flood_body.clone()))
                .unwrap();
            let unanswered = unanswered.clone();
            flood.spawn(async move {
                let answer = tokio::time::timeout(REQUEST_TIMEOUT + WAIT, async move {
                    sender.ready().await?;
                    let rsp = sender.send_request(req).await?;
                    read_answer(rsp).await
                })
                .await;
                unanswered.fetch_sub(1, Ordering::SeqCst);
                answer
            });
        }
        clients.push(client);
    }

    // Meanwhile, ordinary reviews on their own connection, one after another.
    let mut latencies = Vec::new();
    let mut during_flood = 0;
    let ordinary_deadline = Instant::now() + REQUEST_TIMEOUT + WAIT;
    while unanswered.load(Ordering::SeqCst) > 0 && Instant::now() < ordinary_deadline {
        let sent = Instant::now();
        let answer = ordinary
            .post("/mutate", EXAMPLE_REVIEW, REQUEST_TIMEOUT)
            .await;
        let answer = answer.unwrap_or_else(|e| panic!("an ordinary review failed: {e}"));
        check_mutated(&answer).unwrap_or_else(|e| panic!("an ordinary review: {e}"));
        latencies.push(sent.elapsed());
        if unanswered.load(Ordering::SeqCst) > 0 {
            during_flood += 1;
        }
    }
    let mut answers = FloodAnswers::default();
    let outcomes = tokio::time::timeout(REQUEST_TIMEOUT + WAIT, flood.join_all())
        .await
        .expect("every flood request ends");
    for outcome in outcomes {
        match outcome {
            Ok(Ok(answer)) if answer.status == StatusCode::OK => answers.decided += 1,
            Ok(Ok(answer))
                if answer.status == StatusCode::SERVICE_UNAVAILABLE
                    && answer.text().contains("too many request bodies") =>
            {
                answers.no_room += 1
            }
            Ok(Ok(answer)) => {
                answers
                    .other
                    .push(format!("status {}: {}", answer.status, answer.text()))
            }
            Ok(Err(e)) => answers.other.push(e.to_string()),
            Err(_) => answers.other.push("no answer in time".into()),
        }
    }
    let flood_took = flood_started.elapsed();
    let peak = sampler.peak_mib();
    drop(clients);
    let rss_after = rss_mib();

    let growth = peak - rss_before;
    let allowed =
        mib(BUDGET) + FLOOD_CONNECTIONS as f64 * OVERHEAD_PER_CONNECTION_MIB + OVERHEAD_FIXED_MIB;
    let max_latency = latencies.iter().max().copied().unwrap_or_default();
    println!(
        "body budget flood: {FLOOD_CONNECTIONS} HTTP/2 connections x {STREAMS_PER_CONNECTION} \
         streams x {} MiB ({} MiB offered at once) against a budget of {} MiB: {} decided, {} \
         refused with 503, {} failed, in {flood_took:.1?}; RSS {rss_before:.1} MiB before, peak \
         {peak:.1} MiB (growth {growth:.1} MiB, allowed {allowed:.1}), {rss_after:.1} MiB after; \
         ordinary reviews meanwhile: {} answered ({during_flood} while the flood was unanswered), \
         max latency {max_latency:.1?}",
        mib(FLOOD_BODY),
        mib(FLOOD_BODY * FLOOD_CONNECTIONS * STREAMS_PER_CONNECTION),
        mib(BUDGET),
        answers.decided,
        answers.no_room,
        answers.other.len(),
        latencies.len(),
    );
    assert!(
        answers.other.is_empty(),
        "flood failures: {:?}",
        answers.other
    );
    assert_eq!(
        answers.decided + answers.no_room,
        FLOOD_CONNECTIONS * STREAMS_PER_CONNECTION
    );
    assert!(answers.decided > 0, "the flood's bodies were never read");
    assert!(
        growth <= allowed,
        "RSS grew by {growth:.1} MiB, more than the budget plus overhead ({allowed:.1} MiB)"
    );
    assert!(
        during_flood > 0,
        "no ordinary review was answered while the flood was in flight"
    );
    assert_eq!(
        server.state.body_budget.available(),
        BUDGET,
        "every share of the budget is returned"
    );
    server.stop(WAIT).await;
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / MIB as f64
}
