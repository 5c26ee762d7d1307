//! pod-hardener behind a real API server, for the end-to-end webhook tests.
//!
//! [`Setup::start`] starts a [`ControlPlane`], runs the real `pod-hardener` binary against it
//! (certificates from `pod-hardener certs`, `namespaceSource: cluster` through the harness
//! kubeconfig), registers the two webhook configurations of `manifests/base/webhooks.yaml`
//! rewritten to `clientConfig.url: https://127.0.0.1:PORT/...` with the caBundle filled in, and
//! returns once the API server actually calls both webhooks. Dropping it stops pod-hardener and
//! the control plane; when a test panics, the last lines of pod-hardener's and the control
//! plane's logs are printed first.
//!
//! At most [`MAX_CONCURRENT`] setups run at once in a test process (cargo runs the tests of one
//! binary on parallel threads), so a machine with 2 cores is not swamped.
//!
//! [`SidecarInjector`] is a second mutating webhook served from inside the test process.

use std::convert::Infallible;
use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::PostParams;
use kube::{Api, Client};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::control_plane::ControlPlane;

/// How many control planes with pod-hardener may run at once in one test process.
pub const MAX_CONCURRENT: usize = 2;
/// Every wait of these helpers and of the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(60);
/// How long pod-hardener may take to answer 200 on /readyz.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the API server may take to call newly registered webhooks.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);
/// Start-up is retried when a port picked as free was taken in between.
const START_ATTEMPTS: usize = 3;
/// How many lines of pod-hardener's log a failure shows.
const LOG_TAIL_LINES: usize = 40;

/// The mutating webhook's name in `manifests/base/webhooks.yaml`.
pub const MUTATING_WEBHOOK: &str = "harden.pod-hardener.io";
/// The validating webhook's name in `manifests/base/webhooks.yaml`.
pub const VALIDATING_WEBHOOK: &str = "validate.pod-hardener.io";
/// The annotation pod-hardener records its changes in.
pub const RECORD_ANNOTATION: &str = "pod-hardener.io/hardened";
/// The namespace [`Setup::start`] probes the webhooks in: unlabelled, so the API server's
/// PodSecurity admits everything (its default is privileged) while pod-hardener applies its
/// `defaultPolicy` (restricted).
pub const PROBE_NAMESPACE: &str = "webhook-probe";
/// A small image name; nothing ever pulls it (there is no kubelet).
pub const IMAGE: &str = "registry.k8s.io/pause:3.10";

fn semaphore() -> Arc<Semaphore> {
    static SEMAPHORE: OnceLock<Arc<Semaphore>> = OnceLock::new();
    Arc::clone(SEMAPHORE.get_or_init(|| Arc::new(Semaphore::new(MAX_CONCURRENT))))
}

/// A control plane with pod-hardener registered as its webhooks; see the module docs.
///
/// Fields drop in order: pod-hardener, then the control plane, then the concurrency permit.
pub struct Setup {
    /// The running pod-hardener.
    pub hardener: PodHardener,
    /// The control plane.
    pub control_plane: ControlPlane,
    /// An admin client.
    pub client: Client,
    started: Instant,
    _permit: OwnedSemaphorePermit,
}

impl Setup {
    /// Starts a control plane and pod-hardener with `extra_config` merged over the generated
    /// config file's top level (e.g. `{"exemptions": {...}}`), registers the webhooks and waits
    /// until the API server calls them.
    pub async fn start(extra_config: Value) -> Self {
        let permit = semaphore()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let started = Instant::now();
        let control_plane = ControlPlane::start_async().await;
        let client = control_plane.admin_client().await;
        let dir = control_plane.dir().join("pod-hardener");
        let kubeconfig = control_plane.kubeconfig_path().to_owned();
        let hardener = PodHardener::start(&dir, &kubeconfig, &extra_config).await;
        let setup = Setup {
            hardener,
            control_plane,
            client,
            started,
            _permit: permit,
        };
        setup.namespace(PROBE_NAMESPACE, &[]).await;
        register_webhooks(
            &setup.client,
            &setup.hardener.url(""),
            &setup.hardener.ca_bundle,
        )
        .await;
        setup.wait_until_webhooks_answer().await;
        eprintln!(
            "setup: control plane and pod-hardener ready, webhooks answering, in {:.1?}",
            started.elapsed()
        );
        setup
    }

