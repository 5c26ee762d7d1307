//! The `pod-hardener` binary's `check`, `harden` and `version` commands, run as users run them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_pod-hardener");
const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/manifests");
include!("support/shared_data.rs");

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit (on a bad flag) before reading its input: a broken pipe is fine.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn check_allows_a_pass_fixture_and_denies_a_fail_fixture() {
    let pass = format!(
        "{}/restricted/v1.37/pass/base.yaml",
        psa_fixtures_dir().display()
    );
    let o = run(&["check", "-f", &pass], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Pod base: allowed\n");

    let fail = format!(
        "{}/restricted/v1.37/fail/allowprivilegeescalation0.yaml",
        psa_fixtures_dir().display()
    );
    let o = run(&["check", "-f", &fail], b"");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        "Pod allowprivilegeescalation0: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"container1\" must set securityContext.allowPrivilegeEscalation=false)\n"
    );
}

#[test]
fn check_honours_level_and_version() {
    let fail = format!(
        "{}/baseline/v1.18/fail/seccompprofile_baseline0.yaml",
        psa_fixtures_dir().display()
    );
    assert_eq!(
        run(
            &[
                "check",
                "--level",
                "baseline",
                "--version",
                "v1.18",
                "-f",
                &fail
            ],
            b""
        )
        .status
        .code(),
        Some(1)
    );
    // Annotations are ignored from v1.19 on.
    assert_eq!(
        run(
            &[
                "check",
                "--level",
                "baseline",
                "--version",
                "v1.19",
                "-f",
                &fail
            ],
            b""
        )
        .status
        .code(),
        Some(0)
    );
    let o = run(&["check", "--version", "v2.0", "-f", &fail], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("v2.0"), "{}", stderr(&o));
}

#[test]
fn check_evaluates_every_workload_in_a_multi_document_stream_as_json() {
    let o = run(
        &[
            "check",
            "-f",
            &format!("{MANIFESTS}/plain-workloads.yaml"),
            "--output",
            "json",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    let out: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let kinds: Vec<(&str, &str)> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("StatefulSet", "db"),
            ("CronJob", "backup"),
            ("Pod", "debug"),
            ("DaemonSet", "agent")
        ]
    );
    for e in out.as_array().unwrap() {
        assert_eq!(e["allowed"], false);
        assert_eq!(e["violations"][0]["check"], "allowPrivilegeEscalation");
    }
    assert_eq!(out[2]["namespace"], "tools");
}

#[test]
fn bad_input_exits_2_naming_the_document() {
    for (input, expected) in [
        (&b"kind: Pod\n---\nkind: [\n"[..], "document 1"),
        (
            b"- just\n- a list\n",
            "document 0: expected a Kubernetes object",
        ),
        (
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: 7}\n",
            "document 0: Pod has an invalid pod spec",
        ),
        (
            b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n",
            "document 0: Deployment has no pod spec",
        ),
        (b"\xff\xfe\x00garbage", "document 0"),
    ] {
        for cmd in ["check", "harden"] {
            let o = run(&[cmd], input);
            assert_eq!(o.status.code(), Some(2), "{cmd} {input:?}: {}", stderr(&o));
            assert!(stderr(&o).contains(expected), "{cmd}: {}", stderr(&o));
            assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        }
    }
    let o = run(&["check", "-f", "/nonexistent/file.yaml"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/file.yaml"));
}

#[test]
fn harden_as_a_post_renderer_makes_a_plain_chart_pass_restricted() {
    let chart = std::fs::read(Path::new(MANIFESTS).join("plain-workloads.yaml")).unwrap();
    let hardened = run(&["harden"], &chart);
    assert_eq!(hardened.status.code(), Some(0), "{}", stderr(&hardened));
    // Every document comes back, in order, the ConfigMap unchanged in content.
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&stdout(&hardened))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 4);
    assert_eq!(docs[0]["data"]["key"], "value");
    assert_eq!(docs[3]["kind"], "List");
    let checked = run(&["check"], &hardened.stdout);
    assert_eq!(checked.status.code(), Some(0), "{}", stdout(&checked));
    // Hardening again changes nothing.
    let again = run(&["harden"], &hardened.stdout);
    assert_eq!(stdout(&again), stdout(&hardened));
}

#[test]
fn harden_explains_what_remains_denied() {
    let o = run(
        &[
            "harden",
            "--explain",
            "-f",
            &format!("{MANIFESTS}/web-chart.yaml"),
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(err.contains("Deployment shop/web:"), "{err}");
    assert!(
        err.contains("skipped allowPrivilegeEscalation on containers/sidecar: explicit-value"),
        "{err}"
    );
    assert!(err.contains("still denied: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"sidecar\""), "{err}");

    let o = run(
        &[
            "harden",
            "--explain",
            "--mode",
            "override",
            "-f",
            &format!("{MANIFESTS}/web-chart.yaml"),
        ],
        b"",
    );
    let err = stderr(&o);
    assert!(
        err.contains("overrode allowPrivilegeEscalation on containers/sidecar: false"),
        "{err}"
    );
    assert!(err.contains("allowed at restricted:latest"), "{err}");
}

#[test]
fn harden_skip_and_baseline_profiles() {
    let chart = std::fs::read(Path::new(MANIFESTS).join("web-chart.yaml")).unwrap();
    let o = run(
        &["harden", "--skip", "readOnlyRootFilesystem,tmpVolume"],
        &chart,
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(!stdout(&o).contains("readOnlyRootFilesystem: true"));
    let o = run(&["harden", "--level", "baseline"], &chart);
    let out = stdout(&o);
    assert!(
        out.contains("RuntimeDefault") && !out.contains("drop:"),
        "{out}"
    );
    let o = run(&["harden", "--skip", "readOnly"], &chart);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown control \"readOnly\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn version_names_the_commit() {
    let o = run(&["version"], b"");
    assert!(stdout(&o).starts_with(&format!(
        "pod-hardener {} (commit ",
        env!("CARGO_PKG_VERSION")
    )));
}
