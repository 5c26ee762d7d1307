//! The container-level controls: `capabilities`, `allowPrivilegeEscalation`, `procMount`,
//! `readOnlyRootFilesystem`, and the `/tmp` volume that makes read-only roots livable.

use super::*;

impl Planner<'_> {
    /// `capabilities`: `drop` gets `ALL`; added capabilities other than `NET_BIND_SERVICE` are
    /// removed only in override mode. Returns whether `add` was rewritten.
    pub(super) fn capabilities(&mut self, c: &ContainerView<'_>) -> bool {
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
    pub(super) fn remaining_added_caps<'c>(
        c: &ContainerView<'c>,
        caps_rewritten: bool,
    ) -> &'c [String] {
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
    pub(super) fn allow_privilege_escalation(
        &mut self,
        c: &ContainerView<'_>,
        caps_rewritten: bool,
    ) {
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
    pub(super) fn proc_mount(&mut self, c: &ContainerView<'_>) {
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
    pub(super) fn read_only_root_filesystem(&mut self, c: &ContainerView<'_>) -> bool {
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
    pub(super) fn tmp_volume(&mut self, read_only_roots: &[ContainerView<'_>], scope: Scope<'_>) {
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
