//! Plan → RFC 6902 JSON Patch, rooted at any pointer, minimal and valid: a missing parent is
//! created by one `add` of the smallest enclosing object (merged when several changes need the
//! same parent), tokens are escaped, and arrays are only appended to with `-`.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use k8s_openapi::api::core::v1::{Container, EphemeralContainer, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::{Map, Value};

use super::plan::Edit;
use crate::workload::PodParts;

/// What the patch builder must know of the object it patches: which part of a path exists.
pub(crate) trait Presence {
    /// The index of the first token of `tokens` whose target is missing (or null), `None` when
    /// the whole path exists.
    fn missing_at(&self, tokens: &[&str]) -> Option<usize>;
}

impl Presence for Value {
    fn missing_at(&self, tokens: &[&str]) -> Option<usize> {
        let mut node = self;
        for (i, t) in tokens.iter().enumerate() {
            match child(node, t) {
                Some(next) => node = next,
                None => return Some(i),
            }
        }
        None
    }
}

/// A Pod's typed parts, and whether its JSON had a `metadata` (see [`crate::workload::TypedPod`]).
pub(crate) struct TypedPresence<'a> {
    pub(crate) parts: &'a PodParts,
    pub(crate) has_metadata: bool,
}

/// Presence read from the typed parts: an optional field is `None` exactly when the JSON had no
/// value or `null` there, which is what [`child`] calls missing. Below a security context or
/// other leaf-ward node, where types no longer say it cheaply, the node's own JSON is asked.
/// The planner edits the spec and the metadata only; any other path is reported missing.
impl Presence for TypedPresence<'_> {
    fn missing_at(&self, tokens: &[&str]) -> Option<usize> {
        let (first, rest) = tokens.split_first()?;
        let below = match *first {
            "spec" => spec_missing_at(&self.parts.spec, rest),
            "metadata" if self.has_metadata => metadata_missing_at(&self.parts.metadata, rest),
            _ => return Some(0),
        };
        below.map(|i| i + 1)
    }
}

/// `tokens[0]` names `node`: missing there when it is absent, else asked of its JSON below.
fn optional_missing_at<T: Serialize>(node: Option<&T>, tokens: &[&str]) -> Option<usize> {
    let Some(node) = node else { return Some(0) };
    if tokens.len() == 1 {
        return None;
    }
    json_missing_at(node, &tokens[1..]).map(|i| i + 1)
}

/// Any path below `node`, asked of its JSON (serializing k8s-openapi's types cannot fail).
fn json_missing_at<T: Serialize>(node: &T, tokens: &[&str]) -> Option<usize> {
    serde_json::to_value(node)
        .unwrap_or(Value::Null)
        .missing_at(tokens)
}

/// `tokens[0]` names a list of containers, `tokens[1]` an index into it.
fn list_missing_at<C>(
    list: Option<&[C]>,
    tokens: &[&str],
    item_missing_at: fn(&C, &[&str]) -> Option<usize>,
) -> Option<usize> {
    let Some(list) = list else { return Some(0) };
    // A path ending at the list: it exists.
    let index = tokens.get(1)?;
    let Some(item) = index.parse::<usize>().ok().and_then(|i| list.get(i)) else {
        return Some(1);
    };
    item_missing_at(item, &tokens[2..]).map(|i| i + 2)
}

fn spec_missing_at(spec: &PodSpec, tokens: &[&str]) -> Option<usize> {
    match *tokens.first()? {
        "securityContext" => optional_missing_at(spec.security_context.as_ref(), tokens),
        "volumes" => optional_missing_at(spec.volumes.as_ref(), tokens),
        // `containers` is required, so the typed spec reads an absent one as empty: an index into
        // it is then reported missing at the index. The planner only edits containers that exist.
        "containers" => list_missing_at(Some(&spec.containers), tokens, container_missing_at),
        "initContainers" => list_missing_at(
            spec.init_containers.as_deref(),
            tokens,
            container_missing_at,
        ),
        "ephemeralContainers" => list_missing_at(
            spec.ephemeral_containers.as_deref(),
            tokens,
            ephemeral_container_missing_at,
        ),
        _ => json_missing_at(spec, tokens),
    }
}

