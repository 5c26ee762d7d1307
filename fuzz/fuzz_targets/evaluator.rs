//! Any pod JSON → the evaluator at every level and version: never a panic, and privileged never
//! reports a violation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pod_hardener::pss::{self, Level, LevelVersion, Version};
use pod_hardener::workload::{self, WorkloadKind};

fuzz_target!(|data: &[u8]| {
    let Ok(object) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(parts) = workload::extract(WorkloadKind::Pod, &object) else { return };
    for level in [Level::Privileged, Level::Baseline, Level::Restricted] {
        for version in (0..=pss::NEWEST_MINOR).map(Version::V1).chain([Version::Latest]) {
            let violations = pss::evaluate(&parts.metadata, &parts.spec, LevelVersion::new(level, version));
            assert!(level != Level::Privileged || violations.is_empty());
            let _ = pss::violates_message(LevelVersion::new(level, version), &violations);
        }
    }
});
