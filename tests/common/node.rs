//! A real node for the end-to-end tests, in the namespaces of a [`Sandbox`]: containerd with
//! runc and the CNI plugins, a kubelet registered as node `localhost`, and kube-scheduler, all
//! from `scripts/build-node.sh` (the same k8s.io/kubernetes version as the control plane), with
//! the test images of `scripts/build-node-images.sh` imported into containerd.
//!
//! [`Node::start`] returns once the node is `Ready` in the API server. Dropping it stops the
//! scheduler and the kubelet, force-removes every container (so containerd's shims exit), stops
//! containerd, kills whatever is still in the node's cgroup, removes the cgroups and unmounts what
//! the node mounted under its directory; the sandbox's outer run then checks that nothing is left.
//!
//! Networking, inside the sandbox's network namespace only: a bridge [`BRIDGE`] holding
//! [`NODE_IP`], the node's InternalIP and the one address there that Pods can reach; Pods get
//! addresses in [`POD_SUBNET`] from the CNI bridge plugin with `isGateway: false` and
//! `ipMasq: false`, and one route, to the Service CIDR through [`NODE_IP`]; the namespace forwards
//! nothing (a new network namespace starts with forwarding off), so Pods reach only that subnet
//! and the namespace's own addresses. There is no kube-proxy: the `kubernetes` Service's ClusterIP
//! is an address of the namespace, where [`ServiceRelay`] passes connections to the API server on
//! 127.0.0.1 (Pods such as pod-hardener's own use it, as in a real cluster); the API server calls
//! webhook Services at their endpoints when started with `--enable-aggregator-routing=true`.
//!
//! What this kind of machine lacks is detected, and worked around only where it is lacking:
//! - cgroup v1 (no `cgroup.controllers` at the cgroup root): the kubelet gets `failCgroupV1: false`.
//! - no `CAP_SYS_RESOURCE` (bit 24 of CapEff): runc cannot lower `oom_score_adj`, so containerd
//!   gets `restrict_oom_score_adj = true`.
//! - the kubelet sets six kernel tunables (vm.overcommit_memory, kernel.panic, ...) at start-up;
//!   those that differ from what it wants get a file bind-mounted over them in the sandbox's mount
//!   namespace, so the kubelet changes a copy and the machine keeps its settings.
//!
//! The kubelet serves only on 127.0.0.1 (anonymous, AlwaysAllow: only the sandbox can reach it),
//! and the node is named `localhost`: the API server calls the kubelet (logs, exec) at the node's
//! first address type, `Hostname`, which resolves to 127.0.0.1, since the kubelet refuses a
//! loopback address as the node IP.
//!
//! Environment: `POD_HARDENER_NODE_BIN` (the binaries) and `POD_HARDENER_NODE_IMAGES` (the OCI
//! archive); without them the build scripts are run (they return at once when cached).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::{Api, Client};
use serde_json::json;

use super::control_plane::{
    Component, ControlPlane, KUBERNETES_SERVICE_IP, SERVICE_CIDR, stop_component, tail,
};
use super::sandbox::{
    Sandbox, cgroup_mount_points, kill_until_gone, pids_in_cgroup, remove_cgroup, run,
};

/// The node's name; see the module docs.
pub const NODE_NAME: &str = "localhost";
/// The bridge the CNI plugin attaches Pods to.
pub const BRIDGE: &str = "phbr0";
/// The node's InternalIP, on [`BRIDGE`].
pub const NODE_IP: &str = "10.244.0.1";
/// The Pods' subnet.
pub const POD_SUBNET: &str = "10.244.0.0/24";
/// The repository the test images are imported as: `pod-hardener-e2e/probe:TAG` in a Pod.
pub const PROBE_REPOSITORY: &str = "docker.io/pod-hardener-e2e/probe";
/// The containerd namespace the CRI plugin (and so the kubelet) uses.
const CRI_NAMESPACE: &str = "k8s.io";
/// How long the node may take to become Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const LOG_TAIL_LINES: usize = 40;

const CONTAINERD: &str = "containerd";
const KUBELET: &str = "kubelet";
const SCHEDULER: &str = "kube-scheduler";

