//! The webhook server over real TLS on 127.0.0.1 (issue 4, "Acceptance"): HTTP/1.1 and HTTP/2 by
//! ALPN, certificate rotation without a failed request, graceful shutdown, protocol and cipher
//! floors, and the handshake, header-read and idle timeouts.
//!
//! Every wait is bounded by `tokio::time::timeout`; durations are only liveness bounds, never
//! performance assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use pod_hardener::certs::GeneratedCerts;
use pod_hardener::config::{HumanDuration, Limits};
use support::tls::{
    Answer, CertDir, Client, HeldRequest, Sender, WAIT, assert_new_connections_refused, der,
    generate, ms, read_answer, send_in_halves, short_limits, start_server, tls_connect, wait_until,
};
use support::{
    EXAMPLE_REVIEW, EXAMPLE_UID, apply_patch, example_pod, response_of, tls_client_config,
};

/// A running server with its own certificate directory.
type TestServer = support::tls::TestServer<CertDir>;

/// Slack on top of a server timeout before the test gives up.
const MARGIN: Duration = Duration::from_secs(4);

/// Starts a server with short timeouts; `tune` adjusts the limits.
async fn start(tune: impl FnOnce(&mut Limits)) -> TestServer {
    let limits = short_limits(ms(1000), Duration::from_secs(30), ms(3000));
    start_server(CertDir::new, limits, tune).await
}

/// Checks the answer to the sample review on `/mutate`: patched, and the patch hardens the pod.
fn assert_mutated(answer: &Answer) {
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.content_type, "application/json");
    let response = response_of(&answer.body);
    assert_eq!(response["uid"], EXAMPLE_UID);
    assert_eq!(response["allowed"], true);
    let hardened = apply_patch(&example_pod(), &response);
    assert_eq!(
        support::restricted_violations(&hardened),
        Vec::<String>::new()
    );
}

/// Replaces `path` the way a careful writer does: a temporary file beside it, then a rename.
fn replace_file(path: &Path, contents: &[u8]) {
    let name = path.file_name().unwrap().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.new"));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Installs a new pair: the key first, then the certificate (each atomically).
fn install_pair(server: &TestServer, cert_pem: &[u8], key_pem: &[u8]) {
    replace_file(&server.files.key, key_pem);
    replace_file(&server.files.cert, cert_pem);
}

/// Reads until the peer closes or resets the connection; returns how long that took, or panics
/// after `limit`.
async fn wait_for_close<R: tokio::io::AsyncRead + Unpin>(stream: &mut R, limit: Duration) {
    let closed = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server did not close the connection within {limit:?}"
    );
}

// ---- (a) HTTP/1.1 and HTTP/2 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutate_over_http1_and_http2() {
    let server = start(|_| {}).await;
    let mut mutated = 0;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let config = server.client_config(&[alpn]);
        let mut client = Client::connect(server.addr, config).await.unwrap();
        assert_eq!(client.alpn.as_deref(), Some(alpn), "negotiated ALPN");
        assert_eq!(client.peer_cert, der(&server.certs.cert_pem));
        // Two requests on one connection: keep-alive (HTTP/1.1) and streams (HTTP/2).
        for _ in 0..2 {
            assert_mutated(&client.post("/mutate", EXAMPLE_REVIEW, WAIT).await.unwrap());
            mutated += 1;
        }
        let answer = client
            .post("/validate", EXAMPLE_REVIEW, WAIT)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        let response = response_of(&answer.body);
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 403);
        // Health on the HTTPS port as well.
        let answer = client.get("/healthz", WAIT).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
    }
    // A client offering both protocols gets h2 (the server's preference).
    let config = server.client_config(&[b"h2", b"http/1.1"]);
    let client = Client::connect(server.addr, config).await.unwrap();
    assert_eq!(client.alpn.as_deref(), Some(&b"h2"[..]));
    // A client without ALPN gets HTTP/1.1.
    let config = server.client_config(&[]);
    let mut client = Client::connect(server.addr, config).await.unwrap();
    assert_eq!(client.alpn, None);
    assert_mutated(&client.post("/mutate", EXAMPLE_REVIEW, WAIT).await.unwrap());
    mutated += 1;

    // The plain-HTTP port: health, readiness, metrics; no admission.
    let mut plain = Client::connect_plain(server.metrics_addr).await.unwrap();
    assert_eq!(
        plain.get("/healthz", WAIT).await.unwrap().status,
        StatusCode::OK
    );
    assert_eq!(
        plain.get("/readyz", WAIT).await.unwrap().status,
        StatusCode::OK
    );
    let metrics = plain.get("/metrics", WAIT).await.unwrap();
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    let line = format!(
        "pod_hardener_admission_requests_total{{endpoint=\"mutate\",decision=\"patched\"}} {mutated}"
    );
    assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    let answer = plain.post("/mutate", EXAMPLE_REVIEW, WAIT).await.unwrap();
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // The TLS port does not speak plain HTTP.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut got)).await;
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"));

    server.stop(MARGIN).await;
}

