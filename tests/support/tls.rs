//! The real TLS server on 127.0.0.1 and its clients, shared by `tests/server_tls.rs`,
//! `tests/reliability.rs` and `tests/shutdown_signal.rs`: certificates, starting the server in
//! this process with tuned limits, HTTP/1.1 and HTTP/2 clients over TLS, bodies the test feeds
//! by hand, and bounded waits.
//!
//! Every wait is bounded; durations are liveness bounds, never performance assertions.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use pod_hardener::certs::{self, CertRequest, GeneratedCerts};
use pod_hardener::config::{ConfigFile, HumanDuration, Limits, TlsSettings};
use pod_hardener::namespaces::NamespacePolicies;
use pod_hardener::server::routes::AppState;
use pod_hardener::server::{BoundServer, tls};

use super::{EXAMPLE_UID, tls_client_config};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ReqBody = UnsyncBoxBody<Bytes, Infallible>;

/// The liveness bound of a wait that should end promptly (a connect, a request).
pub const WAIT: Duration = Duration::from_secs(10);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---- Certificates ----

/// A fresh CA and a serving certificate for `localhost` and `127.0.0.1`.
pub fn generate() -> GeneratedCerts {
    let mut req = CertRequest::new("pod-hardener", "pod-hardener");
    req.extra_dns.push("localhost".into());
    req.extra_ips.push("127.0.0.1".parse().unwrap());
    certs::generate(&req).unwrap()
}

/// The DER of the first certificate of `pem`.
pub fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Where a test server reads its certificate and key.
pub trait CertFiles {
    fn cert_file(&self) -> PathBuf;
    fn key_file(&self) -> PathBuf;
}

/// A temporary directory holding `ca.crt`, `tls.crt` and `tls.key` as plain files.
pub struct CertDir {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertDir {
    pub fn new(generated: &GeneratedCerts) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let written = certs::write_files(generated, dir.path()).unwrap();
        CertDir {
            _dir: dir,
            ca: written.ca_cert,
            cert: written.cert,
            key: written.key,
        }
    }
}

impl CertFiles for CertDir {
    fn cert_file(&self) -> PathBuf {
        self.cert.clone()
    }

    fn key_file(&self) -> PathBuf {
        self.key.clone()
    }
}

// ---- The server, in this process ----

/// The default limits with short timeouts: `handshake_and_header` for the TLS handshake and the
/// request head, 5 s per request, and the given idle and drain timeouts.
pub fn short_limits(handshake_and_header: Duration, idle: Duration, drain: Duration) -> Limits {
    Limits {
        handshake_timeout: HumanDuration(handshake_and_header),
        header_read_timeout: HumanDuration(handshake_and_header),
        request_timeout: HumanDuration(ms(5000)),
        idle_timeout: HumanDuration(idle),
        drain_timeout: HumanDuration(drain),
        ..Limits::default()
    }
}

/// A server running on the test's runtime (`BoundServer::run`), with its certificate files.
pub struct TestServer<F> {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub files: F,
    pub certs: GeneratedCerts,
    pub state: Arc<AppState>,
    pub token: CancellationToken,
    pub run: JoinHandle<()>,
    pub limits: Limits,
}

/// Starts a server on 127.0.0.1 (both ports) with fresh certificates laid out by `lay_out`,
/// `limits` adjusted by `tune`, and certificate reloads every 100 ms.
pub async fn start_server<F: CertFiles>(
    lay_out: impl FnOnce(&GeneratedCerts) -> F,
    mut limits: Limits,
    tune: impl FnOnce(&mut Limits),
) -> TestServer<F> {
    tls::install_crypto_provider();
    let generated = generate();
    let files = lay_out(&generated);
    tune(&mut limits);
    let file = ConfigFile {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        tls: TlsSettings {
            cert_file: files.cert_file(),
            key_file: files.key_file(),
            reload_interval: HumanDuration(ms(100)),
        },
        limits,
        ..ConfigFile::default()
    };
    let limits = file.limits.clone();
    let config = file.validate().unwrap();
    let namespaces = NamespacePolicies::fixed(&config.defaults);
    let server = BoundServer::bind(config, namespaces).await.unwrap();
    let addr = server.webhook_addr().unwrap();
    let metrics_addr = server.metrics_addr().unwrap();
    let state = server.state();
    let token = CancellationToken::new();
    let run = tokio::spawn(server.run(token.clone()));
    TestServer {
        addr,
        metrics_addr,
        files,
        certs: generated,
        state,
        token,
        run,
        limits,
    }
}

impl<F> TestServer<F> {
    /// Cancels the server and waits for `run` to return within the drain deadline plus `slack`.
    pub async fn stop(self, slack: Duration) {
        self.token.cancel();
        tokio::time::timeout(self.limits.drain_timeout.0 + slack, self.run)
            .await
            .expect("run returns within the drain deadline")
            .expect("run does not panic");
    }