    /// Time since [`Setup::start`] was called (after waiting for a concurrency slot).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Creates a namespace with `labels` and waits for its `default` ServiceAccount.
    pub async fn namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect();
        let namespace: Namespace =
            serde_json::from_value(json!({ "metadata": { "name": name, "labels": labels } }))
                .expect("a Namespace");
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|err| panic!("create namespace {name}: {err}"));
        self.control_plane
            .wait_for_default_service_account(&self.client, name)
            .await;
    }

    /// pod-hardener's and the control plane's last log lines.
    pub fn diagnostics(&self) -> String {
        format!(
            "---- pod-hardener ({}) ----\n{}\n---- kube-apiserver ----\n{}\n\
             ---- kube-controller-manager ----\n{}",
            self.hardener.log.display(),
            self.hardener.log_tail(),
            self.control_plane.log_tail("kube-apiserver"),
            self.control_plane.log_tail("kube-controller-manager"),
        )
    }

    /// Polls dry-run creates in [`PROBE_NAMESPACE`] until the mutating webhook has hardened a
    /// bare Pod and the validating webhook has denied a hostNetwork Pod: the API server picks up
    /// webhook configurations asynchronously.
    async fn wait_until_webhooks_answer(&self) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), PROBE_NAMESPACE);
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let bare = pod(
            "probe",
            json!({ "containers": [{ "name": "app", "image": IMAGE }] }),
        );
        let host = pod(
            "probe-host",
            json!({ "hostNetwork": true, "containers": [{ "name": "app", "image": IMAGE }] }),
        );
        let deadline = Instant::now() + REGISTER_TIMEOUT;
        let (mut mutating, mut validating) = (false, false);
        loop {
            if !mutating {
                mutating = match pods.create(&dry_run, &bare).await {
                    Ok(pod) => pod
                        .metadata
                        .annotations
                        .is_some_and(|a| a.contains_key(RECORD_ANNOTATION)),
                    Err(err) => {
                        eprintln!("setup: probing {MUTATING_WEBHOOK}: {err}");
                        false
                    }
                };
            }
            if !validating {
                validating = match pods.create(&dry_run, &host).await {
                    Err(kube::Error::Api(status)) => status.message.contains(&format!(
                        "admission webhook \"{VALIDATING_WEBHOOK}\" denied the request"
                    )),
                    _ => false,
                };
            }
            if mutating && validating {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the API server did not call pod-hardener's webhooks within \
                 {REGISTER_TIMEOUT:?} (mutating answered: {mutating}, validating answered: \
                 {validating})\n{}",
                self.diagnostics()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of pod-hardener ({}) ----\n{}",
                self.hardener.log.display(),
                self.hardener.log_tail()
            );
        }
    }
}

/// A Pod named `name` with `spec`.
pub fn pod(name: &str, spec: Value) -> Pod {
    serde_json::from_value(json!({ "metadata": { "name": name }, "spec": spec })).expect("a Pod")
}

