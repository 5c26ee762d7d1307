//! The planner: PodSpec + profile → [`Plan`]. One function per control, each following the
//! hardening contract in DESIGN.md: fill unset fields only (override mode also rewrites explicit
//! insecure values), follow the level, never set Linux-only fields on Windows pods, never produce
//! an object the API server rejects or the kubelet cannot start, and record every skip.

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
    path: Vec<String>,
}

impl Field {
    fn pod(tail: &[&str]) -> Self {
        Field {
            target: Target::Pod,
            path: tail.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    fn container(c: &ContainerView<'_>, tail: &[&str]) -> Self {
        let mut path = vec![c.list.field_name().to_owned(), c.index.to_string()];
        path.extend(tail.iter().map(|t| (*t).to_owned()));
        Field {
            target: container_target(c),
            path,
        }
    }
}

impl Field {
    /// The field at `tail` below this one.
    fn extended(&self, tail: &[&str]) -> Field {
        let mut path = self.path.clone();
        path.extend(tail.iter().map(|t| (*t).to_owned()));
        Field {
            target: self.target.clone(),
            path,
        }
    }
}

fn container_target(c: &ContainerView<'_>) -> Target {
    Target::Container {
        list: c.list,
        name: c.name.to_owned(),
    }
}

fn is_valid_seccomp_type(t: &str) -> bool {
    matches!(t, "RuntimeDefault" | "Localhost")
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

    // === pod-level controls ===

    /// `runAsUser`: fills the configured UID; an explicit `runAsUser: 0` (pod or container) is
    /// rewritten in override mode, to the configured UID or removed so the pod-level value or
    /// the image's user applies.
    fn run_as_user(&mut self) {
        if !self.pod_control_enabled(Control::RunAsUser) {
            return;
        }
        let configured = self.profile.run_as_user;
        let rewrite = || configured.map_or(Edit::Remove, |uid| Edit::Set(json!(uid)));
        let pod_value = self
            .spec()
            .security_context
            .as_ref()
            .and_then(|sc| sc.run_as_user);
        let field = Field::pod(&["securityContext", "runAsUser"]);
        match (pod_value, configured) {
            (Some(0), _) => {
                self.explicit_value(
                    Control::RunAsUser,
                    field,
                    rewrite(),
                    json!(0),
                    "runAsUser: 0",
                );
            }
            (None, Some(uid)) => match self.image_verdicts() {
                // Lookups know every image: only the containers whose image would not start
                // under runAsNonRoot get the configured UID.
                Some(verdicts)
                    if verdicts
                        .iter()
                        .all(|(_, v)| !matches!(v, UserVerdict::Unknown(_))) =>
                {
                    for (field, verdict) in verdicts {
                        if matches!(verdict, UserVerdict::Root(_) | UserVerdict::Unverifiable(_)) {
                            let field = field.extended(&["securityContext", "runAsUser"]);
                            self.fill(Control::RunAsUser, field, Edit::Set(json!(uid)));
                        }
                    }
                }
                _ => self.fill(Control::RunAsUser, field, Edit::Set(json!(uid))),
            },
            _ => {}
        }
        let roots: Vec<Field> = visit(self.spec())
            .filter(|c| c.security_context.and_then(|sc| sc.run_as_user) == Some(0))
            .map(|c| Field::container(&c, &["securityContext", "runAsUser"]))
            .collect();
        for field in roots {
            self.explicit_value(
                Control::RunAsUser,
                field,
                rewrite(),
                json!(0),
                "runAsUser: 0",
            );
        }
    }

    /// `runAsGroup` and `fsGroup`: fill the configured numbers; never rewritten.
    fn run_as_group_and_fs_group(&mut self) {
        let sc = self.spec().security_context.as_ref();
        let fields = [
            (
                Control::RunAsGroup,
                "runAsGroup",
                self.profile.run_as_group,
                sc.and_then(|s| s.run_as_group),
            ),
            (
                Control::FsGroup,
                "fsGroup",
                self.profile.fs_group,
                sc.and_then(|s| s.fs_group),
            ),
        ];
        for (control, name, configured, current) in fields {
            let Some(value) = configured else { continue };
            if current.is_none() && self.pod_control_enabled(control) {
                let field = Field::pod(&["securityContext", name]);
                self.fill(control, field, Edit::Set(json!(value)));
            }
        }
    }

    /// The explicit root user that will remain after this plan, if any: `runAsUser: 0`
    /// (pod-level, or on a container that would inherit a pod-level `runAsNonRoot`), or the
    /// Windows user name `ContainerAdministrator` such a container would run as.
    fn remaining_root_user(&self) -> Option<String> {
        // Collected once: a lookup per container keeps this linear in the pod's size.
        let rewritten_targets: std::collections::HashSet<&Target> = self
            .plan
            .changes
            .iter()
            .filter(|ch| ch.control == Control::RunAsUser && ch.overrides.is_some())
            .map(|ch| &ch.target)
            .collect();
        let rewritten = |target: &Target| rewritten_targets.contains(target);
        let pod_root = self
            .spec()
            .security_context
            .as_ref()
            .and_then(|sc| sc.run_as_user)
            == Some(0);
        if pod_root && !rewritten(&Target::Pod) {
            return Some("pod sets runAsUser: 0".into());
        }
        if let Some(c) = visit(self.spec()).find(|c| {
            let sc = c.security_context;
            sc.and_then(|s| s.run_as_user) == Some(0)
                && sc.and_then(|s| s.run_as_non_root).is_none()
                && !rewritten(&container_target(c))
        }) {
            return Some(format!("container {:?} sets runAsUser: 0", c.name));
        }
        // Windows: the kubelet treats the user name ContainerAdministrator (in any case) as root.
        let pod_user_name = self
            .spec()
            .security_context
            .as_ref()
            .and_then(|sc| sc.windows_options.as_ref())
            .and_then(|w| w.run_as_user_name.as_deref());
        visit(self.spec())
            .find(|c| {
                let sc = c.security_context;
                let user_name = sc
                    .and_then(|s| s.windows_options.as_ref())
                    .and_then(|w| w.run_as_user_name.as_deref())
                    .or(pod_user_name);
                user_name.is_some_and(|u| u.eq_ignore_ascii_case(WINDOWS_ROOT_USER_NAME))
                    && sc.and_then(|s| s.run_as_non_root).is_none()
            })
            .map(|c| format!("container {:?} runs as {WINDOWS_ROOT_USER_NAME}", c.name))
    }

    /// `runAsNonRoot`: pod-level `true`; an explicit `false` (pod or container) is rewritten only
    /// in override mode. Skipped when an explicit `runAsUser: 0` would make the kubelet refuse
    /// to start the pod.
    fn run_as_non_root(&mut self) {
        if !self.pod_control_enabled(Control::RunAsNonRoot) {
            return;
        }
        let pod_value = self
            .spec()
            .security_context
            .as_ref()
            .and_then(|sc| sc.run_as_non_root);
        let field = Field::pod(&["securityContext", "runAsNonRoot"]);
        let set_true = || Edit::Set(json!(true));
        match pod_value {
            Some(true) => {}
            Some(false) => {
                let detail = "runAsNonRoot: false";
                self.explicit_value(
                    Control::RunAsNonRoot,
                    field,
                    set_true(),
                    json!(false),
                    detail,
                );
            }
            None => match self.remaining_root_user() {
                Some(conflict) => {
                    let reason = SkipReason::Conflict(conflict);
                    self.skip(Control::RunAsNonRoot, Target::Pod, reason);
                }
                None => self.fill_run_as_non_root(field),
            },
        }
        let explicit_false: Vec<Field> = visit(self.spec())
            .filter(|c| c.security_context.and_then(|sc| sc.run_as_non_root) == Some(false))
            .map(|c| Field::container(&c, &["securityContext", "runAsNonRoot"]))
            .collect();
        for field in explicit_false {
            let detail = "runAsNonRoot: false";
            self.explicit_value(
                Control::RunAsNonRoot,
                field,
                set_true(),
                json!(false),
                detail,
            );
        }
    }

    /// Each container whose user its image decides (no `runAsUser` of its own or of the pod),
    /// with its verdict under `runAsNonRoot`, when lookups ran (never on Windows, whose users
    /// the kubelet checks by name).
    fn image_verdicts(&self) -> Option<Vec<(Field, UserVerdict)>> {
        let catalog = self.images?;
        if self.windows {
            return None;
        }
        let pod_uid = self
            .spec()
            .security_context
            .as_ref()
            .and_then(|sc| sc.run_as_user);
        if pod_uid.is_some() {
            return Some(Vec::new());
        }
        let verdicts = visit(self.spec())
            .filter(|c| c.security_context.and_then(|sc| sc.run_as_user).is_none())
            .map(|c| {
                let image = c.image.unwrap_or_default();
                (
                    Field::container(&c, &[]),
                    images::verdict(image, catalog.get(image)),
                )
            })
            .collect();
        Some(verdicts)
    }

    /// Records what the lookups said about each container's image whose user decides.
    fn record_image_findings(&mut self) {
        let Some(catalog) = self.images else { return };
        let findings: Vec<ImageFinding> = visit(self.spec())
            .filter(|c| c.security_context.and_then(|sc| sc.run_as_user).is_none())
            .filter_map(|c| {
                let image = c.image.unwrap_or_default();
                Some(ImageFinding {
                    target: container_target(&c),
                    image: image.to_owned(),
                    lookup: catalog.get(image)?.clone(),
                })
            })
            .collect();
        self.plan.images = findings;
    }

    /// Fills `runAsNonRoot: true` for the pod; or, when lookups show images that would not start
    /// under it, for each container that will, recording why for the others. A named image user
    /// whose UID the image's `/etc/passwd` gives becomes that container's `runAsUser`: the same
    /// user, now verifiable by the kubelet.
    fn fill_run_as_non_root(&mut self, pod_field: Field) {
        let set_true = || Edit::Set(json!(true));
        let Some(verdicts) = self.image_verdicts() else {
            return self.fill(Control::RunAsNonRoot, pod_field, set_true());
        };
        // Containers that get a UID from the runAsUser control need nothing from their image.
        let with_uid: std::collections::HashSet<Target> = self
            .plan
            .changes
            .iter()
            .filter(|c| c.control == Control::RunAsUser && matches!(c.edit, Edit::Set(_)))
            .map(|c| c.target.clone())
            .collect();
        if with_uid.contains(&Target::Pod) {
            return self.fill(Control::RunAsNonRoot, pod_field, set_true());
        }
        let mut blocked = Vec::new();
        for (container, verdict) in verdicts {
            if with_uid.contains(&container.target) {
                continue;
            }
            match verdict {
                UserVerdict::NamedUid { uid, .. } => {
                    let field = container.extended(&["securityContext", "runAsUser"]);
                    self.fill(Control::RunAsUser, field, Edit::Set(json!(uid)));
                }
                UserVerdict::Root(why) => {
                    blocked.push((container, SkipReason::ImageRunsAsRoot(why)))
                }
                UserVerdict::Unverifiable(why) => {
                    blocked.push((container, SkipReason::ImageUserUnverifiable(why)));
                }
                UserVerdict::Unknown(why) => self.plan.lookup_failures.push(why),
                UserVerdict::Verifiable => {}
            }
        }
        self.record_image_findings();
        if blocked.is_empty() {
            return self.fill(Control::RunAsNonRoot, pod_field, set_true());
        }
        // A pod-level value would reach the blocked containers too: set it where it can start.
        let blocked_targets: std::collections::HashSet<&Target> =
            blocked.iter().map(|(f, _)| &f.target).collect();
        let startable: Vec<Field> = visit(self.spec())
            .filter(|c| {
                !blocked_targets.contains(&container_target(c))
                    && c.security_context
                        .and_then(|sc| sc.run_as_non_root)
                        .is_none()
            })
            .map(|c| Field::container(&c, &["securityContext", "runAsNonRoot"]))
            .collect();
        for field in startable {
            self.fill(Control::RunAsNonRoot, field, set_true());
        }
        for (container, reason) in blocked {
            self.skip(Control::RunAsNonRoot, container.target, reason);
        }
    }

    /// `seccompProfile`: pod-level `RuntimeDefault`; explicit other types (pod or container) are
    /// rewritten only in override mode. A disagreeing pre-1.19 annotation makes the API server
    /// reject a changed field, so it is skipped then.
    fn seccomp_profile(&mut self) {
        if !self.pod_control_enabled(Control::SeccompProfile) {
            return;
        }
        let runtime_default = || Edit::Set(json!({"type": "RuntimeDefault"}));
        let annotations = self.parts.metadata.annotations.as_ref();
        let disagreeing_annotation = |key: &str| {
            annotations
                .and_then(|a| a.get(key))
                .filter(|v| !is_runtime_default_annotation(v))
                .map(|v| format!("annotation {key}={v} must match the field"))
        };
        let pod_type = self
            .spec()
            .security_context
            .as_ref()
            .and_then(|sc| sc.seccomp_profile.as_ref())
            .map(|p| p.type_.clone());
        // (where, its explicit type if any, the annotation that pins it)
        let mut sites = Vec::new();
        if !pod_type.as_deref().is_some_and(is_valid_seccomp_type) {
            sites.push((
                Field::pod(&["securityContext", "seccompProfile"]),
                pod_type,
                disagreeing_annotation(SECCOMP_POD_ANNOTATION),
            ));
        }
        for c in visit(self.spec()) {
            let Some(p) = c
                .security_context
                .and_then(|sc| sc.seccomp_profile.as_ref())
            else {
                continue;
            };
            if !is_valid_seccomp_type(&p.type_) {
                let key = format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", c.name);
                sites.push((
                    Field::container(&c, &["securityContext", "seccompProfile"]),
                    Some(p.type_.clone()),
                    disagreeing_annotation(&key),
                ));
            }
        }
        for (field, explicit_type, pinned_by) in sites {
            if let Some(detail) = pinned_by {
                let reason = SkipReason::ApiInvalid(detail);
                self.skip(Control::SeccompProfile, field.target, reason);
            } else if let Some(type_) = explicit_type {
                let detail = format!("seccompProfile.type: {type_}");
                let previous = json!({"type": type_});
                self.explicit_value(
                    Control::SeccompProfile,
                    field,
                    runtime_default(),
                    previous,
                    detail,
                );
            } else {
                self.fill(Control::SeccompProfile, field, runtime_default());
            }
        }
    }

    // === container-level controls ===

    /// `capabilities`: `drop` gets `ALL`; added capabilities other than `NET_BIND_SERVICE` are
    /// removed only in override mode. Returns whether `add` was rewritten.
    fn capabilities(&mut self, c: &ContainerView<'_>) -> bool {
        if !self.container_control_enabled(Control::Capabilities, c) {
            return false;
        }
        let caps = c.security_context.and_then(|sc| sc.capabilities.as_ref());
        if !caps
            .and_then(|k| k.drop.as_ref())
            .is_some_and(|d| d.iter().any(|x| x == "ALL"))
        {
            let field = Field::container(c, &["securityContext", "capabilities", "drop"]);
            self.fill(Control::Capabilities, field, Edit::Append(json!("ALL")));
        }
        let added: &[String] = caps.and_then(|k| k.add.as_deref()).unwrap_or_default();
        let (kept, forbidden): (Vec<&String>, Vec<&String>) =
            added.iter().partition(|a| *a == NET_BIND_SERVICE);
        if forbidden.is_empty() {
            return false;
        }
        let field = Field::container(c, &["securityContext", "capabilities", "add"]);
        let edit = if kept.is_empty() {
            Edit::Remove
        } else {
            Edit::Set(json!(kept))
        };
        let listed: Vec<&str> = forbidden.iter().map(|s| s.as_str()).collect();
        let detail = format!("capabilities.add: {}", listed.join(", "));
        self.explicit_value(Control::Capabilities, field, edit, json!(added), detail)
    }

    /// The capabilities `c` will still add after this plan (`caps_rewritten`: the capabilities
    /// control rewrote its `add`).
    fn remaining_added_caps<'c>(c: &ContainerView<'c>, caps_rewritten: bool) -> &'c [String] {
        if caps_rewritten {
            return &[];
        }
        c.security_context
            .and_then(|sc| sc.capabilities.as_ref())
            .and_then(|k| k.add.as_deref())
            .unwrap_or_default()
    }

