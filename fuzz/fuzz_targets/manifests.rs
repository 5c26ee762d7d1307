//! Any bytes → the CLI's YAML/JSON reader, `check` and `harden`: an answer or a clear error,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pod_hardener::cli::{check, harden};
use pod_hardener::harden::Profile;
use pod_hardener::pss::LevelVersion;

fuzz_target!(|data: &[u8]| {
    let input_reads = pod_hardener::manifest::read_documents(data).is_ok();
    let _ = check::run(data, LevelVersion::restricted_latest(), check::OutputFormat::Json);
    let options = harden::HardenOptions { profile: Profile::restricted(), skip: Vec::new(), explain: true, images: None };
    if let Ok(out) = harden::run(data, &options)
        && input_reads
    {
        // What harden writes back reads again, when the input read strictly (harden passes a
        // List's non-object items through, which the strict reader refuses in input and output).
        pod_hardener::manifest::read_documents(out.stdout.as_bytes()).expect("harden output parses");
    }
});
