//! Audit at scale: a real kube-apiserver (and etcd, and the controller manager, from the test
//! harness's cached build) holding 5,000 Pods and 1,000 workloads in 10 namespaces, audited by
//! the release `pod-hardener audit` binary. Reports its wall time and peak RSS (VmHWM of the
//! child process, sampled every 5 ms) per page size and output format.
//!
//! Run: `cargo bench --bench audit` (about 2 minutes, most of it loading the API server);
//! `-- --pods N --workloads N --rounds N` change the load. Loopback only; no node is needed, so
//! the Pods stay Pending. Workloads are the chart corpus's (`../shared/charts/rendered`) with
//! replicas 0 and suspended, so no controller adds Pods while it runs; the Pods are the corpus
//! templates' Pods. Under `cargo test --all-targets` (no `--bench` argument) it does nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// The test harness's control plane, of which this uses a part.
#[allow(dead_code)]
#[path = "../tests/common/control_plane.rs"]
mod control_plane;

include!("../tests/support/shared_data.rs");

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use pod_hardener::workload::WorkloadKind;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_pod-hardener");
const NAMESPACES: usize = 10;
const LEVELS: [Option<&str>; 4] = [
    Some("restricted"),
    Some("baseline"),
    Some("privileged"),
    None,
];

struct Options {
    pods: usize,
    workloads: usize,
    rounds: usize,
}

fn options() -> Option<Options> {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return None;
    }
    let value = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    Some(Options {
        pods: value("--pods", 5_000),
        workloads: value("--workloads", 1_000),
        rounds: value("--rounds", 3),
    })
}

/// The corpus's workloads, made inert (replicas 0, suspended), and Pods from their templates.
fn corpus() -> (Vec<Value>, Vec<Value>) {
    let mut workloads = Vec::new();
    let mut pods = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(charts_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let docs = pod_hardener::manifest::read_documents(&std::fs::read(&path).unwrap()).unwrap();
        for doc in docs {
            let mut o = doc.object;
            let Some(kind) = WorkloadKind::of_document(&o) else {
                continue;
            };
            if let Some(template) = kind
                .pod_spec_of(&o)
                .cloned()
                .filter(|_| kind != WorkloadKind::Pod)
            {
                let meta = o
                    .pointer("/spec/template/metadata")
                    .cloned()
                    .unwrap_or(json!({}));
                // Not the template's labels: a ReplicaSet with 0 replicas would adopt and delete
                // the Pods its selector matches.
                pods.push(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"labels": {"bench": "audit"}, "annotations": meta.get("annotations")},
                    "spec": template}));
            }
            match kind {
                WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::ReplicaSet => {
                    o["spec"]["replicas"] = json!(0);
                }
                WorkloadKind::CronJob | WorkloadKind::Job => o["spec"]["suspend"] = json!(true),
                WorkloadKind::DaemonSet => {}
                _ => continue,
            }
            workloads.push(o);
        }
    }
    (workloads, pods)
}

fn resource_of(kind: WorkloadKind) -> ApiResource {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::core::v1::Pod;
    match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::ReplicaSet => ApiResource::erase::<ReplicaSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        WorkloadKind::Job => ApiResource::erase::<Job>(&()),
        WorkloadKind::CronJob => ApiResource::erase::<CronJob>(&()),
        _ => ApiResource::erase::<Pod>(&()),
    }
}