/// The kernel tunables the kubelet sets at start-up (pkg/kubelet/cm, setupKernelTunables), with
/// the values it wants.
const KUBELET_TUNABLES: &[(&str, &str)] = &[
    ("vm/overcommit_memory", "1"),
    ("vm/panic_on_oom", "0"),
    ("kernel/panic", "10"),
    ("kernel/panic_on_oops", "1"),
    ("kernel/keys/root_maxkeys", "1000000"),
    ("kernel/keys/root_maxbytes", "25000000"),
];

/// A running node; see the module docs.
pub struct Node {
    /// Started processes, in start order.
    components: Vec<Component>,
    bin: PathBuf,
    dir: PathBuf,
    socket: PathBuf,
    cgroups: Vec<PathBuf>,
    /// How long [`Node::start`] took until the node was Ready.
    pub startup: Duration,
    /// What was detected about the machine and worked around, for reports.
    pub workarounds: Vec<String>,
    relay: Option<ServiceRelay>,
}

/// Answers on the `kubernetes` Service's ClusterIP, port 443, for the API server on 127.0.0.1:
/// what kube-proxy would do for that one Service. Stops when dropped.
struct ServiceRelay {
    task: tokio::task::JoinHandle<()>,
}

impl ServiceRelay {
    async fn start(apiserver_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind((KUBERNETES_SERVICE_IP, 443))
            .await
            .expect("bind the kubernetes Service's ClusterIP in the sandbox");
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                tokio::spawn(async move {
                    let to = (std::net::Ipv4Addr::LOCALHOST, apiserver_port);
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        ServiceRelay { task }
    }
}

impl Drop for ServiceRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Node {
    /// Starts containerd, the kubelet and kube-scheduler against `control_plane`, imports the test
    /// images, and waits until the node is Ready.
    ///
    /// # Panics
    /// When a binary cannot be built, a component exits, or the node is not Ready within
    /// [`READY_TIMEOUT`]; the message carries the end of the component's log.
    pub async fn start(control_plane: &ControlPlane, sandbox: &Sandbox) -> Self {
        let started = Instant::now();
        let [bin, images, _] = prepare().map(|(_, path)| path);
        let dir = sandbox.dir.join("node");
        for sub in [
            "logs",
            "cni/net.d",
            "cni/ipam",
            "containerd",
            "kubelet",
            "pod-logs",
        ] {
            fs::create_dir_all(dir.join(sub)).expect("create a node directory");
        }
        let mut node = Node {
            components: Vec::new(),
            socket: dir.join("containerd/containerd.sock"),
            bin,
            dir,
            cgroups: Vec::new(),
            startup: Duration::ZERO,
            workarounds: Vec::new(),
            relay: None,
        };
        tokio::task::block_in_place(|| {
            node.network();
            node.protect_kernel_tunables();
            node.create_cgroups(sandbox.cgroup_name());
            node.start_containerd();
            node.import_images(&images, Some(PROBE_REPOSITORY));
        });
        let containerd_ready = started.elapsed();
        node.relay = Some(ServiceRelay::start(control_plane.apiserver_port()).await);
        node.start_kubelet(control_plane, sandbox.cgroup_name());
        node.start_scheduler(control_plane);
        let client = control_plane.admin_client().await;
        node.wait_ready(&client).await;
        node.startup = started.elapsed();
        eprintln!(
            "node: {NODE_NAME} Ready in {:.1?} (containerd up and images imported in {:.1?}); \
             workarounds: {}; logs in {}",
            node.startup,
            containerd_ready,
            if node.workarounds.is_empty() {
                "none".to_owned()
            } else {
                node.workarounds.join("; ")
            },
            node.dir.join("logs").display()
        );
        node
    }

    /// Imports an OCI archive into the CRI plugin's image store, naming its images
    /// `base_name:TAG` for each tag in the archive's index, or by the index's reference names
    /// when `base_name` is `None`.
    pub fn import_images(&self, archive: &Path, base_name: Option<&str>) {
        let started = Instant::now();
        let archive_arg = archive.display().to_string();
        let mut args = vec!["images", "import"];
        if let Some(base_name) = base_name {
            args.extend(["--base-name", base_name]);
        }
        args.push(&archive_arg);
        self.ctr(&args);
        eprintln!(
            "node: imported {} as {}:* in {:.1?}",
            archive.display(),
            base_name.unwrap_or("its reference names"),
            started.elapsed()
        );
    }

    /// Imports the one image of an OCI archive under `reference` (e.g. the name manifests/ gives
    /// it): the archive is unpacked, its index annotated with containerd's image-name annotation,
    /// and imported under that name alone, so that the CRI plugin knows it by no other.
    pub fn import_image_as(&self, archive: &Path, reference: &str) {
        let unpacked = self
            .dir
            .join("import")
            .join(reference.replace(['/', ':'], "_"));
        fs::create_dir_all(&unpacked).expect("create the import directory");
        let unpacked_arg = unpacked.display().to_string();
        run(&[
            "tar",
            "-xf",
            &archive.display().to_string(),
            "-C",
            &unpacked_arg,
        ]);
        let index_path = unpacked.join("index.json");
        let mut index: serde_json::Value =
            serde_json::from_slice(&fs::read(&index_path).expect("read index.json"))
                .expect("index.json is JSON");
        let manifests = index["manifests"].as_array_mut().expect("an OCI index");
        assert_eq!(manifests.len(), 1, "{} holds one image", archive.display());
        manifests[0]["annotations"] = json!({ "io.containerd.image.name": reference });
        fs::write(&index_path, index.to_string()).expect("write index.json");
        let repacked = PathBuf::from(format!("{}.tar", unpacked.display()));
        run(&[
            "tar",
            "-cf",
            &repacked.display().to_string(),
            "-C",
            &unpacked_arg,
            ".",
        ]);
        self.import_images(&repacked, None);
    }

    /// The path of one of the node's binaries (`kubectl`, `ctr`, ...).
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Makes containerd pull from the registry at `host` (`127.0.0.1:PORT`) over TLS trusting
    /// `ca`: a `hosts.toml` in its registry config directory, which it reads at each pull.
    pub fn trust_registry(&self, host: &str, ca: &Path) {
        let dir = self.dir.join("containerd/certs.d").join(host);
        fs::create_dir_all(&dir).expect("create the registry hosts directory");
        fs::write(
            dir.join("hosts.toml"),
            format!(
                "server = \"https://{host}\"\n\n[host.\"https://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{}\"\n",
                ca.display()
            ),
        )
        .expect("write hosts.toml");
    }

    /// Runs `ctr` against this node's containerd in the CRI namespace, returning its stdout.
    pub fn ctr(&self, args: &[&str]) -> String {
        let ctr = self.bin.join("ctr").display().to_string();
        let address = self.socket.display().to_string();
        let mut argv = vec![
            ctr.as_str(),
            "--address",
            address.as_str(),
            "--namespace",
            CRI_NAMESPACE,
        ];
        argv.extend_from_slice(args);
        run(&argv)
    }

    /// The last lines of a component's log (`containerd`, `kubelet`, `kube-scheduler`).
    pub fn log_tail(&self, component: &str) -> String {
        tail(
            &self.dir.join("logs").join(format!("{component}.log")),
            LOG_TAIL_LINES,
        )
    }

    /// The last lines of every component's log, for assertion messages.
    pub fn diagnostics(&self) -> String {
        [CONTAINERD, KUBELET, SCHEDULER]
            .iter()
            .map(|c| format!("---- {c} ----\n{}", self.log_tail(c)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The bridge with the node's address; see the module docs.
    fn network(&self) {
        run(&["ip", "link", "add", BRIDGE, "type", "bridge"]);
        run(&["ip", "addr", "add", &format!("{NODE_IP}/24"), "dev", BRIDGE]);
        run(&["ip", "link", "set", BRIDGE, "up"]);
        // The `kubernetes` Service's ClusterIP is an address of this namespace, where
        // [`ServiceRelay`] answers for the API server: Pods reach it through their one route.
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{KUBERNETES_SERVICE_IP}/32"),
            "dev",
            "lo",
        ]);
        let forwarding = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
        assert_eq!(
            forwarding.trim(),
            "0",
            "the sandbox's network namespace must not forward"
        );
        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": "pod-hardener-e2e",
            "plugins": [{
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": false,
                "isDefaultGateway": false,
                "ipMasq": false,
                "hairpinMode": false,
                "ipam": {
                    "type": "host-local",
                    "dataDir": self.dir.join("cni/ipam"),
                    "ranges": [[{
                        "subnet": POD_SUBNET,
                        "rangeStart": "10.244.0.10",
                        "rangeEnd": "10.244.0.250",
                    }]],
                    "routes": [{ "dst": SERVICE_CIDR, "gw": NODE_IP }],
                },
            }],
        });
        fs::write(
            self.dir.join("cni/net.d/10-pod-hardener-e2e.conflist"),
            serde_json::to_string_pretty(&conflist).expect("serialize the CNI config"),
        )
        .expect("write the CNI config");
    }

    /// See the module docs: the machine keeps its kernel tunables.
    fn protect_kernel_tunables(&mut self) {
        let copies = self.dir.join("sysctl");
        fs::create_dir_all(&copies).expect("create the sysctl directory");
        for (name, wanted) in KUBELET_TUNABLES {
            let path = Path::new("/proc/sys").join(name);
            let Ok(current) = fs::read_to_string(&path) else {
                continue;
            };
            if current.trim() == *wanted {
                continue;
            }
            let copy = copies.join(name.replace('/', "."));
            fs::write(&copy, &current).expect("write a sysctl copy");
            run(&[
                "mount",
                "--bind",
                &copy.display().to_string(),
                &path.display().to_string(),
            ]);
            self.workarounds.push(format!(
                "{name} {} kept (kubelet wants {wanted})",
                current.trim()
            ));
        }
    }

    /// The kubelet's cgroupRoot, in every hierarchy: the kubelet requires it to exist.
    fn create_cgroups(&mut self, name: &str) {
        for mount in cgroup_mount_points() {
            let cgroup = mount.join(name);
            fs::create_dir_all(&cgroup)
                .unwrap_or_else(|err| panic!("create cgroup {}: {err}", cgroup.display()));
            // A new cpuset cgroup of v1 has no CPUs and memory nodes until given its parent's.
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(value) = fs::read_to_string(mount.join(file))
                    && cgroup.join(file).exists()
                {
                    fs::write(cgroup.join(file), value.trim()).expect("copy the cpuset");
                }
            }
            self.cgroups.push(cgroup);
        }
    }

