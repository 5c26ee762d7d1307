//! In-process tests of the webhook's HTTP routes (issue 4, "Acceptance" and "Bad input"): every
//! endpoint and every bad input through `server::routes::handle` with in-memory bodies, no socket.
//! Each bad input gets a well-formed answer (an AdmissionReview denial, or a 4xx for transport
//! errors), never a panic, with the uid echoed whenever it can be read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Body, Frame};
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use pod_hardener::admission::AdmissionSettings;
use pod_hardener::config::{HumanDuration, Limits};
use pod_hardener::namespaces::NamespacePolicies;
use pod_hardener::policy::DefaultPolicy;
use pod_hardener::server::budget::BodyShare;
use pod_hardener::server::routes::{self, AppState, RequestLimits, RouteSet};
use support::{
    EXAMPLE_REVIEW, EXAMPLE_UID, apply_patch, decode_patch, example_pod, example_review,
    pod_review, response_of, restricted_violations,
};

/// A small body limit, so the 413 tests stay small.
const MAX_BODY: usize = 64 * 1024;

fn state() -> Arc<AppState> {
    state_with(Limits {
        max_body_bytes: MAX_BODY,
        ..Limits::default()
    })
}

/// Serving routes with `limits`, the default admission settings and the static default policy.
fn state_with(limits: Limits) -> Arc<AppState> {
    let defaults = DefaultPolicy::default().parse().unwrap();
    let state = AppState::new(
        RequestLimits::from(&limits),
        AdmissionSettings::default(),
        NamespacePolicies::fixed(&defaults),
    );
    state.serving.store(true, Ordering::Release);
    Arc::new(state)
}

/// An answer, read in full.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The AdmissionReview `response`, checking that this is a 200 JSON AdmissionReview.
    fn review(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.text());
        assert_eq!(self.content_type(), "application/json");
        response_of(&self.body)
    }

    /// Checks a transport error: the status, a plain-text reason, and no AdmissionReview.
    fn assert_transport_error(&self, status: StatusCode) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert!(
            self.content_type().starts_with("text/plain"),
            "{}",
            self.content_type()
        );
        assert!(!self.text().trim().is_empty(), "a transport error says why");
    }
}

async fn send<B>(state: &Arc<AppState>, routes: RouteSet, req: Request<B>) -> Answer
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let rsp = routes::handle(state.clone(), routes, req)
        .await
        .unwrap_or_else(|never: Infallible| match never {});
    let status = rsp.status();
    let headers = rsp.headers().clone();
    let body = rsp
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|never: Infallible| match never {})
        .to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// A POST of a JSON body with its Content-Length, as the API server sends it.
fn post(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let body = body.into();
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, body.len())
        .body(Full::new(body))
        .unwrap()
}

/// POSTs `body` to `path` on the webhook routes of `state`.
async fn call(state: &Arc<AppState>, path: &str, body: impl Into<Bytes>) -> Answer {
    send(state, RouteSet::Webhook, post(path, body)).await
}

/// POSTs a review to `path` on a fresh state and returns the AdmissionReview response.
async fn review(path: &str, review: &Value) -> Value {
    call(&state(), path, serde_json::to_vec(review).unwrap())
        .await
        .review()
}

async fn get(state: &Arc<AppState>, routes: RouteSet, path: &str) -> Answer {
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(state, routes, req).await
}

/// Checks a malformed-request denial: allowed false, code 400, a reason, no patch, the uid.
/// Returns the message.
fn assert_bad_request(response: &Value, uid: &str) -> String {
    assert_eq!(response["uid"], uid, "{response}");
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 400, "{response}");
    assert_eq!(response["status"]["reason"], "BadRequest", "{response}");
    assert!(response.get("patch").is_none(), "{response}");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "a denial says why: {response}");
    message.to_owned()
}

