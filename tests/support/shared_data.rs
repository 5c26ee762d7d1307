// Where the test data taken from other projects lives: `../shared/` beside the checkout, never a
// copy in this repository. Included (with `include!`) by the library's unit tests, the
// integration tests and the benchmarks, so there is one rule for finding it.

/// Kubernetes' Pod Security Admission golden fixtures: `$POD_HARDENER_PSA_FIXTURES`, else
/// `../shared/psa-fixtures`. Panics with how to obtain them when neither exists, so a test run
/// without them fails instead of passing on nothing.
#[allow(dead_code)]
pub fn psa_fixtures_dir() -> std::path::PathBuf {
    let dir = match std::env::var_os("POD_HARDENER_PSA_FIXTURES") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/psa-fixtures"),
    };
    assert!(
        dir.join("restricted/v1.37/pass/base.yaml").is_file(),
        "the PSA fixtures are not at {}: set POD_HARDENER_PSA_FIXTURES to a copy of `test/testdata/` \
         of Kubernetes' pod-security-admission repository (github.com/kubernetes/pod-security-admission, \
         commit 8f84a87c7f617f64a4ddc1aea24aeeb7a2e07cb8, the v1.37 line), or place it at ../shared/psa-fixtures",
        dir.display()
    );
    dir
}

/// The chart corpus: `helm template` renderings of public charts, `$POD_HARDENER_CHARTS`, else
/// `../shared/charts/rendered`.
#[allow(dead_code)]
pub fn charts_dir() -> std::path::PathBuf {
    match std::env::var_os("POD_HARDENER_CHARTS") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/charts/rendered"),
    }
}

/// Every v1.37 PSA fixture (baseline and restricted, pass and fail), sorted.
#[allow(dead_code)]
pub fn psa_v1_37_fixtures() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for level in ["baseline", "restricted"] {
        for outcome in ["pass", "fail"] {
            let dir = psa_fixtures_dir().join(level).join("v1.37").join(outcome);
            for entry in std::fs::read_dir(&dir).expect("a fixtures directory") {
                out.push(entry.expect("a fixture").path());
            }
        }
    }
    out.sort();
    out
}
