//! The pod-level controls: `runAsUser`, `runAsGroup`, `fsGroup`, `runAsNonRoot`, `seccompProfile`.

use super::*;

impl Planner<'_> {
    /// `runAsUser`: fills the configured UID; an explicit `runAsUser: 0` (pod or container) is
    /// rewritten in override mode, to the configured UID or removed so the pod-level value or
    /// the image's user applies.
    pub(super) fn run_as_user(&mut self) {
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
        let mut explicit_roots = Vec::new();
        match (pod_value, configured) {
            (Some(0), _) => explicit_roots.push(field),
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
        explicit_roots.extend(
            visit(self.spec())
                .filter(|c| c.security_context.and_then(|sc| sc.run_as_user) == Some(0))
                .map(|c| Field::container(&c, &["securityContext", "runAsUser"])),
        );
        for field in explicit_roots {
            let detail = "runAsUser: 0";
            self.explicit_value(Control::RunAsUser, field, rewrite(), json!(0), detail);
        }
    }

    /// `runAsGroup` and `fsGroup`: fill the configured numbers; never rewritten.
    pub(super) fn run_as_group_and_fs_group(&mut self) {
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
    pub(super) fn remaining_root_user(&self) -> Option<String> {
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
    pub(super) fn run_as_non_root(&mut self) {
        if !self.pod_control_enabled(Control::RunAsNonRoot) {
            return;
        }
        let pod_value = self
            .spec()
            .security_context
            .as_ref()
            .and_then(|sc| sc.run_as_non_root);
        let field = Field::pod(&["securityContext", "runAsNonRoot"]);
        let mut explicit_false = Vec::new();
        match pod_value {
            Some(true) => {}
            Some(false) => explicit_false.push(field),
            None => match self.remaining_root_user() {
                Some(conflict) => {
                    let reason = SkipReason::Conflict(conflict);
                    self.skip(Control::RunAsNonRoot, Target::Pod, reason);
                }
                None => self.fill_run_as_non_root(field),
            },
        }
        explicit_false.extend(
            visit(self.spec())
                .filter(|c| c.security_context.and_then(|sc| sc.run_as_non_root) == Some(false))
                .map(|c| Field::container(&c, &["securityContext", "runAsNonRoot"])),
        );
        for field in explicit_false {
            let (edit, previous) = (Edit::Set(json!(true)), json!(false));
            let detail = "runAsNonRoot: false";
            self.explicit_value(Control::RunAsNonRoot, field, edit, previous, detail);
        }
    }

    /// `seccompProfile`: pod-level `RuntimeDefault`; explicit other types (pod or container) are
    /// rewritten only in override mode. A disagreeing pre-1.19 annotation makes the API server
    /// reject a changed field, so it is skipped then.
    pub(super) fn seccomp_profile(&mut self) {
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
}
