//! The servers under test as child processes (pod-hardener's release binary, the baseline),
//! and what /proc says about them: CPU ticks, RSS, whether they still run.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use tokio_rustls::TlsConnector;

use pod_hardener::certs::{self, CertRequest};

use crate::baseline::{self, BASELINE_FLAG};
use crate::client::{Target, review};
use crate::payload::Payload;

/// A child process killed (SIGKILL) and reaped when dropped, panics included.
struct ChildGuard {
    child: Child,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Baseline,
    /// The baseline that also parses each review (`--baseline-parses`).
    ParsingBaseline,
    PodHardener,
    /// Kubernetes' standalone Pod Security Admission webhook (benches/peers/psa).
    PsaWebhook,
    /// OPA Gatekeeper's mutation webhook (benches/peers/gatekeeper).
    Gatekeeper,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::ParsingBaseline => "baseline (parses)",
            Kind::PodHardener => "pod-hardener",
            Kind::PsaWebhook => "PSA webhook",
            Kind::Gatekeeper => "Gatekeeper",
        }
    }
}

pub(crate) struct Server {
    pub(crate) kind: Kind,
    guard: ChildGuard,
    pub(crate) target: Target,
    stderr_path: PathBuf,
    pub(crate) startup: Duration,
    pub(crate) idle_rss_kib: u64,
}

impl Server {
    pub(crate) fn pid(&self) -> u32 {
        self.guard.child.id()
    }

    pub(crate) fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

/// A free loopback port: bind port 0 and release it (the child binds it right after).
fn free_port() -> anyhow::Result<u16> {
    let l = StdListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

pub(crate) fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Busy ticks of the whole machine (user, nice, system, irq, softirq) from /proc/stat.
fn system_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum()
}

/// CPU ticks used by the server, by this process (the load generator) and by everything else
/// on the machine over a phase.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuUsage {
    pub(crate) server: u64,
    pub(crate) client: u64,
    pub(crate) others: u64,
}

impl std::ops::AddAssign for CpuUsage {
    fn add_assign(&mut self, o: Self) {
        self.server += o.server;
        self.client += o.client;
        self.others += o.others;
    }
}

pub(crate) struct CpuMeter {
    pub(crate) pid: u32,
    start: CpuUsage,
}

impl CpuMeter {
    pub(crate) fn start(pid: u32) -> Self {
        CpuMeter {
            pid,
            start: CpuMeter::read(pid),
        }
    }

    /// Server, client and whole-machine ticks (the last in `others`).
    pub(crate) fn read(pid: u32) -> CpuUsage {
        CpuUsage {
            server: proc_cpu_ticks(pid),
            client: proc_cpu_ticks(std::process::id()),
            others: system_busy_ticks(),
        }
    }

    pub(crate) fn stop(&self) -> CpuUsage {
        let end = CpuMeter::read(self.pid);
        let server = end.server.saturating_sub(self.start.server);
        let client = end.client.saturating_sub(self.start.client);
        let machine = end.others.saturating_sub(self.start.others);
        CpuUsage {
            server,
            client,
            others: machine.saturating_sub(server + client),
        }
    }
}

pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) ca_pem: String,
}

pub(crate) fn fixture() -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let mut req = CertRequest::new("pod-hardener", "pod-hardener");
    req.extra_dns.push("localhost".into());
    req.extra_ips.push("127.0.0.1".parse()?);
    let generated = certs::generate(&req)?;
    let written = certs::write_files(&generated, &dir.path().join("tls"))?;
    Ok(Fixture {
        cert: written.cert,
        key: written.key,
        ca_pem: generated.ca_pem,
        dir,
    })
}

/// Where and how a server is run; the default is the plain comparison's (no cluster, no pinning).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Placement<'a> {
    /// A cluster's kubeconfig: pod-hardener then reads namespace labels from it
    /// (`namespaceSource: cluster`), as the peers do.
    pub(crate) kubeconfig: Option<&'a Path>,
    /// The one CPU the server may run on (`taskset -c`), the same for every server compared.
    pub(crate) cpu: Option<usize>,
    /// Each request's deadline, when not the client's default.
    pub(crate) request_timeout: Option<Duration>,
}

/// `program`, started on `cpu` when one is given (taskset execs it: the PID stays the child's).
pub(crate) fn command_on(cpu: Option<usize>, program: &Path) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    }
}

pub(crate) async fn start_server(
    kind: Kind,
    hardener_bin: &Path,
    fixture: &Fixture,
    connector: &TlsConnector,
    probe: &Payload,
) -> anyhow::Result<Server> {
    start_server_placed(
        kind,
        hardener_bin,
        fixture,
        connector,
        probe,
        Placement::default(),
    )
    .await
}