// ---- (b) rotation ----

/// Sequential keep-alive requests, 25 per connection, until `stop`, with connections made in
/// turn with each of `configs`; returns the failures.
async fn load(
    addr: SocketAddr,
    configs: [Arc<rustls::ClientConfig>; 2],
    stop: CancellationToken,
    ok: Arc<AtomicUsize>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut connections = 0usize;
    while !stop.is_cancelled() && failures.len() < 50 {
        let config = configs[connections % 2].clone();
        connections += 1;
        let mut client = match Client::connect(addr, config).await {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("connect: {e}"));
                continue;
            }
        };
        for _ in 0..25 {
            if stop.is_cancelled() {
                break;
            }
            match client.post("/mutate", EXAMPLE_REVIEW, WAIT).await {
                Ok(a) if a.status == StatusCode::OK && response_of(&a.body)["allowed"] == true => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(a) => failures.push(format!(
                    "{}: {}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                )),
                Err(e) => {
                    failures.push(format!("request: {e}"));
                    break;
                }
            }
        }
    }
    failures
}

/// Opens new connections until one presents `expected`; panics after 5 s.
async fn wait_for_certificate(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    expected: &[u8],
) {
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let stream = tls_connect(addr, config.clone())
                .await
                .expect("every handshake succeeds during a rotation");
            let presented = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
            if presented == expected {
                return;
            }
            tokio::time::sleep(ms(25)).await;
        }
    })
    .await;
    assert!(
        found.is_ok(),
        "new connections did not get the new certificate within 5 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_serves_the_new_certificate_without_failed_requests() {
    let server = start(|_| {}).await;
    // Each rotation brings a pair signed by another CA; the client trusts them all.
    let rotations: Vec<GeneratedCerts> = (0..3).map(|_| generate()).collect();
    let mut cas = vec![server.certs.ca_pem.as_str()];
    cas.extend(rotations.iter().map(|c| c.ca_pem.as_str()));
    // The probe for the served certificate does full handshakes only (a resumed session reports
    // the certificate of its first handshake); the load alternates resumed and full handshakes.
    let config = tls_client_config(&cas, &[b"http/1.1"], true);
    let probe = tls_client_config(&cas, &[b"http/1.1"], false);

    let stop = CancellationToken::new();
    let ok = Arc::new(AtomicUsize::new(0));
    let load_task = tokio::spawn(load(
        server.addr,
        [config.clone(), probe.clone()],
        stop.clone(),
        ok.clone(),
    ));
    wait_until("the load to get going", WAIT, || {
        ok.load(Ordering::Relaxed) >= 10
    })
    .await;

    for new in &rotations {
        install_pair(&server, new.cert_pem.as_bytes(), new.key_pem.as_bytes());
        wait_for_certificate(server.addr, &probe, &der(&new.cert_pem)).await;
        let before = ok.load(Ordering::Relaxed);
        wait_until("requests after the rotation", WAIT, || {
            ok.load(Ordering::Relaxed) >= before + 10
        })
        .await;
    }
    assert!(server.metric("pod_hardener_certificate_reloads_total{result=\"success\"}") >= 3);

    // Invalid pairs: unreadable certificate, a key of another certificate, unreadable key. The
    // last good pair keeps serving.
    let last = rotations.last().unwrap();
    let last_der = der(&last.cert_pem);
    let not_pem = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n";
    for (what, cert, key) in [
        ("garbage certificate", &not_pem[..], last.key_pem.as_bytes()),
        (
            "mismatched key",
            server.certs.cert_pem.as_bytes(),
            last.key_pem.as_bytes(),
        ),
        ("garbage key", last.cert_pem.as_bytes(), b"not a key\n"),
        ("empty files", b"", b""),
    ] {
        let failures_before =
            server.metric("pod_hardener_certificate_reloads_total{result=\"failure\"}");
        install_pair(&server, cert, key);
        wait_until(&format!("the {what} to be refused"), WAIT, || {
            server.metric("pod_hardener_certificate_reloads_total{result=\"failure\"}")
                > failures_before
        })
        .await;
        let mut client = Client::connect(server.addr, probe.clone()).await.unwrap();
        assert_eq!(
            client.peer_cert, last_der,
            "{what}: the last good pair is served"
        );
        assert_mutated(&client.post("/mutate", EXAMPLE_REVIEW, WAIT).await.unwrap());
    }

    stop.cancel();
    let failures = tokio::time::timeout(WAIT, load_task)
        .await
        .expect("the load stops")
        .unwrap();
    assert_eq!(failures, Vec::<String>::new(), "no request fails");
    assert!(ok.load(Ordering::Relaxed) >= 40);
    server.stop(MARGIN).await;
}

