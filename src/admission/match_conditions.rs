//! The mutating webhook's `matchConditions`: CEL the API server evaluates before calling
//! `/mutate`, so that it does not call it when nothing can change. Generated from the control
//! table ([`crate::harden::Control::cel_satisfied`]) and the exemptions; the shipped webhook
//! configurations carry this text (`tests/manifests.rs` asserts they equal it).
//!
//! Skipping is safe only where the call would have answered with no patch whatever the namespace
//! (CEL sees no namespace labels): a Pod that already carries the record annotation (so no record
//! is added) and, for every control of either level's profile, the value that control sets or one
//! it never rewrites, in fill or override mode alike; or a request that is exempt. The validating
//! webhook has no conditions: every Pod is still judged.

use crate::harden::{HardeningSettings, RECORD_ANNOTATION};
// CEL string literals: Go's quoting, whose escapes CEL reads alike.
use crate::pss::go_quote as cel_string;

use super::Exemptions;

/// One condition of a webhook's `matchConditions`: the webhook is called only when every
/// expression is true.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MatchCondition {
    /// The condition's name (unique within the webhook).
    pub name: String,
    /// A CEL expression over `object` and `request`.
    pub expression: String,
}

/// The conditions under which the API server calls `/mutate`.
pub fn mutate_match_conditions(
    hardening: &HardeningSettings,
    exemptions: &Exemptions,
) -> Vec<MatchCondition> {
    let mut conditions = Vec::new();
    let quoted = |values: &std::collections::BTreeSet<String>| {
        let items: Vec<String> = values.iter().map(|v| cel_string(v)).collect();
        format!("[{}]", items.join(", "))
    };
    if !exemptions.namespaces.is_empty() {
        conditions.push(MatchCondition {
            name: "not-an-exempt-namespace".into(),
            expression: format!("!(request.namespace in {})", quoted(&exemptions.namespaces)),
        });
    }
    if !exemptions.usernames.is_empty() {
        conditions.push(MatchCondition {
            name: "not-an-exempt-user".into(),
            expression: format!(
                "!(request.userInfo.username in {})",
                quoted(&exemptions.usernames)
            ),
        });
    }
    if !exemptions.runtime_class_names.is_empty() {
        conditions.push(MatchCondition {
            name: "not-an-exempt-runtime-class".into(),
            expression: format!(
                "!(has(object.spec.runtimeClassName) && object.spec.runtimeClassName in {})",
                quoted(&exemptions.runtime_class_names)
            ),
        });
    }
    conditions.push(MatchCondition {
        name: "not-already-hardened".into(),
        // One conjunct a line, as the shipped YAML shows it (a literal block keeps it exact).
        expression: format!("!(\n  {}\n)", already_hardened(hardening).join(" &&\n  ")),
    });
    conditions
}

/// CEL conjuncts, all true when hardening the Pod `object` can change nothing.
fn already_hardened(hardening: &HardeningSettings) -> Vec<String> {
    let (pod_sc, container_sc) = ("object.spec.securityContext", "c.securityContext");
    let mut pod = Vec::new();
    let mut container = Vec::new();
    // Either level's profile may apply: CEL sees no namespace labels.
    for control in hardening.restricted.union(&hardening.baseline) {
        let satisfied = control.cel_satisfied(hardening, pod_sc, container_sc);
        pod.extend(satisfied.pod);
        container.extend(satisfied.container);
    }
    // Without a record, one is added for the skips alone.
    let mut all = vec![format!(
        "has(object.metadata.annotations) && {} in object.metadata.annotations",
        cel_string(RECORD_ANNOTATION)
    )];
    if !pod.is_empty() {
        all.push(format!("has({pod_sc}) && {}", pod.join(" && ")));
    }
    if !container.is_empty() {
        let each = format!("has({container_sc}) && {}", container.join(" && "));
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            all.push(format!(
                "(!has(object.spec.{list}) || object.spec.{list}.all(c, {each}))"
            ));
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_exemptions_and_the_configured_values() {
        let exemptions = Exemptions {
            usernames: ["system:serviceaccount:ci:deployer".to_owned()].into(),
            runtime_class_names: ["kata".to_owned()].into(),
            namespaces: ["say \"hi\"".to_owned()].into(),
        };
        let conditions = mutate_match_conditions(&HardeningSettings::default(), &exemptions);
        let names: Vec<&str> = conditions.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "not-an-exempt-namespace",
                "not-an-exempt-user",
                "not-an-exempt-runtime-class",
                "not-already-hardened"
            ]
        );
        assert_eq!(
            conditions[0].expression,
            r#"!(request.namespace in ["say \"hi\""])"#
        );
        let hardened = &conditions[3].expression;
        assert!(!hardened.contains("runAsGroup"), "{hardened}");
        let with_group = HardeningSettings {
            run_as_group: Some(1000),
            ..HardeningSettings::default()
        };
        let conditions = mutate_match_conditions(&with_group, &Exemptions::default());
        assert_eq!(conditions.len(), 1);
        assert!(
            conditions[0]
                .expression
                .contains("has(object.spec.securityContext.runAsGroup)"),
            "{}",
            conditions[0].expression
        );
    }
}
