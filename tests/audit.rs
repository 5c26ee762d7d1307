//! `pod-hardener audit` against a real control plane (kube-apiserver, etcd, controller manager)
//! loaded with the chart corpus in namespaces at privileged, baseline, restricted and unlabelled:
//! every object's class equals what `check` and `harden` say offline for the object the API
//! server stored; controlled objects are folded into their audited controller; PolicyReports
//! validate against the real wgpolicyk8s.io CRDs and a second `--apply` updates them; a bad
//! kubeconfig, a forbidden list and an API server that goes away mid-scan give a clear error,
//! exit 2 and no report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::control_plane::ControlPlane;
use common::tools::{Kubectl, built, run_tool};
use pod_hardener::workload::WorkloadKind;
use serde_json::{Value, json};

include!("support/shared_data.rs");

const BIN: &str = env!("CARGO_BIN_EXE_pod-hardener");
/// Every kind the audit lists, for `kubectl get`.
const KINDS: &str = "pods,podtemplates,replicationcontrollers,deployments,replicasets,statefulsets,daemonsets,jobs,cronjobs";

/// The namespaces and the enforce level each is labelled with (None: unlabelled, so the
/// audit's default policy, restricted, applies while the API server's PSA default is privileged).
const NAMESPACES: [(&str, Option<&str>); 4] = [
    ("audit-privileged", Some("privileged")),
    ("audit-baseline", Some("baseline")),
    ("audit-restricted", Some("restricted")),
    ("audit-unlabelled", None),
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Kubectl<'_> {
    /// The wgpolicyk8s.io PolicyReport CRDs, created and established.
    fn install_policy_report_crds(&self) {
        let mut crds = Vec::new();
        for file in [
            "wgpolicyk8s.io_policyreports.yaml",
            "wgpolicyk8s.io_clusterpolicyreports.yaml",
        ] {
            crds.extend(fs::read(crds_dir().join(file)).unwrap());
            crds.extend(b"\n---\n");
        }
        self.install_crds(&crds);
    }

    fn policy_reports(&self, namespace: &str) -> Vec<Value> {
        let list = self.json(&["get", "policyreports", "-n", namespace, "-o", "json"]);
        list["items"].as_array().unwrap().clone()
    }
}

/// `pod-hardener ARGS` with `stdin`, bounded like the tools.
fn pod_hardener(args: &[&str], stdin: &[u8]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args);
    run_tool(&mut c, stdin)
}

fn audit(kubeconfig: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["audit", "--kubeconfig", kubeconfig.to_str().unwrap()];
    args.extend_from_slice(extra);
    pod_hardener(&args, b"")
}

fn crds_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        built(
            "POD_HARDENER_POLICY_REPORT_CRDS",
            "scripts/fetch-policy-report-crds.sh",
        )
    })
}

/// The ServiceAccounts and workloads of every rendering, moved to `namespace`.
fn corpus_in(namespace: &str) -> Vec<u8> {
    let mut items = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(charts_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    entries.sort();
    assert!(
        !entries.is_empty(),
        "no renderings in {}",
        charts_dir().display()
    );
    for path in entries {
        for doc in pod_hardener::manifest::read_documents(&fs::read(&path).unwrap()).unwrap() {
            let mut object = doc.object;
            let keep =
                object["kind"] == "ServiceAccount" || WorkloadKind::of_document(&object).is_some();
            if keep {
                object["metadata"]["namespace"] = json!(namespace);
                items.push(object);
            }
        }
    }
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": items})).unwrap()
}

/// Pods and a CronJob that owns a Job, written for the audit's edge cases.
fn hand_made(namespace: &str) -> Vec<u8> {
    let container =
        |sc: Value| json!({"name": "app", "image": "registry.test/app:1", "securityContext": sc});
    let pod = |name: &str, pod_sc: Value, sc: Value| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": namespace},
               "spec": {"securityContext": pod_sc, "containers": [container(sc)]}})
    };
    let items = vec![
        pod(
            "already-hardened",
            json!({"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}),
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true}),
        ),
        pod("plain", json!({}), json!({})),
        pod("privileged", json!({}), json!({"privileged": true})),
        pod("explicit-root", json!({"runAsNonRoot": false}), json!({})),
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
               "metadata": {"name": "nightly", "namespace": namespace},
               "spec": {"schedule": "0 3 * * *", "suspend": true, "jobTemplate": {"spec": {
                   "template": {"spec": {"restartPolicy": "Never", "containers": [container(json!({}))]}}}}}}),
    ];
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": items})).unwrap()
}