/// Runs `pod-hardener certs --service pod-hardener --namespace pod-hardener` (the names of
/// `manifests/`) with `extra_args` into `out_dir`, and returns the caBundle it printed.
pub fn pod_hardener_certs(out_dir: &Path, extra_args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_pod-hardener"))
        .args([
            "certs",
            "--service",
            "pod-hardener",
            "--namespace",
            "pod-hardener",
        ])
        .args(extra_args)
        .arg("--out-dir")
        .arg(out_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run pod-hardener certs");
    assert!(
        output.status.success(),
        "pod-hardener certs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ca_bundle = String::from_utf8(output.stdout)
        .expect("the caBundle is UTF-8")
        .trim()
        .to_owned();
    base64::engine::general_purpose::STANDARD
        .decode(&ca_bundle)
        .expect("pod-hardener certs prints the caBundle as base64");
    ca_bundle
}

/// The real `pod-hardener serve` process; killed on drop.
pub struct PodHardener {
    child: Option<Child>,
    /// HTTPS port of /mutate and /validate.
    pub webhook_port: u16,
    /// Plain-HTTP port of /metrics, /healthz and /readyz.
    pub metrics_port: u16,
    /// The caBundle `pod-hardener certs` printed.
    pub ca_bundle: String,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl PodHardener {
    /// Generates certificates into `dir`, writes a config file there with `extra_config`
    /// merged over it, runs `pod-hardener serve` with `KUBECONFIG=kubeconfig`, and waits until
    /// `/readyz` answers 200.
    pub async fn start(dir: &Path, kubeconfig: &Path, extra_config: &Value) -> Self {
        fs::create_dir_all(dir).expect("create the pod-hardener directory");
        let certs = dir.join("certs");
        let ca_bundle = pod_hardener_certs(&certs, &["--ip", "127.0.0.1"]);

        let mut last_error = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let [webhook_port, metrics_port] = free_ports();
            let mut config = json!({
                "listen": format!("127.0.0.1:{webhook_port}"),
                "metricsListen": format!("127.0.0.1:{metrics_port}"),
                "tls": {
                    "certFile": certs.join("tls.crt"),
                    "keyFile": certs.join("tls.key"),
                },
                "namespaceSource": "cluster",
                "log": { "level": "info" },
            });
            if let (Some(config), Some(extra)) = (config.as_object_mut(), extra_config.as_object())
            {
                config.extend(extra.clone());
            }
            let config_path = dir.join("config.yaml");
            // JSON is YAML.
            fs::write(
                &config_path,
                serde_json::to_string_pretty(&config).expect("serialize the config"),
            )
            .expect("write the config file");
            let log = dir.join(format!("pod-hardener-{attempt}.log"));
            let out = File::create(&log).expect("create the pod-hardener log");
            let err = out.try_clone().expect("clone the log file handle");
            let child = Command::new(env!("CARGO_BIN_EXE_pod-hardener"))
                .arg("serve")
                .arg("--config")
                .arg(&config_path)
                .env("KUBECONFIG", kubeconfig)
                .env_remove("POD_HARDENER_CONFIG")
                .env_remove("POD_HARDENER_LISTEN")
                .env_remove("POD_HARDENER_METRICS_LISTEN")
                .env_remove("POD_HARDENER_TLS_CERT")
                .env_remove("POD_HARDENER_TLS_KEY")
                .env_remove("POD_HARDENER_LOG_FORMAT")
                .env_remove("POD_HARDENER_LOG_LEVEL")
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("run pod-hardener serve");
            let mut hardener = PodHardener {
                child: Some(child),
                webhook_port,
                metrics_port,
                ca_bundle: ca_bundle.clone(),
                log,
            };
            match hardener.wait_ready().await {
                Ok(()) => return hardener,
                Err(why) => {
                    let tail = hardener.log_tail();
                    hardener.stop();
                    last_error = format!("{why}; last lines of its log:\n{tail}");
                    if !tail.contains("in use") {
                        break;
                    }
                    eprintln!("pod-hardener: a port was taken, retrying: {last_error}");
                }
            }
        }
        panic!("pod-hardener did not start: {last_error}");
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.webhook_port)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok((200, _)) = http_get(self.metrics_port, "/readyz").await {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("pod-hardener exited ({status}) before /readyz"));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "pod-hardener: /readyz not 200 within {READY_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /metrics` on the metrics port.
    pub async fn metrics(&self) -> String {
        match http_get(self.metrics_port, "/metrics").await {
            Ok((200, body)) => body,
            other => panic!("GET /metrics: {other:?}"),
        }
    }

    /// The value of one sample of `/metrics`, named with its labels exactly as exposed, e.g.
    /// `pod_hardener_admission_requests_total{endpoint="mutate",decision="patched"}`; 0 when
    /// absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (SIGKILL) and reaps it; a no-op once stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        match fs::read(&self.log) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(err) => format!("(cannot read {}: {err})", self.log.display()),
        }
    }
}

impl Drop for PodHardener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The two webhook configurations of `manifests/base/webhooks.yaml`, each webhook's
/// `clientConfig.service` replaced by `url: {base_url}{service.path}` and `caBundle`; everything
/// else (rules, failure policies, namespaceSelector, ...) as shipped.
pub fn rewritten_webhook_configurations(base_url: &str, ca_bundle: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/base/webhooks.yaml");
    let text = fs::read_to_string(&path).expect("read manifests/base/webhooks.yaml");
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut value: Value =
            serde::Deserialize::deserialize(document).expect("webhooks.yaml is YAML");
        let webhooks = value["webhooks"]
            .as_array_mut()
            .expect("a webhook configuration has webhooks");
        for webhook in webhooks {
            let client_config = &mut webhook["clientConfig"];
            let service_path = client_config["service"]["path"]
                .as_str()
                .expect("clientConfig.service.path")
                .to_owned();
            *client_config = json!({
                "url": format!("{base_url}{service_path}"),
                "caBundle": ca_bundle,
            });
        }
        documents.push(value);
    }
    documents
}

