//! The API server's view of pod-hardener: Pod creates through a real kube-apiserver v1.37.2
//! (with etcd and the controller manager, from the test harness's cached build), server-side
//! dry run, so nothing is stored and no node is needed. Configurations, measured in turn:
//!
//! - `none`: no webhook, no policy: the API server's own cost;
//! - `webhooks`: pod-hardener's two shipped webhook configurations (`manifests/base/webhooks.yaml`,
//!   matchConditions included) and an unhardened Pod (the load harness's typical 3-container
//!   Pod): `/mutate` hardens it, `/validate` judges it;
//! - `webhooks, hardened Pod`: the same Pod as pod-hardener hardened it, record included, so the
//!   mutating webhook's matchConditions skip the call and only `/validate` is called;
//! - `validating only, hardened Pod`: the same Pod with only the ValidatingWebhookConfiguration
//!   registered: what the hardened Pod costs when no mutating webhook exists, which the row above
//!   should match if the matchConditions skip does all it can;
//! - `policy`: no webhook; the MutatingAdmissionPolicy generated from the same profile
//!   (`admission::mutating_policy`) makes the same changes in-process: the limit a webhook is
//!   compared with.
//!
//! For each: the client's latency p50/p99 at fixed rates (open loop, measured from each
//! request's scheduled send time, so a stall counts against every request it delays), the
//! closed-loop capacity (creates/s with 8 in flight), CPU milliseconds per create of the API
//! server (+ etcd) and of pod-hardener over the closed loop (/proc/PID/stat), and from the API
//! server's /metrics the mean of `apiserver_admission_webhook_admission_duration_seconds` per
//! webhook and of `apiserver_request_duration_seconds` for the creates.
//!
//! etcd, kube-apiserver and the controller manager are pinned to CPU 0, pod-hardener and this
//! client to CPU 1 (`taskset`), so the API server's share and the webhook's do not mix.
//! Loopback only; every loop is bounded in time and count; the processes are the harness's own
//! and stop with it.
//!
//! Run: `cargo bench --bench apiserver` (about 4 minutes); `-- --seconds N` per phase (default
//! 10), `--rates 50,100`, `--rounds N` (default 1), `--concurrency N` (default 8). Under
//! `cargo test --all-targets` (no `--bench` argument) it does nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
// The load harness's payloads, of which this uses the typical Pod.
#[allow(dead_code)]
#[path = "common/mod.rs"]
mod payloads;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::webhook::{MUTATING_WEBHOOK, Setup, VALIDATING_WEBHOOK, register_webhooks};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use pod_hardener::admission::mutating_policy::{POLICY_NAME, fill_policy};
use pod_hardener::harden::HardeningSettings;
use pod_hardener::pss::Level;
use serde_json::{Value, json};

/// Where the webhooks and the unbound namespace apply.
const NAMESPACE: &str = "bench";
/// The namespace the generated policy's binding selects.
const POLICY_NAMESPACE: &str = "bench-policy";
const POLICY_LABEL: &str = "pod-hardener.bench/mutating-policy";
/// Requests in flight beyond which the open loop counts a request as not sent.
const MAX_IN_FLIGHT: usize = 512;
/// Each request's own deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

struct Options {
    seconds: u64,
    rates: Vec<u32>,
    rounds: usize,
    concurrency: usize,
}

