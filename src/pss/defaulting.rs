//! The API server's defaulting that PSA's verdicts depend on (`SetDefaults_Volume`,
//! `SetDefaults_PodSpec`). Admission requests arrive already defaulted; manifests read from disk
//! (the CLI, the conformance fixtures) do not, so they get this first.

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSpec};

use super::checks::restricted_volumes;

/// Whether the spec belongs to a Pod or to a workload's pod template: the API server copies
/// `containerPort` into `hostPort` for `hostNetwork` Pods only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecOwner {
    /// A Pod's own spec.
    Pod,
    /// A pod template inside a workload resource.
    Template,
}

/// Applies, in place, the defaults that change what PSA decides:
/// - a volume with no source becomes `emptyDir: {}`;
/// - in a Pod with `hostNetwork: true`, every port without a `hostPort` gets `hostPort = containerPort`.
pub fn apply_api_server_defaults(spec: &mut PodSpec, owner: SpecOwner) {
    for volume in spec.volumes.iter_mut().flatten() {
        if !restricted_volumes::is_allowed_source(volume) && has_no_source(volume) {
            volume.empty_dir = Some(EmptyDirVolumeSource::default());
        }
    }
    if owner == SpecOwner::Pod && spec.host_network == Some(true) {
        let init = spec.init_containers.iter_mut().flatten();
        for container in init.chain(spec.containers.iter_mut()) {
            for port in container.ports.iter_mut().flatten() {
                if port.host_port.is_none() {
                    port.host_port = Some(port.container_port);
                }
            }
        }
    }
}

fn has_no_source(v: &k8s_openapi::api::core::v1::Volume) -> bool {
    let blank = k8s_openapi::api::core::v1::Volume {
        name: v.name.clone(),
        ..Default::default()
    };
    *v == blank
}