/// POSTs raw bytes to both admission endpoints and checks each answers a 400 denial for `uid`.
async fn assert_both_bad_request(body: &[u8], uid: &str) -> Vec<String> {
    let mut messages = Vec::new();
    for path in ["/mutate", "/validate"] {
        let state = state();
        let response = call(&state, path, body.to_vec()).await.review();
        messages.push(assert_bad_request(&response, uid));
        let metrics = state.metrics.render();
        let endpoint = &path[1..];
        let line = format!(
            "pod_hardener_admission_requests_total{{endpoint=\"{endpoint}\",decision=\"invalid\"}} 1"
        );
        assert!(metrics.contains(&line), "{line} missing");
    }
    messages
}

/// The sample review with the pod hardened by `/mutate`.
async fn hardened_example_pod() -> Value {
    let response = review("/mutate", &example_review()).await;
    apply_patch(&example_pod(), &response)
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Replaces the one occurrence of `from` in `body` with `to`.
fn replace_once(body: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = body
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{} not in the body", String::from_utf8_lossy(from)));
    assert!(
        body[at + 1..].windows(from.len()).all(|w| w != from),
        "{} occurs more than once",
        String::from_utf8_lossy(from)
    );
    [&body[..at], to, &body[at + from.len()..]].concat()
}

// ---- The endpoints ----

#[tokio::test]
async fn mutate_hardens_the_example_pod() {
    let state = state();
    let answer = call(&state, "/mutate", EXAMPLE_REVIEW).await;
    let response = answer.review();
    assert_eq!(response["uid"], EXAMPLE_UID);
    assert_eq!(response["allowed"], true);
    assert!(response.get("status").is_none(), "{response}");
    let object = example_pod();
    assert!(
        !restricted_violations(&object).is_empty(),
        "the sample pod must need hardening for this test to mean anything"
    );
    let patch = decode_patch(&response);
    assert!(!patch.0.is_empty());
    let hardened = apply_patch(&object, &response);
    assert_eq!(
        restricted_violations(&hardened),
        Vec::<String>::new(),
        "hardened pod: {hardened:#}"
    );
    let record = hardened["metadata"]["annotations"]["pod-hardener.io/hardened"]
        .as_str()
        .expect("the record annotation");
    let record: Value = serde_json::from_str(record).expect("the record is JSON");
    assert!(record.is_object(), "{record}");
    assert!(
        response["auditAnnotations"]["hardened"].is_string(),
        "{response}"
    );
    let warnings = response["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("pod-hardener set: ")),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn validate_denies_the_unhardened_pod() {
    let response = review("/validate", &example_review()).await;
    assert_eq!(response["uid"], EXAMPLE_UID);
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(response["status"]["reason"], "Forbidden");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("violates PodSecurity \"restricted:latest\": "),
        "{message}"
    );
    assert!(message.contains("pod-hardener could not fix"), "{message}");
    assert!(response.get("patch").is_none());
    assert_eq!(
        response["auditAnnotations"]["enforce-policy"],
        "restricted:latest"
    );
}

#[tokio::test]
async fn validate_allows_the_hardened_pod() {
    let hardened = hardened_example_pod().await;
    let response = review(
        "/validate",
        &pod_review("hardened-1", "CREATE", hardened, None),
    )
    .await;
    assert_eq!(response["uid"], "hardened-1");
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("status").is_none(), "{response}");
    assert!(response.get("warnings").is_none(), "{response}");
}

fn deployment_review(uid: &str, pod_spec: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec}
                }
            },
            "oldObject": null
        }
    })
}

#[tokio::test]
async fn validate_warns_about_a_deployment_and_allows_it() {
    // hostNetwork is never fixed by hardening, so the Pods will be denied: warn, do not deny.
    let spec = json!({"hostNetwork": true, "containers": [{"name": "web", "image": "nginx"}]});
    let response = review("/validate", &deployment_review("dep-1", spec)).await;
    assert_eq!(response["uid"], "dep-1");
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("status").is_none(), "{response}");
    let warnings: Vec<&str> = response["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings.iter().any(
            |w| w.starts_with("would violate PodSecurity \"restricted:latest\": ")
                && w.contains("host namespaces")
        ),
        "{warnings:?}"
    );

    // A template that hardening fully fixes draws no warning: it is judged as hardened.
    let spec = json!({"containers": [{"name": "web", "image": "nginx"}]});
    let response = review("/validate", &deployment_review("dep-2", spec)).await;
    assert_eq!(response["uid"], "dep-2");
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("warnings").is_none(), "{response}");
}

