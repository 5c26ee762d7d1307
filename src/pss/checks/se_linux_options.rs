//! `seLinuxOptions` (baseline, v1.0; v1.31 adds `container_engine_t`): only the container
//! types may be chosen, and `user` and `role` must stay empty. `level` is not checked.

use super::setters;
use crate::pss::containers::names_where;
use crate::pss::format::{join_quote, pluralize, sorted_set};
use crate::pss::{Failure, PodUnderTest};
use k8s_openapi::api::core::v1::SELinuxOptions;

#[derive(Default)]
struct Findings {
    bad_types: Vec<String>,
    user_set: bool,
    role_set: bool,
}

impl Findings {
    /// Records what is wrong with `opts`; returns whether anything is.
    fn inspect(&mut self, opts: &SELinuxOptions, minor: u32) -> bool {
        let type_ = opts.type_.as_deref().unwrap_or("");
        let type_ok = matches!(
            type_,
            "" | "container_t" | "container_init_t" | "container_kvm_t"
        ) || (minor >= 31 && type_ == "container_engine_t");
        if !type_ok {
            self.bad_types.push(type_.to_owned());
        }
        let user_set = opts.user.as_deref().is_some_and(|u| !u.is_empty());
        let role_set = opts.role.as_deref().is_some_and(|r| !r.is_empty());
        self.user_set |= user_set;
        self.role_set |= role_set;
        !type_ok || user_set || role_set
    }
}

pub(crate) fn check(pod: &PodUnderTest<'_>) -> Option<Failure> {
    let mut findings = Findings::default();
    let pod_opts = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.se_linux_options.as_ref());
    let pod_is_bad = pod_opts.is_some_and(|opts| findings.inspect(opts, pod.minor));
    let bad = names_where(pod.spec, |c| {
        c.security_context
            .and_then(|sc| sc.se_linux_options.as_ref())
            .is_some_and(|opts| findings.inspect(opts, pod.minor))
    });
    let who = setters(pod_is_bad, &bad);
    if who.is_empty() {
        return None;
    }
    let mut parts = Vec::with_capacity(3);
    let types = sorted_set(findings.bad_types);
    if !types.is_empty() {
        parts.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if findings.user_set {
        parts.push("user may not be set".to_owned());
    }
    if findings.role_set {
        parts.push("role may not be set".to_owned());
    }
    Some(Failure {
        reason: "seLinuxOptions",
        detail: format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            who.join(" and "),
            parts.join("; ")
        ),
    })
}