// ---- (c) graceful shutdown ----

/// Starts a POST /mutate over HTTP/1.1 whose body the test sends later, and waits until the
/// server reads the body (its `100 Continue`): the request is then in flight.
async fn start_slow_request(server: &TestServer) -> (HeldRequest, Client) {
    let config = server.client_config(&[b"http/1.1"]);
    let mut client = Client::connect(server.addr, config).await.unwrap();
    let held = client
        .post_held("/mutate", EXAMPLE_REVIEW.len())
        .await
        .unwrap();
    tokio::time::timeout(WAIT, held.continued.notified())
        .await
        .expect("the server starts reading the body");
    (held, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_completes_in_flight_requests_and_refuses_new_ones() {
    let server = start(|l| {
        l.request_timeout = HumanDuration(Duration::from_secs(20));
        l.drain_timeout = HumanDuration(Duration::from_secs(10));
    })
    .await;
    let config = server.client_config(&[b"http/1.1"]);
    let (held, mut client) = start_slow_request(&server).await;
    let in_flight = held.answer;

    server.token.cancel();
    let cancelled = Instant::now();
    assert_new_connections_refused(server.addr, &config).await;
    wait_until("the metrics port to close", WAIT, || {
        std::net::TcpStream::connect(server.metrics_addr).is_err()
    })
    .await;
    assert!(
        !in_flight.is_finished(),
        "the in-flight request waits for its body"
    );

    // Now the body: the request completes with its answer.
    send_in_halves(held.body, EXAMPLE_REVIEW.as_bytes(), ms(50))
        .await
        .unwrap();
    let rsp = tokio::time::timeout(WAIT, in_flight)
        .await
        .expect("the in-flight request is answered")
        .unwrap()
        .expect("the in-flight request succeeds");
    let answer = tokio::time::timeout(WAIT, read_answer(rsp))
        .await
        .expect("the answer is read")
        .unwrap();
    assert_mutated(&answer);
    // The server closes the connection after the answer.
    tokio::time::timeout(WAIT, &mut client.conn)
        .await
        .expect("the drained connection closes")
        .unwrap()
        .unwrap();

    let drain = server.limits.drain_timeout.0;
    tokio::time::timeout(drain + MARGIN, server.run)
        .await
        .expect("run returns within the drain deadline")
        .unwrap();
    assert!(
        cancelled.elapsed() < WAIT + drain + MARGIN,
        "bounded shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_gives_up_on_stuck_requests_at_the_drain_deadline() {
    let server = start(|l| {
        l.request_timeout = HumanDuration(Duration::from_secs(60));
        l.drain_timeout = HumanDuration(ms(500));
    })
    .await;
    let (held, mut client) = start_slow_request(&server).await;
    server.token.cancel();
    // The body never comes: run returns at the drain deadline anyway.
    let drain = server.limits.drain_timeout.0;
    tokio::time::timeout(drain + MARGIN, server.run)
        .await
        .expect("run returns within the drain deadline")
        .unwrap();
    // And the stuck connection is dropped rather than left running.
    let closed = tokio::time::timeout(MARGIN, &mut client.conn).await;
    assert!(
        closed.is_ok(),
        "the stuck connection is still open after run returned"
    );
    let _ = held
        .body
        .send(Bytes::from_static(EXAMPLE_REVIEW.as_bytes()))
        .await;
    let answer = tokio::time::timeout(WAIT, held.answer)
        .await
        .unwrap()
        .unwrap();
    assert!(answer.is_err(), "a dropped request gets no answer");
}

/// A POST of the sample review on `client`, answered within [`WAIT`]: whether the answer asked
/// the client to close the connection, and the answer.
async fn post_review(client: &mut Client) -> (bool, Answer) {
    let req = client
        .request(hyper::Method::POST, "/mutate")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(support::tls::body(EXAMPLE_REVIEW))
        .unwrap();
    let rsp = tokio::time::timeout(WAIT, client.send(req))
        .await
        .expect("an answer")
        .expect("the request succeeds");
    let close = rsp
        .headers()
        .get(hyper::header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let answer = tokio::time::timeout(WAIT, read_answer(rsp))
        .await
        .expect("the answer is read")
        .unwrap();
    (close, answer)
}

/// The drain grace (`limits.drainGrace`): after the signal the server is unready, but goes on
/// accepting connections and answering requests; every HTTP/1.1 answer carries `Connection:
/// close` (and the server closes that connection after it), HTTP/2 connections get GOAWAY, an
/// idle HTTP/1.1 connection stays open until the grace ends, and then the listeners close.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_drain_grace_keeps_serving_and_asks_each_client_to_close() {
    // Long enough for the steps below on a loaded machine; they take milliseconds.
    let grace = Duration::from_secs(6);
    let server = start(|l| {
        l.drain_grace = HumanDuration(grace);
        // hyper's header-read timer also closes a kept-alive connection waiting for its next
        // request: longer than the grace, so that only the grace's end closes the idle one.
        l.header_read_timeout = HumanDuration(grace + WAIT);
    })
    .await;
    let h1 = server.client_config(&[b"http/1.1"]);
    let connect = |config: Arc<rustls::ClientConfig>| async move {
        tokio::time::timeout(WAIT, Client::connect(server.addr, config))
            .await
            .expect("a connection within WAIT")
            .unwrap()
    };
    // Before the signal: keep-alive answers, no `Connection: close`.
    let mut busy = connect(h1.clone()).await;
    let mut idle = connect(h1.clone()).await;
    let mut h2 = connect(server.client_config(&[b"h2"])).await;
    assert_eq!(h2.alpn.as_deref(), Some(b"h2".as_slice()));
    for client in [&mut busy, &mut idle, &mut h2] {
        let (close, answer) = post_review(client).await;
        assert_mutated(&answer);
        assert!(!close, "Connection: close before the signal");
    }

    server.token.cancel();
    let signalled = Instant::now();
    // Unready at once; the metrics port still answers.
    let mut probe = tokio::time::timeout(WAIT, Client::connect_plain(server.metrics_addr))
        .await
        .expect("the metrics port answers during the grace")
        .unwrap();
    let readyz = probe.get("/readyz", WAIT).await.unwrap();
    assert_eq!(readyz.status, StatusCode::SERVICE_UNAVAILABLE);

    // A kept-alive HTTP/1.1 connection is answered, told to close, and closed after the answer.
    let (close, answer) = post_review(&mut busy).await;
    assert_mutated(&answer);
    assert!(close, "no Connection: close during the grace");
    tokio::time::timeout(WAIT, &mut busy.conn)
        .await
        .expect("the connection closes after its answer")
        .unwrap()
        .unwrap();
    // A new connection is accepted, answered and told to close.
    let mut late = connect(h1.clone()).await;
    let (close, answer) = post_review(&mut late).await;
    assert_mutated(&answer);
    assert!(
        close,
        "no Connection: close on a connection made during the grace"
    );
    // HTTP/2 gets GOAWAY: with no stream open, the client's connection ends.
    let ended = tokio::time::timeout(WAIT, &mut h2.conn)
        .await
        .expect("the HTTP/2 connection ends after GOAWAY");
    assert!(ended.is_ok(), "the HTTP/2 connection task panicked");
    let steps_took = signalled.elapsed();
    // The idle HTTP/1.1 connection is still open: HTTP/1.1 cannot tell it to go.
    assert!(
        !idle.conn.is_finished(),
        "the idle connection was closed {steps_took:?} into a {grace:?} grace"
    );

    // The grace ends: the idle connection is closed (without a TLS close_notify, as idle
    // connections always were at shutdown: the client sees EOF), new connections are refused.
    let closed = tokio::time::timeout(grace + WAIT, &mut idle.conn)
        .await
        .expect("the idle connection closes when the grace ends");
    assert!(closed.is_ok(), "the idle connection's task panicked");
    let idle_closed = signalled.elapsed();
    assert_new_connections_refused(server.addr, &h1).await;
    tokio::time::timeout(server.limits.drain_timeout.0 + MARGIN, server.run)
        .await
        .expect("run returns after the grace and the drain")
        .unwrap();
    println!(
        "drain grace {grace:?}: the steps during the grace took {steps_took:.1?}; the idle \
         HTTP/1.1 connection closed {idle_closed:.1?} after the signal"
    );
}

// ---- (d) protocol and cipher floors ----

/// Runs `openssl s_client` against `server` with `args`; `None` when openssl is not installed.
async fn s_client(server: &TestServer, args: &[&str]) -> Option<Output> {
    let mut command = Command::new("openssl");
    command
        .arg("s_client")
        .arg("-connect")
        .arg(server.addr.to_string())
        .args(["-servername", "localhost", "-CAfile"])
        .arg(&server.files.ca)
        .arg("-verify_return_error")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run openssl: {e}"),
    };
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            tokio::time::sleep(ms(20)).await;
        }
    })
    .await;
    if waited.is_err() {
        let _ = child.kill();
        panic!("openssl s_client {args:?} did not finish");
    }
    Some(child.wait_with_output().unwrap())
}

