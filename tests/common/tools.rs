//! The real tools of `scripts/build-tools.sh` (helm v3, helm v4, kustomize, kubectl at the
//! control plane's version), built once per machine and cached, or found at
//! `$POD_HARDENER_TOOLS_BIN`; a bounded way to run them; kubectl against a test control plane;
//! and how tests find what the other set-up scripts cache.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::control_plane::ControlPlane;

/// How long one tool run may take.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// The directory of helm3, helm4, kustomize and kubectl.
pub fn tools() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built("POD_HARDENER_TOOLS_BIN", "scripts/build-tools.sh"))
}

/// `env` where it is set, else the path `script` (relative to the repository) prints on its
/// last stdout line: how the tests find what a set-up script builds or fetches once per machine
/// (`test.sh` runs the scripts and sets the variables; a test run alone runs the script itself).
pub fn built(env: &str, script: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|err| panic!("run {}: {err}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({})",
        script.display(),
        output.status
    );
    let stdout = String::from_utf8(output.stdout).expect("build script output is UTF-8");
    let last = stdout
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .expect("the build script prints its output path last");
    eprintln!("{}: {last} ({:.1?})", script.display(), started.elapsed());
    PathBuf::from(last)
}

/// The pinned kubectl against a test control plane, each run bounded by [`TOOL_TIMEOUT`].
pub struct Kubectl<'a>(pub &'a ControlPlane);

impl Kubectl<'_> {
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut c = Command::new(tools().join("kubectl"));
        c.current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("--kubeconfig")
            .arg(self.0.kubeconfig_path())
            .args(args);
        run_tool(&mut c, stdin)
    }

    /// Runs kubectl, which must succeed; its stdout.
    pub fn must(&self, args: &[&str], stdin: &[u8]) -> String {
        let o = self.run(args, stdin);
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs kubectl, which must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.must(args, b"")).unwrap()
    }

    /// Creates the CustomResourceDefinitions of `manifests` for real and waits until they are
    /// established, so that their custom resources can be created.
    pub fn install_crds(&self, manifests: &[u8]) {
        let crds: Vec<Value> = pod_hardener::manifest::read_documents(manifests)
            .unwrap()
            .into_iter()
            .map(|d| d.object)
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .collect();
        if crds.is_empty() {
            return;
        }
        let list = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": crds}))
            .unwrap();
        self.must(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            &list,
        );
        let wait = [
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            "-",
        ];
        self.must(&wait, &list);
    }
}

/// Runs a tool with `stdin`, killing it after [`TOOL_TIMEOUT`].
pub fn run_tool(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let id = child.id();
    let (done, waiting) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if waiting.recv_timeout(TOOL_TIMEOUT).is_err() {
            // Still running: end it, so a hung tool fails the test instead of hanging it.
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
        }
    });
    let output = child.wait_with_output().unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    writer.join().unwrap();
    output
}
