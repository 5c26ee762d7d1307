//! Runs a node test inside namespaces of its own, so that nothing it starts can reach or be
//! reached from outside, and proves afterwards that it left nothing behind.
//!
//! A node test calls [`enter`] first. Called from the test process cargo started (the *outer*
//! run), `enter` runs the same test binary again, for that one test (`--exact`), under
//! `unshare --net --mount --propagation slave`, then returns `None`; the test function returns.
//! In that second process (the *inner* run) `enter` returns the [`Sandbox`] and the test body runs:
//! - in a new network namespace: only `lo` (brought up here) and what the node harness creates
//!   there (a bridge without gateway, masquerade or forwarding, and the Pods' veths). The control
//!   plane, pod-hardener, the kubelet and containerd all listen on this namespace's loopback;
//!   Pod addresses exist only here and in the Pods' own namespaces; nothing has a route out.
//! - in a new mount namespace whose mounts never propagate to the machine, with empty tmpfs over
//!   `/run`, `/var/lib` and `/var/log`, where containerd, runc and the CNI plugins keep what they
//!   cannot be told to keep elsewhere (shim sockets, CNI result cache, `/var/log/containers`).
//! - with the kubelet's cgroups under one cgroup named for this run ([`Sandbox::cgroup_name`]).
//!
//! When the inner run has exited, however it exited (a failed assertion, a panic in a Drop, a
//! signal, a timeout), the outer run looks for what it left behind: processes in its network or
//! mount namespace, processes or directories in its cgroup of any hierarchy, mounts or network
//! links on the machine that were not there before, files in the well-known paths of containerd,
//! the kubelet and CNI. It reports them, removes them (SIGKILL, rmdir) and removes the sandbox
//! directory, then fails the test if the inner run failed or left anything. The inner run's own
//! teardown (the harnesses' Drop impls) is what should leave nothing; this check is its test.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Set in the inner run: the sandbox directory.
const SANDBOX_DIR_ENV: &str = "POD_HARDENER_NODE_SANDBOX";
/// Set in the inner run: the cgroup name for the kubelet's cgroup root.
const SANDBOX_CGROUP_ENV: &str = "POD_HARDENER_NODE_CGROUP";
/// How long one inner run may take before it is killed.
const INNER_TIMEOUT: Duration = Duration::from_secs(900);
/// Written by the inner run when it starts, so the outer run knows it did (a mistyped test name
/// would otherwise run no test and pass).
const ENTERED_FILE: &str = "entered";
/// The inner run's network and mount namespaces, as `net:[N] mnt:[N]`.
const NAMESPACES_FILE: &str = "namespaces";
/// Paths where a node's components keep state when not told otherwise; none may change.
const WELL_KNOWN_PATHS: &[&str] = &[
    "/run/containerd",
    "/run/netns",
    "/var/lib/cni",
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/log/pods",
    "/var/log/containers",
    "/etc/cni",
    "/opt/cni",
];

/// What the inner run is given; see the module docs.
pub struct Sandbox {
    /// A directory that outlives the inner run (the outer run removes it), for the node's state:
    /// nothing under it is mounted on the machine, so removing it is safe.
    pub dir: PathBuf,
    cgroup_name: String,
}

impl Sandbox {
    /// The cgroup (relative to each hierarchy's root) that the kubelet is given as `cgroupRoot`.
    pub fn cgroup_name(&self) -> &str {
        &self.cgroup_name
    }

    /// Leaves a file in the sandbox directory that the outer run can look for
    /// ([`run_expecting_failure`]).
    pub fn mark(&self, name: &str) {
        fs::write(self.dir.join(name), name).expect("write a marker file");
    }
}

