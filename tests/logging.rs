//! The server never writes object bodies, secrets or environment values to its logs at the
//! default (info) level, in text or JSON format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_pod-hardener");
const SECRET: &str = "s3cr3t-VALUE-that-must-not-leak-7f1c";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn review(endpoint_uid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": endpoint_uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "leaky", "namespace": "team", "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "leaky", "annotations": {"note": SECRET}},
                "spec": {"containers": [{"name": "app", "image": "app:1",
                    "env": [{"name": "DATABASE_PASSWORD", "value": SECRET}],
                    "args": ["--token", SECRET]}]}}
        }
    }))
    .unwrap()
}

/// Sends a request over TLS with curl (the server speaks HTTPS only on its webhook port).
fn post(port: u16, ca: &std::path::Path, path: &str, body: &[u8]) -> String {
    let mut child = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ])
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn logs_carry_no_object_content() {
    if Command::new("curl").arg("--version").output().is_err() {
        println!("curl is not installed; skipping");
        return;
    }
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let (port, metrics) = (free_port(), free_port());
        let mut server = Command::new(BIN)
            .args(["serve", "--dev", "--dev-dir"])
            .arg(dir.path())
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--metrics-listen",
                &format!("127.0.0.1:{metrics}"),
            ])
            .args(["--log-format", format, "--log-level", "info"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let ca = dir.path().join("ca.crt");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ca.exists() || std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        for path in ["/mutate", "/validate"] {
            let answer = post(port, &ca, path, &review("uid-log-test"));
            assert!(answer.contains("uid-log-test"), "{answer}");
        }
        // A malformed review whose parse error could echo input.
        let mut broken = review("uid-broken");
        broken.truncate(broken.len() - 40);
        post(port, &ca, "/mutate", &broken);
        Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status()
            .unwrap();
        let mut logs = String::new();
        server
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        server.wait().unwrap();
        assert!(
            logs.contains("Admission decision"),
            "no decision line in {format} logs:\n{logs}"
        );
        assert!(logs.contains("uid-log-test"));
        for forbidden in [SECRET, "DATABASE_PASSWORD", "--token"] {
            assert!(
                !logs.contains(forbidden),
                "{format} logs contain {forbidden:?}:\n{logs}"
            );
        }
    }
}
