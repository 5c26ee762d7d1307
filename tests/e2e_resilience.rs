//! API-server trouble end to end (issue 7, "API-server trouble"): the real `pod-hardener`
//! binary watches the namespaces of a real kube-apiserver (`namespaceSource: cluster`, see
//! `tests/common/webhook.rs`), and the API server is stopped and started again on the same port
//! (`ControlPlane::stop_apiserver` / `start_apiserver`).
//!
//! While the API server is down it cannot call the webhook, so the test calls pod-hardener's
//! `/validate` itself, over TLS with the CA of `pod-hardener certs`, with AdmissionReviews for
//! chosen namespaces, and reads `/metrics` over plain HTTP. It checks that:
//! - a namespace in the cache keeps its own policy (served from the cache, no fallback warning);
//! - a namespace not in the cache gets the documented fallback, the default policy, with the
//!   warning `pod-hardener could not read namespace ...` and
//!   `pod_hardener_namespace_lookups_total{source="fallback"}` counting it;
//! - `/readyz` stays 200 (the cache keeps serving);
//! - after the restart the watch recovers by itself and a label change made then is followed
//!   within 30 s.
//!
//! Every wait is bounded. Run alone: `cargo test --test e2e_resilience -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use common::webhook::{Setup, WAIT};
use support::{example_pod, https_post_once, pod_review, response_of, tls_client_config};

const ENFORCE: &str = "pod-security.kubernetes.io/enforce";
/// How long the API server stays down before it is started again.
const OUTAGE: Duration = Duration::from_secs(3);
/// How soon after the relabel pod-hardener must follow it.
const FOLLOW_WITHIN: Duration = Duration::from_secs(30);
const FALLBACK_WARNING: &str = "pod-hardener could not read namespace";
const FALLBACK: &str = r#"pod_hardener_namespace_lookups_total{source="fallback"}"#;
const FROM_CACHE: &str = r#"pod_hardener_namespace_lookups_total{source="cache"}"#;

/// pod-hardener's HTTPS port, called directly.
struct Webhook {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    metrics_port: u16,
}

/// What `/validate` said about the sample Pod in a namespace.
#[derive(Debug)]
struct Verdict {
    allowed: bool,
    warnings: Vec<String>,
    message: String,
}

impl Webhook {
    fn of(setup: &Setup) -> Self {
        let ca = base64::engine::general_purpose::STANDARD
            .decode(&setup.hardener.ca_bundle)
            .expect("the caBundle is base64");
        let ca = String::from_utf8(ca).expect("the CA is PEM");
        Webhook {
            addr: SocketAddr::from(([127, 0, 0, 1], setup.hardener.webhook_port)),
            tls: tls_client_config(&[&ca], &[b"http/1.1"], true),
            metrics_port: setup.hardener.metrics_port,
        }
    }

