//! `restrictedVolumes` (restricted, v1.0; replaces `hostPathVolumes`): only ephemeral and
//! API-backed volume sources are allowed.

use crate::pss::format::{join_quote, pluralize, sorted_set};
use crate::pss::{Failure, PodUnderTest};
use k8s_openapi::api::core::v1::Volume;

/// Whether a volume uses one of the sources the restricted level allows.
pub(crate) fn is_allowed_source(v: &Volume) -> bool {
    v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.image.is_some()
        || v.persistent_volume_claim.is_some()
        || v.projected.is_some()
        || v.secret.is_some()
}

/// The name PSA gives a forbidden source, in PSA's classification order.
fn forbidden_type(v: &Volume) -> &'static str {
    let sources = [
        (v.host_path.is_some(), "hostPath"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.nfs.is_some(), "nfs"),
        (v.iscsi.is_some(), "iscsi"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.rbd.is_some(), "rbd"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.cinder.is_some(), "cinder"),
        (v.cephfs.is_some(), "cephfs"),
        (v.flocker.is_some(), "flocker"),
        (v.fc.is_some(), "fc"),
        (v.azure_file.is_some(), "azureFile"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
        (v.quobyte.is_some(), "quobyte"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.storageos.is_some(), "storageos"),
    ];
    sources
        .into_iter()
        .find(|(set, _)| *set)
        .map_or("unknown", |(_, name)| name)
}

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let mut bad_names = Vec::new();
    let mut bad_types = Vec::new();
    for v in pod.spec.volumes.iter().flatten() {
        if !is_allowed_source(v) {
            bad_names.push(v.name.as_str());
            bad_types.push(forbidden_type(v).to_owned());
        }
    }
    if bad_names.is_empty() {
        return None;
    }
    let types = sorted_set(bad_types);
    Some(Failure {
        reason: "restricted volume types",
        detail: format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad_names.len()),
            join_quote(&bad_names),
            pluralize("uses", "use", bad_names.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    })
}
