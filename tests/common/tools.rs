//! The real tools of `scripts/build-tools.sh` (helm v3, helm v4, kustomize, kubectl at the
//! control plane's version), built once per machine and cached, or found at
//! `$POD_HARDENER_TOOLS_BIN`; and a bounded way to run them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// How long one tool run may take.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// The directory of helm3, helm4, kustomize and kubectl.
pub fn tools() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("POD_HARDENER_TOOLS_BIN") {
            return PathBuf::from(dir);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-tools.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/build-tools.sh");
        assert!(output.status.success(), "{} failed", script.display());
        let stdout = String::from_utf8(output.stdout).unwrap();
        PathBuf::from(
            stdout
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .unwrap(),
        )
    })
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
