//! The `pod-hardener.io/skip` annotation: controls a workload opts out of, pod-wide or per
//! container.
//!
//! Syntax: a comma-separated list of entries. `CONTROL` skips a control for the whole pod;
//! `CONTAINER/CONTROL` skips a container-level control for one container; `all` (or
//! `CONTAINER/all`) skips every control. Whitespace around entries is ignored. Example:
//! `pod-hardener.io/skip: "readOnlyRootFilesystem, nginx/capabilities"`.

use std::collections::{BTreeMap, BTreeSet};

use super::control::Control;

/// The annotation key.
pub const SKIP_ANNOTATION: &str = "pod-hardener.io/skip";

/// The parsed opt-outs of one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptOuts {
    pod_wide: BTreeSet<Control>,
    per_container: BTreeMap<String, BTreeSet<Control>>,
    /// Entries that could not be understood, reported back to the user as warnings.
    pub errors: Vec<String>,
}

impl OptOuts {
    /// Parses the annotation value.
    pub fn parse(value: &str) -> Self {
        let mut out = OptOuts::default();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (container, name) = match entry.split_once('/') {
                Some((c, n)) => (Some(c.trim()), n.trim()),
                None => (None, entry),
            };
            let controls: Vec<Control> = if name == "all" {
                Control::ALL.to_vec()
            } else {
                match name.parse::<Control>() {
                    Ok(c) => vec![c],
                    Err(e) => {
                        out.errors
                            .push(format!("{SKIP_ANNOTATION}: entry {entry:?}: {e}"));
                        continue;
                    }
                }
            };
            match container {
                None => out.pod_wide.extend(controls),
                Some("") => out.errors.push(format!(
                    "{SKIP_ANNOTATION}: entry {entry:?} has an empty container name"
                )),
                Some(c) => {
                    if let Some(pod_level) = controls
                        .iter()
                        .find(|c| c.is_pod_level())
                        .filter(|_| name != "all")
                    {
                        out.errors.push(format!(
                            "{SKIP_ANNOTATION}: entry {entry:?}: {pod_level} is a pod-level control and can only be skipped for the whole pod"
                        ));
                        continue;
                    }
                    let set = out.per_container.entry(c.to_owned()).or_default();
                    set.extend(controls.into_iter().filter(|c| !c.is_pod_level()));
                }
            }
        }
        out
    }

    /// Reads the opt-outs from a pod's annotations.
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Self {
        annotations
            .and_then(|a| a.get(SKIP_ANNOTATION))
            .map(|v| OptOuts::parse(v))
            .unwrap_or_default()
    }

    /// Adds pod-wide opt-outs (the CLI's `--skip`).
    pub fn add_pod_wide(&mut self, controls: impl IntoIterator<Item = Control>) {
        self.pod_wide.extend(controls);
    }

    /// Whether `control` is skipped for the whole pod.
    pub fn skips_pod(&self, control: Control) -> bool {
        self.pod_wide.contains(&control)
    }

    /// Whether `control` is skipped for `container` (pod-wide opt-outs included).
    pub fn skips_container(&self, container: &str, control: Control) -> bool {
        self.skips_pod(control)
            || self
                .per_container
                .get(container)
                .is_some_and(|s| s.contains(&control))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pod_wide_and_per_container_entries() {
        let o = OptOuts::parse(" readOnlyRootFilesystem , nginx/capabilities,debug/all");
        assert!(o.skips_pod(Control::ReadOnlyRootFilesystem));
        assert!(o.skips_container("app", Control::ReadOnlyRootFilesystem));
        assert!(o.skips_container("nginx", Control::Capabilities));
        assert!(!o.skips_container("app", Control::Capabilities));
        assert!(o.skips_container("debug", Control::AllowPrivilegeEscalation));
        assert!(
            !o.skips_pod(Control::RunAsNonRoot),
            "a container's `all` never reaches pod-level controls"
        );
        assert!(o.errors.is_empty());
    }

    #[test]
    fn reports_entries_it_cannot_apply() {
        let o = OptOuts::parse("readonlyroot, app/runAsNonRoot, /capabilities");
        assert_eq!(o.errors.len(), 3, "{:?}", o.errors);
        assert!(o.errors[0].contains("unknown control \"readonlyroot\""));
        assert!(o.errors[1].contains("pod-level control"));
        assert!(!o.skips_pod(Control::RunAsNonRoot));
    }
}
