//! End to end on a real node (issue 13): the real control plane, the real pod-hardener registered
//! as its webhooks (`tests/common/webhook.rs`), and a real node (`tests/common/node.rs`:
//! containerd, runc with seccomp, the CNI bridge plugin, kubelet and kube-scheduler v1.37.2)
//! running the test images of `scripts/build-node-images.sh`. Every check is made on what the API
//! server stored and reports (phase, container state and message, container logs) and on what
//! the containers print about themselves (`/proc/self/status`, writable paths).
//!
//! Each test runs in a sandbox of its own (`tests/common/sandbox.rs`): a new network and mount
//! namespace, one test at a time, and a check afterwards that it left no process, cgroup, mount,
//! link or file behind. Needs root. Run them alone with `cargo test --test e2e_node`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use common::control_plane::ControlPlane;
use common::node::Node;
use common::sandbox::{self, Sandbox};
use common::webhook::{RECORD_ANNOTATION, Setup};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{LogParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const RESTRICTED: (&str, &str) = ("pod-security.kubernetes.io/enforce", "restricted");
/// The namespace the scenarios' workloads run in.
const APPS: &str = "apps";
/// How long a Pod may take to reach its final state.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// What the probe prints last before it waits (or exits, for Jobs).
const PROBE_DONE: &str = "probe: done";

/// Runs `body` in the inner run of the sandboxed test `name` (see `tests/common/sandbox.rs`).
fn sandboxed<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Sandbox) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(sandbox) = sandbox::enter(name) else {
        return;
    };
    tokio_runtime().block_on(body(sandbox));
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A control plane with pod-hardener, a Ready node, and the restricted namespace [`APPS`].
async fn cluster(sandbox: &Sandbox) -> (Setup, Node) {
    let setup = Setup::start(json!({})).await;
    let node = Node::start(&setup.control_plane, sandbox).await;
    setup.namespace(APPS, &[RESTRICTED]).await;
    (setup, node)
}

/// An unmodified Pod (no securityContext anywhere) running the probe image `tag`.
fn probe_pod(name: &str, tag: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "containers": [{
                "name": "probe",
                "image": format!("pod-hardener-e2e/probe:{tag}"),
                "imagePullPolicy": "Never",
            }],
            "terminationGracePeriodSeconds": 2,
        },
    }))
    .unwrap()
}

/// An unmodified Job running the probe image `tag` once (the probe exits after its checks).
fn probe_job(name: &str, tag: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "probe",
                        "image": format!("pod-hardener-e2e/probe:{tag}"),
                        "imagePullPolicy": "Never",
                        "env": [{ "name": "PROBE_EXIT", "value": "1" }],
                    }],
                },
            },
        },
    }))
    .unwrap()
}

/// Where a Pod ended up, as the API server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Final {
    /// Running, its probe finished its checks.
    Running,
    /// Succeeded (Jobs).
    Succeeded,
    /// The kubelet refused to create the container: the waiting reason and message.
    Refused { reason: String, message: String },
    /// The container exited non-zero (and, for Pods, is restarted): exit code.
    Crashed { exit_code: i32 },
}

impl std::fmt::Display for Final {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Final::Running => write!(f, "Running"),
            Final::Succeeded => write!(f, "Succeeded"),
            Final::Refused { reason, message } => write!(f, "{reason}: {message}"),
            Final::Crashed { exit_code } => write!(f, "crashed, exit code {exit_code}"),
        }
    }
}

/// The final state of Pod `name`, if it has reached one, and the probe's log.
async fn final_state(pods: &Api<Pod>, name: &str) -> Option<(Final, String)> {
    let pod = pods.get_opt(name).await.ok()??;
    // Running is where a Pod stays; a Job's Pod goes on to Succeeded or Failed.
    let runs_until_stopped = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.restart_policy.as_deref())
        .is_none_or(|policy| policy == "Always");
    let status = pod.status?;
    let phase = status.phase.unwrap_or_default();
    let container = status.container_statuses?.into_iter().next()?;
    let state = container.state.unwrap_or_default();
    if let Some(waiting) = &state.waiting
        && waiting.reason.as_deref() == Some("CreateContainerConfigError")
    {
        let refused = Final::Refused {
            reason: "CreateContainerConfigError".to_owned(),
            message: waiting.message.clone().unwrap_or_default(),
        };
        return Some((refused, String::new()));
    }
    let terminated = state.terminated.or_else(|| {
        container
            .last_state
            .and_then(|last| last.terminated)
            .filter(|_| container.restart_count > 0)
    });
    if let Some(terminated) = terminated {
        let previous = state.running.is_some() || state.waiting.is_some();
        let log = logs(pods, name, previous).await;
        return Some(match (phase.as_str(), terminated.exit_code) {
            ("Succeeded", 0) => (Final::Succeeded, log),
            (_, exit_code) if exit_code != 0 => (Final::Crashed { exit_code }, log),
            _ => return None,
        });
    }
    if runs_until_stopped && phase == "Running" && state.running.is_some() {
        let log = logs(pods, name, false).await;
        if log.contains(PROBE_DONE) {
            return Some((Final::Running, log));
        }
    }
    None
}

async fn logs(pods: &Api<Pod>, name: &str, previous: bool) -> String {
    let params = LogParams {
        previous,
        ..LogParams::default()
    };
    pods.logs(name, &params).await.unwrap_or_default()
}

/// [`settle_with`] for a cluster with pod-hardener as a process: its log joins the diagnostics.
async fn settle(setup: &Setup, node: &Node, names: &[String]) -> BTreeMap<String, (Final, String)> {
    settle_with(&setup.client, node, names, &|| setup.diagnostics()).await
}

