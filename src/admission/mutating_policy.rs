//! pod-hardener's fill-mode hardening as an in-process MutatingAdmissionPolicy (CEL, an apply
//! configuration): the same controls, generated from the same profile, for the API-server
//! benchmark (`benches/apiserver.rs`) to measure what the same mutation costs without a webhook
//! round trip. It is the limit a webhook is compared with, not a replacement for it: it has no
//! image lookups, no opt-out annotations, no record, no override mode and no chained validation,
//! and it never reads namespace labels (the binding selects the namespaces).
//!
//! What it does for a Pod create, control by control, as the planner does in fill mode
//! (`src/harden/planner/`): pod-level `runAsNonRoot: true` unless set or an explicit root user
//! remains; pod-level `seccompProfile: RuntimeDefault` unless set (Linux only); the configured
//! `runAsUser`, `runAsGroup`, `fsGroup` where unset; per container (init and regular; Linux only)
//! `allowPrivilegeEscalation: false` where unset and not privileged or adding `SYS_ADMIN`,
//! `ALL` appended to `capabilities.drop`, `readOnlyRootFilesystem: true` where unset, and with it
//! the `/tmp` emptyDir and its mount where nothing is mounted at `/tmp`.
//! `tests/e2e_control_plane.rs` checks it against `/mutate` through a real API server.

use serde_json::{Value, json};

use crate::harden::{Control, HardeningSettings, Profile};
use crate::harden::{TMP_MOUNT_PATH, TMP_VOLUME_NAME};
use crate::pss::Level;
// CEL string literals: Go's quoting, whose escapes CEL reads alike.
use crate::pss::go_quote as cel_string;

/// The name of the generated policy and its binding.
pub const POLICY_NAME: &str = "pod-hardener-fill";

/// The MutatingAdmissionPolicy (`admissionregistration.k8s.io/v1`) making `level`'s fill-mode
/// changes to Pod creates, and its binding to the namespaces `namespace_selector` selects.
pub fn fill_policy(
    level: Level,
    hardening: &HardeningSettings,
    namespace_selector: &Value,
) -> [Value; 2] {
    let profile = Profile::for_level(level, hardening);
    let policy = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "failurePolicy": "Fail",
            "reinvocationPolicy": "IfNeeded",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["pods"],
            }]},
            "variables": variables(),
            "mutations": mutations(&profile),
        },
    });
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "policyName": POLICY_NAME,
            "matchResources": {"namespaceSelector": namespace_selector},
        },
    });
    [policy, binding]
}

const POD_SC: &str = "object.spec.securityContext";

/// The apply configuration, preceded by a JSON patch for `capabilities.drop`: an atomic list,
/// which an apply configuration may not change (the API server refuses it).
fn mutations(profile: &Profile) -> Value {
    let mut mutations = Vec::new();
    if profile.has(Control::Capabilities) {
        mutations.push(json!({
            "patchType": "JSONPatch",
            "jsonPatch": {"expression": drop_all_patch()},
        }));
    }
    mutations.push(json!({
        "patchType": "ApplyConfiguration",
        "applyConfiguration": {"expression": apply_configuration(profile)},
    }));
    Value::Array(mutations)
}

/// JSON patch operations appending `ALL` to `capabilities.drop` of each Linux container that
/// lacks it, creating the smallest missing parent, as the planner's patch does.
fn drop_all_patch() -> String {
    let per_list = |list: &str| {
        let ty = format!("Object.spec.{list}");
        let path =
            format!("'/spec/{list}/' + string(object.spec.{list}.indexOf(c)) + '/securityContext'");
        let caps = format!("{ty}.securityContext.capabilities{{drop: ['ALL']}}");
        let op = format!(
            "!has(c.securityContext) ? \
             JSONPatch{{op: 'add', path: {path}, value: {ty}.securityContext{{capabilities: {caps}}}}} : \
             !has(c.securityContext.capabilities) ? \
             JSONPatch{{op: 'add', path: {path} + '/capabilities', value: {caps}}} : \
             !has(c.securityContext.capabilities.drop) ? \
             JSONPatch{{op: 'add', path: {path} + '/capabilities/drop', value: ['ALL']}} : \
             JSONPatch{{op: 'add', path: {path} + '/capabilities/drop/-', value: 'ALL'}}"
        );
        let lacks = format!(
            "!({} && 'ALL' in c.securityContext.capabilities.drop)",
            has_path("c", &["securityContext", "capabilities", "drop"])
        );
        let guard = if list == "containers" {
            String::new()
        } else {
            format!("!has(object.spec.{list}) ? [] : ")
        };
        format!("({guard}object.spec.{list}.filter(c, {lacks}).map(c, {op}))")
    };
    format!(
        "variables.windows ? [] : {} + {}",
        per_list("initContainers"),
        per_list("containers")
    )
}

/// `has(a.b.c)` for every step of `path` under `root`, so that reading it cannot fail.
fn has_path(root: &str, path: &[&str]) -> String {
    let mut conditions = Vec::new();
    let mut at = root.to_owned();
    for step in path {
        at = format!("{at}.{step}");
        conditions.push(format!("has({at})"));
    }
    conditions.join(" && ")
}