/// A Job controlled by CronJob `nightly` (as the CronJob controller makes them), suspended so
/// it creates no Pods.
fn job_of(kubectl: &Kubectl<'_>, namespace: &str) -> Vec<u8> {
    let cronjob = kubectl.json(&["get", "cronjob", "nightly", "-n", namespace, "-o", "json"]);
    let job = json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "nightly-1", "namespace": namespace, "ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
            "uid": cronjob["metadata"]["uid"], "controller": true}]},
        "spec": {"suspend": true, "template": cronjob["spec"]["jobTemplate"]["spec"]["template"]}});
    serde_json::to_vec(&job).unwrap()
}

fn load(control_plane: &ControlPlane, kubectl: &Kubectl<'_>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(control_plane.admin_client());
    for (ns, _) in NAMESPACES {
        kubectl.must(&["create", "namespace", ns], b"");
        rt.block_on(control_plane.wait_for_default_service_account(&client, ns));
        // An object the API server refuses is left out, said here: the audit is compared with
        // what it stored.
        let o = kubectl.run(&["create", "-f", "-"], &corpus_in(ns));
        if !o.status.success() {
            eprintln!("{ns}: the API server refused: {}", text(&o.stderr));
        }
        kubectl.must(&["create", "-f", "-"], &hand_made(ns));
        kubectl.must(&["create", "-f", "-"], &job_of(kubectl, ns));
    }
    // A namespace the shipped webhook configurations leave out.
    rt.block_on(control_plane.wait_for_default_service_account(&client, "kube-public"));
    let outside = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged", "namespace": "kube-public"},
        "spec": {"containers": [{"name": "app", "image": "registry.test/app:1", "securityContext": {"privileged": true}}]}});
    kubectl.must(&["create", "-f", "-"], outside.to_string().as_bytes());
    // Labelled last, as an operator would: the Pods already exist (PSA only warns).
    for (ns, level) in NAMESPACES {
        if let Some(level) = level {
            kubectl.must(
                &[
                    "label",
                    "namespace",
                    ns,
                    &format!("pod-security.kubernetes.io/enforce={level}"),
                ],
                b"",
            );
        }
    }
}