fn container_missing_at(container: &Container, tokens: &[&str]) -> Option<usize> {
    match *tokens.first()? {
        "securityContext" => optional_missing_at(container.security_context.as_ref(), tokens),
        "volumeMounts" => optional_missing_at(container.volume_mounts.as_ref(), tokens),
        _ => json_missing_at(container, tokens),
    }
}

fn ephemeral_container_missing_at(
    container: &EphemeralContainer,
    tokens: &[&str],
) -> Option<usize> {
    match *tokens.first()? {
        "securityContext" => optional_missing_at(container.security_context.as_ref(), tokens),
        "volumeMounts" => optional_missing_at(container.volume_mounts.as_ref(), tokens),
        _ => json_missing_at(container, tokens),
    }
}

fn metadata_missing_at(metadata: &ObjectMeta, tokens: &[&str]) -> Option<usize> {
    match *tokens.first()? {
        // Annotations are strings: nothing lies below one.
        "annotations" => match (&metadata.annotations, tokens.get(1)) {
            (None, _) => Some(0),
            (Some(_), None) => None,
            (Some(annotations), Some(key)) if annotations.contains_key(*key) => {
                (tokens.len() > 2).then_some(2)
            }
            (Some(_), Some(_)) => Some(1),
        },
        _ => json_missing_at(metadata, tokens),
    }
}

/// One edit at a full path from the object root.
#[derive(Debug, Clone)]
pub(crate) struct RootedEdit<'a> {
    pub(crate) path: Vec<&'a str>,
    pub(crate) edit: Edit,
}

fn child<'v>(v: &'v Value, token: &str) -> Option<&'v Value> {
    let found = match v {
        Value::Object(map) => map.get(token),
        Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    };
    found.filter(|v| !v.is_null())
}

/// `value` wrapped in objects keyed by `tokens`, innermost last.
fn nest(tokens: &[&str], value: Value) -> Value {
    tokens.iter().rev().fold(value, |inner, t| {
        let mut map = Map::new();
        map.insert((*t).to_owned(), inner);
        Value::Object(map)
    })
}

/// Merges `extra` into `base`: objects key by key, arrays by concatenation.
fn deep_merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                match b.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(e)) => b.extend(e),
        (b, e) => *b = e,
    }
}

fn pointer(tokens: &[&str]) -> PointerBuf {
    // Sized once (with room for an appended `/-`), where `PointerBuf::from_tokens` grows its
    // string a token at a time.
    let mut encoded = String::with_capacity(tokens.iter().map(|t| t.len() + 1).sum::<usize>() + 2);
    for t in tokens {
        encoded.push('/');
        // Field names, indices and container names never need RFC 6901's `~0` / `~1`;
        // `Token::new` is only asked for a token that does (an annotation key's `/`).
        if t.bytes().any(|b| b == b'/' || b == b'~') {
            encoded.push_str(Token::new(*t).encoded());
        } else {
            encoded.push_str(t);
        }
    }
    // Every token is encoded, so this parses; the fallback only keeps the function total.
    PointerBuf::parse(encoded)
        .unwrap_or_else(|_| PointerBuf::from_tokens(tokens.iter().map(|t| Token::new(*t))))
}

