//! The planner: PodSpec + profile → [`Plan`]. One function per control, each following the
//! hardening contract in DESIGN.md: fill unset fields only (override mode also rewrites explicit
//! insecure values), follow the level, never set Linux-only fields on Windows pods, never produce
//! an object the API server rejects or the kubelet cannot start, and record every skip.

use std::borrow::Cow;
use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{PodSpec, SecurityContext};
use serde_json::{Value, json};

use super::control::Control;
use super::images::{self, ImageCatalog, UserVerdict};
use super::opt_out::OptOuts;
use super::plan::{Change, Edit, ImageFinding, Plan, Skip, SkipReason, Target};
use super::profile::{Mode, Profile};
use crate::pss::containers::{ContainerList, ContainerView, visit};
use crate::workload::PodParts;

mod container_controls;
mod image_users;
mod pod_controls;

/// The name of the `/tmp` volume the `tmpVolume` control adds (with a numeric suffix if a
/// volume of another kind already has it).
pub const TMP_VOLUME_NAME: &str = "pod-hardener-tmp";
/// Where the `tmpVolume` control mounts it.
pub const TMP_MOUNT_PATH: &str = "/tmp";

/// The capability the restricted level lets containers add.
const NET_BIND_SERVICE: &str = "NET_BIND_SERVICE";
/// The Windows user name the kubelet refuses under `runAsNonRoot: true`.
const WINDOWS_ROOT_USER_NAME: &str = "ContainerAdministrator";
/// The pre-1.19 seccomp annotations, which the API server requires to agree with the fields.
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// Which part of the pod a request may change.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// A new pod or template: everything.
    Create,
    /// An update of the `pods/ephemeralcontainers` subresource: only the ephemeral containers
    /// whose names are not in the set (those of the old pod).
    NewEphemeralContainers(&'a BTreeSet<String>),
}

/// Plans the hardening of one pod (or pod template); [`super::Hardener`] is the way in.
/// `images`, when lookups ran, makes `runAsNonRoot` and `runAsUser` decide per container from
/// each image's user, as the kubelet will.
pub(super) fn plan(
    parts: &PodParts,
    profile: &Profile,
    opt_outs: &OptOuts,
    images: Option<&ImageCatalog>,
    scope: Scope<'_>,
) -> Plan {
    let mut planner = Planner {
        parts,
        profile,
        opt_outs,
        images,
        windows: parts
            .spec
            .os
            .as_ref()
            .is_some_and(|os| os.name == "windows"),
        plan: Plan {
            annotation_errors: opt_outs.errors.clone(),
            ..Plan::default()
        },
    };
    if profile.level == crate::pss::Level::Privileged {
        return planner.plan;
    }
    planner.record_level_and_windows_skips(scope);
    if matches!(scope, Scope::Create) {
        planner.run_as_user();
        planner.run_as_group_and_fs_group();
        planner.run_as_non_root();
        planner.seccomp_profile();
    }
    let containers: Vec<ContainerView<'_>> = visit(&parts.spec)
        .filter(|c| match scope {
            Scope::Create => true,
            Scope::NewEphemeralContainers(existing) => {
                c.list == ContainerList::Ephemeral && !existing.contains(c.name)
            }
        })
        .collect();
    let mut read_only_roots = Vec::new();
    for c in &containers {
        let caps_rewritten = planner.capabilities(c);
        planner.allow_privilege_escalation(c, caps_rewritten);
        planner.proc_mount(c);
        if planner.read_only_root_filesystem(c) {
            read_only_roots.push(*c);
        }
    }
    planner.tmp_volume(&read_only_roots, scope);
    planner.plan
}

struct Planner<'a> {
    parts: &'a PodParts,
    profile: &'a Profile,
    opt_outs: &'a OptOuts,
    images: Option<&'a ImageCatalog>,
    windows: bool,
    plan: Plan,
}

/// Where an edit goes: what it applies to (for the record) and its JSON pointer tokens relative
/// to the PodSpec (for the patch).
struct Field {
    target: Target,
    path: Vec<Cow<'static, str>>,
}

impl Field {
    fn pod(tail: &[&'static str]) -> Self {
        Field {
            target: Target::Pod,
            path: tail.iter().map(|t| Cow::Borrowed(*t)).collect(),
        }
    }

    fn container(c: &ContainerView<'_>, tail: &[&'static str]) -> Self {
        let mut path = Vec::with_capacity(2 + tail.len());
        path.push(Cow::Borrowed(c.list.field_name()));
        path.push(index_token(c.index));
        path.extend(tail.iter().map(|t| Cow::Borrowed(*t)));
        Field {
            target: container_target(c),
            path,
        }
    }
}