async fn load(control_plane: &control_plane::ControlPlane, options: &Options) {
    let client = control_plane.admin_client().await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for i in 0..NAMESPACES {
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": format!("bench-{i}")}});
        if let Some(level) = LEVELS[i % LEVELS.len()] {
            ns["metadata"]["labels"] = json!({"pod-security.kubernetes.io/enforce": level});
        }
        // Labelled Pod Security levels would refuse the corpus's Pods: create, load, then label.
        let mut unlabelled = ns.clone();
        unlabelled["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(unlabelled).unwrap(),
            )
            .await
            .unwrap();
        control_plane
            .wait_for_default_service_account(&client, &format!("bench-{i}"))
            .await;
    }
    let (workloads, pods) = corpus();
    let mut objects = Vec::new();
    for i in 0..options.workloads {
        let mut o = workloads[i % workloads.len()].clone();
        o["metadata"] = json!({"name": format!("w{i}"), "namespace": format!("bench-{}", i % NAMESPACES),
                              "labels": o["metadata"]["labels"]});
        objects.push(o);
    }
    for i in 0..options.pods {
        let mut o = pods[i % pods.len()].clone();
        o["metadata"]["name"] = json!(format!("p{i}"));
        o["metadata"]["namespace"] = json!(format!("bench-{}", i % NAMESPACES));
        // A StatefulSet's volumeClaimTemplates become volumes of its Pods: an emptyDir here.
        let spec = &mut o["spec"];
        let declared: Vec<Value> = spec["volumes"].as_array().cloned().unwrap_or_default();
        let mut volumes = declared.clone();
        for c in spec["containers"]
            .as_array()
            .into_iter()
            .chain(spec["initContainers"].as_array())
            .flatten()
        {
            for m in c["volumeMounts"].as_array().into_iter().flatten() {
                if !volumes.iter().any(|v| v["name"] == m["name"]) {
                    volumes.push(json!({"name": m["name"], "emptyDir": {}}));
                }
            }
        }
        if volumes.len() != declared.len() {
            spec["volumes"] = Value::Array(volumes);
        }
        // The corpus's service accounts are not created: every Pod runs as `default`.
        o["spec"]
            .as_object_mut()
            .unwrap()
            .remove("serviceAccountName");
        o["spec"].as_object_mut().unwrap().remove("serviceAccount");
        objects.push(o);
    }
    let started = Instant::now();
    let total = objects.len();
    let created = futures_util::stream::iter(objects)
        .map(|o| {
            let client = client.clone();
            async move {
                let kind = WorkloadKind::of_document(&o).unwrap();
                let ns = o["metadata"]["namespace"].as_str().unwrap().to_owned();
                let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &resource_of(kind));
                let object: DynamicObject = serde_json::from_value(o).unwrap();
                api.create(&PostParams::default(), &object).await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut refusals: Vec<String> = created
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    refusals.sort();
    refusals.dedup();
    for refusal in refusals.iter().take(5) {
        eprintln!("audit bench: the API server refused an object: {refusal}");
    }
    let created = created.iter().filter(|r| r.is_ok()).count();
    eprintln!(
        "audit bench: created {created} of {total} objects in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for i in 0..NAMESPACES {
        if let Some(level) = LEVELS[i % LEVELS.len()] {
            let patch =
                json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": level}}});
            namespaces
                .patch(
                    &format!("bench-{i}"),
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
                .unwrap();
        }
    }
}

/// Runs the audit; returns (wall seconds, peak RSS in KiB, objects audited).
fn run_audit(kubeconfig: &Path, page_size: u32, output: &str) -> (f64, u64, u64) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["audit", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--page-size", &page_size.to_string(), "-o", output])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).unwrap();
        out
    });
    let mut peak_kib = 0;
    let deadline = started + Duration::from_secs(600);
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the audit did not finish in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed().as_secs_f64();
    let out = reader.join().unwrap();
    assert!(
        status.code().is_some_and(|c| c <= 1),
        "audit failed: {status}"
    );
    let objects = if output == "json" {
        let report: Value = serde_json::from_slice(&out).unwrap();
        report["summary"]["objects"].as_u64().unwrap()
    } else {
        0
    };
    (elapsed, peak_kib, objects)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let Some(options) = options() else {
        println!("audit bench: skipped (run it with `cargo bench --bench audit`)");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let control_plane = control_plane::ControlPlane::start();
    rt.block_on(load(&control_plane, &options));
    let kubeconfig = control_plane.kubeconfig_path();
    println!(
        "\npod-hardener audit over {} Pods and {} workloads in {NAMESPACES} namespaces ({} rounds, median; machine: {} cores)",
        options.pods,
        options.workloads,
        options.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| page size | output | objects audited | wall time | peak RSS |");
    println!("|---|---|---|---|---|");
    for (page_size, output) in [
        (500, "json"),
        (100, "json"),
        (500, "table"),
        (500, "policyreport"),
    ] {
        let mut times = Vec::new();
        let mut peaks = Vec::new();
        let mut objects = 0;
        for _ in 0..options.rounds {
            let (t, peak, n) = run_audit(kubeconfig, page_size, output);
            times.push(t);
            peaks.push(peak as f64);
            objects = objects.max(n);
        }
        let audited = if objects > 0 {
            objects.to_string()
        } else {
            "—".into()
        };
        println!(
            "| {page_size} | {output} | {audited} | {:.2} s | {:.1} MiB |",
            median(times),
            median(peaks) / 1024.0
        );
    }
}
