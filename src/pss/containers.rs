//! PSA's container visitor (`policy/visitor.go`): init containers, then containers, then
//! ephemeral containers. k8s-openapi gives ephemeral containers their own type, so this module
//! offers one borrowed view over the three lists for the checks to share.

use k8s_openapi::api::core::v1::{ContainerPort, Lifecycle, PodSpec, Probe, SecurityContext};

/// Which list of the PodSpec a container sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContainerList {
    /// `spec.initContainers`
    Init,
    /// `spec.containers`
    Regular,
    /// `spec.ephemeralContainers`
    Ephemeral,
}

impl ContainerList {
    /// The field name in the PodSpec, as used in JSON pointers and records.
    pub fn field_name(self) -> &'static str {
        match self {
            ContainerList::Init => "initContainers",
            ContainerList::Regular => "containers",
            ContainerList::Ephemeral => "ephemeralContainers",
        }
    }
}

/// The fields the policy reads from a container, whichever list it sits in.
#[derive(Debug, Clone, Copy)]
pub struct ContainerView<'a> {
    /// The list the container is in.
    pub list: ContainerList,
    /// Its index in that list.
    pub index: usize,
    /// `name`
    pub name: &'a str,
    /// `securityContext`
    pub security_context: Option<&'a SecurityContext>,
    /// `ports`
    pub ports: Option<&'a [ContainerPort]>,
    /// `livenessProbe`, `readinessProbe`, `startupProbe`
    pub probes: [Option<&'a Probe>; 3],
    /// `lifecycle`
    pub lifecycle: Option<&'a Lifecycle>,
    /// `image`, for the hardening planner's image-aware `runAsNonRoot`.
    pub image: Option<&'a str>,
    /// `volumeMounts` mount paths, for the hardening planner.
    pub volume_mounts: Option<&'a [k8s_openapi::api::core::v1::VolumeMount]>,
}

/// A view of a `Container` or an `EphemeralContainer`: two k8s-openapi types with the same fields.
macro_rules! container_view {
    ($list:expr, $index:expr, $c:expr) => {{
        let c = $c;
        ContainerView {
            list: $list,
            index: $index,
            name: &c.name,
            image: c.image.as_deref(),
            security_context: c.security_context.as_ref(),
            ports: c.ports.as_deref(),
            probes: [
                c.liveness_probe.as_ref(),
                c.readiness_probe.as_ref(),
                c.startup_probe.as_ref(),
            ],
            lifecycle: c.lifecycle.as_ref(),
            volume_mounts: c.volume_mounts.as_deref(),
        }
    }};
}

/// Every container of the spec in PSA's visiting order.
pub fn visit(spec: &PodSpec) -> impl Iterator<Item = ContainerView<'_>> {
    let init = spec.init_containers.iter().flatten().enumerate();
    let regular = spec.containers.iter().enumerate();
    let ephemeral = spec.ephemeral_containers.iter().flatten().enumerate();
    init.map(|(i, c)| container_view!(ContainerList::Init, i, c))
        .chain(regular.map(|(i, c)| container_view!(ContainerList::Regular, i, c)))
        .chain(ephemeral.map(|(i, c)| container_view!(ContainerList::Ephemeral, i, c)))
}

/// Names of the containers for which `is_bad` holds, in visiting order.
pub(crate) fn names_where<'a>(
    spec: &'a PodSpec,
    mut is_bad: impl FnMut(&ContainerView<'a>) -> bool,
) -> Vec<&'a str> {
    visit(spec).filter(|c| is_bad(c)).map(|c| c.name).collect()
}
