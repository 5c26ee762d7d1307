//! What pod-hardener adds to Pod Security messages: for each failed check, why hardening did not
//! fix it (an explicit value, an opt-out, an API constraint) or why no mutation may fix it.

use crate::harden::Control;
use crate::harden::record::{Record, RecordedSkip};
use crate::pss::{CheckId, Violation};

/// Why no mutation may fix a check.
fn never_fixable(check: CheckId) -> Option<&'static str> {
    Some(match check {
        CheckId::HostNamespaces => {
            "host namespaces are a host-level requirement; remove hostNetwork/hostPID/hostIPC"
        }
        CheckId::HostPathVolumes | CheckId::RestrictedVolumes => {
            "the storage cannot be swapped without breaking the app; use an allowed volume type"
        }
        CheckId::HostPorts => {
            "a hostPort decides how clients reach the pod; remove it or use a Service"
        }
        CheckId::HostProbesAndHostLifecycle => {
            "clearing the host would retarget the probe or hook; remove the host field"
        }
        CheckId::Sysctls => {
            "the workload asked for these kernel settings; remove the forbidden sysctls"
        }
        CheckId::WindowsHostProcess => "a HostProcess container is host-privileged by definition",
        CheckId::Privileged => "the workload asked for full host access; remove privileged: true",
        CheckId::AppArmorProfile => {
            "pod-hardener never changes AppArmor profiles; use RuntimeDefault or Localhost"
        }
        CheckId::SeLinuxOptions => {
            "pod-hardener never changes SELinux options; remove the forbidden options"
        }
        _ => return None,
    })
}

fn describe_skip(s: &RecordedSkip) -> String {
    let why = match s.reason.as_str() {
        "explicit-value" => "explicit value left alone in fill mode",
        "opt-out" => "opted out with pod-hardener.io/skip",
        "windows" => "not valid on Windows pods",
        "api-invalid" => "the API server would reject the change",
        "conflict" => "the kubelet could not start the pod with it",
        "immutable" => "cannot change in this request",
        "level" => "not applied at this namespace's level",
        "image-runs-as-root" => {
            "the kubelet would refuse to start it; set runAsUser to a non-zero UID, or use an image with a non-root numeric USER"
        }
        "image-user-unverifiable" => {
            "the kubelet would refuse to start it; set runAsUser to the user's UID, or use an image with a numeric USER"
        }
        other => other,
    };
    match &s.detail {
        Some(d) => format!("{} on {}: {why} ({d})", s.control, s.target),
        None => format!("{} on {}: {why}", s.control, s.target),
    }
}

/// One failed check that hardening left in place, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unfixable {
    /// The check.
    pub check: CheckId,
    /// Why, as a stable code: `never-fixable` (no mutation may fix it), `not-hardened` (the
    /// mutating webhook did not run, or the namespace's mode is shadow or off), `not-covered`
    /// (the profile has no control for it), or the code of the control's first recorded skip
    /// (`explicit-value`, `opt-out`, `image-runs-as-root`, ...).
    pub reason: String,
    /// The explanation, for people.
    pub explanation: String,
}

/// Why each of `violations` is left, given the record of what hardening did (`None` when the
/// pod was not hardened). Checks that a control fixes and no skip explains are absent: a
/// hardened pod has none (`tests/harden_fixtures.rs`).
pub fn unfixable(violations: &[Violation], record: Option<&Record>) -> Vec<Unfixable> {
    let mut out = Vec::new();
    for v in violations {
        let (reason, explanation) = if let Some(why) = never_fixable(v.check) {
            ("never-fixable".to_owned(), why.to_owned())
        } else {
            let Some(control) = Control::fixing(v.check) else {
                continue;
            };
            match record {
                None => (
                    "not-hardened".to_owned(),
                    "the pod was not hardened: pod-hardener's mutating webhook did not run, or the namespace's mode is shadow or off".to_owned(),
                ),
                Some(record) => {
                    let skips: Vec<&RecordedSkip> = record
                        .skips
                        .iter()
                        .filter(|s| s.control == control.as_str())
                        .collect();
                    match skips.first() {
                        None => (
                            "not-covered".to_owned(),
                            "not covered by the hardening profile".to_owned(),
                        ),
                        Some(first) => (
                            first.reason.clone(),
                            skips
                                .iter()
                                .map(|s| describe_skip(s))
                                .collect::<Vec<_>>()
                                .join("; "),
                        ),
                    }
                }
            }
        };
        out.push(Unfixable {
            check: v.check,
            reason,
            explanation,
        });
    }
    out
}

/// The explanation for `violations`, given the record of what hardening did (`None` when the
/// pod was not hardened). Empty when there is nothing to add.
pub fn could_not_fix(violations: &[Violation], record: Option<&Record>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut unhardened: Vec<&str> = Vec::new();
    let mut unhardened_why = String::new();
    for u in unfixable(violations, record) {
        if u.reason == "not-hardened" {
            unhardened.push(u.check.as_str());
            unhardened_why = u.explanation;
        } else {
            parts.push(format!("{} ({})", u.check, u.explanation));
        }
    }
    if !unhardened.is_empty() {
        parts.push(format!("{} ({unhardened_why})", unhardened.join(", ")));
    }
    if parts.is_empty() {
        return String::new();
    }
    format!("pod-hardener could not fix: {}", parts.join(", "))
}