#[tokio::test]
async fn validate_allows_a_pod_update_that_changes_only_labels() {
    let old = example_pod();
    let mut new = old.clone();
    new["metadata"]["labels"]["tier"] = "front".into();
    let response = review(
        "/validate",
        &pod_review("update-1", "UPDATE", new, Some(old.clone())),
    )
    .await;
    assert_eq!(response["uid"], "update-1");
    assert_eq!(response["allowed"], true, "{response}");

    // Control: the same unhardened pod with a changed image is re-evaluated and denied.
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = "nginxinc/nginx-unprivileged:1.28".into();
    let response = review(
        "/validate",
        &pod_review("update-2", "UPDATE", new, Some(old)),
    )
    .await;
    assert_eq!(response["uid"], "update-2");
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 403);
}

#[tokio::test]
async fn mutate_hardens_only_the_new_ephemeral_container() {
    let existing = json!({"name": "old-debug", "image": "busybox:1.36"});
    let mut old = example_pod();
    old["spec"]["ephemeralContainers"] = json!([existing]);
    let mut new = old.clone();
    new["spec"]["ephemeralContainers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "debug", "image": "busybox:1.36", "targetContainerName": "web"}));
    let mut review_json = pod_review("ephemeral-1", "UPDATE", new.clone(), Some(old));
    review_json["request"]["subResource"] = "ephemeralcontainers".into();
    let response = review("/mutate", &review_json).await;
    assert_eq!(response["uid"], "ephemeral-1");
    assert_eq!(response["allowed"], true, "{response}");
    let patch = decode_patch(&response);
    assert!(!patch.0.is_empty(), "{response}");
    let patched = apply_patch(&new, &response);
    for op in serde_json::to_value(&patch).unwrap().as_array().unwrap() {
        let path = op["path"].as_str().unwrap();
        assert!(
            path == "/spec/ephemeralContainers/1"
                || path.starts_with("/spec/ephemeralContainers/1/"),
            "the patch touches more than the new container: {op}"
        );
    }
    assert_eq!(patched["metadata"], new["metadata"]);
    assert_eq!(patched["spec"]["containers"], new["spec"]["containers"]);
    assert_eq!(patched["spec"]["ephemeralContainers"][0], existing);
    let debug = &patched["spec"]["ephemeralContainers"][1];
    assert_eq!(debug["name"], "debug");
    assert_eq!(
        debug["securityContext"]["allowPrivilegeEscalation"], false,
        "{debug}"
    );
}

// ---- Bad input ----

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    for body in [
        &b"{not json"[..],
        b"",
        b"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\", \"request\": {",
        b"null",
        b"[]",
        b"42",
    ] {
        let messages = assert_both_bad_request(body, "").await;
        // `[]` reads as a review with no fields; everything else does not parse.
        assert!(
            messages[0].starts_with("malformed AdmissionReview")
                || messages[0].starts_with("expected apiVersion"),
            "{messages:?}"
        );
    }
    // Trailing garbage after a complete review: the uid is not trusted, the review refused.
    let mut body = EXAMPLE_REVIEW.as_bytes().to_vec();
    body.extend_from_slice(b" {}");
    assert_both_bad_request(&body, "").await;
}

#[tokio::test]
async fn review_without_request_is_a_bad_request() {
    for body in [
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": null}),
        json!({}),
    ] {
        let messages = assert_both_bad_request(&to_bytes(&body), "").await;
        assert!(!messages[0].is_empty());
    }
    let messages = assert_both_bad_request(
        &to_bytes(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})),
        "",
    )
    .await;
    assert!(messages[0].contains("no request"), "{messages:?}");
}

