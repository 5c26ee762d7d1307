//! `hostPathVolumes` (baseline, v1.0; replaced by `restrictedVolumes` at restricted).

use crate::pss::format::{join_quote, pluralize};
use crate::pss::{Failure, PodUnderTest};

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let names: Vec<&str> = pod
        .spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.as_str())
        .collect();
    if names.is_empty() {
        return None;
    }
    Some(Failure {
        reason: "hostPath volumes",
        detail: format!(
            "{} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names)
        ),
    })
}