/// Waits until the controller manager has caught up with what `load` created: every controller
/// has observed its latest generation and the set of objects in the audited namespaces stayed
/// the same over three listings a second apart. The audits below are compared with one another
/// and with listings taken after them, so a ReplicaSet or Pod created in between (or a Pod
/// listed before its new ReplicaSet, so reported apart from it) would make them disagree for a
/// reason that has nothing to do with the audit.
fn wait_until_still(kubectl: &Kubectl<'_>) {
    // One listing: every object's identity, and the controllers that have not yet observed
    // their latest generation.
    let listing = || -> (BTreeSet<String>, Vec<String>) {
        let listed = kubectl.json(&["get", KINDS, "--all-namespaces", "-o", "json"]);
        let mut objects = BTreeSet::new();
        let mut behind = Vec::new();
        for o in listed["items"].as_array().unwrap() {
            let meta = &o["metadata"];
            let namespace = meta["namespace"].as_str().unwrap_or_default();
            if !NAMESPACES.iter().any(|(ns, _)| *ns == namespace) {
                continue;
            }
            let name = format!("{namespace}/{} {}", o["kind"], meta["name"]);
            let reports_observation = ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"]
                .contains(&o["kind"].as_str().unwrap_or_default());
            if reports_observation
                && o["status"]["observedGeneration"].as_u64() < meta["generation"].as_u64()
            {
                behind.push(name.clone());
            }
            objects.insert(format!("{name} {}", meta["uid"]));
        }
        (objects, behind)
    };
    let started = Instant::now();
    let (mut objects, mut behind) = listing();
    let mut unchanged = 0;
    // Bounded by count: a listing a second, 90 at most.
    for _ in 0..90 {
        if behind.is_empty() && unchanged == 2 {
            eprintln!(
                "controllers settled in {:.1?}: {} objects",
                started.elapsed(),
                objects.len()
            );
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
        let (next, next_behind) = listing();
        unchanged = if next == objects { unchanged + 1 } else { 0 };
        (objects, behind) = (next, next_behind);
    }
    panic!("the audited namespaces did not settle in 90 listings; behind: {behind:?}");
}

/// `check -o json` over `list` at `level`: (kind, name) to allowed.
fn offline_check(list: &[u8], level: &str) -> BTreeMap<(String, String), bool> {
    let o = pod_hardener(&["check", "--level", level, "-o", "json"], list);
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "check: {}",
        text(&o.stderr)
    );
    let evaluations: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    evaluations
        .iter()
        .map(|e| {
            (
                (
                    e["kind"].as_str().unwrap().to_owned(),
                    e["name"].as_str().unwrap().to_owned(),
                ),
                e["allowed"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The class `check` and `harden` give each stored object of a namespace at `level`.
fn offline_classes(
    stored: &Value,
    level: &str,
    mode: &str,
) -> BTreeMap<(String, String), &'static str> {
    let list = serde_json::to_vec(stored).unwrap();
    let as_is = offline_check(&list, level);
    let after = if level == "privileged" {
        as_is.clone()
    } else {
        let o = pod_hardener(&["harden", "--level", level, "--mode", mode], &list);
        assert!(o.status.success(), "harden: {}", text(&o.stderr));
        offline_check(&o.stdout, level)
    };
    as_is
        .iter()
        .map(|(key, allowed)| {
            let class = if *allowed {
                "compliant"
            } else if after[key] {
                "hardened"
            } else {
                "denied"
            };
            (key.clone(), class)
        })
        .collect()
}

fn namespace<'r>(report: &'r Value, name: &str) -> &'r Value {
    report["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("namespace {name} not in the report"))
}

#[test]
fn audit_matches_check_and_harden_and_writes_policy_reports() {
    let control_plane = ControlPlane::start();
    let kubectl = Kubectl(&control_plane);
    load(&control_plane, &kubectl);
    wait_until_still(&kubectl);
    let kubeconfig = control_plane.kubeconfig_path();

    // A small page size, so every list takes many pages.
    let o = audit(kubeconfig, &["-o", "json", "--page-size", "7"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "objects are denied: {}",
        text(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["apiVersion"], "audit.pod-hardener.io/v1");

    let mut classes_seen = BTreeSet::new();
    for (ns, level) in NAMESPACES {
        let level = level.unwrap_or("restricted");
        let section = namespace(&report, ns);
        assert_eq!(section["policy"], format!("{level}:latest"));
        let stored = kubectl.json(&["get", KINDS, "-n", ns, "-o", "json"]);
        let expected = offline_classes(&stored, level, "fill");
        let items = stored["items"].as_array().unwrap();
        let uid_of: BTreeMap<&str, &Value> = items
            .iter()
            .map(|o| (o["metadata"]["uid"].as_str().unwrap(), o))
            .collect();
        let audited = section["objects"].as_array().unwrap();
        let audited_uids: BTreeSet<&str> =
            audited.iter().map(|o| o["uid"].as_str().unwrap()).collect();
        for object in audited {
            let key = (
                object["kind"].as_str().unwrap().to_owned(),
                object["name"].as_str().unwrap().to_owned(),
            );
            let class = object["class"].as_str().unwrap();
            assert_eq!(Some(&class), expected.get(&key), "{ns} {key:?}: {object:#}");
            classes_seen.insert(class.to_owned());
            if class == "denied" {
                let message = object["message"].as_str().unwrap();
                assert!(
                    message.starts_with(&format!("violates PodSecurity \"{level}:latest\": ")),
                    "{message}"
                );
                assert!(
                    !object["unfixable"].as_array().unwrap().is_empty(),
                    "{object:#}"
                );
            }
        }
        // Everything stored is audited, or folded into a controller whose chain of controllers
        // reaches an audited object.
        let controller_of = |o: &Value| -> Option<String> {
            o["metadata"]["ownerReferences"]
                .as_array()?
                .iter()
                .find(|r| r["controller"] == true)
                .and_then(|r| r["uid"].as_str())
                .map(str::to_owned)
        };
        for o in items {
            let mut uid = o["metadata"]["uid"].as_str().unwrap().to_owned();
            for _ in 0..4 {
                if audited_uids.contains(uid.as_str()) {
                    break;
                }
                uid = controller_of(uid_of[uid.as_str()]).unwrap_or_else(|| {
                    panic!(
                        "{ns}: {} {} is neither audited nor folded into an audited controller",
                        o["kind"], o["metadata"]["name"]
                    )
                });
                assert!(
                    uid_of.contains_key(uid.as_str()),
                    "{ns}: controller {uid} not stored"
                );
            }
            assert!(
                audited_uids.contains(uid.as_str()),
                "{ns}: {}",
                o["metadata"]["name"]
            );
        }
        // One reported apart from its controller fares worse than the controller's template.
        let rank = |class: &str| {
            ["exempt", "compliant", "hardened", "denied"]
                .iter()
                .position(|c| *c == class)
        };
        for o in audited.iter().filter(|o| o.get("controlledBy").is_some()) {
            let stored = uid_of[o["uid"].as_str().unwrap()];
            let controller = controller_of(stored).unwrap();
            let controller = audited
                .iter()
                .find(|c| c["uid"] == controller.as_str())
                .unwrap();
            assert!(
                rank(o["class"].as_str().unwrap()) > rank(controller["class"].as_str().unwrap()),
                "{o:#}"
            );
        }
        let cronjob = audited
            .iter()
            .find(|o| o["kind"] == "CronJob" && o["name"] == "nightly")
            .unwrap();
        assert_eq!(cronjob["owned"]["Job"], 1, "{cronjob:#}");
        assert!(
            !audited
                .iter()
                .any(|o| o["kind"] == "Job" && o["name"] == "nightly-1")
        );
        let summary = &section["summary"];
        assert_eq!(summary["objects"].as_u64().unwrap() as usize, audited.len());
    }
    assert!(
        ["compliant", "hardened", "denied"]
            .iter()
            .all(|c| classes_seen.contains(*c)),
        "the corpus exercises every class: {classes_seen:?}"
    );
    let excluded = namespace(&report, "kube-public");
    assert_eq!(excluded["summary"]["exempt"], 1, "{excluded:#}");
    let privileged = namespace(&report, "audit-privileged");
    assert_eq!(
        privileged["summary"]["compliant"],
        privileged["summary"]["objects"]
    );

    // A hypothetical level and override mode: as `check` and `harden --mode override` say.
    let o = audit(
        kubeconfig,
        &[
            "-n",
            "audit-privileged",
            "--level",
            "restricted",
            "--mode",
            "override",
            "-o",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let what_if: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(what_if["scope"]["policy"], "restricted:latest");
    assert_eq!(what_if["scope"]["hardeningMode"], "override");
    let stored = kubectl.json(&["get", KINDS, "-n", "audit-privileged", "-o", "json"]);
    let expected = offline_classes(&stored, "restricted", "override");
    let objects = namespace(&what_if, "audit-privileged")["objects"]
        .as_array()
        .unwrap();
    for object in objects {
        let key = (
            object["kind"].as_str().unwrap().to_owned(),
            object["name"].as_str().unwrap().to_owned(),
        );
        assert_eq!(
            expected.get(&key).copied(),
            object["class"].as_str(),
            "{key:?}: {object:#}"
        );
    }
    let fill = namespace(&report, "audit-restricted")["summary"]["denied"]
        .as_u64()
        .unwrap();
    let override_denied = namespace(&what_if, "audit-privileged")["summary"]["denied"]
        .as_u64()
        .unwrap();
    assert!(
        override_denied < fill,
        "override mode fixes explicit values: {override_denied} vs {fill}"
    );

    // The table says the same, summary first.
    let o = audit(kubeconfig, &["--details"]);
    assert_eq!(o.status.code(), Some(1));
    let table = text(&o.stdout);
    assert!(table.starts_with("pod-hardener audit: "), "{table}");
    let restricted = namespace(&report, "audit-restricted");
    let row = table
        .lines()
        .find(|l| l.starts_with("audit-restricted "))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[5],
        restricted["summary"]["hardened"].to_string(),
        "{row}"
    );
    assert_eq!(
        cells[6],
        restricted["summary"]["denied"].to_string(),
        "{row}"
    );
    assert!(
        table.contains("Pod audit-restricted/privileged: denied at restricted:latest"),
        "{table}"
    );

    // PolicyReports: printed ones validate against the real CRDs, applied ones are updated.
    kubectl.install_policy_report_crds();
    let o = audit(kubeconfig, &["-o", "policyreport"]);
    assert_eq!(o.status.code(), Some(1));
    kubectl.must(&["create", "--dry-run=server", "-f", "-"], &o.stdout);

    let o = audit(kubeconfig, &["--apply", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("applied "), "{}", text(&o.stderr));
    // What was applied is what this run printed.
    let applied: Value = serde_json::from_slice(&o.stdout).unwrap();
    let restricted = namespace(&applied, "audit-restricted");
    let first = kubectl.policy_reports("audit-restricted");
    assert_eq!(first.len(), 1, "one report per namespace");
    let results = first[0]["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        restricted["objects"].as_array().unwrap().len()
    );
    assert_eq!(first[0]["summary"]["fail"], restricted["summary"]["denied"]);
    let privileged_result = results
        .iter()
        .find(|r| r["resources"][0]["name"] == "privileged" && r["resources"][0]["kind"] == "Pod")
        .unwrap();
    assert_eq!(privileged_result["result"], "fail");
    assert_eq!(privileged_result["rule"], "denied");
    let cluster = kubectl.json(&["get", "clusterpolicyreport", "pod-hardener", "-o", "json"]);
    let namespaces_in_cluster_report: BTreeSet<&str> = cluster["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resources"][0]["name"].as_str().unwrap())
        .collect();
    for (ns, _) in NAMESPACES {
        assert!(namespaces_in_cluster_report.contains(ns), "{cluster:#}");
    }

    // A second run, after a change: the same object, updated.
    kubectl.must(
        &["delete", "pod", "privileged", "-n", "audit-restricted"],
        b"",
    );
    let o = audit(
        kubeconfig,
        &["--apply", "-n", "audit-restricted", "-o", "json"],
    );
    assert!(
        o.status.code().is_some_and(|c| c <= 1),
        "{}",
        text(&o.stderr)
    );
    let second = kubectl.policy_reports("audit-restricted");
    assert_eq!(second.len(), 1, "not duplicated");
    assert_eq!(
        second[0]["metadata"]["uid"], first[0]["metadata"]["uid"],
        "updated in place"
    );
    assert_eq!(
        second[0]["results"].as_array().unwrap().len(),
        results.len() - 1
    );
    // The scoped run kept the other namespaces' results in the ClusterPolicyReport.
    let cluster = kubectl.json(&["get", "clusterpolicyreport", "pod-hardener", "-o", "json"]);
    let after: BTreeSet<&str> = cluster["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["resources"][0]["name"].as_str().unwrap())
        .collect();
    assert_eq!(after, namespaces_in_cluster_report, "{cluster:#}");

    // A hypothetical level or a subset of objects would overwrite the namespaces' own reports.
    for flags in [["--level", "baseline"], ["-l", "app=x"]] {
        let mut args = vec!["--apply"];
        args.extend(flags);
        let o = audit(kubeconfig, &args);
        assert_no_report(&o, "--apply");
    }
}

/// A loopback proxy to the API server that cuts every connection once it has carried `limit`
/// bytes to the client, and refuses new ones from then on: the API server going away mid-scan.
fn cutting_proxy(upstream: u16, limit: usize) -> u16 {
    proxy(upstream, limit, Duration::ZERO)
}

/// A loopback proxy to the API server that delays every chunk it carries to the client by
/// `delay` and cuts every connection past `limit` bytes (see [`cutting_proxy`]).
fn proxy(upstream: u16, limit: usize, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let carried = Arc::new(AtomicUsize::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for client in listener.incoming().take(64) {
            let Ok(client) = client else { break };
            if cut.load(Ordering::SeqCst) {
                break;
            }
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                break;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut &c2, &mut &s2);
                let _ = s2.shutdown(Shutdown::Write);
            });
            let (carried, cut) = (carried.clone(), cut.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let (mut from, mut to) = (server, client);
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 || cut.load(Ordering::SeqCst) {
                        break;
                    }
                    if carried.fetch_add(n, Ordering::SeqCst) + n > limit {
                        cut.store(true, Ordering::SeqCst);
                        break;
                    }
                    std::thread::sleep(delay);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
            });
        }
        // Dropping the listener refuses every later connection.
    });
    port
}

/// `audit` as a user just bound to a role: retried for up to 30 s while it fails (exit 2), the
/// time RBAC takes to see a new binding.
fn audit_once_authorized(kubeconfig: &Path, args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = audit(kubeconfig, args);
        if o.status.code() != Some(2) || Instant::now() > deadline {
            return o;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_no_report(o: &Output, expected: &str) {
    assert_eq!(o.status.code(), Some(2), "stderr: {}", text(&o.stderr));
    assert!(
        o.stdout.is_empty(),
        "a partial report was printed: {}",
        text(&o.stdout)
    );
    let stderr = text(&o.stderr);
    assert!(stderr.contains(expected), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one message: {stderr}");
}

#[test]
fn audit_fails_clearly_and_never_gives_a_partial_report() {
    let control_plane = ControlPlane::start();
    let kubectl = Kubectl(&control_plane);
    kubectl.must(&["create", "namespace", "audit-errors"], b"");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(control_plane.admin_client());
    rt.block_on(control_plane.wait_for_default_service_account(&client, "audit-errors"));
    kubectl.must(&["create", "-f", "-"], &corpus_in("audit-errors"));
    let dir = tempfile::tempdir().unwrap();

    // No such kubeconfig.
    let missing = dir.path().join("missing.kubeconfig");
    let o = audit(&missing, &[]);
    assert_no_report(&o, "cannot load the cluster's configuration");

    // Nothing listens there.
    let kubeconfig = fs::read_to_string(control_plane.kubeconfig_path()).unwrap();
    let server = control_plane.server_url();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let unreachable = dir.path().join("unreachable.kubeconfig");
    fs::write(
        &unreachable,
        kubeconfig.replace(server, &format!("https://127.0.0.1:{closed}")),
    )
    .unwrap();
    let o = audit(&unreachable, &["--request-timeout", "5"]);
    assert_no_report(&o, "cannot list namespaces");

    // Authenticated, not authorized; then the shipped read-only ClusterRole is enough.
    let auditor = control_plane.write_user_kubeconfig("auditor", &[]);
    let o = audit(&auditor, &[]);
    assert_no_report(&o, "forbidden");
    let rbac =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/audit/rbac.yaml")).unwrap();
    kubectl.must(&["apply", "-f", "-"], &rbac);
    kubectl.must(
        &[
            "create",
            "clusterrolebinding",
            "auditor",
            "--clusterrole=pod-hardener-audit",
            "--user=auditor",
        ],
        b"",
    );
    let o = audit_once_authorized(&auditor, &["-o", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let full_objects = report["summary"]["objects"].as_u64().unwrap();
    assert!(full_objects > 20, "{full_objects}");
    // The webhook's config file: its exemptions (and defaults) are the audit's.
    let config = dir.path().join("config.yaml");
    fs::write(&config, "exemptions:\n  namespaces: [audit-errors]\n").unwrap();
    let o = audit(
        control_plane.kubeconfig_path(),
        &[
            "-n",
            "audit-errors",
            "--config",
            config.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let exempt: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(exempt["summary"]["exempt"], exempt["summary"]["objects"]);
    assert!(exempt["summary"]["objects"].as_u64().unwrap() > 20);
    fs::write(&config, "defaultPolicy:\n  enforce: strict\n").unwrap();
    let o = audit(
        control_plane.kubeconfig_path(),
        &["--config", config.to_str().unwrap()],
    );
    assert_no_report(&o, "defaultPolicy.enforce");

    // --apply needs the other role: a clear refusal, after the report was computed.
    let o = audit(&auditor, &["--apply"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("pod-hardener-audit-reports"),
        "{}",
        text(&o.stderr)
    );

    // Ctrl-C mid-scan (through a proxy slow enough that the scan is still running): no report.
    let slow = proxy(
        control_plane.apiserver_port(),
        usize::MAX,
        Duration::from_millis(100),
    );
    let slow_kubeconfig = dir.path().join("slow.kubeconfig");
    fs::write(
        &slow_kubeconfig,
        kubeconfig.replace(server, &format!("https://127.0.0.1:{slow}")),
    )
    .unwrap();
    let child = Command::new(BIN)
        .args([
            "audit",
            "--kubeconfig",
            slow_kubeconfig.to_str().unwrap(),
            "--page-size",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let signalled = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let o = child.wait_with_output().unwrap();
    assert_no_report(&o, "interrupted; no report was written");

    // With the second role (and the CRDs), the same user applies the reports, a scoped run
    // (which reads the ClusterPolicyReport to keep the other namespaces) included.
    kubectl.install_policy_report_crds();
    kubectl.must(
        &[
            "create",
            "clusterrolebinding",
            "auditor-reports",
            "--clusterrole=pod-hardener-audit-reports",
            "--user=auditor",
        ],
        b"",
    );
    for scope in [&[][..], &["-n", "audit-errors"][..]] {
        let mut args = vec!["--apply", "-o", "json"];
        args.extend_from_slice(scope);
        let o = audit_once_authorized(&auditor, &args);
        assert_eq!(o.status.code(), Some(1), "{scope:?}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("applied "), "{}", text(&o.stderr));
    }

    // The API server goes away after some pages: however far the scan got, no report.
    let port = control_plane.apiserver_port();
    for limit in [16 * 1024, 64 * 1024] {
        let proxy = cutting_proxy(port, limit);
        let cut = dir.path().join(format!("cut-{limit}.kubeconfig"));
        fs::write(
            &cut,
            kubeconfig.replace(server, &format!("https://127.0.0.1:{proxy}")),
        )
        .unwrap();
        let o = audit(
            &cut,
            &["--page-size", "2", "--request-timeout", "5", "-o", "json"],
        );
        assert_no_report(&o, "no report was written");
        assert!(
            !text(&o.stderr).contains("list namespaces"),
            "cut after the namespaces: {}",
            text(&o.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_lookups_say_which_hardened_containers_will_not_start() {
    use common::registry::{Layer, PlatformImage, Registry, TestCerts, TestImage};

    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(&dir.path().join("certs"));
    let registry = Registry::start(
        &dir.path().join("registry"),
        &certs,
        &dir.path().join("storage"),
        None,
    )
    .await;
    let passwd: &[u8] = b"root:x:0:0:root:/root:/bin/sh\napp:x:1001:1001::/home/app:/bin/sh\n";
    let layer = || Layer::gzip(&[("bin/true", b"#!/bin/sh\n"), ("etc/passwd", passwd)]);
    for (name, user) in [
        ("no-user", None),
        ("numeric", Some("1000")),
        ("named", Some("app")),
        ("ghost", Some("ghost")),
    ] {
        registry
            .push(
                name,
                "1",
                &TestImage::Single(PlatformImage::new(user, vec![layer()])),
            )
            .await;
    }
    let host = registry.host.clone();
    let control_plane = ControlPlane::start_async().await;
    let objects: Vec<Value> = ["no-user", "numeric", "named", "ghost"]
        .iter()
        .map(|image| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": image, "namespace": "audit-images"},
                   "spec": {"replicas": 0, "selector": {"matchLabels": {"app": image}},
                            "template": {"metadata": {"labels": {"app": image}},
                                         "spec": {"containers": [{"name": "app", "image": format!("{host}/{image}:1")}]}}}})
        })
        .collect();
    let list =
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": objects})).unwrap();
    let images_config = dir.path().join("images.yaml");
    fs::write(
        &images_config,
        format!(
            "registries:\n  \"{host}\": {{ca: {}}}\n",
            certs.ca.display()
        ),
    )
    .unwrap();
    let kubeconfig = control_plane.kubeconfig_path().to_owned();
    let classes = tokio::task::spawn_blocking(move || {
        let kubectl = Kubectl(&control_plane);
        kubectl.must(&["create", "namespace", "audit-images"], b"");
        kubectl.must(
            &[
                "label",
                "namespace",
                "audit-images",
                "pod-security.kubernetes.io/enforce=restricted",
            ],
            b"",
        );
        kubectl.must(&["create", "-f", "-"], &list);
        let run = |extra: &[&str]| -> BTreeMap<String, Value> {
            let mut args = vec!["-n", "audit-images", "-o", "json"];
            args.extend_from_slice(extra);
            let o = audit(&kubeconfig, &args);
            assert!(
                o.status.code().is_some_and(|c| c <= 1),
                "{}",
                text(&o.stderr)
            );
            let report: Value = serde_json::from_slice(&o.stdout).unwrap();
            namespace(&report, "audit-images")["objects"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|o| o["kind"] == "Deployment")
                .map(|o| (o["name"].as_str().unwrap().to_owned(), o.clone()))
                .collect()
        };
        let without = run(&[]);
        let images_config = images_config.to_str().unwrap().to_owned();
        let with = run(&["--image-lookups", "--images-config", &images_config]);
        drop(control_plane);
        (without, with)
    })
    .await
    .unwrap();
    let (without, with) = classes;
    let risks = |o: &Value| -> Vec<String> {
        o["risks"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|r| r["kind"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    // Without lookups every image's user is unknown; with them, each is decided as the kubelet
    // will: a root image is denied (runAsNonRoot is not set for it), a named user resolved.
    for (name, o) in &without {
        assert_eq!(o["class"], "hardened", "{name}: {o:#}");
        assert!(
            risks(o).contains(&"image-user-unknown".to_owned()),
            "{name}: {o:#}"
        );
    }
    assert_eq!(with["no-user"]["class"], "denied", "{:#}", with["no-user"]);
    assert_eq!(
        with["no-user"]["unfixable"][0]["reason"],
        "image-runs-as-root"
    );
    assert_eq!(with["ghost"]["class"], "denied", "{:#}", with["ghost"]);
    assert_eq!(
        with["ghost"]["unfixable"][0]["reason"],
        "image-user-unverifiable"
    );
    for name in ["numeric", "named"] {
        assert_eq!(with[name]["class"], "hardened", "{name}: {:#}", with[name]);
        assert_eq!(
            risks(&with[name]),
            vec!["read-only-root"],
            "{name}: {:#}",
            with[name]
        );
    }
}