#[tokio::test]
async fn wrong_api_version_is_a_bad_request_echoing_the_uid() {
    let mut body = example_review();
    body["apiVersion"] = "admission.k8s.io/v1beta1".into();
    let messages = assert_both_bad_request(&to_bytes(&body), EXAMPLE_UID).await;
    assert!(
        messages[0].contains("admission.k8s.io/v1beta1"),
        "{messages:?}"
    );
    // The wrong kind is refused the same way.
    let mut body = example_review();
    body["kind"] = "AdmissionRequest".into();
    let messages = assert_both_bad_request(&to_bytes(&body), EXAMPLE_UID).await;
    assert!(messages[0].contains("AdmissionRequest"), "{messages:?}");
    // A missing apiVersion too.
    let mut body = example_review();
    body.as_object_mut().unwrap().remove("apiVersion");
    assert_both_bad_request(&to_bytes(&body), EXAMPLE_UID).await;
}

#[tokio::test]
async fn object_of_the_wrong_shape_is_a_bad_request_echoing_the_uid() {
    let mut object = example_pod();
    object["spec"]["containers"] = "web".into();
    let messages = assert_both_bad_request(
        &to_bytes(&pod_review("shape-1", "CREATE", object, None)),
        "shape-1",
    )
    .await;
    assert!(messages.iter().all(|m| m.contains("spec")), "{messages:?}");

    for (uid, object) in [
        ("shape-2", json!("a pod")),
        ("shape-3", json!([1, 2, 3])),
        ("shape-4", json!({"metadata": {"name": "x"}})),
        ("shape-5", json!({"spec": {"containers": [{"name": 7}]}})),
        (
            "shape-6",
            json!({"metadata": "x", "spec": {"containers": []}}),
        ),
    ] {
        assert_both_bad_request(&to_bytes(&pod_review(uid, "CREATE", object, None)), uid).await;
    }
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    for content_type in [
        Some("text/plain"),
        Some("application/yaml"),
        Some("application/jsonx"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        for path in ["/mutate", "/validate"] {
            let mut req = Request::builder().method(Method::POST).uri(path);
            if let Some(ct) = content_type {
                req = req.header(CONTENT_TYPE, ct);
            }
            let req = req.body(Full::new(Bytes::from_static(EXAMPLE_REVIEW.as_bytes())));
            let answer = send(&state(), RouteSet::Webhook, req.unwrap()).await;
            answer.assert_transport_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    }
    // Parameters and case do not matter.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/mutate")
        .header(CONTENT_TYPE, "Application/JSON; charset=utf-8")
        .body(Full::new(Bytes::from_static(EXAMPLE_REVIEW.as_bytes())))
        .unwrap();
    let response = send(&state(), RouteSet::Webhook, req).await.review();
    assert_eq!(response["uid"], EXAMPLE_UID);
    assert_eq!(response["allowed"], true);
}

/// The sample review padded with spaces to exactly `len` bytes.
fn padded_example(len: usize) -> Vec<u8> {
    let mut body = EXAMPLE_REVIEW.as_bytes().to_vec();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn body_over_the_limit_with_content_length_is_413() {
    let state = state();
    call(&state, "/mutate", padded_example(MAX_BODY + 1))
        .await
        .assert_transport_error(StatusCode::PAYLOAD_TOO_LARGE);
    // A declared length over the limit is refused before the body is read.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/validate")
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, "1000000000000")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    send(&state, RouteSet::Webhook, req)
        .await
        .assert_transport_error(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        state
            .metrics
            .render()
            .contains("pod_hardener_http_errors_total{status=\"413\"} 2")
    );
    // Exactly at the limit is served.
    let response = call(&state, "/mutate", padded_example(MAX_BODY))
        .await
        .review();
    assert_eq!(response["uid"], EXAMPLE_UID);
    assert_eq!(response["allowed"], true);
}

/// `state()` with an in-flight body budget of one largest body and a short request timeout.
/// The request timeout of [`state_with_room_for_one_body`].
const BUDGET_WAIT: Duration = Duration::from_millis(300);

fn state_with_room_for_one_body() -> Arc<AppState> {
    state_with(Limits {
        max_body_bytes: MAX_BODY,
        max_in_flight_body_bytes: MAX_BODY,
        request_timeout: HumanDuration(BUDGET_WAIT),
        ..Limits::default()
    })
}

/// Takes the whole in-flight budget of `state`, as another request's body would.
async fn hold_the_budget(state: &AppState) -> BodyShare {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let body = Full::new(Bytes::from(vec![b' '; MAX_BODY]));
    let (_, share) = state
        .body_budget
        .read(body, Some(MAX_BODY), MAX_BODY, deadline)
        .await
        .unwrap();
    assert_eq!(state.body_budget.available(), 0);
    share
}

#[tokio::test]
async fn a_body_without_room_in_the_budget_waits_until_the_timeout_then_gets_503() {
    let state = state_with_room_for_one_body();
    let held = hold_the_budget(&state).await;
    let in_flight = format!("pod_hardener_request_body_bytes_in_flight {MAX_BODY}");
    let exposition = get(&state, RouteSet::Metrics, "/metrics").await.text();
    assert!(exposition.lines().any(|l| l == in_flight), "{exposition}");
    let started = tokio::time::Instant::now();
    let answer = call(&state, "/mutate", EXAMPLE_REVIEW).await;
    answer.assert_transport_error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() >= BUDGET_WAIT,
        "gave up after {:?}, before requestTimeout",
        started.elapsed()
    );
    assert!(
        answer.text().contains("too many request bodies"),
        "{}",
        answer.text()
    );
    assert_eq!(answer.headers.get(RETRY_AFTER).unwrap(), "1");
    assert!(
        state
            .metrics
            .render()
            .contains("pod_hardener_http_errors_total{status=\"503\"} 1")
    );
    // A request that is refused returns nothing: once the holder is done, reviews are answered.
    drop(held);
    assert_eq!(state.body_budget.available(), MAX_BODY);
    let response = call(&state, "/validate", EXAMPLE_REVIEW).await.review();
    assert_eq!(response["uid"], EXAMPLE_UID);
}

#[tokio::test]
async fn a_body_waiting_for_room_is_answered_when_room_frees_in_time() {
    let state = state_with_room_for_one_body();
    let held = hold_the_budget(&state).await;
    let waiting = tokio::spawn({
        let state = state.clone();
        async move { call(&state, "/mutate", EXAMPLE_REVIEW).await }
    });
    tokio::time::sleep(BUDGET_WAIT / 3).await;
    assert!(!waiting.is_finished(), "read a body without room for it");
    drop(held);
    let response = waiting.await.unwrap().review();
    assert_eq!(response["uid"], EXAMPLE_UID);
    assert_eq!(response["allowed"], true);
    assert_eq!(
        state.body_budget.available(),
        MAX_BODY,
        "the share is returned"
    );
}

#[tokio::test]
async fn body_over_the_limit_without_content_length_is_413() {
    // A sized body without the header.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/mutate")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(padded_example(MAX_BODY + 1))))
        .unwrap();
    send(&state(), RouteSet::Webhook, req)
        .await
        .assert_transport_error(StatusCode::PAYLOAD_TOO_LARGE);

    // A streamed (chunked) body of unknown size: 1 KiB chunks past the limit.
    let chunks = padded_example(MAX_BODY + 4096)
        .chunks(1024)
        .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::copy_from_slice(c))))
        .collect::<Vec<_>>();
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    assert_eq!(body.size_hint().exact(), None);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/validate")
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap();
    send(&state(), RouteSet::Webhook, req)
        .await
        .assert_transport_error(StatusCode::PAYLOAD_TOO_LARGE);

    // The same stream within the limit is served.
    let chunks = padded_example(MAX_BODY)
        .chunks(1024)
        .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::copy_from_slice(c))))
        .collect::<Vec<_>>();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/mutate")
        .header(CONTENT_TYPE, "application/json")
        .body(StreamBody::new(futures_util::stream::iter(chunks)))
        .unwrap();
    let response = send(&state(), RouteSet::Webhook, req).await.review();
    assert_eq!(response["uid"], EXAMPLE_UID);
    assert_eq!(response["allowed"], true);
}