/// Either returns the [`Sandbox`] (in the inner run: run the test body) or runs the test `name`
/// in a fresh sandbox, checks that it passed and left nothing behind, and returns `None` (in the
/// outer run: return at once). `name` must be the test function's name.
///
/// # Panics
/// In the outer run, when the inner run failed or left anything behind; in the inner run, when
/// the namespaces cannot be set up.
pub fn enter(name: &str) -> Option<Sandbox> {
    if let Some(sandbox) = inner() {
        return Some(sandbox);
    }
    let outcome = run_outer(name, &[]);
    assert!(
        outcome.inner_succeeded,
        "{name} failed inside its sandbox (exit {}); its output is above",
        outcome.status
    );
    outcome.assert_clean(name);
    None
}

/// Like [`enter`] for a test whose body is meant to fail: returns `None` in the outer run after
/// checking that the inner run failed, that it left every marker in `markers` (so it failed where
/// it was meant to) and that it left nothing behind.
pub fn run_expecting_failure(name: &str, markers: &[&str]) -> Option<Sandbox> {
    if let Some(sandbox) = inner() {
        return Some(sandbox);
    }
    let outcome = run_outer(name, markers);
    assert!(
        !outcome.inner_succeeded,
        "{name} was meant to fail inside its sandbox, but passed"
    );
    for marker in markers {
        assert!(
            outcome.markers_found.iter().any(|m| m == marker),
            "{name} failed before reaching {marker:?} (found {:?}); its output is above",
            outcome.markers_found
        );
    }
    outcome.assert_clean(name);
    eprintln!(
        "sandbox: {name} failed as meant to ({}), and left nothing behind",
        outcome.status
    );
    None
}

/// The inner run's side of [`enter`]: `Some` when this process is the inner run.
fn inner() -> Option<Sandbox> {
    let dir = PathBuf::from(std::env::var_os(SANDBOX_DIR_ENV)?);
    let cgroup_name = std::env::var(SANDBOX_CGROUP_ENV).expect("the cgroup name is set");
    fs::write(dir.join(ENTERED_FILE), "").expect("write the entered marker");
    let namespaces = format!(
        "{} {}",
        namespace_id(Path::new("/proc/self/ns/net")).expect("read /proc/self/ns/net"),
        namespace_id(Path::new("/proc/self/ns/mnt")).expect("read /proc/self/ns/mnt")
    );
    fs::write(dir.join(NAMESPACES_FILE), namespaces).expect("write the namespaces file");
    run(&["ip", "link", "set", "lo", "up"]);
    for path in ["/run", "/var/lib", "/var/log"] {
        run(&["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", path]);
    }
    Some(Sandbox { dir, cgroup_name })
}

