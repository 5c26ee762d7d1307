//! The load generator's client: keep-alive HTTP/1.1 over TLS 1.3, as the API server calls
//! webhooks, and the check of each answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

use crate::common::UID;
use crate::payload::Payload;

/// What every good response contains (both servers serialize compact JSON).
const UID_NEEDLE: &str = "\"uid\":\"705ab4f5-6393-11e8-b7cc-42010a800002\"";
/// One request's deadline, from send to the end of the response body (unless the target says
/// otherwise).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The messages of the failures that are timeouts (counted apart from other errors by
/// `Errors::add`): no response within `REQUEST_TIMEOUT`, no connection within `CONNECT_TIMEOUT`,
/// an open-loop request still unsent at the phase's hard deadline.
pub(crate) const NO_RESPONSE: &str = "no response within";
pub(crate) const CONNECT_TIMED_OUT: &str = "connect timed out";
pub(crate) const PAST_DEADLINE: &str = "not sent before the phase's hard deadline";

pub(crate) type Sender = http1::SendRequest<Full<Bytes>>;

#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    host: HeaderValue,
    pub(crate) connector: TlsConnector,
    /// Where this server takes every review, whatever the payload's own path: a peer serves its
    /// webhook elsewhere (Gatekeeper's mutation at `/v1/mutate`).
    path: Option<Arc<str>>,
    /// One request's deadline, from send to the end of the response body.
    request_timeout: Duration,
}

impl Target {
    pub(crate) fn new(addr: SocketAddr, connector: TlsConnector) -> Self {
        Target {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header"),
            connector,
            path: None,
            request_timeout: REQUEST_TIMEOUT,
        }
    }

    /// The same server, each request given `timeout` instead of [`REQUEST_TIMEOUT`].
    pub(crate) fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The same server, every review sent to `path`.
    pub(crate) fn with_path(mut self, path: &str) -> Self {
        self.path = Some(path.into());
        self
    }

    fn path_for<'a>(&'a self, payload: &'a Payload) -> &'a str {
        self.path.as_deref().unwrap_or(payload.path)
    }

    /// TCP + TLS 1.3 handshake + HTTP/1.1 handshake, bounded.
    pub(crate) async fn connect(&self) -> anyhow::Result<Sender> {
        tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect(self.addr).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::IpAddress(self.addr.ip().into());
            let stream = self.connector.connect(name, tcp).await?;
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            anyhow::Ok(sender)
        })
        .await
        .map_err(|_| anyhow!("{CONNECT_TIMED_OUT}"))?
    }
}

pub(crate) fn client_tls(ca_pem: &str) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(der?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One review on a kept-alive connection: the response must be a 200 carrying the uid.
pub(crate) async fn review(
    conn: &mut Sender,
    target: &Target,
    payload: &Payload,
) -> Result<Bytes, String> {
    let work = async {
        conn.ready()
            .await
            .map_err(|e| format!("connection unusable: {e}"))?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(target.path_for(payload))
            .header(HOST, target.host.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(payload.body.clone()))
            .map_err(|e| e.to_string())?;
        let rsp = conn
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = rsp.status();
        let body = rsp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("response body: {e}"))?
            .to_bytes();
        if status != StatusCode::OK {
            let shown = &body[..body.len().min(200)];
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(shown).trim()
            ));
        }
        if memchr::memmem::find(&body, UID_NEEDLE.as_bytes()).is_none() {
            return Err("the response does not carry the request's uid".into());
        }
        Ok(body)
    };
    match tokio::time::timeout(target.request_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("{NO_RESPONSE} {:?}", target.request_timeout)),
    }
}

/// Opens `n` connections, 32 handshakes at a time.
pub(crate) async fn connect_many(target: &Target, n: usize) -> (Vec<Sender>, Vec<String>) {
    let mut conns = Vec::with_capacity(n);
    let mut errors = Vec::new();
    let mut remaining = n;
    while remaining > 0 {
        let batch = remaining.min(32);
        remaining -= batch;
        let mut set = JoinSet::new();
        for _ in 0..batch {
            let t = target.clone();
            set.spawn(async move { t.connect().await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(c)) => conns.push(c),
                Ok(Err(e)) => errors.push(format!("connect: {e:#}")),
                Err(e) => errors.push(format!("connect task: {e}")),
            }
        }
    }
    (conns, errors)
}

/// The full check of one response, beyond the uid the hot path checks.
pub(crate) fn describe_response(body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["apiVersion"] != "admission.k8s.io/v1" || v["kind"] != "AdmissionReview" {
        return Err(format!("not an admission.k8s.io/v1 AdmissionReview: {v}"));
    }
    let r = &v["response"];
    if r["uid"] != UID {
        return Err(format!("response.uid is {}", r["uid"]));
    }
    let Some(allowed) = r["allowed"].as_bool() else {
        return Err("response.allowed is not a boolean".into());
    };
    let patch = r["patch"].as_str().map_or(0, str::len);
    let warnings = r["warnings"].as_array().map_or(0, Vec::len);
    Ok(format!(
        "allowed={allowed}, patch {patch} B (base64), {warnings} warnings, response {} B",
        body.len()
    ))
}
