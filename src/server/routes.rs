//! The HTTP routes: `POST /mutate`, `POST /validate`, `GET /healthz`, `GET /readyz`,
//! `GET /metrics`. Transport problems get a 4xx with a reason; anything that reads as an
//! AdmissionReview gets a 200 with an AdmissionReview, denials included.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::metrics::{Endpoint, Metrics};
use crate::admission::{self, AdmissionSettings, Outcome};
use crate::config::Limits;
use crate::namespaces::NamespacePolicies;

/// What the routes share.
#[derive(Debug)]
pub struct AppState {
    /// Limits and timeouts.
    pub limits: Limits,
    /// Admission settings.
    pub admission: AdmissionSettings,
    /// Namespace policies.
    pub namespaces: NamespacePolicies,
    /// Metrics.
    pub metrics: Metrics,
    /// Set once the serving certificate is loaded and the listeners are bound.
    pub serving: AtomicBool,
}

type Rsp = Response<Full<Bytes>>;

fn text(status: StatusCode, body: &'static str) -> Rsp {
    let mut rsp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    rsp
}

fn error(state: &AppState, status: StatusCode, reason: String) -> Rsp {
    state.metrics.record_http_error(status.as_u16());
    let mut rsp = Response::new(Full::new(Bytes::from(reason + "\n")));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    rsp
}

fn json(body: Vec<u8>) -> Rsp {
    let mut rsp = Response::new(Full::new(Bytes::from(body)));
    rsp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    rsp
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSet {
    /// The HTTPS port: admission, health, readiness and metrics.
    Webhook,
    /// The plain-HTTP port: health, readiness and metrics only.
    Metrics,
}

/// Answers one request.
pub async fn handle<B>(
    state: Arc<AppState>,
    routes: RouteSet,
    req: Request<B>,
) -> Result<Rsp, Infallible>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let endpoint = match req.uri().path() {
        "/mutate" if routes == RouteSet::Webhook => Endpoint::Mutate,
        "/validate" if routes == RouteSet::Webhook => Endpoint::Validate,
        "/healthz" | "/readyz" | "/metrics"
            if req.method() != Method::GET && req.method() != Method::HEAD =>
        {
            let mut rsp = error(&state, StatusCode::METHOD_NOT_ALLOWED, "use GET".into());
            rsp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Ok(rsp);
        }
        "/healthz" => return Ok(text(StatusCode::OK, "ok\n")),
        "/readyz" => return Ok(readiness(&state)),
        "/metrics" => {
            let mut rsp = Response::new(Full::new(Bytes::from(state.metrics.render())));
            rsp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return Ok(rsp);
        }
        path => {
            return Ok(error(
                &state,
                StatusCode::NOT_FOUND,
                format!("no route {path:?}: use /mutate, /validate, /healthz, /readyz or /metrics"),
            ));
        }
    };
    if req.method() != Method::POST {
        let mut rsp = error(
            &state,
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} takes POST", req.uri().path()),
        );
        rsp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Ok(rsp);
    }
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Ok(error(
            &state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an AdmissionReview must be sent as Content-Type: application/json".into(),
        ));
    }
    let max = state.limits.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Ok(error(
            &state,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {max} bytes"),
        ));
    }
    let started = Instant::now();
    let body = match tokio::time::timeout(
        state.limits.request_timeout.0,
        Limited::new(req.into_body(), max).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Ok(error(
                &state,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {max} bytes"),
            ));
        }
        Ok(Err(e)) => {
            return Ok(error(
                &state,
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            ));
        }
        Err(_) => {
            return Ok(error(
                &state,
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time".into(),
            ));
        }
    };
    let outcome = decide(&state, endpoint, &body).await;
    state.metrics.record_admission(
        endpoint,
        outcome.decision,
        &outcome.changes,
        &outcome.violations,
        started.elapsed(),
    );
    Ok(json(outcome.response.into_review_json()))
}

async fn decide(state: &AppState, endpoint: Endpoint, body: &[u8]) -> Outcome {
    let started = Instant::now();
    let req = match admission::decode(body) {
        Ok(req) => req,
        Err(e) => {
            tracing::warn!(endpoint = endpoint.as_str(), uid = %e.uid(), reason = %e, "Invalid AdmissionReview");
            return Outcome::invalid(e.into_response());
        }
    };
    let lookup = match req.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => {
            let lookup = state.namespaces.lookup(ns).await;
            state.metrics.record_lookup(lookup.source);
            Some(lookup)
        }
        _ => None,
    };
    let policy = match &lookup {
        Some(l) => l.policy.clone(),
        None => state.namespaces.default_policy(),
    };
    let mut outcome = match endpoint {
        Endpoint::Mutate => admission::mutate::mutate(&req, &policy, &state.admission),
        Endpoint::Validate => admission::validate::validate(&req, &policy, &state.admission),
    };
    if let Some(warning) = lookup.and_then(|l| l.warning) {
        outcome.response.warnings.push(warning);
    }
    tracing::info!(
        endpoint = endpoint.as_str(),
        uid = %req.uid,
        kind = %req.kind.kind,
        namespace = req.namespace.as_deref().unwrap_or(""),
        name = req.name.as_deref().unwrap_or(""),
        operation = req.operation.as_str(),
        dry_run = req.dry_run.unwrap_or(false),
        decision = outcome.decision.as_str(),
        changes = outcome.changes.len(),
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "Admission decision"
    );
    outcome
}

fn readiness(state: &AppState) -> Rsp {
    if !state.serving.load(Ordering::Acquire) {
        return text(StatusCode::SERVICE_UNAVAILABLE, "not serving yet\n");
    }
    if !state.namespaces.is_ready() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "namespace cache not synced\n",
        );
    }
    text(StatusCode::OK, "ok\n")
}