#[tokio::test]
async fn a_body_that_fails_midway_is_a_400() {
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
        Ok(Frame::data(Bytes::from_static(b"{\"apiVersion\":"))),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "peer went away",
        )),
    ];
    let req = Request::builder()
        .method(Method::POST)
        .uri("/mutate")
        .header(CONTENT_TYPE, "application/json")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    send(&state(), RouteSet::Webhook, req)
        .await
        .assert_transport_error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn get_on_mutate_is_405_with_allow_post() {
    for path in ["/mutate", "/validate"] {
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::HEAD] {
            let req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from_static(EXAMPLE_REVIEW.as_bytes())))
                .unwrap();
            let answer = send(&state(), RouteSet::Webhook, req).await;
            answer.assert_transport_error(StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(answer.headers[ALLOW], "POST", "{method} {path}");
        }
    }
    // And the health routes are GET only.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/healthz")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = send(&state(), RouteSet::Webhook, req).await;
    answer.assert_transport_error(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.headers[ALLOW], "GET, HEAD");
}

#[tokio::test]
async fn unknown_path_is_404() {
    let state = state();
    for path in [
        "/",
        "/mutate/",
        "/Mutate",
        "/validate/pods",
        "/admission",
        "/healthz/x",
    ] {
        call(&state, path, EXAMPLE_REVIEW)
            .await
            .assert_transport_error(StatusCode::NOT_FOUND);
        get(&state, RouteSet::Webhook, path)
            .await
            .assert_transport_error(StatusCode::NOT_FOUND);
    }
    // A query string does not change the route.
    let response = call(&state, "/mutate?timeout=10s", EXAMPLE_REVIEW)
        .await
        .review();
    assert_eq!(response["uid"], EXAMPLE_UID);
}

