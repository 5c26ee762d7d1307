//! Plan → RFC 6902 JSON Patch, rooted at any pointer, minimal and valid: a missing parent is
//! created by one `add` of the smallest enclosing object (merged when several changes need the
//! same parent), tokens are escaped, and arrays are only appended to with `-`.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::{Map, Value};

use super::plan::Edit;

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
    PointerBuf::from_tokens(tokens.iter().map(|t| Token::new(*t)))
}

/// Builds the patch for `edits` against `object`, moving the edits' values into it.
pub(crate) fn build(object: &Value, mut edits: Vec<RootedEdit<'_>>) -> Patch {
    // Adds that create a missing parent, keyed by their path, so later edits under the same
    // missing parent merge into them instead of adding beneath a parent that does not exist yet.
    let mut ops: Vec<PatchOperation> = Vec::new();
    let mut created: std::collections::HashMap<&[&str], usize> = std::collections::HashMap::new();
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
        let mut node = Some(object);
        let mut missing_at = None;
        for (i, t) in tokens.iter().enumerate() {
            node = node.and_then(|n| child(n, t));
            if node.is_none() {
                missing_at = Some(i);
                break;
            }
        }
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
                    Some(index) => {
                        if let PatchOperation::Add(op) = &mut ops[*index] {
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
}