/// Whether a container `c` runs as an explicit root user the kubelet would refuse under a
/// pod-level `runAsNonRoot` (the planner's `remaining_root_user`): its own `runAsUser: 0`, or
/// the Windows user name `ContainerAdministrator`, its own or else the pod's.
fn container_runs_as_root() -> String {
    let own_name = has_path("c", &["securityContext", "windowsOptions", "runAsUserName"]);
    let pod_name = has_path(
        "object.spec",
        &["securityContext", "windowsOptions", "runAsUserName"],
    );
    format!(
        "(!has(c.securityContext) || !has(c.securityContext.runAsNonRoot)) && (\
         ({uid} && c.securityContext.runAsUser == 0) || \
         (({own_name}) ? c.securityContext.windowsOptions.runAsUserName : \
         (({pod_name}) ? {POD_SC}.windowsOptions.runAsUserName : '')).lowerAscii() == 'containeradministrator')",
        uid = has_path("c", &["securityContext", "runAsUser"]),
    )
}

fn variables() -> Value {
    let root = container_runs_as_root();
    json!([
        {"name": "windows", "expression": "has(object.spec.os) && object.spec.os.name == 'windows'"},
        {"name": "rootUser", "expression": format!(
            "({uid} && {POD_SC}.runAsUser == 0) || object.spec.containers.exists(c, {root}) || \
             (has(object.spec.initContainers) && object.spec.initContainers.exists(c, {root}))",
            uid = has_path("object.spec", &["securityContext", "runAsUser"]),
        )},
    ])
}