/// Runs `argv`, panicking with its stderr when it fails.
pub fn run(argv: &[&str]) -> String {
    let output = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("run {argv:?}: {err}"));
    assert!(
        output.status.success(),
        "{argv:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the outer run saw.
struct Outcome {
    inner_succeeded: bool,
    status: String,
    markers_found: Vec<String>,
    /// What the inner run left behind (empty when its teardown was complete).
    leftovers: Vec<String>,
}

impl Outcome {
    fn assert_clean(&self, name: &str) {
        assert!(
            self.leftovers.is_empty(),
            "{name} left things behind (now removed):\n  {}",
            self.leftovers.join("\n  ")
        );
    }
}

fn run_outer(name: &str, markers: &[&str]) -> Outcome {
    // One sandboxed cluster at a time: each is a control plane and a node on 2 cores.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert_eq!(
        run(&["id", "-u"]).trim(),
        "0",
        "the node tests need root (namespaces, mounts, cgroups)"
    );
    let dir = tempfile::Builder::new()
        .prefix("pod-hardener-node-")
        .tempdir()
        .expect("create the sandbox directory")
        .keep();
    let cgroup_name = format!(
        "pod-hardener-e2e-{}-{}",
        std::process::id(),
        dir.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x")
            .trim_start_matches("pod-hardener-node-")
    );
    let links_before = host_links();
    let mounts_before = host_mounts();
    let paths_before = well_known_paths();

    // Built out here: the inner run has no network and hides the package lists.
    let control_plane_bin = super::control_plane::binaries();
    let prepared = super::node::prepare();
    let registry_bin = super::registry::binary();
    let exe = std::env::current_exe().expect("the test binary's path");
    let started = Instant::now();
    let mut child = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "slave", "--"])
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(SANDBOX_DIR_ENV, &dir)
        .env(SANDBOX_CGROUP_ENV, &cgroup_name)
        .env("POD_HARDENER_CONTROL_PLANE_BIN", control_plane_bin)
        .env(
            "POD_HARDENER_REGISTRY_BIN",
            registry_bin.parent().expect("the registry's directory"),
        )
        .envs(prepared.iter().map(|(env, path)| (env, path)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run unshare (util-linux)");
    let relays = [
        relay(
            child
                .stdout
                .take()
                .map(|out| Box::new(out) as Box<dyn Read + Send>),
        ),
        relay(
            child
                .stderr
                .take()
                .map(|err| Box::new(err) as Box<dyn Read + Send>),
        ),
    ];
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the inner run") {
            break status.to_string();
        }
        if started.elapsed() > INNER_TIMEOUT {
            let _ = child.kill();
            let status = child.wait().expect("wait for the killed inner run");
            break format!("{status}, killed after {INNER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for relay in relays {
        let _ = relay.join();
    }
    let entered = dir.join(ENTERED_FILE).exists();
    let inner_succeeded = status == "exit status: 0" && entered;
    assert!(
        entered,
        "the inner run of {name} never started the test (is {name:?} the test function's name?)"
    );
    let markers_found = markers
        .iter()
        .filter(|m| dir.join(m).exists())
        .map(|m| (*m).to_owned())
        .collect();

    let namespaces = fs::read_to_string(dir.join(NAMESPACES_FILE)).unwrap_or_default();
    let mut leftovers = Vec::new();
    // Processes first: while any lives, it may hold mounts, cgroups and links.
    for namespace in namespaces.split_whitespace() {
        let pids = pids_in_namespace(namespace);
        if !pids.is_empty() {
            leftovers.push(format!("processes in {namespace}: {}", describe(&pids)));
            kill_until_gone(|| pids_in_namespace(namespace));
        }
    }
    for cgroup in cgroup_dirs(&cgroup_name) {
        let pids = pids_in_cgroup(&cgroup);
        if !pids.is_empty() {
            leftovers.push(format!(
                "processes in cgroup {}: {}",
                cgroup.display(),
                describe(&pids)
            ));
            kill_until_gone(|| pids_in_cgroup(&cgroup));
        }
        leftovers.push(format!("cgroup {}", cgroup.display()));
        remove_cgroup(&cgroup);
    }
    for link in host_links().difference(&links_before) {
        leftovers.push(format!("network link on the machine: {link}"));
    }
    for mount in host_mounts().difference(&mounts_before) {
        leftovers.push(format!("mount on the machine: {mount}"));
    }
    for path in well_known_paths().difference(&paths_before) {
        leftovers.push(format!("file on the machine: {path}"));
    }
    let dir_mounted = host_mounts()
        .iter()
        .any(|m| m.contains(&dir.display().to_string()));
    if dir_mounted {
        leftovers.push(format!("mounts under {} (kept)", dir.display()));
    } else if std::env::var_os("POD_HARDENER_E2E_KEEP").is_some() {
        eprintln!("sandbox: kept {}", dir.display());
    } else {
        let _ = fs::remove_dir_all(&dir);
    }
    eprintln!(
        "sandbox: {name} ran in {:.1?} ({status}); {} leftovers",
        started.elapsed(),
        leftovers.len()
    );
    Outcome {
        inner_succeeded,
        status,
        markers_found,
        leftovers,
    }
}

/// Copies the inner run's output to this process's stderr as it comes, each line prefixed with
/// `inner| `: live, not captured by the test harness, and its `test result:` lines are not taken
/// for the outer run's (scripts/test.sh sums those).
fn relay(output: Option<Box<dyn Read + Send>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(output) = output else {
            return;
        };
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else {
                return;
            };
            let _ = writeln!(std::io::stderr().lock(), "inner| {line}");
        }
    })
}

