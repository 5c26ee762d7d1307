//! The HTTP routes: `POST /mutate`, `POST /validate`, `GET /healthz`, `GET /readyz`,
//! `GET /metrics`. Transport problems get a 4xx with a reason; anything that reads as an
//! AdmissionReview gets a 200 with an AdmissionReview, denials included.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};

use super::budget::{BodyBudget, BodyError};
use super::metrics::{self, Endpoint, Metrics};
use crate::admission::{self, AdmissionRequest, AdmissionSettings, Outcome, ReviewObject};
use crate::harden::{Control, ImageCatalog, Profile};
use crate::namespaces::NamespacePolicies;
use crate::policy::{HardenMode, NamespacePolicy};
use crate::registry::{ImageLookups, PodPullSecrets};
use crate::workload::WorkloadKind;

/// What one admission request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest request body; 413 beyond it.
    pub max_body_bytes: usize,
    /// Request-body bytes all requests together may hold; 503 for a request that finds no room
    /// before its deadline.
    pub max_in_flight_body_bytes: usize,
    /// Deadline to receive a request's body (the wait for room in the budget included).
    pub request_timeout: Duration,
}

/// What the routes share: their limits, the admission settings and namespace policies the
/// decisions read, the metrics they record, and readiness.
#[derive(Debug)]
pub struct AppState {
    /// Limits of each request.
    pub requests: RequestLimits,
    /// The in-flight body budget (`requests.max_in_flight_body_bytes`).
    pub body_budget: BodyBudget,
    /// Admission settings.
    pub admission: AdmissionSettings,
    /// Namespace policies.
    pub namespaces: NamespacePolicies,
    /// What the server counts.
    pub metrics: Metrics,
    /// Set while the listeners accept connections; `/readyz` answers 503 otherwise.
    pub serving: AtomicBool,
    /// Image lookups, when enabled.
    pub images: Option<ImageLookups>,
}

impl AppState {
    /// Fresh state: no metrics yet, not serving yet.
    pub fn new(
        requests: RequestLimits,
        admission: AdmissionSettings,
        namespaces: NamespacePolicies,
    ) -> Self {
        AppState {
            requests,
            body_budget: BodyBudget::new(requests.max_in_flight_body_bytes),
            admission,
            namespaces,
            metrics: Metrics::default(),
            serving: AtomicBool::new(false),
            images: None,
        }
    }

    /// The same state, deciding with image lookups.
    #[must_use]
    pub fn with_images(mut self, images: Option<ImageLookups>) -> Self {
        self.images = images;
        self
    }
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
    state.metrics.record_http_error(status);
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

/// The routes of one listener as a hyper service.
#[derive(Debug, Clone)]
pub struct Routes {
    state: Arc<AppState>,
    set: RouteSet,
}

impl Routes {
    /// The routes `set` over `state`.
    pub fn new(state: Arc<AppState>, set: RouteSet) -> Self {
        Routes { state, set }
    }
}

impl<B> hyper::service::Service<Request<B>> for Routes
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Rsp;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Rsp, Infallible>> + Send>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        Box::pin(handle(self.state.clone(), self.set, req))
    }
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
            let mut exposition = state.metrics.render();
            if let Some(images) = &state.images {
                metrics::write_image_lookups(&mut exposition, images);
            }
            let budget = &state.body_budget;
            metrics::write_gauge(
                &mut exposition,
                "pod_hardener_request_body_bytes_in_flight",
                "Request-body bytes held by requests being read or decided, out of limits.maxInFlightBodyBytes.",
                u64::try_from(budget.total().saturating_sub(budget.available()))
                    .unwrap_or(u64::MAX),
            );
            let mut rsp = Response::new(Full::new(Bytes::from(exposition)));
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
    let max = state.requests.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Ok(body_error(&state, &BodyError::TooLarge { max }));
    }
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + state.requests.request_timeout;
    let declared = declared.and_then(|n| usize::try_from(n).ok());
    // The share of the budget is held until the decision is made: the body and what is decoded
    // from it live until then.
    let (body, _share) = match state
        .body_budget
        .read(req.into_body(), declared, max, deadline)
        .await
    {
        Ok(read) => read,
        Err(e) => return Ok(body_error(&state, &e)),
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

/// The transport error for a body that could not be read.
fn body_error(state: &AppState, e: &BodyError) -> Rsp {
    let status = match e {
        BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::TimedOut => StatusCode::REQUEST_TIMEOUT,
        BodyError::NoBudget { .. } => StatusCode::SERVICE_UNAVAILABLE,
        BodyError::Read(_) => StatusCode::BAD_REQUEST,
    };
    let mut rsp = error(state, status, e.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // Room in the budget frees as soon as the bodies ahead are decided: milliseconds.
        rsp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    rsp
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
    let images = match &state.images {
        Some(lookups) => image_catalog(lookups, &req, &policy, &state.admission, endpoint).await,
        None => None,
    };
    let mut outcome = match endpoint {
        Endpoint::Mutate => {
            admission::mutate::mutate_with_images(&req, &policy, &state.admission, images)
        }
        Endpoint::Validate => {
            admission::validate::validate_with_images(&req, &policy, &state.admission, images)
        }
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

/// What the lookups know of the images of the request's pod (or pod template), when its decision
/// can use it: a create (or new ephemeral containers) that hardening will fill `runAsNonRoot`
/// for. `/mutate` hardens Pods; `/validate` warns about workloads as their Pods will fare.
async fn image_catalog(
    lookups: &ImageLookups,
    req: &AdmissionRequest,
    policy: &NamespacePolicy,
    settings: &AdmissionSettings,
    endpoint: Endpoint,
) -> Option<ImageCatalog> {
    let kind = WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind)?;
    let relevant = match endpoint {
        Endpoint::Mutate => {
            kind == WorkloadKind::Pod
                && policy.mode != HardenMode::Off
                && matches!(
                    (req.operation, req.sub_resource.as_deref()),
                    (admission::Operation::Create, None)
                        | (admission::Operation::Update, Some("ephemeralcontainers"))
                )
        }
        Endpoint::Validate => {
            kind != WorkloadKind::Pod
                && policy.mode == HardenMode::Harden
                && req.sub_resource.is_none()
                && matches!(
                    req.operation,
                    admission::Operation::Create | admission::Operation::Update
                )
        }
    };
    if !relevant
        || settings.exemptions.of_request(req).is_some()
        || !Profile::for_level(policy.enforce.level, &settings.hardening).has(Control::RunAsNonRoot)
    {
        return None;
    }
    let default = &lookups.settings().default_platform;
    let found = match req.object.as_ref()? {
        ReviewObject::Pod(pod) => crate::registry::spec_images(&pod.parts.spec, default),
        ReviewObject::Json(object) => {
            crate::registry::pod_images(kind.pod_spec_of(object)?, default)
        }
    };
    if found.images.is_empty() {
        return None;
    }
    // Built only when they will be read: most servers never read Pods' Secrets.
    let pull_secrets = req
        .namespace
        .as_deref()
        .filter(|_| lookups.reads_pull_secrets())
        .and_then(|ns| PodPullSecrets::new(ns, &found.pull_secrets));
    Some(
        lookups
            .catalog(&found.images, &found.platform, pull_secrets.as_ref())
            .await,
    )
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
