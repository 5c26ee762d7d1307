//! The transport on its own (issue 16, item 4): `server::transport` serving a trivial echo
//! service, not the admission routes, over plain HTTP/1.1, plain HTTP/2 and TLS. Proves that the
//! transport knows nothing of admission, and checks what it alone is responsible for: the
//! connection cap of each listener, the connection observer, the `conn` span naming the client
//! (inherited by the tasks HTTP/2 spawns for its streams), and the two-stage drain.
//!
//! Every wait is bounded; everything stays on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::header::HOST;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use pod_hardener::server::tls::{self, CertStore};
use pod_hardener::server::transport::{ConnectionObserver, Connections, Listener, TransportLimits};
use support::tls::{CertDir, Client, WAIT, generate, ms};
use support::tls_client_config;

fn limits(max_connections: usize) -> TransportLimits {
    TransportLimits {
        max_connections,
        max_concurrent_streams: 8,
        handshake_timeout: Duration::from_secs(5),
        header_read_timeout: Duration::from_secs(5),
        first_request_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
    }
}

/// Counts connections opened and closed.
#[derive(Default)]
struct Counted {
    opened: AtomicUsize,
    closed: AtomicUsize,
}

impl ConnectionObserver for Counted {
    fn opened(&self) {
        self.opened.fetch_add(1, Ordering::SeqCst);
    }

    fn closed(&self) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Answers `echo PATH`, after `delay` when the path is `/slow`, logging a line inside the
/// request (HTTP/2 runs it as its own task).
async fn echo(
    req: Request<Incoming>,
    delay: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/slow" {
        tokio::time::sleep(delay).await;
    }
    tracing::info!(%path, "echo answered");
    Ok(Response::new(Full::new(Bytes::from(format!(
        "echo {path}"
    )))))
}

/// A plain-HTTP listener on 127.0.0.1 serving [`echo`], its accept loop running.
struct Echo {
    addr: SocketAddr,
    connections: Connections,
    observed: Arc<Counted>,
    shutdown: CancellationToken,
    accepting: tokio::task::JoinHandle<()>,
}

fn start_echo(limits: TransportLimits, tls: Option<TlsAcceptor>, slow: Duration) -> Echo {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), tls, limits).unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let connections = Connections::new(shutdown.clone());
    let observed = Arc::new(Counted::default());
    let accepting = connections.serve(
        listener,
        service_fn(move |req| echo(req, slow)),
        observed.clone(),
    );
    Echo {
        addr,
        connections,
        observed,
        shutdown,
        accepting,
    }
}

async fn h1(addr: SocketAddr) -> http1::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn h2(addr: SocketAddr) -> (http2::SendRequest<Full<Bytes>>, SocketAddr) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    (sender, local)
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header(HOST, "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn text(rsp: Response<Incoming>) -> (StatusCode, String) {
    let status = rsp.status();
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {WAIT:?}"))
}

#[tokio::test]
async fn serves_a_service_other_than_the_admission_routes_over_http1_and_http2() {
    let server = start_echo(limits(8), None, Duration::ZERO);
    let mut one = h1(server.addr).await;
    let rsp = within("HTTP/1.1", one.send_request(get("/mutate")))
        .await
        .unwrap();
    assert_eq!(
        text(rsp).await,
        (StatusCode::OK, "echo /mutate".to_owned()),
        "the transport answers with the service it was given, whatever the path"
    );
    let (mut two, _) = h2(server.addr).await;
    let rsp = within("HTTP/2", two.send_request(get("http://localhost/anything")))
        .await
        .unwrap();
    assert_eq!(text(rsp).await, (StatusCode::OK, "echo /anything".into()));
    assert_eq!(server.observed.opened.load(Ordering::SeqCst), 2);
    assert_eq!(server.connections.open(), 2);
}

#[tokio::test]
async fn serves_the_service_over_tls_with_alpn() {
    tls::install_crypto_provider();
    let generated = generate();
    let files = CertDir::new(&generated);
    let store = Arc::new(CertStore::load(&files.cert, &files.key).unwrap());
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(store).unwrap()));
    let server = start_echo(limits(8), Some(acceptor), Duration::ZERO);
    for alpn in [b"h2".as_slice(), b"http/1.1"] {
        let config = tls_client_config(&[&generated.ca_pem], &[alpn], true);
        let mut client = Client::connect(server.addr, config).await.unwrap();
        assert_eq!(client.alpn.as_deref(), Some(alpn));
        let answer = client.get("/tls", WAIT).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(&answer.body[..], b"echo /tls");
    }
}