fn options() -> Option<Options> {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return None;
    }
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |name: &str, default: u64| value(name).map_or(default, |v| v.parse().unwrap());
    Some(Options {
        seconds: number("--seconds", 10),
        rates: value("--rates").map_or(vec![50, 100], |v| {
            v.split(',').map(|r| r.parse().unwrap()).collect()
        }),
        rounds: number("--rounds", 1) as usize,
        concurrency: number("--concurrency", 8) as usize,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Config {
    None,
    Webhooks,
    WebhooksHardenedPod,
    ValidatingOnlyHardenedPod,
    Policy,
}

impl Config {
    const ALL: [Config; 5] = [
        Config::None,
        Config::Webhooks,
        Config::WebhooksHardenedPod,
        Config::ValidatingOnlyHardenedPod,
        Config::Policy,
    ];

    fn label(self) -> &'static str {
        match self {
            Config::None => "none",
            Config::Webhooks => "webhooks",
            Config::WebhooksHardenedPod => "webhooks, hardened Pod",
            Config::ValidatingOnlyHardenedPod => "validating only, hardened Pod",
            Config::Policy => "MutatingAdmissionPolicy",
        }
    }
}

/// One configuration's figures.
#[derive(Default, Clone)]
struct Figures {
    /// (rate, achieved rate, p50 ms, p99 ms, errors)
    open: Vec<(u32, f64, f64, f64, usize)>,
    capacity: f64,
    closed_errors: usize,
    apiserver_cpu_ms: f64,
    hardener_cpu_ms: f64,
    /// Mean ms per call, by webhook name.
    webhook_ms: BTreeMap<String, f64>,
    request_ms: f64,
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the state.
    (ticks(11) + ticks(12)) / 100.0
}

fn pin(pid: u32, cpu: u32) {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-cp", &cpu.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("taskset");
    assert!(status.success(), "taskset {pid}");
}

/// Sums of `name`'s `_sum` and `_count` samples whose labels include every one of `labels`,
/// grouped by the value of `by` (empty: one group).
fn histogram(metrics: &str, name: &str, labels: &[&str], by: &str) -> BTreeMap<String, (f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in metrics.lines() {
        let (is_sum, rest) = if let Some(r) = line.strip_prefix(&format!("{name}_sum{{")) {
            (true, r)
        } else if let Some(r) = line.strip_prefix(&format!("{name}_count{{")) {
            (false, r)
        } else {
            continue;
        };
        let Some((label_text, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        if !labels.iter().all(|l| label_text.contains(l)) {
            continue;
        }
        let group = if by.is_empty() {
            String::new()
        } else {
            label_text
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{by}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        let entry = out.entry(group).or_default();
        if is_sum {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    out
}

async fn apiserver_metrics(client: &kube::Client) -> String {
    let request = hyper::Request::get("/metrics").body(Vec::new()).unwrap();
    client.request_text(request).await.expect("GET /metrics")
}

/// One dry-run create; its duration, or why it failed.
async fn create(api: &Api<Pod>, pod: &Pod) -> Result<Duration, String> {
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let started = Instant::now();
    match tokio::time::timeout(REQUEST_TIMEOUT, api.create(&params, pod)).await {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Creates at `rate` per second for `seconds`, each latency from its scheduled send time.
async fn open_loop(
    api: &Api<Pod>,
    pod: &Arc<Pod>,
    rate: u32,
    seconds: u64,
) -> (f64, f64, f64, usize) {
    let total = u64::from(rate) * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let mut not_sent = 0;
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled).await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            not_sent += 1;
            continue;
        };
        let (api, pod) = (api.clone(), pod.clone());
        tasks.push(tokio::spawn(async move {
            let result = create(&api, &pod).await;
            drop(permit);
            result.map(|_| scheduled.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut errors = not_sent;
    for task in tasks {
        match task.await.unwrap() {
            Ok(latency) => latencies.push(latency),
            Err(e) => {
                if errors == 0 {
                    eprintln!("  first error: {e}");
                }
                errors += 1;
            }
        }
    }
    let achieved = latencies.len() as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    (
        achieved,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        errors,
    )
}

/// `concurrency` clients creating back to back for `seconds`: creates per second, errors.
async fn closed_loop(
    api: &Api<Pod>,
    pod: &Arc<Pod>,
    concurrency: usize,
    seconds: u64,
) -> (f64, usize) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (api, pod) = (api.clone(), pod.clone());
            tokio::spawn(async move {
                let (mut done, mut errors) = (0usize, 0usize);
                while Instant::now() < until {
                    match create(&api, &pod).await {
                        Ok(_) => done += 1,
                        Err(_) => errors += 1,
                    }
                }
                (done, errors)
            })
        })
        .collect();
    let (mut done, mut errors) = (0, 0);
    for worker in workers {
        let (d, e) = worker.await.unwrap();
        done += d;
        errors += e;
    }
    (done as f64 / started.elapsed().as_secs_f64(), errors)
}

/// The Pod as pod-hardener hardened it, ready to be created again (server-set fields removed).
async fn hardened(api: &Api<Pod>, pod: &Pod) -> Pod {
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut stored = serde_json::to_value(api.create(&params, pod).await.unwrap()).unwrap();
    assert!(
        stored["metadata"]["annotations"][common::webhook::RECORD_ANNOTATION].is_string(),
        "the webhooks hardened it: {stored}"
    );
    let metadata = stored["metadata"].as_object_mut().unwrap();
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        metadata.remove(field);
    }
    stored.as_object_mut().unwrap().remove("status");
    serde_json::from_value(stored).unwrap()
}

/// Registers or removes pod-hardener's webhook configurations: both (`Both`), the validating
/// one alone (`ValidatingOnly`), or none.
async fn set_webhooks(setup: &Setup, wanted: Registered) {
    let mutating = Api::<MutatingWebhookConfiguration>::all(setup.client.clone());
    let validating = Api::<ValidatingWebhookConfiguration>::all(setup.client.clone());
    let has_mutating = mutating.get_opt("pod-hardener").await.unwrap().is_some();
    let has_validating = validating.get_opt("pod-hardener").await.unwrap().is_some();
    let now = match (has_mutating, has_validating) {
        (false, false) => Registered::None,
        (true, true) => Registered::Both,
        (false, true) => Registered::ValidatingOnly,
        (true, false) => panic!("only the mutating configuration is registered"),
    };
    if now == wanted {
        return;
    }
    if has_mutating {
        mutating
            .delete("pod-hardener", &DeleteParams::default())
            .await
            .unwrap();
    }
    if has_validating {
        validating
            .delete("pod-hardener", &DeleteParams::default())
            .await
            .unwrap();
    }
    if wanted == Registered::None {
        return;
    }
    register_webhooks(
        &setup.client,
        &setup.hardener.url(""),
        &setup.hardener.ca_bundle,
    )
    .await;
    if wanted == Registered::ValidatingOnly {
        mutating
            .delete("pod-hardener", &DeleteParams::default())
            .await
            .unwrap();
    }
}

/// Which of pod-hardener's webhook configurations a measurement runs with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Registered {
    None,
    Both,
    ValidatingOnly,
}

/// Waits until the API server no longer calls the mutating webhook: the unhardened Pod, which
/// `/mutate` would harden, is then denied.
async fn wait_until_validating_only(api: &Api<Pod>, unhardened: &Pod) {
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let started = Instant::now();
    while api.create(&params, unhardened).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "removing the mutating webhook never took effect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until a dry-run create shows `ready` (the API server's informers follow a
/// configuration change within about a second).
async fn wait_until(api: &Api<Pod>, pod: &Pod, what: &str, ready: impl Fn(&Value) -> bool) {
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let started = Instant::now();
    loop {
        if let Ok(stored) = api.create(&params, pod).await
            && ready(&serde_json::to_value(stored).unwrap())
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} never took effect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn measure(setup: &Setup, config: Config, pods: &(Pod, Pod), options: &Options) -> Figures {
    let registered = match config {
        Config::Webhooks | Config::WebhooksHardenedPod => Registered::Both,
        Config::ValidatingOnlyHardenedPod => Registered::ValidatingOnly,
        Config::None | Config::Policy => Registered::None,
    };
    set_webhooks(setup, registered).await;
    let namespace = if config == Config::Policy {
        POLICY_NAMESPACE
    } else {
        NAMESPACE
    };
    let api: Api<Pod> = Api::namespaced(setup.client.clone(), namespace);
    let pod = Arc::new(match config {
        Config::WebhooksHardenedPod | Config::ValidatingOnlyHardenedPod => pods.1.clone(),
        _ => pods.0.clone(),
    });
    let record = common::webhook::RECORD_ANNOTATION;
    let hardened = |p: &Value| p["spec"]["securityContext"]["runAsNonRoot"] == true;
    match config {
        Config::None => wait_until(&api, &pod, "removing the webhooks", |p| !hardened(p)).await,
        Config::Webhooks => {
            wait_until(&api, &pod, "the webhooks", |p| {
                p["metadata"]["annotations"][record].is_string()
            })
            .await;
        }
        Config::WebhooksHardenedPod => {}
        // The hardened Pod looks the same with or without the mutating webhook: wait for the
        // API server's informer to see the removal by denying a Pod /validate denies.
        Config::ValidatingOnlyHardenedPod => {
            wait_until_validating_only(&api, &pods.0).await;
        }
        Config::Policy => wait_until(&api, &pod, "the policy", hardened).await,
    }
    // Warm the connections and caches.
    closed_loop(&api, &pod, options.concurrency, 1).await;

    let mut figures = Figures::default();
    for &rate in &options.rates {
        let (achieved, p50, p99, errors) = open_loop(&api, &pod, rate, options.seconds).await;
        figures.open.push((rate, achieved, p50, p99, errors));
    }
    let apiserver_pids: Vec<u32> = ["kube-apiserver", "etcd"]
        .iter()
        .filter_map(|n| setup.control_plane.pid_of(n))
        .collect();
    let hardener_pid = setup.hardener.pid().unwrap();
    let before_metrics = apiserver_metrics(&setup.client).await;
    let before_cpu: f64 = apiserver_pids.iter().map(|p| cpu_seconds(*p)).sum();
    let before_hardener = cpu_seconds(hardener_pid);
    let (capacity, errors) = closed_loop(&api, &pod, options.concurrency, options.seconds).await;
    let after_cpu: f64 = apiserver_pids.iter().map(|p| cpu_seconds(*p)).sum();
    let after_hardener = cpu_seconds(hardener_pid);
    let after_metrics = apiserver_metrics(&setup.client).await;
    let creates = capacity * options.seconds as f64;
    figures.capacity = capacity;
    figures.closed_errors = errors;
    figures.apiserver_cpu_ms = (after_cpu - before_cpu) * 1000.0 / creates;
    figures.hardener_cpu_ms = (after_hardener - before_hardener) * 1000.0 / creates;
    let mean = |name: &str, labels: &[&str], by: &str| {
        let before = histogram(&before_metrics, name, labels, by);
        histogram(&after_metrics, name, labels, by)
            .into_iter()
            .filter_map(|(group, (sum, count))| {
                let (sum0, count0) = before.get(&group).copied().unwrap_or_default();
                (count > count0).then(|| (group, (sum - sum0) * 1000.0 / (count - count0)))
            })
            .collect::<BTreeMap<String, f64>>()
    };
    figures.webhook_ms = mean(
        "apiserver_admission_webhook_admission_duration_seconds",
        &["operation=\"CREATE\""],
        "name",
    );
    figures.request_ms = mean(
        "apiserver_request_duration_seconds",
        &["verb=\"POST\"", "resource=\"pods\""],
        "",
    )
    .values()
    .copied()
    .next()
    .unwrap_or(f64::NAN);
    figures
}

fn main() {
    let Some(options) = options() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(options));
}

async fn run(options: Options) {
    let setup = Setup::start(json!({})).await;
    for name in ["etcd", "kube-apiserver", "kube-controller-manager"] {
        if let Some(pid) = setup.control_plane.pid_of(name) {
            pin(pid, 0);
        }
    }
    pin(setup.hardener.pid().unwrap(), 1);
    pin(std::process::id(), 1);
    setup.namespace(NAMESPACE, &[]).await;
    setup
        .namespace(POLICY_NAMESPACE, &[(POLICY_LABEL, "on")])
        .await;
    let selector = json!({"matchLabels": {POLICY_LABEL: "on"}});
    for object in fill_policy(Level::Restricted, &HardeningSettings::default(), &selector) {
        let gvk = GroupVersionKind::gvk(
            "admissionregistration.k8s.io",
            "v1",
            object["kind"].as_str().unwrap(),
        );
        let api: Api<DynamicObject> =
            Api::all_with(setup.client.clone(), &ApiResource::from_gvk(&gvk));
        api.create(
            &PostParams::default(),
            &serde_json::from_value(object).unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("create {POLICY_NAME}: {e}"));
    }

    let mut typical = payloads::typical_pod();
    typical["metadata"] = json!({"name": "bench"});
    // The namespace's default ServiceAccount (the chart's own does not exist here).
    let spec = typical["spec"].as_object_mut().unwrap();
    spec.remove("serviceAccountName");
    spec.remove("serviceAccount");
    let unhardened: Pod = serde_json::from_value(typical).unwrap();
    let api: Api<Pod> = Api::namespaced(setup.client.clone(), NAMESPACE);
    let pods = (unhardened.clone(), hardened(&api, &unhardened).await);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "apiserver bench: {} s phases, rates {:?}/s, closed loop {} in flight, {} round(s); load average before: {}",
        options.seconds,
        options.rates,
        options.concurrency,
        options.rounds,
        load.trim()
    );

    let mut results: BTreeMap<Config, Vec<Figures>> = BTreeMap::new();
    for round in 1..=options.rounds {
        for config in Config::ALL {
            eprintln!("round {round}: {}", config.label());
            let figures = measure(&setup, config, &pods, &options).await;
            results.entry(config).or_default().push(figures);
        }
    }
    set_webhooks(&setup, Registered::None).await;
    report(&results, &options);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average after: {}", load.trim());
}

fn report(results: &BTreeMap<Config, Vec<Figures>>, options: &Options) {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let mut header = "| configuration |".to_owned();
    let mut rule = "|---|".to_owned();
    for rate in &options.rates {
        header.push_str(&format!(" p50 / p99 at {rate}/s (ms) |"));
        rule.push_str("---:|");
    }
    header.push_str(" capacity (creates/s) | API server + etcd CPU ms/create | pod-hardener CPU ms/create | API server's mean webhook call (ms) | mean create (ms, API server) | errors |");
    rule.push_str("---:|---:|---:|---|---:|---:|");
    println!("{header}\n{rule}");
    for (config, runs) in results {
        let mut row = format!("| {} |", config.label());
        for (i, _) in options.rates.iter().enumerate() {
            let p50 = median(runs.iter().map(|f| f.open[i].2).collect());
            let p99 = median(runs.iter().map(|f| f.open[i].3).collect());
            row.push_str(&format!(" {p50:.1} / {p99:.1} |"));
        }
        let webhooks = runs
            .last()
            .map(|f| {
                let calls: Vec<String> = f
                    .webhook_ms
                    .iter()
                    .map(|(name, ms)| {
                        let short = if name == MUTATING_WEBHOOK {
                            "mutate"
                        } else if name == VALIDATING_WEBHOOK {
                            "validate"
                        } else {
                            name.as_str()
                        };
                        format!("{short} {ms:.2}")
                    })
                    .collect();
                if calls.is_empty() {
                    "—".to_owned()
                } else {
                    calls.join(", ")
                }
            })
            .unwrap_or_default();
        let errors: usize = runs
            .iter()
            .map(|f| f.closed_errors + f.open.iter().map(|o| o.4).sum::<usize>())
            .sum();
        row.push_str(&format!(
            " {:.0} | {:.2} | {:.2} | {webhooks} | {:.2} | {errors} |",
            median(runs.iter().map(|f| f.capacity).collect()),
            median(runs.iter().map(|f| f.apiserver_cpu_ms).collect()),
            median(runs.iter().map(|f| f.hardener_cpu_ms).collect()),
            median(runs.iter().map(|f| f.request_ms).collect()),
        ));
        println!("{row}");
    }
    for (config, runs) in results {
        for (i, f) in runs.iter().enumerate() {
            for (rate, achieved, _, _, errors) in &f.open {
                if (*achieved - f64::from(*rate)).abs() > f64::from(*rate) * 0.05 || *errors > 0 {
                    println!(
                        "note: {} round {}: {rate}/s asked, {achieved:.1}/s answered, {errors} errors",
                        config.label(),
                        i + 1
                    );
                }
            }
        }
    }
}
