//! Graceful shutdown on a real SIGTERM: the compiled `pod-hardener serve` runs as its own
//! process (a config file, certificates from `pod_hardener::certs`, `namespaceSource: static`),
//! keep-alive clients send `/mutate` reviews back to back, one request's body is still being
//! streamed slowly when the signal arrives, and `kill -TERM` is sent to the process.
//!
//! Checked: every request the server accepted gets a complete, valid answer (the slow one
//! included); every decision the server logged reached its client; new connections after the
//! signal are refused; the process exits with success within the drain deadline plus a generous
//! margin. Timing figures are printed (`cargo test --test shutdown_signal -- --nocapture`), never
//! asserted beyond liveness bounds.
//!
//! "Accepted" is what the client can see: over HTTP/1.1 the clients send `Expect: 100-continue`,
//! so a request is accepted once the server asks for its body; over HTTP/2 (no `100 Continue`)
//! it is accepted once the server has decided it (its decision log line, by uid).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use support::tls::{
    CertDir, Client, WAIT, assert_new_connections_refused, check_patched, generate, ms,
    patched_answer, probe, send_in_halves, wait_until,
};
use support::{example_pod, pod_review, tls_client_config};

const BIN: &str = env!("CARGO_BIN_EXE_pod-hardener");
/// The server's drain deadline (`limits.drainTimeout`).
const DRAIN: Duration = Duration::from_secs(10);
/// Slack on top of the drain deadline for the process to exit: generous, for a loaded machine.
const EXIT_MARGIN: Duration = Duration::from_secs(20);
/// How long the server may take to answer `/readyz` after it is started.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// Attempts at starting the server (a free port may be taken meanwhile).
const START_ATTEMPTS: usize = 3;
/// How long the load runs before the signal.
const LOAD_BEFORE_SIGNAL: Duration = Duration::from_millis(1500);
/// The keep-alive clients: HTTP/1.1 (`Expect: 100-continue`) or HTTP/2.
const LOAD_PROTOCOLS: [&[u8]; 3] = [b"http/1.1", b"http/1.1", b"h2"];
/// The slow request's body: this many chunks, this far apart; a few before the signal, the rest
/// once the server is draining.
const SLOW_CHUNKS: usize = 10;
const SLOW_CHUNKS_BEFORE_SIGNAL: usize = 3;
const SLOW_PAUSE: Duration = Duration::from_millis(100);
const SLOW_UID: &str = "slow-request";

/// `pod-hardener serve` running with its certificates and config file.
struct Served {
    /// Declared first: dropped (killed) before the files it reads are removed.
    process: ServeProcess,
    webhook: SocketAddr,
    metrics: SocketAddr,
    ca_pem: String,
    _certs: CertDir,
    _dir: tempfile::TempDir,
}

/// The child process and its log (stdout and stderr); killed on drop if it still runs.
struct ServeProcess {
    child: Child,
    log: PathBuf,
}

impl Served {
    /// Writes certificates and a config file, runs `pod-hardener serve --config`, and waits
    /// until `/readyz` answers 200; retries on another pair of ports when one was taken.
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate();
        let certs = CertDir::new(&generated);
        let mut last_error = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let (webhook, metrics) = free_addrs();
            let config = json!({
                "listen": webhook.to_string(),
                "metricsListen": metrics.to_string(),
                "namespaceSource": "static",
                "tls": { "certFile": certs.cert, "keyFile": certs.key },
                "limits": {
                    "drainTimeout": format!("{}s", DRAIN.as_secs()),
                    "requestTimeout": "30s",
                },
                "log": { "format": "json", "level": "info" },
            });
            let config_path = dir.path().join("config.yaml");
            // JSON is YAML.
            std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
            let mut process = ServeProcess::spawn(
                &config_path,
                dir.path().join(format!("serve-{attempt}.log")),
            );
            match process.wait_ready(metrics).await {
                Ok(()) => {
                    return Served {
                        process,
                        webhook,
                        metrics,
                        ca_pem: generated.ca_pem,
                        _certs: certs,
                        _dir: dir,
                    };
                }
                Err(why) => {
                    let log = process.log_text();
                    drop(process);
                    last_error = format!("{why}; its log:\n{log}");
                    if !log.contains("in use") {
                        break;
                    }
                    eprintln!("a port was taken, retrying: {last_error}");
                }
            }
        }
        panic!("pod-hardener serve did not start: {last_error}");
    }
}

