//! Conformance with Kubernetes' Pod Security Admission over its own golden fixtures.
//!
//! Every file under `../shared/psa-fixtures/{baseline,restricted}/v1.N/{pass,fail}/` is a Pod. Pass
//! files must be allowed at that level and version; fail files must be denied with the reason
//! PSA gives for the check the file is named after (`<check id lowercased><index>.yaml`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use pod_hardener::pss::{self, CheckId, Level, LevelVersion, Version, defaulting};

include!("support/shared_data.rs");
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

/// The check a fail fixture is named after (`<check id lowercased><index>.yaml`).
fn named_check(stem_prefix: &str) -> CheckId {
    CheckId::ALL
        .into_iter()
        .find(|c| c.as_str().to_ascii_lowercase() == stem_prefix)
        .unwrap_or_else(|| panic!("fixture for an unknown check {stem_prefix:?}"))
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
            let dir = psa_fixtures_dir()
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
                        let named = named_check(prefix);
                        // The named check fails (or, at a level where another check replaces
                        // it, the one that does), with PSA's expected wording.
                        violations
                            .iter()
                            .any(|v| v.check == named || v.check.overrides() == Some(named))
                            && message.contains(expected_substring(prefix))
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
        let dir = psa_fixtures_dir()
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