/// Builds the patch for `edits` against `object`, moving the edits' values into it.
pub(crate) fn build(object: &impl Presence, mut edits: Vec<RootedEdit<'_>>) -> Patch {
    // Adds that create a missing parent, keyed by their path, so later edits under the same
    // missing parent merge into them instead of adding beneath a parent that does not exist yet.
    let mut ops: Vec<PatchOperation> = Vec::with_capacity(edits.len());
    // Ordered, not hashed: comparing token slices stops at the first token that differs, where
    // SipHash read every byte of every token (5% of a typical review's instructions).
    let mut created: std::collections::BTreeMap<&[&str], usize> = std::collections::BTreeMap::new();
    for RootedEdit { path, edit } in &mut edits {
        let path: &Vec<&str> = path;
        let (tokens, value, append) = match std::mem::replace(edit, Edit::Remove) {
            Edit::Remove => {
                ops.push(PatchOperation::Remove(RemoveOperation {
                    path: pointer(path),
                }));
                continue;
            }
            Edit::Set(v) => (path.as_slice(), v, false),
            Edit::Append(v) => (path.as_slice(), v, true),
        };
        // The first token whose target is missing (or null).
        let missing_at = object.missing_at(tokens);
        match missing_at {
            None if append => {
                // "-" needs no escaping: it is the RFC 6901 "past the end" index.
                let mut p = pointer(tokens);
                p.push_back(Token::new("-"));
                ops.push(PatchOperation::Add(AddOperation { path: p, value }));
            }
            None => ops.push(PatchOperation::Replace(ReplaceOperation {
                path: pointer(tokens),
                value,
            })),
            Some(k) => {
                let leaf = if append {
                    Value::Array(vec![value])
                } else {
                    value
                };
                let add_path = &tokens[..=k];
                let add_value = nest(&tokens[k + 1..], leaf);
                match created.get(add_path) {
                    Some(&index) => {
                        if let PatchOperation::Add(op) = &mut ops[index] {
                            deep_merge(&mut op.value, add_value);
                        }
                    }
                    None => {
                        created.insert(add_path, ops.len());
                        ops.push(PatchOperation::Add(AddOperation {
                            path: pointer(add_path),
                            value: add_value,
                        }));
                    }
                }
            }
        }
    }
    Patch(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(object: &Value, patch: &Patch) -> Value {
        let mut out = object.clone();
        json_patch::patch(&mut out, &patch.0).expect("patch applies");
        out
    }

    #[test]
    fn pointers_escape_their_tokens_as_rfc_6901_says() {
        for tokens in [
            vec![],
            vec!["spec"],
            vec!["metadata", "annotations", "pod-hardener.io/record"],
            vec!["a~b", "~/", "", "0"],
        ] {
            assert_eq!(
                pointer(&tokens),
                PointerBuf::from_tokens(tokens.iter().map(|t| Token::new(*t))),
                "{tokens:?}"
            );
        }
        assert_eq!(
            pointer(&["metadata", "annotations", "a/b~c"]).as_str(),
            "/metadata/annotations/a~1b~0c"
        );
    }

    #[test]
    fn creates_a_missing_parent_once_and_merges_siblings() {
        let obj = json!({"spec": {"containers": [{"name": "a"}]}});
        let edits = vec![
            RootedEdit {
                path: vec![
                    "spec",
                    "containers",
                    "0",
                    "securityContext",
                    "allowPrivilegeEscalation",
                ],
                edit: Edit::Set(json!(false)),
            },
            RootedEdit {
                path: vec![
                    "spec",
                    "containers",
                    "0",
                    "securityContext",
                    "capabilities",
                    "drop",
                ],
                edit: Edit::Append(json!("ALL")),
            },
        ];
        let patch = build(&obj, edits.clone());
        assert_eq!(patch.0.len(), 1, "{patch:?}");
        assert_eq!(
            apply(&obj, &patch),
            json!({"spec": {"containers": [{"name": "a", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}})
        );
    }

    #[test]
    fn appends_to_existing_arrays_and_replaces_existing_values() {
        let obj = json!({"spec": {"volumes": [], "securityContext": {"runAsNonRoot": false}}});
        let edits = vec![
            RootedEdit {
                path: vec!["spec", "volumes"],
                edit: Edit::Append(json!({"name": "v"})),
            },
            RootedEdit {
                path: vec!["spec", "securityContext", "runAsNonRoot"],
                edit: Edit::Set(json!(true)),
            },
        ];
        let patch = build(&obj, edits.clone());
        let text = serde_json::to_string(&patch).unwrap();
        assert!(
            text.contains(r#""op":"add","path":"/spec/volumes/-""#),
            "{text}"
        );
        assert!(
            text.contains(r#""op":"replace","path":"/spec/securityContext/runAsNonRoot""#),
            "{text}"
        );
        assert_eq!(
            apply(&obj, &patch)["spec"]["volumes"],
            json!([{"name": "v"}])
        );
    }

    #[test]
    fn escapes_tokens_and_treats_null_as_missing() {
        let obj = json!({"metadata": {"annotations": null}});
        let edits = vec![RootedEdit {
            path: vec!["metadata", "annotations", "pod-hardener.io/hardened"],
            edit: Edit::Set(json!("x")),
        }];
        let patch = build(&obj, edits.clone());
        let text = serde_json::to_string(&patch).unwrap();
        assert!(text.contains(r#""path":"/metadata/annotations""#), "{text}");
        assert_eq!(
            apply(&obj, &patch)["metadata"]["annotations"]["pod-hardener.io/hardened"],
            "x"
        );
        let obj = json!({"metadata": {"annotations": {}}});
        let text = serde_json::to_string(&build(&obj, edits.clone())).unwrap();
        assert!(
            text.contains(r#""path":"/metadata/annotations/pod-hardener.io~1hardened""#),
            "{text}"
        );
    }

    /// Presence read from the typed parts is presence in the JSON, on every v1.37 PSA fixture,
    /// for every path the planner edits and some it never does (deeper, unknown, out of range).
    #[test]
    fn typed_presence_is_json_presence_on_every_fixture() {
        let context_paths: &[&[&str]] = &[
            &["securityContext"],
            &["securityContext", "runAsNonRoot"],
            &["securityContext", "runAsUser"],
            &["securityContext", "runAsGroup"],
            &["securityContext", "fsGroup"],
            &["securityContext", "privileged"],
            &["securityContext", "procMount"],
            &["securityContext", "allowPrivilegeEscalation"],
            &["securityContext", "readOnlyRootFilesystem"],
            &["securityContext", "seccompProfile"],
            &["securityContext", "seccompProfile", "type"],
            &["securityContext", "capabilities"],
            &["securityContext", "capabilities", "drop"],
            &["securityContext", "capabilities", "drop", "0"],
            &["securityContext", "capabilities", "add"],
            &["securityContext", "capabilities", "other"],
            &["securityContext", "windowsOptions", "hostProcess"],
            &["securityContext", "runAsUser", "below"],
            &["volumeMounts"],
            &["volumeMounts", "0", "mountPath"],
            &["image"],
        ];
        let mut checked = 0;
        for (path, fixture) in crate::admission::tests::v1_37_fixtures() {
            let parts = crate::workload::extract(crate::workload::WorkloadKind::Pod, &fixture)
                .expect("the fixture reads");
            let typed = TypedPresence {
                parts: &parts,
                has_metadata: fixture.get("metadata").is_some_and(|m| !m.is_null()),
            };
            let mut paths: Vec<Vec<&str>> = vec![
                vec!["metadata", "annotations"],
                vec!["metadata", "annotations", "pod-hardener.io/hardened"],
                vec!["spec", "volumes"],
                vec!["spec", "volumes", "0", "emptyDir"],
                vec!["status"],
            ];
            for p in context_paths.iter().filter(|p| p[0] == "securityContext") {
                paths.push(["spec"].iter().chain(p.iter()).copied().collect());
            }
            for list in ["containers", "initContainers", "ephemeralContainers"] {
                for index in ["0", "1", "7"] {
                    for p in context_paths {
                        paths.push(
                            ["spec", list, index]
                                .iter()
                                .chain(p.iter())
                                .copied()
                                .collect(),
                        );
                    }
                }
            }
            for tokens in &paths {
                assert_eq!(
                    typed.missing_at(tokens),
                    fixture.missing_at(tokens),
                    "{} {tokens:?}",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(checked > 100, "only {checked} fixtures");
    }
}