/// [`start_server`] against a cluster and/or pinned to a CPU.
pub(crate) async fn start_server_placed(
    kind: Kind,
    hardener_bin: &Path,
    fixture: &Fixture,
    connector: &TlsConnector,
    probe: &Payload,
    placement: Placement<'_>,
) -> anyhow::Result<Server> {
    let mut last_error = None;
    // A released port can be taken by someone else before the child binds it: try a few.
    for attempt in 0..3 {
        let port = free_port()?;
        let stderr_path = fixture
            .dir
            .path()
            .join(format!("{}-{attempt}.stderr", kind.name()));
        let mut cmd = match kind {
            Kind::Baseline | Kind::ParsingBaseline => {
                let mut c = command_on(placement.cpu, &std::env::current_exe()?);
                c.arg(BASELINE_FLAG)
                    .arg(port.to_string())
                    .arg(&fixture.cert)
                    .arg(&fixture.key);
                if kind == Kind::ParsingBaseline {
                    c.arg(baseline::PARSE_FLAG);
                }
                c
            }
            Kind::PodHardener => {
                let metrics_port = free_port()?;
                let config = fixture.dir.path().join("config.yaml");
                let namespace_source = if placement.kubeconfig.is_some() {
                    "cluster"
                } else {
                    "static"
                };
                std::fs::write(
                    &config,
                    format!(
                        "listen: 127.0.0.1:{port}\n\
                         metricsListen: 127.0.0.1:{metrics_port}\n\
                         tls:\n  certFile: {}\n  keyFile: {}\n\
                         namespaceSource: {namespace_source}\n\
                         log:\n  level: warn\n",
                        fixture.cert.display(),
                        fixture.key.display()
                    ),
                )?;
                let mut c = command_on(placement.cpu, hardener_bin);
                c.arg("serve").arg("--config").arg(&config);
                // Nothing from the environment overrides the file.
                for var in [
                    "POD_HARDENER_CONFIG",
                    "POD_HARDENER_LISTEN",
                    "POD_HARDENER_METRICS_LISTEN",
                    "POD_HARDENER_TLS_CERT",
                    "POD_HARDENER_TLS_KEY",
                    "POD_HARDENER_LOG_FORMAT",
                    "POD_HARDENER_LOG_LEVEL",
                    "KUBECONFIG",
                ] {
                    c.env_remove(var);
                }
                if let Some(kubeconfig) = placement.kubeconfig {
                    c.env("KUBECONFIG", kubeconfig);
                }
                c
            }
            Kind::PsaWebhook | Kind::Gatekeeper => {
                bail!("{} is started by the peers comparison", kind.name())
            }
        };
        cmd.stdin(Stdio::piped());
        let mut target = Target::new(SocketAddr::from(([127, 0, 0, 1], port)), connector.clone());
        if let Some(timeout) = placement.request_timeout {
            target = target.with_request_timeout(timeout);
        }
        match launch(kind, cmd, target, stderr_path, probe, STARTUP_PROBES).await {
            Ok(server) => return Ok(server),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow!("{} did not start", kind.name())))
}

/// Readiness probes of a server started by [`start_server`]: about 10 s when refused at once.
const STARTUP_PROBES: u32 = 200;

/// Spawns `cmd` (stdout discarded, stderr to `stderr_path`) and waits until it answers `probe`
/// at `target`: at most `probes` tries, each bounded to 1 s, 25 ms apart.
pub(crate) async fn launch(
    kind: Kind,
    mut cmd: Command,
    target: Target,
    stderr_path: PathBuf,
    probe: &Payload,
    probes: u32,
) -> anyhow::Result<Server> {
    let stderr = std::fs::File::create(&stderr_path)?;
    cmd.stdout(Stdio::null()).stderr(Stdio::from(stderr));
    let spawned = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", kind.name()))?;
    let mut guard = ChildGuard { child };
    for _ in 0..probes {
        if let Ok(Some(status)) = guard.child.try_wait() {
            bail!(
                "{} exited during start-up ({status}): {}",
                kind.name(),
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        let probe_result = tokio::time::timeout(Duration::from_secs(1), async {
            let mut conn = target.connect().await.map_err(|e| e.to_string())?;
            review(&mut conn, &target, probe).await
        })
        .await;
        if matches!(probe_result, Ok(Ok(_))) {
            let startup = spawned.elapsed();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let idle_rss_kib = proc_status_kib(guard.child.id(), "VmRSS:");
            return Ok(Server {
                kind,
                guard,
                target,
                stderr_path,
                startup,
                idle_rss_kib,
            });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!(
        "{} did not answer within {probes} probes ({:.0?}): {}",
        kind.name(),
        spawned.elapsed(),
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    )
}

/// pod-hardener's plain-HTTP readiness endpoint answers 200 (one blocking request, bounded).
pub(crate) fn metrics_ready(server: &Server, fixture: &Fixture) -> anyhow::Result<()> {
    use std::io::Write as _;
    let config = std::fs::read_to_string(fixture.dir.path().join("config.yaml"))?;
    let addr: SocketAddr = config
        .lines()
        .find_map(|l| l.strip_prefix("metricsListen: "))
        .context("metricsListen in the config")?
        .parse()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut rsp = String::new();
    let _ = s.take(64 * 1024).read_to_string(&mut rsp);
    if !rsp.starts_with("HTTP/1.1 200") {
        bail!(
            "{} /readyz answered {:?}",
            server.kind.name(),
            rsp.lines().next()
        );
    }
    Ok(())
}

/// Whether the server process has already exited (it must still be running at the end).
pub(crate) fn proc_exited(s: &Server) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.pid())).ok();
    match stat {
        None => Some("gone".into()),
        Some(st) => {
            let state = st
                .rfind(')')
                .and_then(|i| st[i + 1..].split_whitespace().next().map(str::to_owned));
            match state.as_deref() {
                Some("Z") | Some("X") => Some("exited".into()),
                _ => None,
            }
        }
    }
}

/// Whether every server still runs at the end; prints how each one that does not ended.
pub(crate) fn all_still_running<'a>(servers: impl IntoIterator<Item = &'a Server>) -> bool {
    let mut running = true;
    for s in servers {
        if let Some(status) = proc_exited(s) {
            running = false;
            println!(
                "{} exited during the run ({status}):\n{}",
                s.kind.name(),
                s.stderr_tail()
            );
        }
    }
    running
}