/// A field written only when its condition holds: `(name, condition, value)`.
type Conditional = (&'static str, String, String);

/// `?field: ty{...members...}`, present only when one of `members` is (`indent`: the generated
/// text's indentation of the field, for people reading the policy).
fn optional_object(field: &str, ty: &str, members: &[Conditional], indent: &str) -> String {
    let any: Vec<String> = members
        .iter()
        .map(|(_, cond, _)| format!("({cond})"))
        .collect();
    let written: Vec<String> = members
        .iter()
        .map(|(name, cond, value)| optional_field(name, cond, value))
        .collect();
    let separator = format!(",\n{indent}  ");
    let object = format!("{ty}{{\n{indent}  {}\n{indent}}}", written.join(&separator));
    optional_field(field, &any.join(" || "), &object)
}

/// `?field: cond ? optional.of(value) : optional.none()`: the field only when `cond` holds, so
/// that nothing is written (not even an empty object) where nothing changes.
fn optional_field(field: &str, cond: &str, value: &str) -> String {
    format!("?{field}: ({cond}) ? optional.of({value}) : optional.none()")
}

fn apply_configuration(profile: &Profile) -> String {
    let linux = "!variables.windows";
    let unset = |field: &str| {
        format!(
            "!({})",
            has_path("object.spec", &["securityContext", field])
        )
    };
    let mut pod_fields: Vec<Conditional> = Vec::new();
    if profile.has(Control::RunAsNonRoot) {
        let cond = format!("{} && !variables.rootUser", unset("runAsNonRoot"));
        pod_fields.push(("runAsNonRoot", cond, "true".to_owned()));
    }
    if profile.has(Control::SeccompProfile) {
        let cond = format!("{linux} && {}", unset("seccompProfile"));
        let value = "Object.spec.securityContext.seccompProfile{type: 'RuntimeDefault'}";
        pod_fields.push(("seccompProfile", cond, value.to_owned()));
    }
    for (control, field, value) in [
        (Control::RunAsUser, "runAsUser", profile.run_as_user),
        (Control::RunAsGroup, "runAsGroup", profile.run_as_group),
        (Control::FsGroup, "fsGroup", profile.fs_group),
    ] {
        if let (true, Some(value)) = (profile.has(control), value) {
            let cond = format!("{linux} && {}", unset(field));
            pod_fields.push((field, cond, value.to_string()));
        }
    }
    let mut spec_fields = Vec::new();
    if !pod_fields.is_empty() {
        spec_fields.push(optional_object(
            "securityContext",
            "Object.spec.securityContext",
            &pod_fields,
            "    ",
        ));
    }
    let read_only_root = profile.has(Control::ReadOnlyRootFilesystem);
    let tmp = read_only_root && profile.has(Control::TmpVolume);
    for list in ["initContainers", "containers"] {
        if let Some(containers) = container_list(profile, list) {
            let cond = if list == "containers" {
                linux.to_owned()
            } else {
                format!("{linux} && has(object.spec.initContainers)")
            };
            spec_fields.push(optional_field(list, &cond, &containers));
        }
    }
    if tmp {
        let needing = |list: &str| format!("object.spec.{list}.exists(c, {})", needs_tmp_mount());
        let cond = format!(
            "{linux} && ({} || (has(object.spec.initContainers) && {})) && \
             !(has(object.spec.volumes) && object.spec.volumes.exists(v, v.name == {name} && has(v.emptyDir)))",
            needing("containers"),
            needing("initContainers"),
            name = cel_string(TMP_VOLUME_NAME),
        );
        let empty_dir = match &profile.tmp_size_limit {
            Some(limit) => format!(
                "Object.spec.volumes.emptyDir{{sizeLimit: {}}}",
                cel_string(limit)
            ),
            None => "Object.spec.volumes.emptyDir{}".to_owned(),
        };
        spec_fields.push(optional_field(
            "volumes",
            &cond,
            &format!(
                "[Object.spec.volumes{{name: {}, emptyDir: {empty_dir}}}]",
                cel_string(TMP_VOLUME_NAME)
            ),
        ));
    }
    format!(
        "Object{{\n  spec: Object.spec{{\n    {}\n  }}\n}}",
        spec_fields.join(",\n    ")
    )
}

/// Whether container `c` gets a read-only root now (unset) and has nothing at `/tmp`.
fn needs_tmp_mount() -> String {
    format!(
        "!({ro}) && !(has(c.volumeMounts) && c.volumeMounts.exists(m, m.mountPath == {tmp} || m.mountPath == {tmp_slash}))",
        ro = has_path("c", &["securityContext", "readOnlyRootFilesystem"]),
        tmp = cel_string(TMP_MOUNT_PATH),
        tmp_slash = cel_string(&format!("{TMP_MOUNT_PATH}/")),
    )
}

/// The apply configuration of each container of `list`, or `None` when the profile changes no
/// container.
fn container_list(profile: &Profile, list: &str) -> Option<String> {
    let ty = format!("Object.spec.{list}");
    let sc = "c.securityContext";
    let mut fields: Vec<Conditional> = Vec::new();
    if profile.has(Control::AllowPrivilegeEscalation) {
        let cond = format!(
            "!({}) && !({} && {sc}.privileged) && !({} && {sc}.capabilities.add.exists(a, a == 'SYS_ADMIN' || a == 'CAP_SYS_ADMIN'))",
            has_path("c", &["securityContext", "allowPrivilegeEscalation"]),
            has_path("c", &["securityContext", "privileged"]),
            has_path("c", &["securityContext", "capabilities", "add"]),
        );
        fields.push(("allowPrivilegeEscalation", cond, "false".to_owned()));
    }
    if profile.has(Control::ReadOnlyRootFilesystem) {
        let cond = format!(
            "!({})",
            has_path("c", &["securityContext", "readOnlyRootFilesystem"])
        );
        fields.push(("readOnlyRootFilesystem", cond, "true".to_owned()));
    }
    if fields.is_empty() {
        return None;
    }
    let mut item = vec![
        "name: c.name".to_owned(),
        optional_object(
            "securityContext",
            &format!("{ty}.securityContext"),
            &fields,
            "      ",
        ),
    ];
    if profile.has(Control::ReadOnlyRootFilesystem) && profile.has(Control::TmpVolume) {
        item.push(optional_field(
            "volumeMounts",
            &needs_tmp_mount(),
            &format!(
                "[{ty}.volumeMounts{{name: {}, mountPath: {}}}]",
                cel_string(TMP_VOLUME_NAME),
                cel_string(TMP_MOUNT_PATH)
            ),
        ));
    }
    Some(format!(
        "object.spec.{list}.map(c, {ty}{{\n      {}\n    }})",
        item.join(",\n      ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_profile() {
        let selector = json!({"matchLabels": {"pod-security.kubernetes.io/enforce": "restricted"}});
        let [policy, binding] =
            fill_policy(Level::Restricted, &HardeningSettings::default(), &selector);
        let expression = policy["spec"]["mutations"][1]["applyConfiguration"]["expression"]
            .as_str()
            .unwrap();
        for field in [
            "?runAsNonRoot",
            "?seccompProfile",
            "?allowPrivilegeEscalation",
            "?readOnlyRootFilesystem",
            "?volumeMounts",
            "?volumes",
        ] {
            assert!(expression.contains(field), "{field}: {expression}");
        }
        assert!(!expression.contains("runAsUser: "), "{expression}");
        assert_eq!(
            binding["spec"]["matchResources"]["namespaceSelector"],
            selector
        );
        let [baseline, _] = fill_policy(Level::Baseline, &HardeningSettings::default(), &selector);
        let expression = baseline["spec"]["mutations"][0]["applyConfiguration"]["expression"]
            .as_str()
            .unwrap();
        assert!(expression.contains("?seccompProfile"));
        assert!(expression.contains("?allowPrivilegeEscalation"));
        assert!(!expression.contains("?runAsNonRoot"), "{expression}");
        assert!(
            !expression.contains("?readOnlyRootFilesystem"),
            "{expression}"
        );
        let with_uid = HardeningSettings {
            run_as_user: Some(1000),
            ..HardeningSettings::default()
        };
        let [policy, _] = fill_policy(Level::Restricted, &with_uid, &selector);
        assert!(
            policy["spec"]["mutations"][1]["applyConfiguration"]["expression"]
                .as_str()
                .unwrap()
                .contains("?runAsUser: ")
        );
    }
}
