//! `runAsNonRoot` from each image's user, when lookups ran: per container, as the kubelet decides
//! (see [`crate::harden::images`]).

use super::*;

impl Planner<'_> {
    /// Each container whose user its image decides (no `runAsUser` of its own or of the pod),
    /// with its verdict under `runAsNonRoot`, when lookups ran (never on Windows, whose users
    /// the kubelet checks by name).
    pub(super) fn image_verdicts(&self) -> Option<Vec<(Field, UserVerdict)>> {
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
    pub(super) fn record_image_findings(&mut self) {
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
    pub(super) fn fill_run_as_non_root(&mut self, pod_field: Field) {
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
}