/// Creates the rewritten webhook configurations (see [`rewritten_webhook_configurations`]).
pub async fn register_webhooks(client: &Client, base_url: &str, ca_bundle: &str) {
    let mut kinds = Vec::new();
    for document in rewritten_webhook_configurations(base_url, ca_bundle) {
        let kind = document["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "MutatingWebhookConfiguration" => {
                let config: MutatingWebhookConfiguration =
                    serde_json::from_value(document).expect("a MutatingWebhookConfiguration");
                Api::<MutatingWebhookConfiguration>::all(client.clone())
                    .create(&PostParams::default(), &config)
                    .await
                    .expect("create the MutatingWebhookConfiguration");
            }
            "ValidatingWebhookConfiguration" => {
                let config: ValidatingWebhookConfiguration =
                    serde_json::from_value(document).expect("a ValidatingWebhookConfiguration");
                Api::<ValidatingWebhookConfiguration>::all(client.clone())
                    .create(&PostParams::default(), &config)
                    .await
                    .expect("create the ValidatingWebhookConfiguration");
            }
            other => panic!("unexpected kind {other:?} in webhooks.yaml"),
        }
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration"
        ],
        "webhooks.yaml holds one configuration of each kind"
    );
}

/// A mutating webhook served from the test process over HTTPS: it appends `container` to
/// `spec.containers` of every Pod it is asked about that does not have a container of that
/// name yet. Stops when dropped.
pub struct SidecarInjector {
    /// Its HTTPS port on 127.0.0.1.
    pub port: u16,
    /// Base64 of the CA that signed its certificate.
    pub ca_bundle: String,
    calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SidecarInjector {
    /// Starts serving on a free port of 127.0.0.1 with a certificate from
    /// `pod_hardener::certs`.
    pub async fn start(container: Value) -> Self {
        let mut request = pod_hardener::certs::CertRequest::new("sidecar-injector", "e2e");
        request.extra_ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let generated = pod_hardener::certs::generate(&request).expect("generate certificates");
        let chain = CertificateDer::pem_slice_iter(generated.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("parse the certificate");
        let key =
            PrivateKeyDer::from_pem_slice(generated.key_pem.as_bytes()).expect("parse the key");
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("listener address").port();
        let calls = Arc::new(AtomicUsize::new(0));
        let container = Arc::new(container);
        let task_calls = Arc::clone(&calls);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let container = Arc::clone(&container);
                let calls = Arc::clone(&task_calls);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        inject(request, Arc::clone(&container))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        SidecarInjector {
            port,
            ca_bundle: generated.ca_bundle_base64(),
            calls,
            task,
        }
    }

    /// How many requests it has answered.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for SidecarInjector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn inject(
    request: hyper::Request<Incoming>,
    container: Arc<Value>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let request = &review["request"];
    let name = &container["name"];
    let present = request["object"]["spec"]["containers"]
        .as_array()
        .is_some_and(|containers| containers.iter().any(|c| &c["name"] == name));
    let mut response = json!({ "uid": request["uid"], "allowed": true });
    if !present {
        let patch = json!([{ "op": "add", "path": "/spec/containers/-", "value": *container }]);
        response["patchType"] = "JSONPatch".into();
        response["patch"] = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(&patch).unwrap_or_default())
            .into();
    }
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    });
    let mut reply = hyper::Response::new(Full::new(Bytes::from(
        serde_json::to_vec(&review).unwrap_or_default(),
    )));
    reply.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(reply)
}

/// Ports that were free on 127.0.0.1 a moment ago, all different.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("listener address").port())
}

/// A plain-HTTP `GET` to 127.0.0.1: the status code and the body.
async fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
        stream
            .write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        let response = String::from_utf8_lossy(&response);
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
            .to_owned();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("timed out")))
}