    fn start_containerd(&mut self) {
        let restrict_oom_score_adj = !has_capability(CAP_SYS_RESOURCE);
        if restrict_oom_score_adj {
            self.workarounds
                .push("no CAP_SYS_RESOURCE: containerd restrict_oom_score_adj = true".to_owned());
        }
        let root = self.dir.join("containerd");
        let config = format!(
            r#"version = 3
root = "{root}/root"
state = "{root}/state"

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = {restrict_oom_score_adj}
  enable_selinux = false
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{bin}/runc"
        Root = "{root}/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{bin}"]
    conf_dir = "{cni}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "{root}/certs.d"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PROBE_REPOSITORY}:pause"
"#,
            root = root.display(),
            socket = self.socket.display(),
            bin = self.bin.display(),
            cni = self.dir.join("cni/net.d").display(),
        );
        let config_path = root.join("config.toml");
        fs::write(&config_path, config).expect("write the containerd config");
        let program = self.bin.join(CONTAINERD);
        self.spawn(
            CONTAINERD,
            &program,
            &["--config".to_owned(), config_path.display().to_string()],
        );
        let ctr = self.bin.join("ctr");
        let socket = self.socket.clone();
        self.wait_blocking(CONTAINERD, "its socket to answer", || {
            Command::new(&ctr)
                .arg("--address")
                .arg(&socket)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    }

    fn start_kubelet(&mut self, control_plane: &ControlPlane, cgroup_name: &str) {
        let kubeconfig = control_plane
            .write_user_kubeconfig(&format!("system:node:{NODE_NAME}"), &["system:nodes"]);
        let cgroup_v1 = !Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let mut config = json!({
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "healthzBindAddress": "127.0.0.1",
            "readOnlyPort": 0,
            // Only the sandbox reaches 127.0.0.1:10250; the API server calls it without a client
            // certificate (the control plane has no kubelet client certificate).
            "authentication": {
                "anonymous": { "enabled": true },
                "webhook": { "enabled": false },
            },
            "authorization": { "mode": "AlwaysAllow" },
            "containerRuntimeEndpoint": format!("unix://{}", self.socket.display()),
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": format!("/{cgroup_name}"),
            "failSwapOn": false,
            // No cluster DNS, and no nameserver copied from the machine into Pods.
            "resolvConf": "",
            "podLogsDir": self.dir.join("pod-logs"),
            // The test images cannot be pulled again: never collect them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "serializeImagePulls": false,
            "registerNode": true,
            "nodeStatusUpdateFrequency": "2s",
            "syncFrequency": "5s",
        });
        if cgroup_v1 {
            config["failCgroupV1"] = json!(false);
            self.workarounds
                .push("cgroup v1: kubelet failCgroupV1: false".to_owned());
        }
        let config_path = self.dir.join("kubelet/config.json");
        fs::write(
            &config_path,
            serde_json::to_string_pretty(&config).expect("serialize the kubelet config"),
        )
        .expect("write the kubelet config");
        let program = self.bin.join(KUBELET);
        self.spawn(
            KUBELET,
            &program,
            &[
                format!("--config={}", config_path.display()),
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--root-dir={}", self.dir.join("kubelet/root").display()),
                format!("--cert-dir={}", self.dir.join("kubelet/pki").display()),
                format!("--hostname-override={NODE_NAME}"),
                format!("--node-ip={NODE_IP}"),
                "--v=2".to_owned(),
            ],
        );
    }

    fn start_scheduler(&mut self, control_plane: &ControlPlane) {
        let kubeconfig = control_plane.write_user_kubeconfig("system:kube-scheduler", &[]);
        let program = self.bin.join(SCHEDULER);
        self.spawn(
            SCHEDULER,
            &program,
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                "--leader-elect=false".to_owned(),
                // No HTTPS port: nothing probes it; scheduled Pods show it works.
                "--secure-port=0".to_owned(),
            ],
        );
    }