#[tokio::test]
async fn deeply_nested_json_is_a_bad_request() {
    assert_both_bad_request(&[b'['; 10_000], "").await;
    let balanced = [vec![b'['; 10_000], vec![b']'; 10_000]].concat();
    assert_both_bad_request(&balanced, "").await;
    let objects = "{\"a\":".repeat(10_000) + "1" + &"}".repeat(10_000);
    assert_both_bad_request(objects.as_bytes(), "").await;

    // Deep nesting inside the object (serialized before the uid): the review is refused, never
    // a stack overflow, and the uid is echoed.
    let nested = "[".repeat(10_000) + &"]".repeat(10_000);
    let mut review_json = example_review();
    review_json["request"]["object"]["metadata"]["annotations"] = json!({"x": "PLACEHOLDER"});
    let body = replace_once(
        &to_bytes(&review_json),
        b"\"PLACEHOLDER\"",
        nested.as_bytes(),
    );
    // The uid is still readable around the bad part, so it is echoed.
    assert_both_bad_request(&body, EXAMPLE_UID).await;
}

#[tokio::test]
async fn invalid_utf8_is_a_bad_request() {
    assert_both_bad_request(b"\xff\xfe\xfd", "").await;
    // In the uid itself: unreadable.
    let body = replace_once(
        EXAMPLE_REVIEW.as_bytes(),
        EXAMPLE_UID.as_bytes(),
        b"705ab4f5-\xff",
    );
    assert_both_bad_request(&body, "").await;
    // Elsewhere in the object: the review is refused, the uid echoed.
    let body = replace_once(
        EXAMPLE_REVIEW.as_bytes(),
        b"nginxinc/nginx-unprivileged:1.27",
        b"nginx\xc3\x28:1.27",
    );
    // The uid is still readable around the bad part, so it is echoed.
    assert_both_bad_request(&body, EXAMPLE_UID).await;
}

