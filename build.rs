//! Embeds the git commit for `pod-hardener version`, without timestamps so builds stay
//! reproducible. `POD_HARDENER_GIT_COMMIT` overrides it (image builds without `.git`).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=POD_HARDENER_GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs");
    let commit = std::env::var("POD_HARDENER_GIT_COMMIT").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    println!(
        "cargo:rustc-env=POD_HARDENER_GIT_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
}