    async fn wait_ready(&mut self, client: &Client) {
        let nodes: Api<NodeObject> = Api::all(client.clone());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(node)) = nodes.get_opt(NODE_NAME).await {
                let ready = node
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if ready {
                    return;
                }
            }
            for process in &mut self.components {
                if let Ok(Some(status)) = process.child.try_wait() {
                    panic!(
                        "{} exited ({status}) before node {NODE_NAME} was Ready:\n{}",
                        process.name,
                        tail(&process.log, LOG_TAIL_LINES)
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {NODE_NAME} not Ready within {READY_TIMEOUT:?}:\n{}",
                self.diagnostics()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn spawn(&mut self, name: &'static str, program: &Path, args: &[String]) {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let stdout = fs::File::create(&log).expect("create a log file");
        let stderr = stdout.try_clone().expect("clone the log file handle");
        // containerd finds its shim (containerd-shim-runc-v2) on PATH.
        let path = format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            self.bin.display()
        );
        let child = Command::new(program)
            .args(args)
            .current_dir(&self.dir)
            .env("PATH", path)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|err| panic!("run {}: {err}", program.display()));
        self.components.push(Component { name, child, log });
    }

    /// Polls `ready` until it holds, the component exits, or [`READY_TIMEOUT`] passes.
    fn wait_blocking(&mut self, name: &str, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ready() {
                return;
            }
            let process = self
                .components
                .iter_mut()
                .find(|p| p.name == name)
                .expect("a started component");
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "{name} exited ({status}) before {what}:\n{}",
                    tail(&process.log, LOG_TAIL_LINES)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no {what} within {READY_TIMEOUT:?}:\n{}",
                tail(&process.log, LOG_TAIL_LINES)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Force-removes every container and sandbox through containerd, so that each shim exits.
    fn remove_containers(&self) {
        let tasks = self.try_ctr(&["tasks", "ls", "-q"]);
        for task in tasks.lines().map(str::trim).filter(|t| !t.is_empty()) {
            let _ = self.try_ctr(&["tasks", "rm", "-f", task]);
        }
        let containers = self.try_ctr(&["containers", "ls", "-q"]);
        for container in containers.lines().map(str::trim).filter(|c| !c.is_empty()) {
            let _ = self.try_ctr(&["containers", "rm", container]);
        }
    }

    /// [`Node::ctr`] for teardown: stdout, or empty when it failed.
    fn try_ctr(&self, args: &[&str]) -> String {
        Command::new(self.bin.join("ctr"))
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", CRI_NAMESPACE])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Processes of this node's binaries (the shims, mostly) that are not our children.
    fn stray_processes(&self) -> Vec<u32> {
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|exe| exe.starts_with(&self.bin))
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let started = Instant::now();
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        // The scheduler and the kubelet first, so nothing restarts what is removed next.
        while self.components.last().is_some_and(|p| p.name != CONTAINERD) {
            if let Some(mut process) = self.components.pop() {
                stop_component(&mut process);
            }
        }
        self.remove_containers();
        while let Some(mut process) = self.components.pop() {
            stop_component(&mut process);
        }
        kill_until_gone(|| self.stray_processes());
        for cgroup in &self.cgroups {
            kill_until_gone(|| pids_in_cgroup(cgroup));
            remove_cgroup(cgroup);
        }
        unmount_under(&self.dir);
        eprintln!("node: torn down in {:.1?}", started.elapsed());
    }
}

/// Unmounts everything mounted under `dir` in this mount namespace, deepest first.
fn unmount_under(dir: &Path) {
    let prefix = dir.display().to_string();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4).map(str::to_owned))
        .filter(|point| point.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount")
            .args(["--lazy", &point])
            .stderr(Stdio::null())
            .status();
    }
}

