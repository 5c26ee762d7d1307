//! Any bytes → what the image lookups read from registries: a manifest or index (by every media
//! type), an image config's user, a layer (plain, gzip, zstd) scanned for `/etc/passwd` with
//! small limits, a passwd file, a Docker credentials file. An answer or an error, never a panic,
//! and never more than the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pod_hardener::registry::credentials::Keyring;
use pod_hardener::registry::manifest::{self, LayerCompression};
use pod_hardener::registry::passwd::{self, LayerScan, ScanLimits};

const MEDIA_TYPES: [Option<&str>; 5] = [
    None,
    Some(manifest::OCI_INDEX),
    Some(manifest::OCI_MANIFEST),
    Some(manifest::DOCKER_MANIFEST_LIST),
    Some(manifest::DOCKER_MANIFEST),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let media_type = MEDIA_TYPES[usize::from(selector) % MEDIA_TYPES.len()];
    if let Ok(manifest::Fetched::Index(index)) = manifest::parse_manifest(media_type, body) {
        let _ = manifest::select_platform(&index, &"linux/amd64".parse().expect("platform"));
    }
    let _ = manifest::config_user(body);
    let limits = ScanLimits { max_layer_bytes: 1 << 20, max_passwd_bytes: 64 << 10 };
    for compression in [LayerCompression::None, LayerCompression::Gzip, LayerCompression::Zstd] {
        if let Ok(LayerScan::Found(content)) = passwd::scan_layer(body, compression, &limits) {
            assert!(content.len() as u64 <= limits.max_passwd_bytes);
        }
    }
    let _ = passwd::passwd_uid(body, "app");
    let _ = Keyring::parse(body);
});