#[tokio::test]
async fn the_connection_cap_belongs_to_the_listener() {
    let server = start_echo(limits(2), None, Duration::ZERO);
    let other = start_echo(limits(2), None, Duration::ZERO);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut sender = h1(server.addr).await;
        within("a connection under the cap", sender.send_request(get("/")))
            .await
            .unwrap();
        held.push(sender);
    }
    // The third connects (the backlog) but is not served while two are open...
    let mut third = h1(server.addr).await;
    let waiting = tokio::spawn(async move { third.send_request(get("/third")).await });
    tokio::time::sleep(ms(500)).await;
    assert!(!waiting.is_finished(), "served past the cap of 2");
    // ...while another listener's cap is untouched.
    let mut elsewhere = h1(other.addr).await;
    within("the other listener", elsewhere.send_request(get("/")))
        .await
        .unwrap();
    // One closes: the third is served.
    drop(held.pop());
    let rsp = within("the third connection", waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text(rsp).await.1, "echo /third");
    tokio::time::timeout(WAIT, async {
        while server.observed.closed.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(ms(10)).await;
        }
    })
    .await
    .expect("the closed connection is observed");
}

/// Log lines written by the test's subscriber.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn every_request_logs_inside_a_span_naming_its_client() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The process-wide subscriber, not a thread-local one: with a thread-local one, a callsite
    // first reached by a parallel test (no subscriber there) could be cached as disabled. This
    // is the only test of the file that sets one; its paths are unique to it.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let clients = runtime.block_on(async {
        let server = start_echo(limits(8), None, Duration::ZERO);
        let (mut first, first_addr) = h2(server.addr).await;
        let (mut second, second_addr) = h2(server.addr).await;
        for (sender, path) in [(&mut first, "/span-one"), (&mut second, "/span-two")] {
            let rsp = within(
                path,
                sender.send_request(get(&format!("http://localhost{path}"))),
            )
            .await
            .unwrap();
            assert_eq!(rsp.status(), StatusCode::OK);
        }
        [(first_addr, "/span-one"), (second_addr, "/span-two")]
    });
    let log = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    for (client, path) in clients {
        let line = log
            .lines()
            .find(|l| l.contains("echo answered") && l.contains(&format!("path={path}")))
            .unwrap_or_else(|| panic!("no log line for {path}:\n{log}"));
        assert!(
            line.contains(&format!("conn{{client={client}}}")),
            "the request on {client} logged outside its connection's span: {line}"
        );
    }
}

#[tokio::test]
async fn drain_finishes_requests_in_flight_and_drops_what_outlives_the_deadline() {
    // In time: a 200 ms request in flight when shutdown starts is answered.
    let server = start_echo(limits(8), None, ms(200));
    let mut sender = h1(server.addr).await;
    let answer = tokio::spawn(sender.send_request(get("/slow")));
    tokio::time::sleep(ms(50)).await;
    server.shutdown.cancel();
    within("the accept loop", server.accepting).await.unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "the listener is closed once the accept loop ends"
    );
    within(
        "the drain",
        server.connections.drain(Duration::from_secs(5)),
    )
    .await;
    let rsp = within("the slow answer", answer).await.unwrap().unwrap();
    assert_eq!(text(rsp).await.1, "echo /slow");

    // Too late: a request that outlives the deadline has its connection dropped.
    let server = start_echo(limits(8), None, Duration::from_secs(60));
    let mut sender = h1(server.addr).await;
    let answer = tokio::spawn(sender.send_request(get("/slow")));
    tokio::time::sleep(ms(50)).await;
    server.shutdown.cancel();
    let started = Instant::now();
    within("the drain", server.connections.drain(ms(300))).await;
    let drained = started.elapsed();
    assert!(drained < Duration::from_secs(2), "drain took {drained:?}");
    let result = within("the dropped connection", answer).await.unwrap();
    assert!(result.is_err(), "a request past the deadline was answered");
    assert_eq!(
        server.observed.opened.load(Ordering::SeqCst),
        server.observed.closed.load(Ordering::SeqCst),
        "every connection closed"
    );
}