const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process has `capability` in its effective set.
fn has_capability(capability: u32) -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << capability) != 0)
}

/// The node's binaries and test images, from `POD_HARDENER_NODE_BIN` and
/// `POD_HARDENER_NODE_IMAGES` or else from their build scripts (which return at once when their
/// cache holds them), once per test process: each as its environment variable and path. The
/// sandbox's outer run calls this and hands the paths to the inner run, which has neither the
/// network nor the package lists that a build may need.
pub fn prepare() -> [(&'static str, PathBuf); 3] {
    static PREPARED: OnceLock<[(&'static str, PathBuf); 3]> = OnceLock::new();
    PREPARED
        .get_or_init(|| {
            let [bin, images] = [
                ("POD_HARDENER_NODE_BIN", "scripts/build-node.sh"),
                ("POD_HARDENER_NODE_IMAGES", "scripts/build-node-images.sh"),
            ]
            .map(|(env, script)| (env, built(env, script)));
            [
                bin,
                images,
                (POD_HARDENER_IMAGE_ENV, pod_hardener_image_built()),
            ]
        })
        .clone()
}

/// Names pod-hardener's own OCI archive in the inner run.
const POD_HARDENER_IMAGE_ENV: &str = "POD_HARDENER_IMAGE_ARCHIVE";

/// pod-hardener's own image as an OCI archive (scripts/build-image.sh), as [`prepare`] found it.
pub fn pod_hardener_image() -> PathBuf {
    PathBuf::from(
        std::env::var_os(POD_HARDENER_IMAGE_ENV).expect("the sandbox's outer run names the image"),
    )
}

/// `target/image/pod-hardener-oci.tar`, built by scripts/build-image.sh when missing (CI builds it
/// before the tests; a developer's first node test run waits for a release build).
fn pod_hardener_image_built() -> PathBuf {
    if let Some(path) = std::env::var_os(POD_HARDENER_IMAGE_ENV) {
        return PathBuf::from(path);
    }
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/image/pod-hardener-oci.tar");
    if !archive.is_file() {
        // Its last line is not a path; the archive's place is fixed.
        built(POD_HARDENER_IMAGE_ENV, "scripts/build-image.sh");
    }
    assert!(
        archive.is_file(),
        "scripts/build-image.sh made no {}",
        archive.display()
    );
    archive
}

pub use super::tools::built;