    /// `/validate` of the sample Pod (no securityContext: fine at baseline, violates
    /// restricted) created in `namespace`.
    async fn validate(&self, namespace: &str) -> Verdict {
        let uid = format!("resilience-{namespace}");
        let mut pod = example_pod();
        pod["metadata"]["namespace"] = namespace.into();
        let mut review = pod_review(&uid, "CREATE", pod, None);
        review["request"]["namespace"] = namespace.into();
        let (status, body) = https_post_once(
            self.addr,
            self.tls.clone(),
            "127.0.0.1",
            "/validate",
            serde_json::to_vec(&review).unwrap(),
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("/validate for {namespace}: {e}"));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let response = response_of(&body);
        assert_eq!(response["uid"], uid.as_str(), "{response}");
        Verdict {
            allowed: response["allowed"] == true,
            warnings: response["warnings"]
                .as_array()
                .map(|w| {
                    w.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            message: response["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// A plain-HTTP GET on the metrics port: status and body.
    async fn get(&self, path: &str) -> (u16, String) {
        let exchange = async {
            let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).await?;
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            tcp.write_all(request.as_bytes()).await?;
            let mut answer = Vec::new();
            tcp.read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
        };
        let answer = tokio::time::timeout(WAIT, exchange)
            .await
            .unwrap_or_else(|_| panic!("GET {path}: no answer within {WAIT:?}"))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("GET {path}: not HTTP: {answer:.80}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        (status, body)
    }

    /// One sample of `/metrics`, e.g. `pod_hardener_namespace_lookups_total{source="cache"}`.
    async fn metric(&self, sample: &str) -> f64 {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        body.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {sample} in /metrics"))
    }
}

/// Polls `/validate` for `namespace` until its verdict is `allowed`, for at most `limit`;
/// returns how long that took.
async fn wait_for_verdict(
    webhook: &Webhook,
    namespace: &str,
    allowed: bool,
    limit: Duration,
) -> Result<Duration, Verdict> {
    let started = Instant::now();
    loop {
        let verdict = webhook.validate(namespace).await;
        if verdict.allowed == allowed {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= limit {
            return Err(verdict);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_cache_serves_through_an_api_server_outage_and_follows_relabels() {
    let mut setup = Setup::start(json!({})).await;
    let webhook = Webhook::of(&setup);
    setup
        .namespace("cached-baseline", &[(ENFORCE, "baseline")])
        .await;
    setup
        .namespace("relabelled", &[(ENFORCE, "restricted")])
        .await;

    // Baseline: the cache knows both namespaces (the watch delivers them within moments).
    wait_for_verdict(&webhook, "cached-baseline", true, WAIT)
        .await
        .unwrap_or_else(|v| {
            panic!(
                "cached-baseline never allowed: {v:?}\n{}",
                setup.diagnostics()
            )
        });
    let restricted = webhook.validate("relabelled").await;
    assert!(
        !restricted.allowed,
        "restricted denies the sample Pod: {restricted:?}"
    );
    assert!(restricted.message.contains("restricted"), "{restricted:?}");

    // ---- The API server goes away. ----
    let fallback_before = webhook.metric(FALLBACK).await;
    tokio::task::block_in_place(|| setup.control_plane.stop_apiserver());
    let stopped = Instant::now();
    let cache_before = webhook.metric(FROM_CACHE).await;
    let mut rounds = 0;
    let mut fallback_latency = Duration::ZERO;
    while stopped.elapsed() < OUTAGE || rounds == 0 {
        rounds += 1;
        // A cached namespace keeps its own policy, without the fallback warning (the default
        // warn level, restricted, still warns about the Pod).
        let cached = webhook.validate("cached-baseline").await;
        assert!(
            cached.allowed,
            "cached baseline namespace during the outage: {cached:?}"
        );
        assert!(
            !cached.warnings.iter().any(|w| w.contains(FALLBACK_WARNING)),
            "{cached:?}"
        );
        let still = webhook.validate("relabelled").await;
        assert!(
            !still.allowed,
            "cached restricted namespace during the outage: {still:?}"
        );
        // A namespace it has never seen: the default policy (restricted), with a warning.
        let asked = Instant::now();
        let unknown = webhook.validate(&format!("never-seen-{rounds}")).await;
        fallback_latency = fallback_latency.max(asked.elapsed());
        assert!(
            !unknown.allowed,
            "the default policy is restricted: {unknown:?}"
        );
        assert!(
            unknown
                .warnings
                .iter()
                .any(|w| w.contains(FALLBACK_WARNING)),
            "the fallback is announced: {unknown:?}"
        );
        // Still ready: the cache serves.
        assert_eq!(
            webhook.get("/readyz").await.0,
            200,
            "/readyz during the outage"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let fallback_during = webhook.metric(FALLBACK).await - fallback_before;
    let cache_during = webhook.metric(FROM_CACHE).await - cache_before;
    assert_eq!(
        fallback_during,
        f64::from(rounds),
        "one fallback per unknown namespace"
    );
    assert!(
        cache_during >= f64::from(2 * rounds),
        "cache lookups: {cache_during}"
    );
    let unknown = webhook.validate("never-seen-1").await;
    println!(
        "outage: {rounds} rounds over {:.1?} without the API server: cached namespaces kept \
         their policies ({cache_during} cache lookups), {fallback_during} unknown namespaces got \
         the default policy with a warning (slowest {fallback_latency:.1?}), e.g. {:?}",
        stopped.elapsed(),
        unknown.warnings
    );

    // ---- It comes back; a namespace is relabelled right away. ----
    tokio::task::block_in_place(|| setup.control_plane.start_apiserver());
    let down_for = stopped.elapsed();
    let restarted = Instant::now();
    let namespaces: Api<Namespace> = Api::all(setup.client.clone());
    let relabel = json!({ "metadata": { "labels": { ENFORCE: "baseline" } } });
    let relabelled_at = tokio::time::timeout(WAIT, async {
        loop {
            // The admin client's pooled connections died with the old process: retry.
            match namespaces
                .patch(
                    "relabelled",
                    &PatchParams::default(),
                    &Patch::Merge(&relabel),
                )
                .await
            {
                Ok(_) => return Instant::now(),
                Err(err) => eprintln!("relabel after the restart: {err}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the namespace is relabelled within the wait");
    let followed = wait_for_verdict(&webhook, "relabelled", true, FOLLOW_WITHIN)
        .await
        .unwrap_or_else(|v| {
            panic!(
                "pod-hardener did not follow the relabel within {FOLLOW_WITHIN:?}: {v:?}\n{}",
                setup.diagnostics()
            )
        });
    let relabel_after = relabelled_at - restarted;
    // The watch is back: a namespace created now is known without a fallback.
    setup
        .namespace("after-restart", &[(ENFORCE, "baseline")])
        .await;
    let fallback_after = webhook.metric(FALLBACK).await;
    wait_for_verdict(&webhook, "after-restart", true, WAIT)
        .await
        .unwrap_or_else(|v| panic!("after-restart never allowed: {v:?}"));
    assert_eq!(
        webhook.metric(FALLBACK).await,
        fallback_after,
        "no fallback once back"
    );

    let log = std::fs::read_to_string(&setup.hardener.log).unwrap_or_default();
    let watch_errors = log.matches("Namespace watch failed").count();
    let syncs = log.matches("Namespace cache synced").count();
    println!(
        "recovery: the API server was down {down_for:.1?} (stop, {OUTAGE:?}, restart); the \
         relabel restricted -> baseline, made {relabel_after:.1?} after the restart, was \
         followed {followed:.1?} after it was made; pod-hardener logged {watch_errors} watch \
         errors and {syncs} cache syncs"
    );
    assert!(
        syncs >= 2,
        "the watch relisted after the outage:\n{}",
        setup.hardener.log_tail()
    );
}