impl Field {
    /// The field at `tail` below this one.
    fn extended(&self, tail: &[&'static str]) -> Field {
        let mut path = self.path.clone();
        path.extend(tail.iter().map(|t| Cow::Borrowed(*t)));
        Field {
            target: self.target.clone(),
            path,
        }
    }
}

/// A container's index as a pointer token, without allocating for the indices pods have.
fn index_token(index: usize) -> Cow<'static, str> {
    const SMALL: [&str; 16] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
    ];
    SMALL
        .get(index)
        .map_or_else(|| Cow::Owned(index.to_string()), |t| Cow::Borrowed(*t))
}

fn container_target(c: &ContainerView<'_>) -> Target {
    Target::Container {
        list: c.list,
        name: c.name.to_owned(),
    }
}

fn is_valid_seccomp_type(t: &str) -> bool {
    super::control::KEPT_SECCOMP_TYPES.contains(&t)
}

fn is_runtime_default_annotation(v: &str) -> bool {
    v == "runtime/default" || v == "docker/default"
}

impl Planner<'_> {
    fn spec(&self) -> &PodSpec {
        &self.parts.spec
    }

    fn overriding(&self) -> bool {
        self.profile.mode == Mode::Override
    }

    /// Fills an unset field.
    fn fill(&mut self, control: Control, field: Field, edit: Edit) {
        self.plan.changes.push(Change {
            control,
            target: field.target,
            path: field.path,
            edit,
            overrides: None,
        });
    }

    /// An explicit insecure value the workload declared (`previous`, described by `detail`):
    /// rewritten in override mode and recorded as an override, otherwise left alone and recorded
    /// as a skip, so the validator decides. Returns whether it was rewritten.
    fn explicit_value(
        &mut self,
        control: Control,
        field: Field,
        edit: Edit,
        previous: Value,
        detail: impl Into<String>,
    ) -> bool {
        if !self.overriding() {
            let reason = SkipReason::ExplicitValue(detail.into());
            self.skip(control, field.target, reason);
            return false;
        }
        self.plan.changes.push(Change {
            control,
            target: field.target,
            path: field.path,
            edit,
            overrides: Some(previous),
        });
        true
    }

    fn skip(&mut self, control: Control, target: Target, reason: SkipReason) {
        self.plan.skips.push(Skip {
            control,
            target,
            reason,
        });
    }

    /// Controls the level leaves out, and Linux-only controls on a Windows pod, are recorded once
    /// for the pod.
    fn record_level_and_windows_skips(&mut self, scope: Scope<'_>) {
        for control in Control::ALL {
            let relevant = match control {
                Control::RunAsUser => self.profile.run_as_user.is_some(),
                Control::RunAsGroup => self.profile.run_as_group.is_some(),
                Control::FsGroup => self.profile.fs_group.is_some(),
                Control::ProcMount => self.overriding(),
                _ => true,
            };
            let in_scope = matches!(scope, Scope::Create) || !control.is_pod_level();
            if !relevant || !in_scope {
                continue;
            }
            if !self.profile.has(control) {
                self.skip(control, Target::Pod, SkipReason::Level);
            } else if self.windows && !control.applies_to_windows() {
                self.skip(control, Target::Pod, SkipReason::Windows);
            }
        }
    }

    /// Whether a pod-level control should be planned; records an opt-out skip.
    fn pod_control_enabled(&mut self, control: Control) -> bool {
        if !self.profile.has(control) || (self.windows && !control.applies_to_windows()) {
            return false;
        }
        if self.opt_outs.skips_pod(control) {
            self.skip(control, Target::Pod, SkipReason::OptOut);
            return false;
        }
        true
    }

    /// Whether a container-level control should be planned for `c`; records an opt-out skip.
    fn container_control_enabled(&mut self, control: Control, c: &ContainerView<'_>) -> bool {
        if !self.profile.has(control) || (self.windows && !control.applies_to_windows()) {
            return false;
        }
        if self.opt_outs.skips_container(c.name, control) {
            self.skip(control, container_target(c), SkipReason::OptOut);
            return false;
        }
        true
    }
}