#[tokio::test]
async fn duplicate_keys_are_answered() {
    let body = to_bytes(&example_review());
    // A duplicate uid is ambiguous: refused without echoing either value.
    let dup_uid = replace_once(
        &body,
        format!("\"uid\":\"{EXAMPLE_UID}\"").as_bytes(),
        format!("\"uid\":\"{EXAMPLE_UID}\",\"uid\":\"other\"").as_bytes(),
    );
    assert_both_bad_request(&dup_uid, "").await;
    // Another duplicate request field: refused, the uid echoed.
    let dup_op = replace_once(
        &body,
        b"\"operation\":\"CREATE\"",
        b"\"operation\":\"CREATE\",\"operation\":\"DELETE\"",
    );
    assert_both_bad_request(&dup_op, EXAMPLE_UID).await;
    // A duplicate top-level field: refused, the uid echoed.
    let dup_kind = replace_once(
        &body,
        b"\"kind\":\"AdmissionReview\"",
        b"\"kind\":\"AdmissionReview\",\"kind\":\"AdmissionReview\"",
    );
    assert_both_bad_request(&dup_kind, EXAMPLE_UID).await;
    // Inside the object, the last value wins, as in the API server's decoder: answered normally.
    let dup_in_object = replace_once(
        &body,
        b"\"labels\":{\"app\":\"web\"}",
        b"\"labels\":{\"app\":\"web\"},\"labels\":{\"app\":\"web\"}",
    );
    let response = call(&state(), "/mutate", dup_in_object).await.review();
    assert_eq!(response["uid"], EXAMPLE_UID);
    assert_eq!(response["allowed"], true, "{response}");
}

#[tokio::test]
async fn numbers_out_of_range_are_bad_requests() {
    // Out of range for any JSON number decoder: the review does not parse, but the uid is
    // readable and echoed.
    let mut object = example_pod();
    object["spec"]["securityContext"] = json!({"runAsUser": "BIG"});
    let body = replace_once(
        &to_bytes(&pod_review("num-1", "CREATE", object, None)),
        b"\"BIG\"",
        b"1e400",
    );
    assert_both_bad_request(&body, "num-1").await;
    // Out of range for the field's type (int64, int32): the uid is echoed.
    for (uid, field, big) in [
        (
            "num-2",
            "/spec/securityContext",
            json!({"runAsUser": 18_446_744_073_709_551_615u64}),
        ),
        (
            "num-3",
            "/spec/securityContext",
            json!({"runAsUser": 1.5e30}),
        ),
        (
            "num-4",
            "/spec/containers/0/ports",
            json!([{"containerPort": 99_999_999_999i64}]),
        ),
        ("num-5", "/spec/securityContext", json!({"runAsUser": 1.5})),
    ] {
        let mut object = example_pod();
        let (parent, key) = field.rsplit_once('/').unwrap();
        object.pointer_mut(parent).unwrap()[key] = big;
        let body = to_bytes(&pod_review(uid, "CREATE", object, None));
        assert_both_bad_request(&body, uid).await;
    }
}

#[tokio::test]
async fn null_where_objects_are_expected_is_answered() {
    // Null request, null body: unreadable.
    assert_both_bad_request(b"null", "").await;
    // Null parts of the request or object: refused, the uid echoed.
    for (uid, pointer) in [
        ("null-1", "/request/object"),
        ("null-2", "/request/object/spec"),
        ("null-4", "/request/object/spec/containers/0"),
        ("null-5", "/request/kind"),
        ("null-6", "/request/resource"),
        ("null-7", "/request/userInfo"),
        ("null-8", "/request/operation"),
    ] {
        let mut body = example_review();
        body["request"]["uid"] = uid.into();
        *body.pointer_mut(pointer).unwrap() = Value::Null;
        assert_both_bad_request(&to_bytes(&body), uid).await;
    }
    // Null optional parts (and a null list, which Go's decoder reads as empty too): served.
    for (uid, pointer) in [
        ("null-3", "/request/object/spec/containers"),
        ("null-9", "/request/oldObject"),
        ("null-10", "/request/namespace"),
        ("null-11", "/request/dryRun"),
        ("null-12", "/request/name"),
        ("null-13", "/request/object/metadata/labels"),
        ("null-14", "/request/object/metadata"),
    ] {
        let mut body = example_review();
        body["request"]["uid"] = uid.into();
        *body.pointer_mut(pointer).unwrap() = Value::Null;
        let response = review("/mutate", &body).await;
        assert_eq!(response["uid"], uid);
        assert_eq!(response["allowed"], true, "{pointer}: {response}");
        let hardened = apply_patch(&body["request"]["object"], &response);
        assert_eq!(restricted_violations(&hardened), Vec::<String>::new());
    }
}

