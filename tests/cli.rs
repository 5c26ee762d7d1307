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
            "document 0 (Pod p): Pod has an invalid pod spec at /spec: spec.containers: invalid type",
        ),
        (
            b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n",
            "document 0 (Deployment d): Deployment has no pod spec",
        ),
        (b"\xff\xfe\x00garbage", "document 0"),
    ] {
        for cmd in ["check", "harden"] {
            let o = run(&[cmd], input);
            assert_eq!(o.status.code(), Some(2), "{cmd} {input:?}: {}", stderr(&o));
            assert!(stderr(&o).contains(expected), "{cmd}: {}", stderr(&o));
            assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
            assert_eq!(stderr(&o).lines().count(), 1, "one message: {}", stderr(&o));
            assert_eq!(
                stderr(&o).matches(expected).count(),
                1,
                "said once: {}",
                stderr(&o)
            );
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

/// The documents of a `harden` output as kubectl would read them.
fn read_as_kubectl(text: &[u8]) -> Vec<serde_json::Value> {
    pod_hardener::manifest::read_raw_documents(text)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn harden_keeps_what_a_yaml_1_1_chart_means() {
    let chart = std::fs::read(Path::new(MANIFESTS).join("yaml11-chart.yaml")).unwrap();
    let o = run(&["harden"], &chart);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = read_as_kubectl(&chart);
    let after = read_as_kubectl(&o.stdout);
    assert_eq!(after.len(), 3);
    // Unchanged documents are unchanged to the byte, comments and all.
    let out = stdout(&o);
    let input = String::from_utf8(chart.clone()).unwrap();
    let config_map = &input[..input
        .find("---\n# Source: yaml11/templates/deployment")
        .unwrap()];
    assert!(out.starts_with(config_map), "{out}");
    let service = &input[input.rfind("---\n").unwrap()..];
    assert!(out.ends_with(service), "{out}");
    assert_eq!(after[0], before[0]);
    assert_eq!(after[2], before[2]);
    // The Deployment changed only where hardening changed it: the same object once the
    // hardening's additions are taken away again.
    let template = |doc: &serde_json::Value| doc["spec"]["template"]["spec"].clone();
    let (old, new) = (template(&before[1]), template(&after[1]));
    assert_eq!(new["volumes"][0], old["volumes"][0]);
    assert_eq!(new["volumes"][0]["configMap"]["defaultMode"], 493);
    assert_eq!(new["volumes"][0]["configMap"]["items"][0]["mode"], 420);
    assert_eq!(new["containers"][0]["env"], old["containers"][0]["env"]);
    assert_eq!(new["containers"][0]["args"], old["containers"][0]["args"]);
    for (i, v) in [
        "no",
        "yes",
        "on",
        "off",
        "y",
        "n",
        "NO",
        "Yes",
        "1_000",
        "0755",
        "~",
        "2001-12-14",
        "1:20",
        "multi\nline\n",
        " padded ",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(new["containers"][0]["env"][i]["value"], *v);
    }
    assert_eq!(
        after[1]["metadata"]["labels"]["gatekeeper.sh/system"],
        "yes"
    );
    // The rewritten document keeps its key order.
    let deployment = &out[out.find("# Source: yaml11/templates/deployment").unwrap()..];
    let keys: Vec<usize> = [
        "apiVersion:",
        "kind:",
        "metadata:",
        "spec:",
        "  replicas:",
        "  selector:",
        "  template:",
    ]
    .iter()
    .map(|k| {
        deployment
            .find(&format!("\n{k}"))
            .unwrap_or_else(|| panic!("{k} in {deployment}"))
    })
    .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{deployment}");
    // A YAML 1.2 reader (serde_yaml_ng) reads the rewritten document the same.
    let rewritten = &deployment[..deployment.find("\n---\n").unwrap()];
    let yaml12: serde_json::Value = serde_yaml_ng::from_str(rewritten).unwrap();
    assert_eq!(yaml12, after[1]);
    // And it passes restricted; hardening again changes nothing, to the byte.
    let checked = run(&["check"], &o.stdout);
    assert_eq!(checked.status.code(), Some(0), "{}", stdout(&checked));
    let again = run(&["harden"], &o.stdout);
    assert_eq!(stdout(&again), out);
}

#[test]
fn harden_writes_a_stream_it_does_not_change_back_byte_for_byte() {
    let input = b"# a comment before anything\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}  # hi\ndata: {a: \"no\", b: yes}\n...\n---\n\n---\n{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"s\"}}";
    let o = run(&["harden"], input);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout, input);
}

#[test]
fn harden_accepts_yaml_1_1_octal_file_modes() {
    let pod = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox}]\n  volumes: [{name: v, configMap: {name: cm, defaultMode: 0755}}]\n";
    let o = run(&["harden"], pod);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = read_as_kubectl(&o.stdout);
    assert_eq!(
        after[0]["spec"]["volumes"][0]["configMap"]["defaultMode"],
        493
    );
    // A quoted mode is a string, which the API server refuses too: one message naming the field.
    let quoted = String::from_utf8(pod.to_vec())
        .unwrap()
        .replace("0755", "\"0755\"");
    for cmd in ["harden", "check"] {
        let o = run(&[cmd], quoted.as_bytes());
        assert_eq!(o.status.code(), Some(2));
        assert_eq!(
            stderr(&o),
            "error: document 0 (Pod p): Pod has an invalid pod spec at /spec: spec.volumes[0].configMap.defaultMode: invalid type: string \"0755\", expected i32\n"
        );
    }
}

