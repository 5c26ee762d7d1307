//! A real Kubernetes control plane on 127.0.0.1 for the end-to-end tests: etcd,
//! kube-apiserver and kube-controller-manager, the binaries that
//! `scripts/build-control-plane.sh` builds from the pinned Go modules in `e2e/controlplane/`.
//!
//! [`ControlPlane::start`] generates a CA, serving and client certificates and a
//! service-account key, starts the three components on free ports with their state in
//! a temporary directory, and returns once the API server is ready and the controller
//! manager has created the `default` ServiceAccount. Dropping the value stops all three
//! and removes the directory, also when a test panics. Each instance is independent, so
//! tests can run in parallel. [`ControlPlane::stop_apiserver`] and
//! [`ControlPlane::start_apiserver`] take the API server away and bring it back on the same
//! port with the same flags and certificates (etcd keeps the state), for outage tests.
//!
//! Environment:
//! - `POD_HARDENER_CONTROL_PLANE_BIN`: a directory holding `etcd`, `kube-apiserver` and
//!   `kube-controller-manager`; without it the build script is run (it returns at once
//!   when its cache already holds them).
//! - `POD_HARDENER_E2E_KEEP`: when set, the temporary directory (logs, certificates,
//!   kubeconfig) is kept and its path printed, for a look after the test.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

/// Audit policy: Pod creates and updates (the ephemeral-containers subresource included) at
/// Metadata level, which carries admission webhooks' audit annotations; nothing else.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch]
    resources:
      - group: \"\"
        resources: [pods, pods/ephemeralcontainers]
  - level: None
";

/// How long each component may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a component may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How many lines of a component's log a failure message shows.
const LOG_TAIL_LINES: usize = 40;
/// Start-up is retried when a port picked as free was taken in between.
const START_ATTEMPTS: usize = 3;
/// The Service CIDR given to the API server; nothing is ever sent there.
pub const SERVICE_CIDR: &str = "10.0.0.0/24";
/// The first address of [`SERVICE_CIDR`], the `kubernetes` Service's ClusterIP.
pub const KUBERNETES_SERVICE_IP: &str = "10.0.0.1";

const ETCD: &str = "etcd";
const APISERVER: &str = "kube-apiserver";
const CONTROLLER_MANAGER: &str = "kube-controller-manager";

/// A running etcd, kube-apiserver and kube-controller-manager; see the module docs.
pub struct ControlPlane {
    /// Started processes, in start order.
    components: Vec<Component>,
    /// `None` only once Drop has decided to keep the directory.
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    server_url: String,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_pem: String,
    kubeconfig: PathBuf,
    /// How kube-apiserver was started, to start it again on the same port with the same flags.
    apiserver: ApiServerCommand,
}

/// kube-apiserver's command line and what its readiness probe needs.
struct ApiServerCommand {
    program: PathBuf,
    args: Vec<String>,
    port: u16,
    /// Trusts the CA and presents the admin certificate.
    tls: Arc<ClientConfig>,
}