#[tokio::test]
async fn unknown_fields_are_allowed_and_ignored() {
    let mut body = example_review();
    body["futureTopLevel"] = json!({"a": 1});
    body["request"]["futureRequestField"] = json!([1, 2]);
    body["request"]["kind"]["extra"] = "x".into();
    body["request"]["userInfo"]["extra"] = json!({"scopes": ["a"]});
    body["request"]["object"]["spec"]["futureSpecField"] = json!(true);
    body["request"]["object"]["spec"]["containers"][0]["futureContainerField"] = json!("x");
    body["request"]["object"]["metadata"]["futureMetaField"] = json!(1);
    let response = review("/mutate", &body).await;
    assert_eq!(response["uid"], EXAMPLE_UID);
    assert_eq!(response["allowed"], true, "{response}");
    let hardened = apply_patch(&body["request"]["object"], &response);
    assert_eq!(restricted_violations(&hardened), Vec::<String>::new());
    assert_eq!(hardened["spec"]["futureSpecField"], true, "kept as sent");

    let mut body = body.clone();
    body["request"]["object"] = hardened;
    let response = review("/validate", &body).await;
    assert_eq!(response["uid"], EXAMPLE_UID);
    assert_eq!(response["allowed"], true, "{response}");
}

#[tokio::test]
async fn each_missing_request_field_is_a_bad_request() {
    for field in ["uid", "kind", "resource", "operation", "object"] {
        let mut body = example_review();
        body["request"].as_object_mut().unwrap().remove(field);
        let uid = if field == "uid" { "" } else { EXAMPLE_UID };
        let messages = assert_both_bad_request(&to_bytes(&body), uid).await;
        if field != "object" {
            assert!(
                messages.iter().all(|m| m.contains(field)),
                "{field}: {messages:?}"
            );
        }
    }
}

// ---- Health, readiness, metrics ----

#[tokio::test]
async fn healthz_is_ok() {
    for routes in [RouteSet::Webhook, RouteSet::Metrics] {
        let answer = get(&state(), routes, "/healthz").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.content_type().starts_with("text/plain"));
        assert_eq!(answer.text(), "ok\n");
    }
}

#[tokio::test]
async fn readyz_follows_serving() {
    let state = state();
    for routes in [RouteSet::Webhook, RouteSet::Metrics] {
        let answer = get(&state, routes, "/readyz").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text(), "ok\n");
    }
    state.serving.store(false, Ordering::Release);
    for routes in [RouteSet::Webhook, RouteSet::Metrics] {
        let answer = get(&state, routes, "/readyz").await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.content_type().starts_with("text/plain"));
    }
    // Liveness does not depend on readiness.
    assert_eq!(
        get(&state, RouteSet::Metrics, "/healthz").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_count_a_patched_mutate() {
    let state = state();
    let response = call(&state, "/mutate", EXAMPLE_REVIEW).await.review();
    assert!(response["patch"].is_string());
    for routes in [RouteSet::Webhook, RouteSet::Metrics] {
        let answer = get(&state, routes, "/metrics").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(
            answer.content_type().starts_with("text/plain"),
            "{}",
            answer.content_type()
        );
        let text = answer.text();
        for line in [
            "pod_hardener_admission_requests_total{endpoint=\"mutate\",decision=\"patched\"} 1",
            "pod_hardener_admission_requests_total{endpoint=\"validate\",decision=\"denied\"} 0",
            "pod_hardener_admission_duration_seconds_count{endpoint=\"mutate\"} 1",
            "pod_hardener_namespace_lookups_total{source=\"static\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    }
}

#[tokio::test]
async fn metrics_route_set_does_not_serve_mutate() {
    let state = state();
    for path in ["/mutate", "/validate"] {
        let answer = send(&state, RouteSet::Metrics, post(path, EXAMPLE_REVIEW)).await;
        answer.assert_transport_error(StatusCode::NOT_FOUND);
    }
    assert!(state.metrics.render().contains(
        "pod_hardener_admission_requests_total{endpoint=\"mutate\",decision=\"patched\"} 0"
    ));
}