    /// `allowPrivilegeEscalation: false`, except where the API server would reject it
    /// (`privileged: true`, an added `CAP_SYS_ADMIN`); explicit `true` is rewritten only in
    /// override mode.
    fn allow_privilege_escalation(&mut self, c: &ContainerView<'_>, caps_rewritten: bool) {
        const CONTROL: Control = Control::AllowPrivilegeEscalation;
        if !self.container_control_enabled(CONTROL, c) {
            return;
        }
        let sc: Option<&SecurityContext> = c.security_context;
        let current = sc.and_then(|s| s.allow_privilege_escalation);
        if current == Some(false) {
            return;
        }
        if sc.and_then(|s| s.privileged) == Some(true) {
            let reason =
                SkipReason::ApiInvalid("privileged: true requires allowPrivilegeEscalation".into());
            return self.skip(CONTROL, container_target(c), reason);
        }
        if let Some(cap) = Self::remaining_added_caps(c, caps_rewritten)
            .iter()
            .find(|a| matches!(a.as_str(), "CAP_SYS_ADMIN" | "SYS_ADMIN"))
        {
            let reason = SkipReason::ApiInvalid(format!(
                "capabilities.add {cap} requires allowPrivilegeEscalation"
            ));
            return self.skip(CONTROL, container_target(c), reason);
        }
        let field = Field::container(c, &["securityContext", "allowPrivilegeEscalation"]);
        let set_false = Edit::Set(json!(false));
        if current.is_none() {
            self.fill(CONTROL, field, set_false);
        } else {
            let detail = "allowPrivilegeEscalation: true";
            self.explicit_value(CONTROL, field, set_false, json!(true), detail);
        }
    }