fn show(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether the local openssl refused to even offer what was asked (so the server was not tested).
fn client_side_refusal(output: &Output) -> bool {
    let stderr = String::from_utf8_lossy(&output.stderr);
    [
        "no protocols available",
        "no cipher match",
        "unknown option",
    ]
    .iter()
    .any(|s| stderr.contains(s))
}

/// Checks that the handshake was refused by the server: a ClientHello went out and an alert came
/// back, with no cipher agreed.
fn assert_server_alert(output: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("Cipher is (NONE)"),
        "{what}: {}",
        show(output)
    );
    assert!(stderr.contains("alert"), "{what}: {}", show(output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_protocols_and_weak_suites_are_refused() {
    let server = start(|_| {}).await;
    // Controls: TLS 1.2 and 1.3 with default suites complete the handshake.
    let Some(output) = s_client(&server, &["-tls1_2"]).await else {
        println!("note: openssl is not on PATH; skipping the protocol and cipher floor checks");
        server.stop(MARGIN).await;
        return;
    };
    assert!(
        output.status.success(),
        "TLS 1.2 control: {}",
        show(&output)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("TLSv1.2"),
        "{}",
        show(&output)
    );
    let output = s_client(&server, &["-tls1_3"]).await.unwrap();
    assert!(
        output.status.success(),
        "TLS 1.3 control: {}",
        show(&output)
    );

    // TLS 1.0 and 1.1 (with the client's security level lowered so it really offers them).
    for version in ["-tls1", "-tls1_1"] {
        let output = s_client(&server, &[version, "-cipher", "DEFAULT:@SECLEVEL=0"])
            .await
            .unwrap();
        assert!(!output.status.success(), "{version}: {}", show(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !stdout.contains("Cipher is ECDHE"),
            "{version}: {}",
            show(&output)
        );
        if client_side_refusal(&output) {
            println!("note: this openssl cannot offer {version}; only the client refused it");
        } else {
            assert_server_alert(&output, version);
        }
    }

    // TLS 1.2 with only weak (CBC, SHA-1, RSA key exchange) suites.
    for suite in [
        "AES128-SHA",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES128-SHA256",
    ] {
        let cipher = format!("{suite}:@SECLEVEL=0");
        let output = s_client(&server, &["-tls1_2", "-cipher", &cipher])
            .await
            .unwrap();
        assert!(!output.status.success(), "{suite}: {}", show(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !stdout.contains(&format!("Cipher is {suite}")),
            "{suite}: {}",
            show(&output)
        );
        if client_side_refusal(&output) {
            println!("note: this openssl cannot offer {suite}; only the client refused it");
        } else {
            assert_server_alert(&output, suite);
        }
    }
    server.stop(MARGIN).await;
}

// ---- (e) handshake timeout ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_clients_are_disconnected_after_the_handshake_timeout() {
    let server = start(|l| l.handshake_timeout = HumanDuration(ms(500))).await;
    let limit = server.limits.handshake_timeout.0 + MARGIN;
    // Connects and sends nothing.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    wait_for_close(&mut tcp, limit).await;
    // Starts a ClientHello and stops.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    wait_for_close(&mut tcp, limit).await;
    // The server is still fine.
    let config = server.client_config(&[b"h2"]);
    let mut client = Client::connect(server.addr, config).await.unwrap();
    assert_mutated(&client.post("/mutate", EXAMPLE_REVIEW, WAIT).await.unwrap());
    server.stop(MARGIN).await;
}

// ---- (f) header read timeout ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_request_headers_are_cut_off() {
    let server = start(|l| l.header_read_timeout = HumanDuration(ms(500))).await;
    let limit = server.limits.header_read_timeout.0 + MARGIN;
    let config = server.client_config(&[b"http/1.1"]);
    for partial in [
        &b"POST /mutate HTT"[..],
        b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: appl",
    ] {
        let mut stream = tls_connect(server.addr, config.clone()).await.unwrap();
        stream.write_all(partial).await.unwrap();
        stream.flush().await.unwrap();
        wait_for_close(&mut stream, limit).await;
    }
    server.stop(MARGIN).await;
}

// ---- (f2) first-request deadline ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_without_a_first_request_are_closed_at_the_deadline() {
    let server = start(|l| {
        l.first_request_timeout = HumanDuration(ms(500));
        l.idle_timeout = HumanDuration(Duration::from_secs(60));
        // hyper's HTTP/1.1 header timer also runs while a kept-alive connection waits for its
        // next request: longer than the pause below.
        l.header_read_timeout = HumanDuration(Duration::from_secs(5));
    })
    .await;
    let limit = server.limits.first_request_timeout.0 + MARGIN;
    // Trickles the HTTP/2 preface, one byte every 100 ms: each byte resets the idle timer, and
    // HTTP/2 has no header timer, so only the first-request deadline can close it.
    let h2 = server.client_config(&[b"h2"]);
    let stream = tls_connect(server.addr, h2.clone()).await.unwrap();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for byte in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".repeat(4) {
            if writer.write_all(&[byte]).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(ms(100)).await;
        }
    });
    wait_for_close(&mut reader, limit).await;
    println!(
        "trickled HTTP/2 preface: closed after {:?}",
        started.elapsed()
    );
    trickle.abort();
    // A TLS connection that sends nothing at all.
    let mut silent = tls_connect(server.addr, h2.clone()).await.unwrap();
    wait_for_close(&mut silent, limit).await;
    // A connection that has made a request is not bound by the deadline: it is still usable
    // well after it.
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut client = Client::connect(server.addr, server.client_config(&[alpn]))
            .await
            .unwrap();
        assert_mutated(&client.post("/mutate", EXAMPLE_REVIEW, WAIT).await.unwrap());
        tokio::time::sleep(server.limits.first_request_timeout.0 * 2).await;
        assert_mutated(&client.post("/mutate", EXAMPLE_REVIEW, WAIT).await.unwrap());
    }
    server.stop(MARGIN).await;
}

