//! The baseline server: this binary, re-executed with `--baseline-server PORT CERT KEY
//! [--parse]`, serving a fixed AdmissionReview on the same stack as pod-hardener (hyper 1,
//! hyper-util's auto::Builder, tokio-rustls with pod-hardener's own certificate store and rustls
//! configuration). Its arguments are the harness's own protocol with its child, not a user's
//! command line, so they are read by position.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::Value;
use tokio_rustls::TlsAcceptor;

use pod_hardener::server::tls;

/// The first argument that makes this binary the baseline server.
pub(crate) const BASELINE_FLAG: &str = "--baseline-server";
/// The baseline's fixed response.
const BASELINE_RESPONSE: &str = "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":\"705ab4f5-6393-11e8-b7cc-42010a800002\",\"allowed\":true}}";
/// Same as pod-hardener's default `limits.maxBodyBytes`.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// The baseline's optional last argument: parse each review before the fixed answer.
pub(crate) const PARSE_FLAG: &str = "--parse";

/// Whether this baseline parses each review (set once at start-up).
static PARSES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// `--baseline-server PORT CERT KEY [--parse]`: serves until stdin closes (the harness holds
/// the other end, so the server also ends if the harness dies).
pub(crate) fn main(args: &[String]) -> anyhow::Result<()> {
    let (port, cert, key, parses) = match args {
        [port, cert, key] => (port, cert, key, false),
        [port, cert, key, flag] if flag == PARSE_FLAG => (port, cert, key, true),
        _ => bail!("usage: {BASELINE_FLAG} PORT CERT KEY [{PARSE_FLAG}]"),
    };
    let _ = PARSES.set(parses);
    let port: u16 = port.parse().context("PORT")?;
    tls::install_crypto_provider();
    // The same certificate store and rustls ServerConfig as pod-hardener: TLS 1.2 and 1.3,
    // ALPN h2 and http/1.1, ring.
    let store = Arc::new(tls::CertStore::load(Path::new(cert), Path::new(key))?);
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(store)?));
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    // The same runtime flavor as `pod-hardener serve`.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(port, acceptor))
}

async fn serve(port: u16, acceptor: TlsAcceptor) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .with_context(|| format!("bind 127.0.0.1:{port}"))?;
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
            else {
                return;
            };
            // The same builder settings as pod-hardener's connections.
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5));
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(32)
                .initial_stream_window_size(64 * 1024)
                .initial_connection_window_size(33 * 64 * 1024);
            let _ = builder
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle))
                .await;
        });
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (status, body) = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        // What any webhook must do at the least: read the review as JSON. A Value, not typed
        // Kubernetes structs, so this is a floor, not a competitor.
        Ok(body) if PARSES.get() == Some(&true) => {
            match serde_json::from_slice::<Value>(&body.to_bytes()) {
                Ok(review) => {
                    std::hint::black_box(&review);
                    (
                        StatusCode::OK,
                        Bytes::from_static(BASELINE_RESPONSE.as_bytes()),
                    )
                }
                Err(_) => (StatusCode::BAD_REQUEST, Bytes::from_static(b"not JSON\n")),
            }
        }
        Ok(_) => (
            StatusCode::OK,
            Bytes::from_static(BASELINE_RESPONSE.as_bytes()),
        ),
        Err(_) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            Bytes::from_static(b"body too large\n"),
        ),
    };
    let mut rsp = Response::new(Full::new(body));
    *rsp.status_mut() = status;
    rsp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(rsp)
}
