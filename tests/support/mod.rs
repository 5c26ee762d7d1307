//! Helpers shared by the server tests (`tests/server_http.rs`, `tests/server_tls.rs`,
//! `tests/reliability.rs`, `tests/e2e_resilience.rs`, `tests/shutdown_signal.rs`): the sample
//! AdmissionReview, review builders, and reading an AdmissionReview answer; [`tls`] has the TLS
//! server and clients.

// Each integration test is its own crate and uses only part of these helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod tls;

use base64::Engine as _;
use serde_json::Value;

use pod_hardener::pss::{self, LevelVersion};
use pod_hardener::workload::{self, WorkloadKind};

/// `examples/admission-review.json`, as shipped.
pub const EXAMPLE_REVIEW: &str = include_str!("../../examples/admission-review.json");

/// The uid of the sample review.
pub const EXAMPLE_UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

/// The sample review, parsed.
pub fn example_review() -> Value {
    serde_json::from_str(EXAMPLE_REVIEW).expect("examples/admission-review.json is JSON")
}

/// The sample review's `request.object` (an unhardened Pod).
pub fn example_pod() -> Value {
    example_review()["request"]["object"].clone()
}

/// A Pod review like the sample, with another uid, operation, object and old object.
pub fn pod_review(uid: &str, operation: &str, object: Value, old_object: Option<Value>) -> Value {
    let mut review = example_review();
    let request = &mut review["request"];
    request["uid"] = uid.into();
    request["operation"] = operation.into();
    request["object"] = object;
    request["oldObject"] = old_object.unwrap_or(Value::Null);
    review
}

/// The JSON Patch of an AdmissionReview `response`, decoded from base64.
pub fn decode_patch(response: &Value) -> json_patch::Patch {
    assert_eq!(response["patchType"], "JSONPatch", "response: {response}");
    let b64 = response["patch"]
        .as_str()
        .expect("patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("patch is valid base64");
    serde_json::from_slice(&bytes).expect("patch is a JSON Patch")
}

/// `object` with the response's patch applied.
pub fn apply_patch(object: &Value, response: &Value) -> Value {
    let patch = decode_patch(response);
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch.0).expect("the patch applies to the object");
    patched
}

/// The reasons a Pod fails `restricted:latest` (empty when it passes).
pub fn restricted_violations(pod: &Value) -> Vec<String> {
    let parts = workload::extract(WorkloadKind::Pod, pod).expect("a readable pod");
    pss::evaluate(
        &parts.metadata,
        &parts.spec,
        LevelVersion::restricted_latest(),
    )
    .into_iter()
    .map(|v| format!("{} ({})", v.reason, v.detail))
    .collect()
}

/// Parses an AdmissionReview answer and returns its `response`, checking the envelope.
pub fn response_of(body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "the answer is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{review}");
    assert_eq!(review["kind"], "AdmissionReview", "{review}");
    assert!(review["response"].is_object(), "{review}");
    review["response"].clone()
}

// ---- TLS clients and process figures (tests/reliability.rs, tests/e2e_resilience.rs) ----

/// A rustls client configuration trusting the PEM CAs in `ca_pems` and offering `alpn`; with
/// `resumption` false every handshake is a full one (so the peer certificate is the one served
/// now, not the one of the session being resumed).
pub fn tls_client_config(
    ca_pems: &[&str],
    alpn: &[&[u8]],
    resumption: bool,
) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject as _;
    pod_hardener::server::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for ca in ca_pems {
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(cert.expect("a PEM CA")).expect("a usable CA");
        }
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if !resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    std::sync::Arc::new(config)
}

/// One `POST path` of a JSON body over a new TLS connection speaking HTTP/1.1, bounded by
/// `limit` as a whole: the status and the body. `server_name` is what the certificate is checked
/// against (`localhost`, `127.0.0.1`).
pub async fn https_post_once(
    addr: std::net::SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
    server_name: &str,
    path: &str,
    body: impl Into<bytes::Bytes>,
    limit: std::time::Duration,
) -> Result<(hyper::StatusCode, bytes::Bytes), String> {
    use http_body_util::BodyExt as _;
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| format!("server name {server_name:?}: {e}"))?;
    let body = body.into();
    let exchange = async move {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
        let conn = tokio::spawn(conn);
        let req = hyper::Request::post(path)
            .header(hyper::header::HOST, server_name)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::CONTENT_LENGTH, body.len())
            .body(http_body_util::Full::new(body))
            .map_err(|e| e.to_string())?;
        let rsp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = rsp.status();
        let bytes = rsp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer to POST {path}: {e}"))?
            .to_bytes();
        conn.abort();
        Ok((status, bytes))
    };
    tokio::time::timeout(limit, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("POST {path}: no answer within {limit:?}")))
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`); 0 where it cannot be read.
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse().ok()
            })
        })
        .unwrap_or(0)
}

/// This process's resident set size in MiB (`VmRSS`).
pub fn rss_mib() -> f64 {
    proc_status_kib("VmRSS") as f64 / 1024.0
}

/// This process's peak resident set size in MiB (`VmHWM`).
pub fn peak_rss_mib() -> f64 {
    proc_status_kib("VmHWM") as f64 / 1024.0
}

/// The soft limit on open files (`ulimit -n`) from `/proc/self/limits`; `None` when unlimited
/// or unreadable.
pub fn open_files_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How many file descriptors this process has open now.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}