/// Waits until every Pod in `names` (in [`APPS`]) has reached its final state; returns them by
/// name. On timeout, panics with each Pod's status, the node's logs and `diagnostics()`.
async fn settle_with(
    client: &Client,
    node: &Node,
    names: &[String],
    diagnostics: &(dyn Fn() -> String + Sync),
) -> BTreeMap<String, (Final, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), APPS);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut settled = BTreeMap::new();
    while settled.len() < names.len() {
        for name in names {
            if !settled.contains_key(name)
                && let Some(state) = final_state(&pods, name).await
            {
                settled.insert(name.clone(), state);
            }
        }
        if Instant::now() > deadline {
            let mut report = String::new();
            for name in names.iter().filter(|n| !settled.contains_key(*n)) {
                let pod = pods.get_opt(name).await.ok().flatten();
                report.push_str(&format!(
                    "\n{name}: {}",
                    serde_json::to_string(&pod.and_then(|p| p.status)).unwrap()
                ));
            }
            panic!(
                "Pods without a final state after {SETTLE_TIMEOUT:?}:{report}\n{}\n{}",
                node.diagnostics(),
                diagnostics()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    settled
}

/// The value of a `/proc/self/status` line (`Seccomp:\t2` → `2`) in a probe's log.
fn status_line<'a>(log: &'a str, key: &str) -> Option<&'a str> {
    log.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// The Pod as the API server stored it, as JSON.
async fn stored(client: &Client, name: &str) -> Value {
    let pod = Api::<Pod>::namespaced(client.clone(), APPS)
        .get(name)
        .await
        .unwrap();
    serde_json::to_value(pod).unwrap()
}

/// The hardening the API server stored on a Pod that no one gave a securityContext.
fn assert_stored_hardened(pod: &Value) {
    let name = &pod["metadata"]["name"];
    assert!(
        pod["metadata"]["annotations"][RECORD_ANNOTATION].is_string(),
        "{name}: no record annotation"
    );
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{name}");
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{name}"
    );
    let container = &spec["containers"][0]["securityContext"];
    assert_eq!(container["allowPrivilegeEscalation"], false, "{name}");
    assert_eq!(container["readOnlyRootFilesystem"], true, "{name}");
    assert_eq!(container["capabilities"]["drop"], json!(["ALL"]), "{name}");
    let tmp_mounted = spec["containers"][0]["volumeMounts"]
        .as_array()
        .is_some_and(|mounts| mounts.iter().any(|m| m["mountPath"] == "/tmp"));
    assert!(tmp_mounted, "{name}: no volume at /tmp");
}

/// What a hardened container must see from inside.
fn assert_runs_hardened(name: &str, log: &str, uid: &str) {
    assert_eq!(status_line(log, "Seccomp"), Some("2"), "{name}:\n{log}");
    assert_eq!(status_line(log, "NoNewPrivs"), Some("1"), "{name}:\n{log}");
    assert_eq!(
        status_line(log, "CapEff"),
        Some("0000000000000000"),
        "{name}:\n{log}"
    );
    assert_eq!(
        status_line(log, "CapPrm"),
        Some("0000000000000000"),
        "{name}:\n{log}"
    );
    let uids = status_line(log, "Uid").unwrap_or_default();
    assert!(
        uids.split_whitespace().all(|u| u == uid),
        "{name}: Uid {uids}, want {uid} everywhere"
    );
    assert!(log.contains("rootfs: read-only"), "{name}:\n{log}");
    assert!(log.contains("tmp: writable"), "{name}:\n{log}");
    assert!(log.contains(PROBE_DONE), "{name}:\n{log}");
}

