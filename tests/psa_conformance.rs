//! Conformance with Kubernetes' Pod Security Admission over its own golden fixtures.
//!
//! Every file under `tests/fixtures/psa/{baseline,restricted}/v1.N/{pass,fail}/` is a Pod. Pass
//! files must be allowed at that level and version; fail files must be denied with the reason
//! PSA gives for the check the file is named after (`<check id lowercased><index>.yaml`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use pod_hardener::pss::{self, Level, LevelVersion, Version, defaulting};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/psa");
const EXPECTED_TOTAL: usize = 4537;

/// The substring PSA's own test expects in the denial of each check's fail fixtures
/// (`expectErrorSubstring` in `test/fixtures_*.go`), keyed by the lower-cased check ID.
fn expected_substring(stem_prefix: &str) -> &'static str {
    match stem_prefix {
        "allowprivilegeescalation" => "allowPrivilegeEscalation",
        "apparmorprofile" => "forbidden AppArmor profile",
        "capabilities_baseline" => "capabilities",
        "capabilities_restricted" => "unrestricted capabilities",
        "hostnamespaces" => "host namespaces",
        "hostpathvolumes" => "hostPath",
        "hostports" => "hostPort",
        "hostprobesandhostlifecycle" => "probe or lifecycle host",
        "privileged" => "privileged",
        "procmount" | "procmount_restricted" => "procMount",
        "restrictedvolumes" => "restricted volume types",
        "runasnonroot" => "runAsNonRoot",
        "runasuser" => "runAsUser",
        "selinuxoptions" => "seLinuxOptions",
        "seccompprofile_baseline" | "seccompprofile_restricted" => "seccompProfile",
        "sysctls" => "forbidden sysctl",
        "windowshostprocess" => "hostProcess",
        other => panic!("fixture for an unknown check {other:?}"),
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn load_pod(path: &Path) -> Pod {
    let text = fs::read_to_string(path).unwrap();
    let mut pod: Pod = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    if let Some(spec) = pod.spec.as_mut() {
        defaulting::apply_api_server_defaults(spec, defaulting::SpecOwner::Pod);
    }
    pod
}

#[test]
fn every_psa_fixture_gets_psas_verdict() {
    let mut agree = 0;
    let mut disagreements = Vec::new();
    let mut counts: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for level in [Level::Baseline, Level::Restricted] {
        for minor in 0..=pss::NEWEST_MINOR {
            let dir = Path::new(FIXTURES)
                .join(level.as_str())
                .join(format!("v1.{minor}"));
            let policy = LevelVersion::new(level, Version::V1(minor));
            for outcome in ["pass", "fail"] {
                for path in yaml_files(&dir.join(outcome)) {
                    *counts.entry((level.to_string(), outcome)).or_default() += 1;
                    let pod = load_pod(&path);
                    let spec = pod.spec.as_ref().expect("fixture has a spec");
                    let violations = pss::evaluate(&pod.metadata, spec, policy);
                    let message = pss::violates_message(policy, &violations);
                    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                    let ok = if outcome == "pass" {
                        violations.is_empty()
                    } else {
                        let prefix = stem.trim_end_matches(|c: char| c.is_ascii_digit());
                        !violations.is_empty() && message.contains(expected_substring(prefix))
                    };
                    if ok {
                        agree += 1;
                    } else {
                        disagreements.push(format!("{}: {message}", path.display()));
                    }
                }
            }
        }
    }
    println!("PSA conformance: {agree} of {EXPECTED_TOTAL} fixtures agree; counts {counts:?}");
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert_eq!(agree, EXPECTED_TOTAL, "the fixture set is incomplete");
}

/// Latest-version fixtures evaluated at `latest` (as a namespace labelled `latest` would) give
/// the same verdicts as at v1.37.
#[test]
fn latest_is_the_newest_version() {
    for level in [Level::Baseline, Level::Restricted] {
        let dir = Path::new(FIXTURES)
            .join(level.as_str())
            .join(format!("v1.{}", pss::NEWEST_MINOR));
        for outcome in ["pass", "fail"] {
            for path in yaml_files(&dir.join(outcome)) {
                let pod = load_pod(&path);
                let spec = pod.spec.as_ref().unwrap();
                let at_latest = pss::evaluate(
                    &pod.metadata,
                    spec,
                    LevelVersion::new(level, Version::Latest),
                );
                let at_newest = pss::evaluate(
                    &pod.metadata,
                    spec,
                    LevelVersion::new(level, Version::V1(pss::NEWEST_MINOR)),
                );
                assert_eq!(at_latest, at_newest, "{}", path.display());
                assert_eq!(
                    at_latest.is_empty(),
                    outcome == "pass",
                    "{}",
                    path.display()
                );
            }
        }
    }
}

/// The repository's copy of the fixtures is byte-identical to the shared originals, where they
/// are present beside the checkout.
#[test]
fn fixture_copy_matches_the_shared_originals() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/psa-fixtures");
    if !shared.is_dir() {
        println!("../shared/psa-fixtures is not present; nothing to compare");
        return;
    }
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    walk(Path::new(FIXTURES), Path::new(FIXTURES), &mut ours);
    walk(&shared, &shared, &mut theirs);
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "the file lists differ");
    for rel in &ours {
        assert_eq!(
            fs::read(Path::new(FIXTURES).join(rel)).unwrap(),
            fs::read(shared.join(rel)).unwrap(),
            "{} differs",
            rel.display()
        );
    }
    println!("{} files identical to ../shared/psa-fixtures", ours.len());
}