/// `net:[4026531840]` for a namespace link such as `/proc/self/ns/net`.
fn namespace_id(link: &Path) -> Option<String> {
    fs::read_link(link)
        .ok()
        .map(|target| target.display().to_string())
}

/// Every process (but this one) whose network or mount namespace is `namespace`.
fn pids_in_namespace(namespace: &str) -> Vec<u32> {
    let kind = namespace.split(':').next().unwrap_or_default();
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            namespace_id(
                &Path::new("/proc")
                    .join(pid.to_string())
                    .join("ns")
                    .join(kind),
            )
            .is_some_and(|id| id == namespace)
        })
        .collect()
}

/// The directories named `name` at the root of every cgroup hierarchy (v1 and v2).
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    cgroup_mount_points()
        .into_iter()
        .map(|mount| mount.join(name))
        .filter(|dir| dir.is_dir())
        .collect()
}

/// Where each cgroup hierarchy is mounted on the machine.
pub fn cgroup_mount_points() -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fstype = after.split_whitespace().next()?;
            let point = before.split_whitespace().nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(point))
        })
        .collect()
}

/// Every process in `cgroup` and its descendants.
pub fn pids_in_cgroup(cgroup: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut stack = vec![cgroup.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        if let Ok(entries) = fs::read_dir(&dir) {
            stack.extend(
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            );
        }
    }
    pids
}

/// Removes `cgroup` and its descendants, deepest first (cgroup directories are removed with
/// rmdir, and only once empty of processes).
pub fn remove_cgroup(cgroup: &Path) {
    if let Ok(entries) = fs::read_dir(cgroup) {
        for child in entries.filter_map(Result::ok).map(|e| e.path()) {
            if child.is_dir() {
                remove_cgroup(&child);
            }
        }
    }
    // A cgroup whose last process is exiting refuses rmdir for a moment.
    for _ in 0..50 {
        if fs::remove_dir(cgroup).is_ok() || !cgroup.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILLs what `pids` returns until it returns nothing (bounded: 10 s).
pub fn kill_until_gone(pids: impl Fn() -> Vec<u32>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive = pids();
        if alive.is_empty() || Instant::now() > deadline {
            return;
        }
        let mut kill = Command::new("kill");
        kill.arg("-KILL");
        for pid in &alive {
            kill.arg(pid.to_string());
        }
        let _ = kill.stdout(Stdio::null()).stderr(Stdio::null()).status();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `pid (command)` for each pid, for reports.
fn describe(pids: &[u32]) -> String {
    pids.iter()
        .map(|pid| {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("{pid} ({})", comm.trim())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The machine's network links, by name.
fn host_links() -> BTreeSet<String> {
    fs::read_dir("/sys/class/net")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The machine's mount points with their file system type.
fn host_mounts() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let point = before.split_whitespace().nth(4)?;
            let fstype = after.split_whitespace().next()?;
            Some(format!("{point} ({fstype})"))
        })
        .collect()
}

/// The files under [`WELL_KNOWN_PATHS`] (the paths themselves included).
fn well_known_paths() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for root in WELL_KNOWN_PATHS {
        let mut stack = vec![PathBuf::from(root)];
        while let Some(path) = stack.pop() {
            if fs::symlink_metadata(&path).is_err() {
                continue;
            }
            found.insert(path.display().to_string());
            if path.is_dir()
                && !path.is_symlink()
                && let Ok(entries) = fs::read_dir(&path)
            {
                stack.extend(entries.filter_map(Result::ok).map(|e| e.path()));
            }
        }
    }
    found
}