const KRM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/krm");

#[test]
fn krm_function_hardens_items_and_reports_what_is_still_denied() {
    let input = std::fs::read(Path::new(KRM).join("resource-list.yaml")).unwrap();
    let o = run(&["krm"], &input);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = &read_as_kubectl(&input)[0];
    let out = read_as_kubectl(&o.stdout);
    assert_eq!(out.len(), 1);
    let list = &out[0];
    assert_eq!(list["kind"], "ResourceList");
    assert_eq!(list["functionConfig"], before["functionConfig"]);
    // The ConfigMap is untouched; the Pod is hardened, except what functionConfig skips.
    assert_eq!(list["items"][1], before["items"][1]);
    let pod = &list["items"][0];
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["spec"]["containers"][0]["env"][0]["value"], "no");
    assert_eq!(
        pod["spec"]["containers"][0]["securityContext"].get("readOnlyRootFilesystem"),
        None
    );
    assert_eq!(
        pod["metadata"]["annotations"]["config.kubernetes.io/index"],
        "0"
    );
    // results: what was done (info) and what hostNetwork will still be denied for (warning).
    let results = list["results"].as_array().unwrap();
    let severities: Vec<&str> = results
        .iter()
        .map(|r| r["severity"].as_str().unwrap())
        .collect();
    assert_eq!(severities, ["info", "warning"]);
    for r in results {
        assert_eq!(
            r["resourceRef"],
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "name": "p"})
        );
        assert_eq!(
            r["file"],
            serde_json::json!({"path": "pod.yaml", "index": 0})
        );
    }
    assert!(
        results[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("hardened: set runAsNonRoot on pod: true")
    );
    assert_eq!(
        results[1]["message"],
        "will be denied: violates PodSecurity \"restricted:latest\": host namespaces (hostNetwork=true)"
    );
    // Running the function on its own output changes nothing but adds its results again.
    let again = run(&["krm"], &o.stdout);
    assert_eq!(read_as_kubectl(&again.stdout)[0]["items"], list["items"]);
}

#[test]
fn krm_function_config_and_bad_input() {
    let input =
        String::from_utf8(std::fs::read(Path::new(KRM).join("resource-list.yaml")).unwrap())
            .unwrap();
    // A spec-style functionConfig selects baseline: no capabilities drop.
    let spec_config = input.replace(
        "  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: cfg}\n  data: {level: restricted, skip: \"readOnlyRootFilesystem,tmpVolume\"}\n",
        "  apiVersion: pod-hardener.io/v1alpha1\n  kind: Hardening\n  metadata: {name: cfg}\n  spec: {level: baseline, skip: [tmpVolume]}\n",
    );
    assert_ne!(spec_config, input);
    let o = run(&["krm"], spec_config.as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pod = &read_as_kubectl(&o.stdout)[0]["items"][0];
    assert_eq!(
        pod["spec"]["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["securityContext"].get("capabilities"),
        None
    );
    for (bad, expected) in [
        (
            "apiVersion: v1\nkind: List\nitems: []\n",
            "error: invalid ResourceList: expected a ResourceList of config.kubernetes.io/v1 or config.kubernetes.io/v1beta1, found kind List of v1\n",
        ),
        (
            "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\n---\nkind: Pod\n",
            "error: invalid ResourceList: expected exactly one ResourceList document\n",
        ),
        (
            "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: [7]\n",
            "error: invalid ResourceList: item 0 is not an object\n",
        ),
        (
            "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\nfunctionConfig: {kind: ConfigMap, data: {level: privileged}}\n",
            "error: invalid ResourceList: functionConfig level \"privileged\": use restricted or baseline\n",
        ),
        (
            "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\nfunctionConfig: {kind: ConfigMap, data: {skip: readOnly}}\n",
            "error: invalid ResourceList: functionConfig skip: unknown control \"readOnly\"",
        ),
    ] {
        let o = run(&["krm"], bad.as_bytes());
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(stderr(&o).starts_with(expected), "{}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
}