    /// A metric's value from the server's exposition.
    pub fn metric(&self, series: &str) -> u64 {
        metric_of(&self.state, series)
    }

    pub fn open_connections(&self) -> u64 {
        self.metric("pod_hardener_open_connections")
    }

    /// A client configuration trusting the server's CA and offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        tls_client_config(&[&self.certs.ca_pem], alpn, true)
    }
}

/// A metric's value from the exposition of `state`; panics when the series is missing.
pub fn metric_of(state: &AppState, series: &str) -> u64 {
    state
        .metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series}"))
}

/// Polls `cond` every 20 ms; panics after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let polled = tokio::time::timeout(limit, async {
        while !cond() {
            tokio::time::sleep(ms(20)).await;
        }
    })
    .await;
    assert!(
        polled.is_ok(),
        "timed out after {limit:?} waiting for {what}"
    );
}

/// `GET path` on a plain-HTTP port (metrics, health) within `limit`: the status.
pub async fn probe(addr: SocketAddr, path: &str, limit: Duration) -> Result<u16, String> {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&answer);
        text.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not HTTP: {text:.80}"))
    };
    tokio::time::timeout(limit, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}

// ---- Clients ----

/// A TCP connection to `addr` and a TLS handshake checking the certificate for `localhost`.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

pub enum Sender {
    H1(http1::SendRequest<ReqBody>),
    H2(http2::SendRequest<ReqBody>),
}

/// An HTTP client over one TLS (or plain) connection; dropping it drops the connection.
pub struct Client {
    pub sender: Sender,
    /// The connection task; it ends when the connection closes.
    pub conn: JoinHandle<Result<(), hyper::Error>>,
    /// The certificate the server presented (empty over plain HTTP).
    pub peer_cert: Vec<u8>,
    /// The protocol ALPN chose, if any.
    pub alpn: Option<Vec<u8>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// A body of the given bytes.
pub fn body(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// A body fed through a channel, so the test decides when it arrives.
pub fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, ReqBody) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    (tx, StreamBody::new(stream).boxed_unsync())
}

/// Sends `json` through `tx` in two halves `pause` apart, then ends the body.
pub async fn send_in_halves(
    tx: tokio::sync::mpsc::Sender<Bytes>,
    json: &[u8],
    pause: Duration,
) -> Result<(), tokio::sync::mpsc::error::SendError<Bytes>> {
    let (first, second) = json.split_at(json.len() / 2);
    tx.send(Bytes::copy_from_slice(first)).await?;
    tokio::time::sleep(pause).await;
    tx.send(Bytes::copy_from_slice(second)).await
}

/// An answer read in full.
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Bytes,
}

impl Answer {
    /// The start of the body, for messages.
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
}