/// A started process and its log file (also the node harness's).
pub struct Component {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

/// Why one start-up attempt failed.
struct StartError {
    message: String,
    /// A component could not bind a port that was free a moment before.
    port_taken: bool,
}

impl ControlPlane {
    /// Starts a fresh control plane and waits until it is ready. Blocks the calling
    /// thread (up to a few seconds when the binaries are built; the first build on a
    /// machine takes minutes); from async code use [`ControlPlane::start_async`].
    ///
    /// # Panics
    /// When the binaries cannot be found or built, or a component exits or is not ready
    /// within its bounded wait; the message carries the last lines of its log.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`ControlPlane::start`] with `extra_apiserver_args` appended to kube-apiserver's flags
    /// (e.g. `--enable-aggregator-routing=true`, so that webhook Services are called at their
    /// endpoints, as a cluster without kube-proxy needs).
    pub fn start_with(extra_apiserver_args: &[&str]) -> Self {
        let bin = binaries();
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start(bin, extra_apiserver_args) {
                Ok(control_plane) => return control_plane,
                Err(err) if err.port_taken && attempt < START_ATTEMPTS => {
                    eprintln!(
                        "control plane: a port was taken, retrying:\n{}",
                        err.message
                    );
                }
                Err(err) => panic!("control plane did not start: {}", err.message),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// [`ControlPlane::start`] on tokio's blocking pool, for async tests.
    pub async fn start_async() -> Self {
        Self::start_async_with(&[]).await
    }

    /// [`ControlPlane::start_with`] on tokio's blocking pool, for async tests.
    pub async fn start_async_with(extra_apiserver_args: &[&str]) -> Self {
        let args: Vec<String> = extra_apiserver_args
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        let start = move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Self::start_with(&args)
        };
        match tokio::task::spawn_blocking(start).await {
            Ok(control_plane) => control_plane,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => panic!("control plane start-up task failed: {err}"),
        }
    }

    /// The API server's port on 127.0.0.1.
    pub fn apiserver_port(&self) -> u16 {
        self.apiserver.port
    }

    /// The API server's URL, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// A kubeconfig for the `admin` user (group `system:masters`), usable by kube-rs and
    /// by Go clients alike.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The PEM of the CA that signed the API server's serving certificate and the
    /// client certificates it accepts.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The directory holding each component's log, `<component>.log`.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// This control plane's temporary directory, removed on drop; a place for a test's
    /// own files (webhook certificates, rewritten manifests).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The API server's audit events so far (JSON lines of `audit.log`): Metadata level for
    /// creates and updates of Pods and their ephemeral containers, nothing else
    /// (`AUDIT_POLICY`). Each event carries the webhooks' audit annotations, prefixed with the
    /// webhook's name.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.root.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The audit event of the request that `pred` picks, waiting up to 10 s for the API server
    /// to write it.
    pub async fn audit_event(
        &self,
        what: &str,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(event) = self.audit_events().into_iter().find(|e| pred(e)) {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "no audit event for {what} within 10 s; {} events logged",
                self.audit_events().len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last lines of a component's log (`"etcd"`, `"kube-apiserver"`,
    /// `"kube-controller-manager"`), for assertion messages.
    pub fn log_tail(&self, component: &str) -> String {
        tail(
            &self.logs_dir().join(format!("{component}.log")),
            LOG_TAIL_LINES,
        )
    }

    /// The process id of a running component (`etcd`, `kube-apiserver`,
    /// `kube-controller-manager`), for benchmarks that measure or pin it.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.components
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.child.id())
    }

    /// A client authenticated as `admin` in `system:masters`.
    pub async fn admin_client(&self) -> Client {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// Writes a kubeconfig for a user authenticated by a client certificate with CN
    /// `user` and O `groups`, and returns its path.
    pub fn write_user_kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let pki = self.root.join("pki");
        let file = sanitize(user);
        let (cert, key) = client_cert(&self.ca, user, groups);
        let cert_path = pki.join(format!("user-{file}.crt"));
        let key_path = pki.join(format!("user-{file}.key"));
        fs::write(&cert_path, cert.pem()).expect("write user certificate");
        fs::write(&key_path, key.serialize_pem()).expect("write user key");
        let kubeconfig = self.root.join(format!("kubeconfig-{file}.json"));
        write_kubeconfig(
            &kubeconfig,
            &self.server_url,
            &pki.join("ca.crt"),
            user,
            &cert_path,
            &key_path,
        );
        kubeconfig
    }

    /// A client authenticated as `user` in `groups` (see [`Self::write_user_kubeconfig`]).
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Client {
        client_from_kubeconfig(&self.write_user_kubeconfig(user, groups)).await
    }

    /// Waits until the controller manager has created the `default` ServiceAccount in
    /// `namespace`. The ServiceAccount admission plugin rejects Pods until then, so call
    /// this after creating a namespace and before creating Pods or workloads in it.
    pub async fn wait_for_default_service_account(&self, client: &Client, namespace: &str) {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match api.get_opt("default").await {
                Ok(Some(_)) => return,
                Ok(None) => {}
                Err(err) => {
                    eprintln!("control plane: reading ServiceAccount {namespace}/default: {err}")
                }
            }
            assert!(
                Instant::now() < deadline,
                "ServiceAccount {namespace}/default did not appear within {READY_TIMEOUT:?}; \
                 kube-controller-manager log:\n{}",
                self.log_tail(CONTROLLER_MANAGER)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops kube-apiserver (SIGTERM, then SIGKILL after a grace period) and waits until its
    /// port refuses connections; etcd and the controller manager keep running. Blocks the
    /// calling thread for up to a few seconds; from async code call it inside
    /// `tokio::task::block_in_place`.
    ///
    /// # Panics
    /// When kube-apiserver is not running or its port still accepts connections afterwards.
    pub fn stop_apiserver(&mut self) {
        let index = self
            .components
            .iter()
            .position(|c| c.name == APISERVER)
            .expect("kube-apiserver is running");
        let mut component = self.components.remove(index);
        stop_component(&mut component);
        let deadline = Instant::now() + STOP_GRACE;
        while connect(self.apiserver.port).is_ok() {
            assert!(
                Instant::now() < deadline,
                "port {} still accepts connections after kube-apiserver stopped",
                self.apiserver.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "control plane: kube-apiserver stopped ({})",
            self.server_url
        );
    }

    /// Starts kube-apiserver again, on the same port with the same flags and certificates, and
    /// waits until `/readyz` answers 200. Existing clients reconnect by themselves. Blocks like
    /// [`ControlPlane::stop_apiserver`].
    ///
    /// # Panics
    /// When kube-apiserver is already running, or does not become ready within the bounded
    /// wait (e.g. its port was taken meanwhile); the message carries the end of its log.
    pub fn start_apiserver(&mut self) {
        assert!(
            self.components.iter().all(|c| c.name != APISERVER),
            "kube-apiserver is already running"
        );
        let started = Instant::now();
        let program = self.apiserver.program.clone();
        let args = self.apiserver.args.clone();
        if let Err(err) = self.spawn(APISERVER, &program, &args) {
            panic!("kube-apiserver did not restart: {}", err.message);
        }
        // Back to start order (etcd, kube-apiserver, kube-controller-manager), which Drop
        // stops in reverse.
        let restarted = self.components.pop().expect("just spawned");
        let at = self
            .components
            .iter()
            .position(|c| c.name == CONTROLLER_MANAGER)
            .unwrap_or(self.components.len());
        self.components.insert(at, restarted);
        let (tls, port) = (Arc::clone(&self.apiserver.tls), self.apiserver.port);
        if let Err(err) = self.wait(APISERVER, "/readyz to answer 200 after a restart", || {
            https_get(&tls, port, "/readyz").is_ok_and(|(status, _)| status == 200)
        }) {
            panic!("kube-apiserver did not restart: {}", err.message);
        }
        eprintln!(
            "control plane: kube-apiserver restarted on {} in {:.1?}",
            self.server_url,
            started.elapsed()
        );
    }

    /// Whether kube-apiserver is running (not stopped by [`ControlPlane::stop_apiserver`]).
    pub fn apiserver_running(&self) -> bool {
        self.components.iter().any(|c| c.name == APISERVER)
    }

    fn try_start(bin: &Path, extra_apiserver_args: &[&str]) -> Result<Self, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("pod-hardener-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        let root = dir.path().to_path_buf();
        let pki = root.join("pki");
        fs::create_dir_all(&pki).expect("create pki directory");
        fs::create_dir_all(root.join("logs")).expect("create logs directory");

        let [etcd_port, etcd_peer_port, apiserver_port, kcm_port] = free_ports();
        let server_url = format!("https://127.0.0.1:{apiserver_port}");

        // Certificates and keys.
        let ca = new_ca();
        let ca_pem = ca.pem();
        let (serving, serving_key) = serving_cert(&ca);
        let (admin, admin_key) = client_cert(&ca, "admin", &["system:masters"]);
        let sa_key = KeyPair::generate().expect("generate service-account key");
        let ca_crt = pki.join("ca.crt");
        let paths = [
            ("ca.crt", ca_pem.clone()),
            ("apiserver.crt", serving.pem()),
            ("apiserver.key", serving_key.serialize_pem()),
            ("admin.crt", admin.pem()),
            ("admin.key", admin_key.serialize_pem()),
            ("sa.key", sa_key.serialize_pem()),
            ("sa.pub", sa_key.public_key_pem()),
        ];
        for (name, pem) in &paths {
            fs::write(pki.join(name), pem).expect("write pki file");
        }
        let audit_policy = root.join("audit-policy.yaml");
        fs::write(&audit_policy, AUDIT_POLICY).expect("write the audit policy");
        let kubeconfig = root.join("kubeconfig.json");
        write_kubeconfig(
            &kubeconfig,
            &server_url,
            &ca_crt,
            "admin",
            &pki.join("admin.crt"),
            &pki.join("admin.key"),
        );
        let tls = admin_tls(&ca, admin.der(), &admin_key);
        let pki_arg = |name: &str| pki.join(name).display().to_string();
        let client_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let mut apiserver_args = vec![
            format!("--etcd-servers={client_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            // Endpoints may not hold a loopback address, so the reconciler that
            // publishes the API server in the `kubernetes` Service's Endpoints is off.
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--secure-port={apiserver_port}"),
            format!("--cert-dir={}", root.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", pki_arg("apiserver.crt")),
            format!("--tls-private-key-file={}", pki_arg("apiserver.key")),
            format!("--client-ca-file={}", pki_arg("ca.crt")),
            "--authorization-mode=Node,RBAC".to_owned(),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            format!("--service-account-key-file={}", pki_arg("sa.pub")),
            format!("--service-account-signing-key-file={}", pki_arg("sa.key")),
            // As in clusters made by kubeadm: privileged Pods reach admission, where
            // PodSecurity and the webhook judge them, instead of failing validation.
            "--allow-privileged=true".to_owned(),
            "--profiling=false".to_owned(),
            // Where auditors find the webhooks' audit annotations; the log backend writes each
            // event before the response is sent (blocking mode).
            format!("--audit-policy-file={}", audit_policy.display()),
            format!("--audit-log-path={}", root.join("audit.log").display()),
            "--audit-log-format=json".to_owned(),
            "--audit-log-mode=blocking".to_owned(),
        ];
        apiserver_args.extend(extra_apiserver_args.iter().map(|a| (*a).to_owned()));

        let mut control_plane = Self {
            components: Vec::new(),
            dir: Some(dir),
            root: root.clone(),
            server_url,
            ca,
            ca_pem,
            kubeconfig: kubeconfig.clone(),
            apiserver: ApiServerCommand {
                program: bin.join(APISERVER),
                args: apiserver_args.clone(),
                port: apiserver_port,
                tls: Arc::clone(&tls),
            },
        };

        // etcd
        let started = Instant::now();
        control_plane.spawn(
            ETCD,
            &bin.join(ETCD),
            &[
                "--name=e2e".to_owned(),
                format!("--data-dir={}", root.join("etcd").display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=e2e={peer_url}"),
                "--unsafe-no-fsync".to_owned(),
            ],
        )?;
        control_plane.wait(ETCD, "/health to report healthy", || {
            http_get(etcd_port, "/health")
                .is_ok_and(|(status, body)| status == 200 && body.contains(r#""health":"true""#))
        })?;
        let etcd_ready = started.elapsed();

        // kube-apiserver
        control_plane.spawn(APISERVER, &bin.join(APISERVER), &apiserver_args)?;
        control_plane.wait(APISERVER, "/readyz to answer 200", || {
            https_get(&tls, apiserver_port, "/readyz").is_ok_and(|(status, _)| status == 200)
        })?;
        let apiserver_ready = started.elapsed();

        // kube-controller-manager
        let kubeconfig_arg = kubeconfig.display().to_string();
        control_plane.spawn(
            CONTROLLER_MANAGER,
            &bin.join(CONTROLLER_MANAGER),
            &[
                format!("--kubeconfig={kubeconfig_arg}"),
                format!("--authentication-kubeconfig={kubeconfig_arg}"),
                format!("--authorization-kubeconfig={kubeconfig_arg}"),
                // Its own HTTPS port needs no request-header CA; looking one up only logs errors.
                "--authentication-skip-lookup=true".to_owned(),
                "--bind-address=127.0.0.1".to_owned(),
                format!("--secure-port={kcm_port}"),
                format!("--cert-dir={}", root.join("kcm-certs").display()),
                "--leader-elect=false".to_owned(),
                "--controllers=*".to_owned(),
                format!("--service-account-private-key-file={}", pki_arg("sa.key")),
                format!("--root-ca-file={}", pki_arg("ca.crt")),
                "--use-service-account-credentials=false".to_owned(),
            ],
        )?;
        control_plane.wait(
            CONTROLLER_MANAGER,
            "the default ServiceAccount in namespace default",
            || {
                https_get(
                    &tls,
                    apiserver_port,
                    "/api/v1/namespaces/default/serviceaccounts/default",
                )
                .is_ok_and(|(status, _)| status == 200)
            },
        )?;
        eprintln!(
            "control plane: {} ready in {:.1?} (etcd {:.1?}, kube-apiserver {:.1?}); logs in {}",
            control_plane.server_url,
            started.elapsed(),
            etcd_ready,
            apiserver_ready,
            control_plane.logs_dir().display()
        );
        Ok(control_plane)
    }

    fn spawn(
        &mut self,
        name: &'static str,
        program: &Path,
        args: &[String],
    ) -> Result<(), StartError> {
        let log = self.logs_dir().join(format!("{name}.log"));
        // Append: a restarted component continues its log.
        let stdout = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("create log file");
        let stderr = stdout.try_clone().expect("clone log file handle");
        let child = Command::new(program)
            .args(args)
            .current_dir(&self.root)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|err| StartError {
                message: format!("cannot run {}: {err}", program.display()),
                port_taken: false,
            })?;
        self.components.push(Component { name, child, log });
        Ok(())
    }

    /// Polls `ready` until it holds, the component exits, or [`READY_TIMEOUT`] passes.
    fn wait(
        &mut self,
        name: &str,
        what: &str,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let component = self
            .components
            .iter_mut()
            .find(|c| c.name == name)
            .expect("wait for a started component");
        loop {
            if ready() {
                return Ok(());
            }
            let failure = match component.child.try_wait() {
                Ok(Some(status)) => Some(format!("{name} exited ({status}) before {what}")),
                Err(err) => Some(format!("{name}: cannot check its status: {err}")),
                Ok(None) if Instant::now() >= deadline => {
                    Some(format!("{name}: no {what} within {READY_TIMEOUT:?}"))
                }
                Ok(None) => None,
            };
            if let Some(failure) = failure {
                let log = tail(&component.log, LOG_TAIL_LINES);
                return Err(StartError {
                    port_taken: log.contains("address already in use"),
                    message: format!(
                        "{failure}; last lines of {}:\n{log}",
                        component.log.display()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for component in &self.components {
                eprintln!(
                    "---- last lines of {} ({}) ----\n{}",
                    component.name,
                    component.log.display(),
                    tail(&component.log, 20)
                );
            }
        }
        stop(&mut self.components);
        if std::env::var_os("POD_HARDENER_E2E_KEEP").is_some()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("control plane: kept {}", dir.keep().display());
        }
    }
}

/// Stops the components in reverse start order, so that each one's clients are gone
/// before it stops (etcd holds its shutdown while kube-apiserver's streams are open):
/// SIGTERM, then SIGKILL when it is still running after [`STOP_GRACE`].
fn stop(components: &mut Vec<Component>) {
    while let Some(mut component) = components.pop() {
        stop_component(&mut component);
    }
}

/// SIGTERM, then SIGKILL when the component is still running after [`STOP_GRACE`].
pub fn stop_component(component: &mut Component) {
    // std has no SIGTERM; a failure here is covered by the SIGKILL below.
    let _ = Command::new("kill")
        .args(["-TERM", &component.child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        match component.child.try_wait() {
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(Some(_)) => break,
            Ok(None) | Err(_) => {
                let _ = component.child.kill();
                let _ = component.child.wait();
                break;
            }
        }
    }
}

/// The directory holding the three binaries: `POD_HARDENER_CONTROL_PLANE_BIN`, or the
/// last stdout line of `scripts/build-control-plane.sh`, once per test process.
pub fn binaries() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = match std::env::var_os("POD_HARDENER_CONTROL_PLANE_BIN") {
            Some(dir) => PathBuf::from(dir),
            None => {
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-control-plane.sh");
                let started = Instant::now();
                let output = Command::new("bash")
                    .arg(&script)
                    .stdin(Stdio::null())
                    .stderr(Stdio::inherit())
                    .output()
                    .expect("run scripts/build-control-plane.sh");
                assert!(
                    output.status.success(),
                    "{} failed ({})",
                    script.display(),
                    output.status
                );
                let stdout =
                    String::from_utf8(output.stdout).expect("build script output is UTF-8");
                let dir = stdout
                    .lines()
                    .map(str::trim)
                    .rfind(|line| !line.is_empty())
                    .expect("build script prints the bin directory last");
                eprintln!(
                    "control plane: binaries in {dir} ({:.1?})",
                    started.elapsed()
                );
                PathBuf::from(dir)
            }
        };
        for name in [ETCD, APISERVER, CONTROLLER_MANAGER] {
            assert!(
                dir.join(name).is_file(),
                "{} has no {name}; run scripts/build-control-plane.sh",
                dir.display()
            );
        }
        dir
    })
}

/// Ports that were free on 127.0.0.1 a moment ago, all different.
fn free_ports<const N: usize>() -> [u16; N] {
    // Hold every listener until all are chosen so the kernel hands out N distinct ports.
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("listener address").port())
}

fn new_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, "pod-hardener-e2e-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("generate CA key"))
        .expect("self-sign CA")
}

/// The API server's serving certificate: 127.0.0.1 and localhost, plus the in-cluster
/// names and ClusterIP a real API server certificate carries.
fn serving_cert(ca: &CertifiedIssuer<'static, KeyPair>) -> (rcgen::Certificate, KeyPair) {
    let names = [
        "127.0.0.1",
        "localhost",
        KUBERNETES_SERVICE_IP,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ];
    let mut params = CertificateParams::new(names.map(str::to_owned).to_vec())
        .expect("serving certificate parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("generate serving key");
    let cert = params
        .signed_by(&key, ca)
        .expect("sign serving certificate");
    (cert, key)
}

/// A client certificate: the API server takes CN as the user name and O as the groups.
fn client_cert(
    ca: &CertifiedIssuer<'static, KeyPair>,
    user: &str,
    groups: &[&str],
) -> (rcgen::Certificate, KeyPair) {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).expect("client certificate parameters");
    params.distinguished_name.push(DnType::CommonName, user);
    for group in groups {
        params
            .distinguished_name
            .push(DnType::OrganizationName, *group);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("generate client key");
    let cert = params.signed_by(&key, ca).expect("sign client certificate");
    (cert, key)
}

/// Writes a kubeconfig as JSON (a subset of YAML that kube-rs and client-go both read),
/// naming the PEM files by absolute path.
fn write_kubeconfig(path: &Path, server: &str, ca: &Path, user: &str, cert: &Path, key: &Path) {
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "pod-hardener-e2e",
            "cluster": { "server": server, "certificate-authority": ca },
        }],
        "users": [{
            "name": user,
            "user": { "client-certificate": cert, "client-key": key },
        }],
        "contexts": [{
            "name": user,
            "context": { "cluster": "pod-hardener-e2e", "user": user },
        }],
        "current-context": user,
    });
    let text = serde_json::to_string_pretty(&kubeconfig).expect("serialize kubeconfig");
    fs::write(path, text).expect("write kubeconfig");
}

async fn client_from_kubeconfig(path: &Path) -> Client {
    install_crypto_provider();
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube config from kubeconfig");
    Client::try_from(config).expect("build kube client")
}

/// kube's rustls client needs a process-wide crypto provider.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means one is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A rustls client config that trusts the CA and presents the admin certificate, for
/// the blocking readiness probes.
fn admin_tls(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cert: &CertificateDer<'static>,
    key: &KeyPair,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).expect("trust the CA");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![cert.clone()], key)
            .expect("client certificate");
    Arc::new(config)
}

/// A blocking `GET` over HTTPS to 127.0.0.1: the status code and the body.
fn https_get(tls: &Arc<ClientConfig>, port: u16, path: &str) -> io::Result<(u16, String)> {
    let name = ServerName::try_from("127.0.0.1").expect("IP address server name");
    let connection =
        rustls::ClientConnection::new(Arc::clone(tls), name).map_err(io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(connection, connect(port)?);
    exchange(&mut stream, port, path)
}

/// A blocking plain-HTTP `GET` to 127.0.0.1: the status code and the body.
fn http_get(port: u16, path: &str) -> io::Result<(u16, String)> {
    exchange(&mut connect(port)?, port, path)
}

fn connect(port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_secs(2),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

fn exchange(
    stream: &mut (impl io::Read + io::Write),
    port: u16,
    path: &str,
) -> io::Result<(u16, String)> {
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // A peer that closes without TLS close_notify still sent the whole response.
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(err) => return Err(err),
    }
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP response: {response:.80}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Ok((status, body))
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// A user name made safe for a file name.
fn sanitize(user: &str) -> String {
    user.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