    /// `procMount`: an explicit non-default procMount is reset to `Default` in override mode only.
    fn proc_mount(&mut self, c: &ContainerView<'_>) {
        let Some(current) = c.security_context.and_then(|sc| sc.proc_mount.as_deref()) else {
            return;
        };
        if current == "Default" || !self.profile.has(Control::ProcMount) || self.windows {
            return;
        }
        if !self.container_control_enabled(Control::ProcMount, c) {
            return;
        }
        let field = Field::container(c, &["securityContext", "procMount"]);
        let edit = Edit::Set(json!("Default"));
        let detail = format!("procMount: {current}");
        self.explicit_value(Control::ProcMount, field, edit, json!(current), detail);
    }

    /// `readOnlyRootFilesystem: true` where unset; an explicit `false` is never rewritten, even
    /// in override mode (no PSS check asks for it). Returns whether the container received it.
    fn read_only_root_filesystem(&mut self, c: &ContainerView<'_>) -> bool {
        const CONTROL: Control = Control::ReadOnlyRootFilesystem;
        if !self.container_control_enabled(CONTROL, c) {
            return false;
        }
        match c
            .security_context
            .and_then(|sc| sc.read_only_root_filesystem)
        {
            Some(true) => false,
            Some(false) => {
                let reason = SkipReason::ExplicitValue("readOnlyRootFilesystem: false".into());
                self.skip(CONTROL, container_target(c), reason);
                false
            }
            None => {
                let field = Field::container(c, &["securityContext", "readOnlyRootFilesystem"]);
                self.fill(CONTROL, field, Edit::Set(json!(true)));
                true
            }
        }
    }