// ---- (g) idle timeout ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_are_closed() {
    let server = start(|l| l.idle_timeout = HumanDuration(ms(300))).await;
    let limit = server.limits.idle_timeout.0 + MARGIN;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let config = server.client_config(&[alpn]);
        let mut client = Client::connect(server.addr, config).await.unwrap();
        // Busy: back-to-back requests reuse the connection.
        for _ in 0..2 {
            assert_mutated(&client.post("/mutate", EXAMPLE_REVIEW, WAIT).await.unwrap());
        }
        // Idle: the server closes it.
        let closed = tokio::time::timeout(limit, &mut client.conn).await;
        assert!(
            closed.is_ok(),
            "{}: the idle connection is still open",
            String::from_utf8_lossy(alpn)
        );
    }
    // A TLS connection that never sends a request is closed too.
    let config = server.client_config(&[b"h2"]);
    let mut stream = tls_connect(server.addr, config).await.unwrap();
    wait_for_close(&mut stream, limit).await;
    server.stop(MARGIN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pings_do_not_keep_an_idle_http2_connection_open() {
    let server = start(|l| l.idle_timeout = HumanDuration(ms(500))).await;
    let limit = server.limits.idle_timeout.0 + MARGIN;
    let stream = tls_connect(server.addr, server.client_config(&[b"h2"]))
        .await
        .unwrap();
    // A client that PINGs every 100 ms: bytes keep moving, requests do not.
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(ms(100))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let mut conn = tokio::spawn(conn);
    let mut client = Client {
        sender: Sender::H2(sender),
        conn: tokio::spawn(async { Ok(()) }),
        peer_cert: Vec::new(),
        alpn: Some(b"h2".to_vec()),
    };
    assert_mutated(&client.post("/mutate", EXAMPLE_REVIEW, WAIT).await.unwrap());
    let idle_since = Instant::now();
    let closed = tokio::time::timeout(limit, &mut conn).await;
    assert!(
        closed.is_ok(),
        "a PINGing HTTP/2 connection with no request was still open after {limit:?}"
    );
    println!(
        "PINGing HTTP/2 connection closed {:?} after its last request",
        idle_since.elapsed()
    );
    server.stop(MARGIN).await;
}