impl ServeProcess {
    /// Runs `pod-hardener serve --config config`, its output into `log`, with none of the
    /// `POD_HARDENER_*` variables that would override the file.
    fn spawn(config: &Path, log: PathBuf) -> Self {
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut command = Command::new(BIN);
        command.arg("serve").arg("--config").arg(config);
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("POD_HARDENER_") {
                command.env_remove(var);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("run pod-hardener serve");
        ServeProcess { child, log }
    }

    async fn wait_ready(&mut self, metrics: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if probe(metrics, "/readyz", Duration::from_secs(2)).await == Ok(200) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited ({status}) before /readyz answered"));
            }
            if Instant::now() >= deadline {
                return Err(format!("/readyz not 200 within {READY_WITHIN:?}"));
            }
            tokio::time::sleep(ms(50)).await;
        }
    }

    /// Sends SIGTERM with `kill -TERM` (the crate forbids the unsafe of a direct `kill(2)`).
    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit; `None` when it is still running after `limit`.
    async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(ms(20)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// The log lines, parsed (JSON format); lines that are not JSON are left out.
    fn log_events(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("pod-hardener serve log:\n{}", self.log_text());
        }
    }
}

/// Two addresses on 127.0.0.1 whose ports were free a moment ago.
fn free_addrs() -> (SocketAddr, SocketAddr) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap(), b.local_addr().unwrap())
}

/// The sample review with its own uid.
fn review(uid: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(&pod_review(uid, "CREATE", example_pod(), None)).unwrap())
}

/// One request of a load client.
#[derive(Debug)]
struct Record {
    uid: String,
    /// The server asked for the body (`100 Continue`; HTTP/1.1 only).
    continued: bool,
    /// When it was sent.
    at: Instant,
    /// A valid answer, or why not.
    outcome: Result<(), String>,
}

/// One `/mutate` of `json` with `Expect: 100-continue` over HTTP/1.1: whether the server asked
/// for the body, and the outcome.
async fn post_continued(
    client: &mut Client,
    uid: &str,
    json: &Bytes,
) -> (bool, Result<(), String>) {
    let held = match client.post_held("/mutate", json.len()).await {
        Ok(held) => held,
        Err(e) => return (false, Err(format!("the connection takes no request: {e}"))),
    };
    let mut answer = held.answer;
    let ended_early = tokio::select! {
        () = held.continued.notified() => None,
        r = &mut answer => Some(match r {
            Ok(Ok(rsp)) => format!("answered {} before the body was asked for", rsp.status()),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        }),
        () = tokio::time::sleep(WAIT) => panic!("{uid}: neither accepted nor refused within {WAIT:?}"),
    };
    if let Some(why) = ended_early {
        return (false, Err(why));
    }
    let _ = send_in_halves(held.body, json, ms(2)).await;
    (true, patched_answer(answer, uid, WAIT).await)
}

/// What a load client did.
struct LoadClient {
    name: String,
    records: Vec<Record>,
    /// Why its last connect failed (refused, or closed before the handshake); `None` when it
    /// stopped at its time limit instead.
    refused: Option<String>,
}

/// A keep-alive client: `/mutate` back to back on one connection, a new connection after a
/// failure, until a new connection is refused or `limit` passes.
async fn load_client(
    name: String,
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    answered: Arc<AtomicUsize>,
    limit: Duration,
) -> LoadClient {
    let started = Instant::now();
    let mut records = Vec::new();
    let mut client: Option<Client> = None;
    while started.elapsed() < limit {
        if client.is_none() {
            match tokio::time::timeout(WAIT, Client::connect(addr, config.clone())).await {
                Ok(Ok(c)) => client = Some(c),
                Ok(Err(e)) => {
                    return LoadClient {
                        name,
                        records,
                        refused: Some(e.to_string()),
                    };
                }
                Err(_) => panic!("{name}: a connect hangs"),
            }
        }
        let c = client.as_mut().unwrap();
        let uid = format!("{name}-{:05}", records.len());
        let json = review(&uid);
        let at = Instant::now();
        let (continued, outcome) = if c.alpn.as_deref() == Some(b"h2") {
            let outcome = match c.post("/mutate", json, WAIT).await {
                Ok(answer) => check_patched(&answer, &uid),
                Err(e) => Err(e.to_string()),
            };
            (false, outcome)
        } else {
            post_continued(c, &uid, &json).await
        };
        if outcome.is_ok() {
            answered.fetch_add(1, Ordering::SeqCst);
        } else {
            client = None;
        }
        records.push(Record {
            uid,
            continued,
            at,
            outcome,
        });
    }
    LoadClient {
        name,
        records,
        refused: None,
    }
}