    /// `tmpVolume`: an `emptyDir` mounted at `/tmp` in each container that just got a read-only
    /// root and has nothing mounted there.
    fn tmp_volume(&mut self, read_only_roots: &[ContainerView<'_>], scope: Scope<'_>) {
        let needing: Vec<ContainerView<'_>> = read_only_roots
            .iter()
            .filter(|c| {
                !c.volume_mounts
                    .into_iter()
                    .flatten()
                    .any(|m| m.mount_path.trim_end_matches('/') == TMP_MOUNT_PATH)
            })
            .copied()
            .collect();
        let mut mounting = Vec::new();
        for c in &needing {
            if self.container_control_enabled(Control::TmpVolume, c) {
                mounting.push(*c);
            }
        }
        if mounting.is_empty() {
            return;
        }
        let volumes = self.spec().volumes.as_deref().unwrap_or_default();
        // Reuse our own volume (reinvocation after a sidecar injector); otherwise pick a name no
        // existing volume has.
        let mut name = TMP_VOLUME_NAME.to_owned();
        let mut suffix = 1;
        let exists = loop {
            match volumes.iter().find(|v| v.name == name) {
                Some(v) if v.empty_dir.is_some() => break true,
                Some(_) => {
                    suffix += 1;
                    name = format!("{TMP_VOLUME_NAME}-{suffix}");
                }
                None => break false,
            }
        };
        if !exists {
            if let Scope::NewEphemeralContainers(_) = scope {
                for c in &mounting {
                    let reason = SkipReason::Immutable(
                        "pod volumes cannot be added by an ephemeral container update".into(),
                    );
                    self.skip(Control::TmpVolume, container_target(c), reason);
                }
                return;
            }
            let mut empty_dir = serde_json::Map::new();
            if let Some(limit) = &self.profile.tmp_size_limit {
                empty_dir.insert("sizeLimit".into(), json!(limit));
            }
            let volume = json!({"name": name, "emptyDir": empty_dir});
            let field = Field::pod(&["volumes"]);
            self.fill(Control::TmpVolume, field, Edit::Append(volume));
        }
        for c in &mounting {
            let mount = json!({"name": name, "mountPath": TMP_MOUNT_PATH});
            let field = Field::container(c, &["volumeMounts"]);
            self.fill(Control::TmpVolume, field, Edit::Append(mount));
        }
    }
}