/// Reads an answer's body in full (unbounded: the caller bounds it).
pub async fn read_answer(rsp: Response<Incoming>) -> Result<Answer, BoxError> {
    let status = rsp.status();
    let content_type = rsp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = rsp.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

/// Awaits the answer to a request sent in its own task, reads it in full and checks that it is
/// the patched review of `uid`, all within `limit`.
pub async fn patched_answer(
    answer: JoinHandle<Result<Response<Incoming>, hyper::Error>>,
    uid: &str,
    limit: Duration,
) -> Result<(), String> {
    tokio::time::timeout(limit, async {
        let rsp = answer
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let answer = read_answer(rsp).await.map_err(|e| e.to_string())?;
        check_patched(&answer, uid)
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}

/// A request whose body the test feeds (`body`); `continued` fires when the server asks for the
/// body with its `100 Continue`: from then on the server has accepted the request.
pub struct HeldRequest {
    pub body: tokio::sync::mpsc::Sender<Bytes>,
    pub answer: JoinHandle<Result<Response<Incoming>, hyper::Error>>,
    pub continued: Arc<tokio::sync::Notify>,
}

impl Client {
    /// Connects over TLS and speaks what ALPN chose.
    pub async fn connect(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, BoxError> {
        let stream = tls_connect(addr, config).await?;
        Self::over(stream).await
    }

    /// Speaks what ALPN chose over an established TLS stream.
    pub async fn over(stream: TlsStream<TcpStream>) -> Result<Self, BoxError> {
        let (_, session) = stream.get_ref();
        let peer_cert = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(stream);
        if alpn.as_deref() == Some(b"h2") {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            Ok(Client {
                sender: Sender::H2(sender),
                conn: tokio::spawn(conn),
                peer_cert,
                alpn,
            })
        } else {
            let (sender, conn) = http1::handshake(io).await?;
            Ok(Client {
                sender: Sender::H1(sender),
                conn: tokio::spawn(conn),
                peer_cert,
                alpn,
            })
        }
    }

    /// Connects over plain HTTP/1.1 (the metrics port).
    pub async fn connect_plain(addr: SocketAddr) -> Result<Self, BoxError> {
        let tcp = TcpStream::connect(addr).await?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
        Ok(Client {
            sender: Sender::H1(sender),
            conn: tokio::spawn(conn),
            peer_cert: Vec::new(),
            alpn: None,
        })
    }

    /// A request for `path`, with the URI form the protocol wants.
    pub fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        match self.sender {
            Sender::H1(_) => Request::builder()
                .method(method)
                .uri(path)
                .header(HOST, "localhost"),
            Sender::H2(_) => Request::builder()
                .method(method)
                .uri(format!("https://localhost{path}")),
        }
    }

    pub async fn send(
        &mut self,
        req: Request<ReqBody>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }

    /// POSTs a JSON body with its Content-Length and reads the answer, all within `limit`.
    pub async fn post(
        &mut self,
        path: &str,
        json: impl Into<Bytes>,
        limit: Duration,
    ) -> Result<Answer, BoxError> {
        let json = json.into();
        let req = self
            .request(Method::POST, path)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, json.len())
            .body(body(json))?;
        self.exchange(req, limit).await
    }

    /// GETs `path` and reads the answer, all within `limit`.
    pub async fn get(&mut self, path: &str, limit: Duration) -> Result<Answer, BoxError> {
        let req = self.request(Method::GET, path).body(body(Bytes::new()))?;
        self.exchange(req, limit).await
    }

    /// Sends `req` and reads the answer in full, all within `limit`.
    pub async fn exchange(
        &mut self,
        req: Request<ReqBody>,
        limit: Duration,
    ) -> Result<Answer, BoxError> {
        tokio::time::timeout(limit, async {
            let rsp = self.send(req).await?;
            read_answer(rsp).await
        })
        .await
        .map_err(|_| format!("no answer within {limit:?}"))?
    }

    /// Starts a JSON `POST path` of `len` bytes over HTTP/1.1 with `Expect: 100-continue`; the
    /// test sends the body through the returned channel. Fails when the connection cannot take a
    /// request any more.
    pub async fn post_held(&mut self, path: &str, len: usize) -> Result<HeldRequest, hyper::Error> {
        let (tx, body) = channel_body();
        let mut req = self
            .request(Method::POST, path)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, len)
            .header(EXPECT, "100-continue")
            .body(body)
            .unwrap();
        let continued = Arc::new(tokio::sync::Notify::new());
        let notify = continued.clone();
        hyper::ext::on_informational(&mut req, move |rsp| {
            if rsp.status() == StatusCode::CONTINUE {
                notify.notify_one();
            }
        });
        let Sender::H1(sender) = &mut self.sender else {
            unreachable!("`Expect: 100-continue` is sent over HTTP/1.1 only")
        };
        sender.ready().await?;
        Ok(HeldRequest {
            body: tx,
            answer: tokio::spawn(sender.send_request(req)),
            continued,
        })
    }
}

/// Checks that new connections to the HTTPS port at `addr` are refused or closed without a
/// handshake, and that the port ends up refusing them. Returns how many connected (the backlog)
/// and were closed before a handshake.
pub async fn assert_new_connections_refused(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> usize {
    let mut closed = 0;
    let refused = tokio::time::timeout(WAIT, async {
        loop {
            match TcpStream::connect(addr).await {
                Err(_) => return,
                Ok(tcp) => {
                    let name = ServerName::try_from("localhost").unwrap();
                    let handshake = tokio::time::timeout(
                        WAIT,
                        TlsConnector::from(config.clone()).connect(name, tcp),
                    )
                    .await
                    .expect("a connection after shutdown is closed at once");
                    assert!(
                        handshake.is_err(),
                        "a connection after shutdown completed a handshake"
                    );
                    closed += 1;
                }
            }
            tokio::time::sleep(ms(20)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the listener stays open after shutdown");
    closed
}

// ---- Answers ----

/// Checks an AdmissionReview answer: 200, JSON, the envelope, the uid echoed. Returns the
/// `response`.
pub fn review_answer(answer: &Answer, uid: &str) -> Result<Value, String> {
    if answer.status != StatusCode::OK {
        return Err(format!("status {}: {}", answer.status, answer.text()));
    }
    let review: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| format!("not JSON ({e}): {}", answer.text()))?;
    if review["apiVersion"] != "admission.k8s.io/v1" || review["kind"] != "AdmissionReview" {
        return Err(format!("not an AdmissionReview: {}", answer.text()));
    }
    let response = &review["response"];
    if response["uid"] != uid {
        return Err(format!("uid {} instead of {uid}", response["uid"]));
    }
    Ok(response.clone())
}

/// A review of the sample Pod with `uid` on `/mutate`: allowed with a patch.
pub fn check_patched(answer: &Answer, uid: &str) -> Result<(), String> {
    let response = review_answer(answer, uid)?;
    if response["allowed"] != true || response["patchType"] != "JSONPatch" {
        return Err(format!("not a patched admission: {response}"));
    }
    Ok(())
}

/// The sample review on `/mutate`: allowed with a patch.
pub fn check_mutated(answer: &Answer) -> Result<(), String> {
    check_patched(answer, EXAMPLE_UID)
}