fn print_table(title: &str, settled: &BTreeMap<String, (Final, String)>) {
    eprintln!("{title}");
    for (name, (state, _)) in settled {
        eprintln!("  {name:<34} {state}");
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// 1. Hardened Pods run: every test image that hardening can keep working, as an unmodified Pod
///    (and a Job) in a namespace labelled enforce=restricted, is admitted hardened, reaches
///    Running (the Job: Succeeded), and from inside sees seccomp filtering (`Seccomp: 2`),
///    no_new_privs, no capabilities, a read-only root filesystem and a writable /tmp; the image
///    with a VOLUME writes to it.
#[test]
fn s1_hardened_pods_run() {
    sandboxed("s1_hardened_pods_run", |sandbox| async move {
        let started = Instant::now();
        let (setup, node) = cluster(&sandbox).await;
        let cluster_ready = started.elapsed();
        let pods: Api<Pod> = Api::namespaced(setup.client.clone(), APPS);
        for (name, tag) in [("numeric-user", "numeric-user"), ("volume", "volume")] {
            pods.create(&PostParams::default(), &probe_pod(name, tag))
                .await
                .unwrap_or_else(|err| panic!("create Pod {name}: {err}"));
        }
        Api::<Job>::namespaced(setup.client.clone(), APPS)
            .create(&PostParams::default(), &probe_job("batch", "numeric-user"))
            .await
            .unwrap();
        let job_pod = wait_for_pods(&setup.client, "job-name=batch", 1)
            .await
            .remove(0);
        let names = vec![
            "numeric-user".to_owned(),
            "volume".to_owned(),
            job_pod.clone(),
        ];
        let settled = settle(&setup, &node, &names).await;
        print_table(
            "s1: final states of the Pods that hardening keeps working",
            &settled,
        );

        for name in &names {
            assert_stored_hardened(&stored(&setup.client, name).await);
        }
        for name in ["numeric-user", "volume"] {
            let (state, log) = &settled[name];
            assert_eq!(*state, Final::Running, "{name}:\n{log}");
            assert_runs_hardened(name, log, "65532");
        }
        assert!(
            settled["volume"].1.contains("write /data: ok"),
            "{}",
            settled["volume"].1
        );
        let (state, log) = &settled[&job_pod];
        assert_eq!(*state, Final::Succeeded, "{job_pod}:\n{log}");
        assert_runs_hardened(&job_pod, log, "65532");
        let job = Api::<Job>::namespaced(setup.client.clone(), APPS)
            .get_status("batch")
            .await
            .unwrap();
        eprintln!(
            "s1: Job batch succeeded={:?}",
            job.status.as_ref().and_then(|s| s.succeeded)
        );
        eprintln!(
            "s1: cluster ready in {cluster_ready:.1?} (node start-up {:.1?}), scenario done in \
             {:.1?}",
            node.startup,
            started.elapsed()
        );
    });
}

/// 1, today's failures. The images that hardening cannot keep working today, as unmodified Pods
///    in a namespace labelled enforce=restricted, recorded exactly as they end (issue 14,
///    image-aware hardening, fixes them; this test then changes with it): pod-hardener sets
///    runAsNonRoot without a runAsUser, so the kubelet refuses an image that runs as root (no
///    USER) and one whose USER is a name, with or without an /etc/passwd entry, since it cannot
///    verify a name is non-root; and the read-only root filesystem crashes an image that writes
///    outside /tmp and its volumes.
#[test]
fn s1_todays_failures_are_recorded() {
    sandboxed("s1_todays_failures_are_recorded", |sandbox| async move {
        let started = Instant::now();
        let (setup, node) = cluster(&sandbox).await;
        let pods: Api<Pod> = Api::namespaced(setup.client.clone(), APPS);
        let images = [
            "no-user",
            "named-user",
            "named-user-no-passwd",
            "writes-rootfs",
        ];
        for tag in images {
            pods.create(&PostParams::default(), &probe_pod(tag, tag))
                .await
                .unwrap_or_else(|err| panic!("create Pod {tag}: {err}"));
        }
        let names: Vec<String> = images.iter().map(|t| (*t).to_owned()).collect();
        let settled = settle(&setup, &node, &names).await;
        print_table(
            "s1: final states of the Pods that hardening breaks today",
            &settled,
        );

        for name in &names {
            assert_stored_hardened(&stored(&setup.client, name).await);
        }
        let refused = |name: &str| match &settled[name].0 {
            Final::Refused { reason, message } => {
                assert_eq!(reason, "CreateContainerConfigError", "{name}");
                message.clone()
            }
            other => panic!("{name}: {other}, want CreateContainerConfigError"),
        };
        let pod_ref = |name: &str| format!("(pod: \"{name}_{APPS}(");
        let message = refused("no-user");
        assert!(
            message.starts_with("container has runAsNonRoot and image will run as root ")
                && message.contains(&pod_ref("no-user")),
            "{message}"
        );
        for (name, user) in [("named-user", "nobody"), ("named-user-no-passwd", "app")] {
            let message = refused(name);
            assert!(
                message.starts_with(&format!(
                    "container has runAsNonRoot and image has non-numeric user ({user}), \
                     cannot verify user is non-root "
                )) && message.contains(&pod_ref(name)),
                "{name}: {message}"
            );
        }
        let (state, log) = &settled["writes-rootfs"];
        assert_eq!(*state, Final::Crashed { exit_code: 1 }, "{log}");
        assert_runs_hardened_until_write(log);
        assert!(log.contains("write /var/cache/app: failed"), "{log}");
        eprintln!("s1 (today's failures): done in {:.1?}", started.elapsed());
    });
}

/// A probe that ran hardened but failed to write outside /tmp: everything of
/// [`assert_runs_hardened`] except the last line.
fn assert_runs_hardened_until_write(log: &str) {
    assert_eq!(status_line(log, "Seccomp"), Some("2"), "{log}");
    assert_eq!(status_line(log, "NoNewPrivs"), Some("1"), "{log}");
    assert_eq!(
        status_line(log, "CapEff"),
        Some("0000000000000000"),
        "{log}"
    );
    assert!(log.contains("rootfs: read-only"), "{log}");
    assert!(log.contains("tmp: writable"), "{log}");
    assert!(!log.contains(PROBE_DONE), "{log}");
}

/// Teardown leaves nothing behind when a test fails: a node with a running Pod, then a panic;
/// the sandbox's outer run checks that the inner run failed after the Pod ran, and that no
/// process, cgroup, mount, link or file is left.
#[test]
fn teardown_after_a_failed_test_leaves_nothing_behind() {
    const POD_RAN: &str = "pod-ran";
    let Some(sandbox) = sandbox::run_expecting_failure(
        "teardown_after_a_failed_test_leaves_nothing_behind",
        &[POD_RAN],
    ) else {
        return;
    };
    tokio_runtime().block_on(async {
        let (setup, node) = cluster(&sandbox).await;
        let pods: Api<Pod> = Api::namespaced(setup.client.clone(), APPS);
        pods.create(&PostParams::default(), &probe_pod("doomed", "volume"))
            .await
            .unwrap();
        let settled = settle(&setup, &node, &["doomed".to_owned()]).await;
        assert_eq!(settled["doomed"].0, Final::Running);
        sandbox.mark(POD_RAN);
        panic!("failing on purpose with a running Pod, to test teardown");
    });
}

// ---------------------------------------------------------------------------------------------
// Scenario 2: pod-hardener installed as an operator installs it
// ---------------------------------------------------------------------------------------------

/// The name `manifests/` gives pod-hardener's image (base/kustomization.yaml `images:`).
const SHIPPED_IMAGE: &str = "ghcr.io/pod-hardener/pod-hardener:0.1.0";
const HARDENER_NAMESPACE: &str = "pod-hardener";

/// Runs the pinned kubectl (v1.37.2, from scripts/build-node.sh) with `kubeconfig` in the
/// repository's root, as an operator would; returns stdout, panics with stderr on failure.
fn kubectl(node: &Node, kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let output = tokio::task::block_in_place(|| {
        std::process::Command::new(node.binary("kubectl"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run kubectl")
    });
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A plain-HTTP GET of `path` on `ip:port` (a Pod's address, inside the sandbox).
async fn http_get(ip: &str, port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((ip, port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(String::from_utf8_lossy(&response).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// The sum of `pod_hardener_admission_requests_total` over its label sets in a metrics page.
fn admission_requests(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("pod_hardener_admission_requests_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// 2. pod-hardener installed the way an operator installs it: its image from
///    scripts/build-image.sh imported into containerd under the name manifests/ uses, then the
///    README's steps with a real kubectl v1.37.2 (certificate from `pod-hardener certs`,
///    `kubectl apply -k manifests`, the TLS Secret, the caBundle patches). Two replicas become
///    Ready behind the Service; the API server (with `--enable-aggregator-routing=true`, as a
///    cluster without kube-proxy needs) calls them at the Service's endpoints, and both answer;
///    an unmodified Deployment in a restricted namespace is admitted hardened and runs.
#[test]
fn s2_installed_as_an_operator_installs_it() {
    sandboxed(
        "s2_installed_as_an_operator_installs_it",
        |sandbox| async move {
            let started = Instant::now();
            let (control_plane, node, client) = operator_cluster(&sandbox).await;
            let installed = install_as_operator(&node, &control_plane, &sandbox);

            // Two replicas Ready behind the Service: two ready endpoints, Pod addresses.
            let deployment = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(
                client.clone(),
                HARDENER_NAMESPACE,
            )
            .get("pod-hardener")
            .await
            .unwrap();
            let ready = deployment.status.and_then(|s| s.ready_replicas);
            assert_eq!(ready, Some(2), "ready replicas\n{}", node.diagnostics());
            let endpoints = ready_endpoints(&client).await;
            assert_eq!(
                endpoints.len(),
                2,
                "ready endpoints of Service pod-hardener: {endpoints:?}"
            );
            let hardener_pods: Api<Pod> = Api::namespaced(client.clone(), HARDENER_NAMESPACE);
            let list = hardener_pods
                .list(
                    &kube::api::ListParams::default().labels("app.kubernetes.io/name=pod-hardener"),
                )
                .await
                .unwrap();
            for pod in &list.items {
                let pod = serde_json::to_value(pod).unwrap();
                assert!(
                    pod["metadata"]["annotations"][RECORD_ANNOTATION].is_null(),
                    "pod-hardener's own namespace is not served by its webhooks"
                );
                assert_eq!(pod["spec"]["containers"][0]["image"], SHIPPED_IMAGE);
            }

            // The API server calls them at the Service's endpoints: probe until hardened, then a
            // burst of dry-run creates reaches both replicas.
            let namespace: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({
                "metadata": { "name": APPS, "labels": { RESTRICTED.0: RESTRICTED.1 } },
            }))
            .unwrap();
            Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
                .create(&PostParams::default(), &namespace)
                .await
                .unwrap();
            control_plane
                .wait_for_default_service_account(&client, APPS)
                .await;
            let pods: Api<Pod> = Api::namespaced(client.clone(), APPS);
            let dry_run = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            wait_until_hardened(&pods, &control_plane).await;
            let burst = 20;
            let burst_started = Instant::now();
            for _ in 0..burst {
                let pod = pods
                    .create(&dry_run, &probe_pod("dry", "numeric-user"))
                    .await
                    .unwrap();
                assert!(is_hardened(&pod), "not hardened: {:?}", pod.metadata);
            }
            let burst_took = burst_started.elapsed();
            let mut per_replica = Vec::new();
            for ip in &endpoints {
                let metrics = http_get(ip, 9090, "/metrics").await.unwrap_or_default();
                per_replica.push((ip.clone(), admission_requests(&metrics)));
            }
            eprintln!(
                "s2: admission requests per replica after {burst} dry-run creates: {per_replica:?}"
            );
            assert!(
                per_replica.iter().all(|(_, n)| *n > 0.0),
                "each replica behind the Service answers: {per_replica:?}"
            );

            // An unmodified Deployment is admitted hardened and runs.
            let deployment: k8s_openapi::api::apps::v1::Deployment =
                serde_json::from_value(json!({
                    "metadata": { "name": "web" },
                    "spec": {
                        "replicas": 2,
                        "selector": { "matchLabels": { "app": "web" } },
                        "template": {
                            "metadata": { "labels": { "app": "web" } },
                            "spec": { "containers": [{
                                "name": "probe",
                                "image": "pod-hardener-e2e/probe:volume",
                                "imagePullPolicy": "Never",
                            }] },
                        },
                    },
                }))
                .unwrap();
            Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), APPS)
                .create(&PostParams::default(), &deployment)
                .await
                .unwrap();
            let names = wait_for_pods(&client, "app=web", 2).await;
            let settled = settle_with(&client, &node, &names, &|| {
                format!(
                    "---- kube-apiserver ----\n{}",
                    control_plane.log_tail("kube-apiserver")
                )
            })
            .await;
            print_table("s2: the unmodified Deployment's Pods", &settled);
            for name in &names {
                assert_stored_hardened(&stored(&client, name).await);
                let (state, log) = &settled[name];
                assert_eq!(*state, Final::Running, "{name}:\n{log}");
                assert_runs_hardened(name, log, "65532");
            }
            eprintln!(
                "s2: node start-up {:.1?}; install (apply -k to 2 replicas Ready) {installed:.1?}; \
             {burst} dry-run creates through the Service in {burst_took:.1?}; scenario {:.1?}",
                node.startup,
                started.elapsed()
            );
        },
    );
}

/// Dry-run creates an unmodified Pod until pod-hardener's webhook hardens it (the API server
/// picks up webhook configurations and endpoints asynchronously).
async fn wait_until_hardened(pods: &Api<Pod>, control_plane: &ControlPlane) {
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        match pods
            .create(&dry_run, &probe_pod("dry", "numeric-user"))
            .await
        {
            Ok(pod) if is_hardened(&pod) => return,
            Ok(_) => eprintln!("admitted without hardening (webhook not called yet)"),
            Err(err) => eprintln!("dry-run create: {err}"),
        }
        assert!(
            Instant::now() < deadline,
            "the webhooks never hardened a Pod\n{}",
            control_plane.log_tail("kube-apiserver")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether pod-hardener's mutating webhook recorded changes on `pod`.
fn is_hardened(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(RECORD_ANNOTATION))
}

/// A control plane that calls webhook Services at their endpoints (there is no kube-proxy), a
/// Ready node with pod-hardener's image imported under the name manifests/ gives it, and an admin
/// client: what an operator installs pod-hardener into.
async fn operator_cluster(sandbox: &Sandbox) -> (ControlPlane, Node, Client) {
    let control_plane = ControlPlane::start_async_with(&["--enable-aggregator-routing=true"]).await;
    let node = Node::start(&control_plane, sandbox).await;
    let client = control_plane.admin_client().await;
    node.import_image_as(&common::node::pod_hardener_image(), SHIPPED_IMAGE);
    (control_plane, node, client)
}

/// [`operator_cluster`] with pod-hardener installed as an operator does and the restricted
/// namespace [`APPS`] served: returns once the webhooks harden its Pods, with an API for them.
async fn installed_and_serving(sandbox: &Sandbox) -> (ControlPlane, Node, Client, Api<Pod>) {
    let (control_plane, node, client) = operator_cluster(sandbox).await;
    install_as_operator(&node, &control_plane, sandbox);
    let pods = restricted_namespace(&control_plane, &client, APPS).await;
    wait_until_hardened(&pods, &control_plane).await;
    (control_plane, node, client, pods)
}

/// `kubectl rollout status` of pod-hardener's Deployment, up to 120 s.
fn wait_for_rollout(node: &Node, kubeconfig: &std::path::Path) {
    let args = [
        "-n",
        HARDENER_NAMESPACE,
        "rollout",
        "status",
        "deploy/pod-hardener",
    ];
    kubectl(node, kubeconfig, &[&args[..], &["--timeout=120s"]].concat());
}

/// The README's installation, step by step, with the pinned kubectl: `pod-hardener certs`,
/// `kubectl apply -k manifests`, the TLS Secret, the caBundle patches, then `rollout status`.
/// Returns how long it took from `apply -k` until the rollout finished.
fn install_as_operator(node: &Node, control_plane: &ControlPlane, sandbox: &Sandbox) -> Duration {
    // The README's installation, step by step.
    let kubeconfig = control_plane.kubeconfig_path().to_owned();
    let certs = sandbox.dir.join("certs");
    let ca_bundle = common::webhook::pod_hardener_certs(&certs, &[]);
    let install_started = Instant::now();
    kubectl(node, &kubeconfig, &["apply", "-k", "manifests"]);
    let (cert, key) = (certs.join("tls.crt"), certs.join("tls.key"));
    kubectl(
        node,
        &kubeconfig,
        &[
            "-n",
            HARDENER_NAMESPACE,
            "create",
            "secret",
            "tls",
            "pod-hardener-tls",
            &format!("--cert={}", cert.display()),
            &format!("--key={}", key.display()),
        ],
    );
    let patch = format!(
        r#"[{{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"{ca_bundle}"}}]"#
    );
    for kind in [
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
    ] {
        kubectl(
            node,
            &kubeconfig,
            &["patch", kind, "pod-hardener", "--type=json", "-p", &patch],
        );
    }
    wait_for_rollout(node, &kubeconfig);
    install_started.elapsed()
}

/// The addresses of the ready endpoints of Service pod-hardener, from its EndpointSlices.
async fn ready_endpoints(client: &Client) -> Vec<String> {
    let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
        Api::namespaced(client.clone(), HARDENER_NAMESPACE);
    let list = slices
        .list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=pod-hardener"))
        .await
        .unwrap();
    let mut addresses: Vec<String> = list
        .items
        .iter()
        .flat_map(|slice| slice.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .flat_map(|e| e.addresses.clone())
        .collect();
    addresses.sort();
    addresses
}

/// The names of `count` Pods in [`APPS`] with `labels`, once there are that many.
async fn wait_for_pods(client: &Client, labels: &str, count: usize) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), APPS);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let list = pods
            .list(&kube::api::ListParams::default().labels(labels))
            .await
            .unwrap();
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        if names.len() >= count {
            names.sort();
            return names;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {count} Pods with {labels}: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario 4: upgrade and uninstall without deadlock
// ---------------------------------------------------------------------------------------------

/// Creates namespace `name` with `labels` (as `(key, value)` pairs) and waits for its default
/// ServiceAccount.
async fn create_namespace(
    control_plane: &ControlPlane,
    client: &Client,
    name: &str,
    labels: Value,
) {
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({ "metadata": { "name": name, "labels": labels } })).unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|err| panic!("create namespace {name}: {err}"));
    control_plane
        .wait_for_default_service_account(client, name)
        .await;
}

/// Creates namespace `name` labelled enforce=restricted; returns an API for its Pods.
async fn restricted_namespace(
    control_plane: &ControlPlane,
    client: &Client,
    name: &str,
) -> Api<Pod> {
    create_namespace(
        control_plane,
        client,
        name,
        json!({ RESTRICTED.0: RESTRICTED.1 }),
    )
    .await;
    Api::namespaced(client.clone(), name)
}

/// 4. Upgrade and uninstall leave no webhook pointing at nothing, and never deadlock: after the
///    operator install, (a) re-applying `manifests/` (an upgrade) keeps the patched caBundle and
///    the webhooks answering; (b) with the pod-hardener namespace deleted (the webhook
///    configurations still pointing at its gone Service), Pods are still created in `kube-system`
///    and in a re-created `pod-hardener` namespace, so re-installing works, while in a served
///    namespace the validating webhook (failurePolicy Fail) refuses Pods, as documented; (c)
///    `kubectl delete -k manifests` removes both webhook configurations, and Pods are created
///    unhardened again.
#[test]
fn s4_upgrade_and_uninstall_never_deadlock() {
    sandboxed(
        "s4_upgrade_and_uninstall_never_deadlock",
        |sandbox| async move {
            let started = Instant::now();
            let (control_plane, node, client, apps) = installed_and_serving(&sandbox).await;
            let kubeconfig = control_plane.kubeconfig_path().to_owned();

            // (a) An upgrade: the same manifests applied again.
            kubectl(&node, &kubeconfig, &["apply", "-k", "manifests"]);
            let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone())
                .get("pod-hardener")
                .await
                .unwrap();
            let ca_bundle = &mutating.webhooks.as_ref().unwrap()[0]
                .client_config
                .ca_bundle;
            assert!(
                ca_bundle.is_some(),
                "re-applying manifests/ dropped the caBundle"
            );
            wait_until_hardened(&apps, &control_plane).await;
            eprintln!(
                "s4 (a): after re-applying manifests/ the caBundle is kept and Pods are hardened"
            );

            // (b) The namespace gone, the webhook configurations left behind.
            kubectl(
                &node,
                &kubeconfig,
                &["delete", "namespace", HARDENER_NAMESPACE, "--timeout=120s"],
            );
            let system: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
            let created = system
                .create(
                    &PostParams::default(),
                    &probe_pod("after-uninstall", "numeric-user"),
                )
                .await;
            assert!(created.is_ok(), "kube-system refused a Pod: {created:?}");
            let own = restricted_namespace(&control_plane, &client, HARDENER_NAMESPACE).await;
            let compliant: Pod = serde_json::from_value(json!({
                "metadata": { "name": "compliant" },
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": true,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "containers": [{
                        "name": "probe",
                        "image": "pod-hardener-e2e/probe:numeric-user",
                        "imagePullPolicy": "Never",
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "capabilities": { "drop": ["ALL"] },
                        },
                    }],
                },
            }))
            .unwrap();
            let created = own.create(&PostParams::default(), &compliant).await;
            assert!(
                created.is_ok(),
                "pod-hardener's own namespace refused a Pod: {created:?}"
            );
            // In a served namespace the mutating webhook fails open, so PodSecurity refuses the
            // unhardened Pod; a compliant Pod passes PodSecurity and is refused by the
            // validating webhook's failurePolicy Fail.
            let refusal = |result: Result<Pod, kube::Error>| match result {
                Err(kube::Error::Api(status)) => status.message,
                other => panic!("a served namespace admitted a Pod with no backend: {other:?}"),
            };
            let unmodified = refusal(
                apps.create(
                    &PostParams::default(),
                    &probe_pod("while-down", "numeric-user"),
                )
                .await,
            );
            assert!(
                unmodified.contains(r#"violates PodSecurity "restricted:latest""#),
                "{unmodified}"
            );
            let mut compliant_in_apps = compliant.clone();
            compliant_in_apps.metadata.name = Some("compliant-while-down".to_owned());
            let message = refusal(
                apps.create(&PostParams::default(), &compliant_in_apps)
                    .await,
            );
            assert!(
                message.contains("failed calling webhook \"validate.pod-hardener.io\""),
                "{message}"
            );
            eprintln!("s4 (b): namespace gone: kube-system and pod-hardener admit Pods");
            eprintln!("s4 (b): {APPS}, unmodified Pod: {unmodified}");
            eprintln!("s4 (b): {APPS}, compliant Pod: {message}");
            // Re-installing works (its own namespace is not served: no deadlock).
            kubectl(
                &node,
                &kubeconfig,
                &["delete", "pod", "-n", HARDENER_NAMESPACE, "compliant"],
            );
            install_as_operator(&node, &control_plane, &sandbox);
            wait_until_hardened(&apps, &control_plane).await;
            eprintln!("s4 (b): re-installed, Pods hardened again");

            // (c) Uninstall.
            kubectl(
                &node,
                &kubeconfig,
                &["delete", "-k", "manifests", "--timeout=120s"],
            );
            let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone())
                .get_opt("pod-hardener")
                .await
                .unwrap();
            let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone())
                .get_opt("pod-hardener")
                .await
                .unwrap();
            assert!(
                mutating.is_none() && validating.is_none(),
                "webhook configurations left behind"
            );
            create_namespace(&control_plane, &client, "plain", json!({})).await;
            let plain: Api<Pod> = Api::namespaced(client.clone(), "plain");
            let pod = plain
                .create(&PostParams::default(), &probe_pod("after", "numeric-user"))
                .await
                .unwrap();
            assert!(!is_hardened(&pod), "hardened after uninstall");
            eprintln!(
                "s4 (c): uninstalled: no webhook configuration left, Pods created unhardened; \
             scenario {:.1?}",
                started.elapsed()
            );
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: failover under a stream of creates
// ---------------------------------------------------------------------------------------------

/// What a stream of dry-run creates saw.
#[derive(Debug, Default)]
struct StreamStats {
    sent: usize,
    failed: usize,
    unhardened: usize,
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

impl StreamStats {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted
            .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

/// Dry-run creates of an unmodified Pod at `per_second` for `duration`, each one hardened by
/// pod-hardener's webhook or refused; counts failures, Pods admitted unhardened and latencies.
async fn create_stream(pods: Api<Pod>, per_second: u32, duration: Duration) -> StreamStats {
    let mut interval = tokio::time::interval(Duration::from_secs(1) / per_second);
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    while Instant::now() < deadline {
        interval.tick().await;
        let pods = pods.clone();
        tasks.push(tokio::spawn(async move {
            let dry_run = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            let sent = Instant::now();
            let result = pods
                .create(&dry_run, &probe_pod("stream", "numeric-user"))
                .await;
            (result.map(|pod| is_hardened(&pod)), sent.elapsed())
        }));
    }
    let mut stats = StreamStats::default();
    for task in tasks {
        let (result, latency) = task.await.expect("a create task");
        stats.sent += 1;
        stats.latencies.push(latency);
        match result {
            Ok(true) => {}
            Ok(false) => stats.unhardened += 1,
            Err(err) => {
                stats.failed += 1;
                stats.errors.push(err.to_string());
            }
        }
    }
    stats
}

/// 3. Failover, measured: a stream of 20 dry-run creates per second of an unmodified Pod in a
///    restricted namespace (baseline), while (a) `kubectl rollout restart` of pod-hardener, and
///    while (b) one replica's container is killed (SIGKILL). Baseline: every create hardened.
///    (a), (b): nothing admitted unhardened; the few creates that fail while a replica goes away
///    fail only as described below (today's behaviour, not yet the issue's 0). Prints the counts
///    and the latency the API server adds (p50, p99). Not done: every replica down, a
///    certificate rotated.
#[test]
fn s3_failover_under_a_create_stream() {
    sandboxed("s3_failover_under_a_create_stream", |sandbox| async move {
        let (control_plane, node, _client, pods) = installed_and_serving(&sandbox).await;
        let kubeconfig = control_plane.kubeconfig_path().to_owned();
        let phase = Duration::from_secs(20);
        let mut table = Vec::new();

        let baseline = create_stream(pods.clone(), 20, Duration::from_secs(5)).await;
        table.push(("baseline", baseline));

        let stream = tokio::spawn(create_stream(pods.clone(), 20, phase));
        tokio::time::sleep(Duration::from_secs(2)).await;
        kubectl(
            &node,
            &kubeconfig,
            &[
                "-n",
                HARDENER_NAMESPACE,
                "rollout",
                "restart",
                "deploy/pod-hardener",
            ],
        );
        wait_for_rollout(&node, &kubeconfig);
        table.push(("(a) rollout restart", stream.await.unwrap()));

        let stream = tokio::spawn(create_stream(pods.clone(), 20, phase));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let victim = node
            .ctr(&["tasks", "ls", "-q"])
            .lines()
            .find_map(|line| {
                let id = line.trim();
                let info = node.ctr(&["containers", "info", id]);
                info.contains(SHIPPED_IMAGE).then(|| id.to_owned())
            })
            .expect("a running pod-hardener container");
        node.ctr(&["tasks", "kill", "-s", "SIGKILL", &victim]);
        table.push(("(b) one replica killed", stream.await.unwrap()));

        eprintln!(
            "s3: {:<24} {:>5} {:>7} {:>11} {:>9} {:>9}",
            "phase", "sent", "failed", "unhardened", "p50", "p99"
        );
        for (name, stats) in &table {
            eprintln!(
                "s3: {name:<24} {:>5} {:>7} {:>11} {:>9.1?} {:>9.1?} {:?}",
                stats.sent,
                stats.failed,
                stats.unhardened,
                stats.percentile(0.5),
                stats.percentile(0.99),
                stats
                    .errors
                    .first()
                    .map(|e| e.chars().take(160).collect::<String>())
            );
        }
        for (name, stats) in &table {
            assert!(stats.sent > 0, "{name}: nothing sent");
            assert_eq!(stats.unhardened, 0, "{name}: Pods admitted unhardened");
        }
        assert_eq!(
            table[0].1.failed, 0,
            "baseline: failed creates: {:?}",
            table[0].1.errors
        );
        // Today's behaviour during a failover (the issue wants 0 failed creates for both;
        // recorded here as it is, counts printed above). The API server does not retry a webhook
        // call at another endpoint: (a) a pooled connection to a draining replica may be closed
        // under a request ("broken pipe", "connection reset", EOF); (b) until the kubelet sees
        // the killed container and its endpoint leaves the EndpointSlice (about a second), the
        // dead endpoint is still picked ("connection refused"). The validating webhook then fails
        // closed, and the mutating one fails open, so PodSecurity refuses the unhardened Pod.
        // Nothing else fails, and nothing is admitted unhardened.
        let expected = [
            "connect: connection refused",
            "broken pipe",
            "connection reset",
            "EOF",
            r#"violates PodSecurity "restricted:latest""#,
        ];
        for (name, stats) in &table[1..] {
            for error in &stats.errors {
                assert!(
                    expected.iter().any(|kind| error.contains(kind)),
                    "{name}: an unexpected failure: {error}"
                );
            }
            eprintln!(
                "s3: {name}: {} of {} creates failed, each as a webhook call to a replica that \
                 was going away",
                stats.failed, stats.sent
            );
        }
    });
}

/// 5. Image-aware hardening (issue 14): the probe images pushed to a real registry on the
///    sandbox's loopback (the CNCF distribution registry, TLS with the test's CA, trusted by
///    containerd through its `hosts.toml` and by pod-hardener through `images.registries`), and
///    pod-hardener reading each image's config before it hardens. Every image that hardening can
///    make start runs (a named user becomes its UID from the image's /etc/passwd); the others
///    (root, a name the image's /etc/passwd does not list) are denied at admission with a
///    message naming the image; no Pod is left in CreateContainerConfigError.
#[test]
fn s5_image_aware_hardening_leaves_no_pod_stuck() {
    sandboxed(
        "s5_image_aware_hardening_leaves_no_pod_stuck",
        |sandbox| async move {
            let started = Instant::now();
            let dir = sandbox.dir.join("registry");
            let certs = common::registry::TestCerts::generate(&dir.join("certs"));
            let registry =
                common::registry::Registry::start(&dir, &certs, &dir.join("storage"), None).await;
            let archive = std::path::PathBuf::from(
                std::env::var_os("POD_HARDENER_NODE_IMAGES")
                    .expect("the outer run names the images"),
            );
            let tags = registry.push_oci_archive(&archive, "e2e/probe").await;
            assert!(tags.iter().any(|t| t == "named-user"), "{tags:?}");
            let host = registry.host.clone();
            let setup = Setup::start(json!({
                "images": {
                    "enabled": true,
                    "registries": { host.clone(): { "ca": certs.ca } },
                },
            }))
            .await;
            let node = Node::start(&setup.control_plane, &sandbox).await;
            node.trust_registry(&host, &certs.ca);
            setup.namespace(APPS, &[RESTRICTED]).await;
            let pods: Api<Pod> = Api::namespaced(setup.client.clone(), APPS);
            let pod_of = |tag: &str| -> Pod {
                let mut pod = serde_json::to_value(probe_pod(tag, tag)).unwrap();
                pod["spec"]["containers"][0]["image"] = json!(format!("{host}/e2e/probe:{tag}"));
                pod["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
                serde_json::from_value(pod).unwrap()
            };
            let mut admitted = Vec::new();
            let mut denied = BTreeMap::new();
            for tag in [
                "no-user",
                "named-user",
                "named-user-no-passwd",
                "numeric-user",
                "volume",
            ] {
                // Created with kubectl, as a user would: its stderr carries the webhooks'
                // warnings (`Warning: ...`) with the denial, and they are what says why.
                let manifest = dir.join(format!("{tag}.json"));
                std::fs::write(&manifest, serde_json::to_vec(&pod_of(tag)).unwrap()).unwrap();
                let output = tokio::task::block_in_place(|| {
                    std::process::Command::new(node.binary("kubectl"))
                        .arg("--kubeconfig")
                        .arg(setup.control_plane.kubeconfig_path())
                        .args(["create", "--namespace", APPS, "-f"])
                        .arg(&manifest)
                        .stdin(std::process::Stdio::null())
                        .output()
                        .expect("run kubectl")
                });
                if output.status.success() {
                    admitted.push(tag.to_owned());
                } else {
                    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
                    denied.insert(tag.to_owned(), stderr);
                }
            }
            eprintln!("s5: denied at admission (kubectl's stderr):");
            for (tag, message) in &denied {
                eprintln!("  {tag}:\n    {}", message.trim().replace('\n', "\n    "));
            }
            let settled = settle(&setup, &node, &admitted).await;
            print_table("s5: final states of the admitted Pods", &settled);

            assert_eq!(
                admitted,
                ["named-user", "numeric-user", "volume"],
                "denied: {denied:?}"
            );
            for (tag, why) in [
                ("no-user", "sets no user, so it runs as root"),
                (
                    "named-user-no-passwd",
                    "which its /etc/passwd does not list",
                ),
            ] {
                let message = &denied[tag];
                assert!(
                    message.contains(&format!("{host}/e2e/probe:{tag}")) && message.contains(why),
                    "{tag}: {message}"
                );
            }
            for (tag, uid) in [
                ("named-user", "65534"),
                ("numeric-user", "65532"),
                ("volume", "65532"),
            ] {
                let (state, log) = &settled[tag];
                assert_eq!(*state, Final::Running, "{tag}:\n{log}");
                assert_runs_hardened(tag, log, uid);
            }
            let stored_named = stored(&setup.client, "named-user").await;
            assert_eq!(
                stored_named["spec"]["containers"][0]["securityContext"]["runAsUser"], 65534,
                "{stored_named}"
            );
            // Every Pod in the namespace, as the API server lists it: none stuck.
            let all = pods.list(&Default::default()).await.unwrap();
            for pod in &all.items {
                let waiting = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                    .collect::<Vec<_>>();
                eprintln!(
                    "s5: Pod {:<30} phase {:<10} waiting {waiting:?}",
                    pod.metadata.name.as_deref().unwrap_or(""),
                    pod.status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .unwrap_or("")
                );
                assert!(
                    !waiting.iter().any(|r| r == "CreateContainerConfigError"),
                    "{:?} is stuck",
                    pod.metadata.name
                );
            }
            let found = setup
                .hardener
                .metric("pod_hardener_image_lookups_total{result=\"found\"}")
                .await;
            eprintln!(
                "s5: {found} images looked up; scenario done in {:.1?}",
                started.elapsed()
            );
            assert!(found >= 5.0, "{found}");
        },
    );
}