/// The slow request: accepted, then its body in `SLOW_CHUNKS` pieces, `SLOW_CHUNKS_BEFORE_SIGNAL`
/// of them before `streaming` is reported and the rest, `SLOW_PAUSE` apart, after `go_on`.
/// Returns the outcome and when the answer came.
async fn slow_request(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    streaming: oneshot::Sender<()>,
    go_on: oneshot::Receiver<()>,
) -> (Result<(), String>, Instant) {
    let uid = SLOW_UID;
    let json = review(uid);
    let mut client = Client::connect(addr, config).await.unwrap();
    let held = client.post_held("/mutate", json.len()).await.unwrap();
    tokio::time::timeout(WAIT, held.continued.notified())
        .await
        .expect("the server asks for the slow request's body");
    let chunk = json.len().div_ceil(SLOW_CHUNKS);
    let mut pieces = json.chunks(chunk).map(Bytes::copy_from_slice);
    for piece in pieces.by_ref().take(SLOW_CHUNKS_BEFORE_SIGNAL) {
        held.body.send(piece).await.unwrap();
        tokio::time::sleep(SLOW_PAUSE).await;
    }
    streaming.send(()).unwrap();
    tokio::time::timeout(WAIT + WAIT, go_on)
        .await
        .expect("the test lets the slow request go on")
        .unwrap();
    for piece in pieces {
        tokio::time::sleep(SLOW_PAUSE).await;
        held.body
            .send(piece)
            .await
            .expect("the server keeps reading the slow body");
    }
    drop(held.body);
    let outcome = patched_answer(held.answer, uid, WAIT).await;
    (outcome, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_accepted_requests_refuses_new_connections_and_exits_cleanly() {
    let mut served = Served::start().await;
    let h1 = tls_client_config(&[&served.ca_pem], &[b"http/1.1"], true);

    // The load, and the slow request once the load is going.
    let answered = Arc::new(AtomicUsize::new(0));
    let load_started = Instant::now();
    let mut load = Vec::new();
    for (i, alpn) in LOAD_PROTOCOLS.into_iter().enumerate() {
        load.push(tokio::spawn(load_client(
            format!("load{i}"),
            served.webhook,
            tls_client_config(&[&served.ca_pem], &[alpn], true),
            answered.clone(),
            DRAIN + EXIT_MARGIN + WAIT,
        )));
    }
    wait_until("the load to get going", WAIT + WAIT, || {
        answered.load(Ordering::SeqCst) >= 10
    })
    .await;
    let (streaming_tx, streaming) = oneshot::channel();
    let (go_on, go_on_rx) = oneshot::channel();
    let slow = tokio::spawn(slow_request(
        served.webhook,
        h1.clone(),
        streaming_tx,
        go_on_rx,
    ));
    tokio::time::timeout(WAIT + WAIT, streaming)
        .await
        .expect("the slow request is streaming")
        .unwrap();
    tokio::time::sleep(LOAD_BEFORE_SIGNAL.saturating_sub(load_started.elapsed())).await;
    let answered_before = answered.load(Ordering::SeqCst);

    let signalled = Instant::now();
    served.process.sigterm();
    // The metrics port closes when the server acts on the signal (both listeners stop at once).
    wait_until("the metrics port to close after SIGTERM", WAIT, || {
        std::net::TcpStream::connect(served.metrics).is_err()
    })
    .await;
    let acted_in = signalled.elapsed();
    // The slow body goes on arriving while the server drains.
    go_on.send(()).unwrap();
    let probes_closed = assert_new_connections_refused(served.webhook, &h1).await;
    let refused_in = signalled.elapsed();

    let status = served.process.wait_exit(DRAIN + EXIT_MARGIN).await;
    let exited_in = signalled.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!("the process still runs {exited_in:?} after SIGTERM (drain deadline {DRAIN:?})")
    });
    let (slow_outcome, slow_answered_at) = tokio::time::timeout(WAIT, slow)
        .await
        .expect("the slow request ends")
        .unwrap();
    let clients: Vec<LoadClient> = tokio::time::timeout(WAIT, futures_util::future::join_all(load))
        .await
        .expect("the load clients end")
        .into_iter()
        .map(|client| client.expect("a load client does not panic"))
        .collect();

    // What the server decided, from its log.
    let events = served.process.log_events();
    let decided: BTreeSet<String> = events
        .iter()
        .filter(|e| e["message"] == "Admission decision")
        .filter_map(|e| e["uid"].as_str().map(str::to_owned))
        .collect();
    let records: Vec<&Record> = clients.iter().flat_map(|c| &c.records).collect();
    let answered_uids: BTreeSet<String> = records
        .iter()
        .filter(|r| r.outcome.is_ok())
        .map(|r| r.uid.clone())
        .chain(slow_outcome.is_ok().then(|| SLOW_UID.to_owned()))
        .collect();
    let failed: Vec<&Record> = records
        .iter()
        .copied()
        .filter(|r| r.outcome.is_err())
        .collect();
    // Accepted (asked for its body, or decided) and not answered.
    let lost: Vec<&Record> = failed
        .iter()
        .copied()
        .filter(|r| r.continued || decided.contains(&r.uid))
        .collect();
    let server_log: Vec<String> = events
        .iter()
        .filter(|e| e["message"] != "Admission decision")
        .map(|e| {
            let field = |name: &str| e[name].as_str().unwrap_or_default().to_owned();
            format!("{} {}", field("level"), field("message"))
        })
        .collect();

    // When each failed request was sent, from the signal.
    let failed_at: Vec<String> = failed
        .iter()
        .map(|r| match r.at.checked_duration_since(signalled) {
            Some(after) => format!("+{after:.1?}"),
            None => format!("-{:.1?}", signalled - r.at),
        })
        .collect();
    let h2_clients = LOAD_PROTOCOLS
        .iter()
        .filter(|p| p.starts_with(b"h2"))
        .count();
    println!(
        "SIGTERM under load: {} keep-alive clients ({} HTTP/1.1 with 100-continue, {h2_clients} \
         HTTP/2) for {:.1?} before the signal; {} requests sent, {} answered \
         ({answered_before} before the signal), {} failed (sent at {failed_at:?} from the signal; \
         {} of them accepted), {} decided by \
         the server; the slow request ({SLOW_CHUNKS} chunks {SLOW_PAUSE:?} apart, \
         {SLOW_CHUNKS_BEFORE_SIGNAL} before the signal) answered {:.1?} after the signal: {:?}",
        LOAD_PROTOCOLS.len(),
        LOAD_PROTOCOLS.len() - h2_clients,
        signalled - load_started,
        records.len(),
        records.len() - failed.len(),
        failed.len(),
        lost.len(),
        decided.len(),
        slow_answered_at.saturating_duration_since(signalled),
        slow_outcome,
    );
    println!(
        "after SIGTERM: listeners closed within {acted_in:.1?}; new connections refused from \
         {refused_in:.1?} ({probes_closed} probes closed before a handshake); the process exited \
         {exited_in:.1?} after the signal, {status} (drain deadline {DRAIN:?}); the clients' \
         refused connects: {:?}; server log: {server_log:?}",
        clients.iter().map(|c| &c.refused).collect::<Vec<_>>(),
    );

    assert!(status.success(), "the process exits with success: {status}");
    assert_eq!(slow_outcome, Ok(()), "the slow request is answered");
    assert!(
        lost.is_empty(),
        "accepted requests without a valid answer: {lost:?}"
    );
    for client in &clients {
        // Only the shutdown makes a request fail, and after that the client's reconnect is
        // refused: a failure anywhere but last was not the shutdown's doing.
        let failures: Vec<usize> = client
            .records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.outcome.is_err().then_some(i))
            .collect();
        assert!(
            failures.is_empty() || failures == [client.records.len() - 1],
            "{}: requests failed before the shutdown: {:?}",
            client.name,
            client
                .records
                .iter()
                .filter(|r| r.outcome.is_err())
                .collect::<Vec<_>>()
        );
        assert!(
            client.refused.is_some(),
            "{}: no new connection was refused",
            client.name
        );
    }
    assert_eq!(
        decided, answered_uids,
        "every decision the server made reached its client, and only those"
    );
    assert!(
        exited_in < DRAIN + EXIT_MARGIN,
        "the process exits within the drain deadline plus {EXIT_MARGIN:?}"
    );
}
