//! Reading manifests: one or more YAML or JSON documents, multi-document YAML streams, and
//! `kind: List` objects, read as kubectl and Helm read them ([`crate::yaml`]: go-yaml v2's
//! YAML 1.1 resolution, so `defaultMode: 0755` is 493 and `value: no` is `false`).

use std::ops::Range;

use serde_json::Value;

use crate::yaml::{self, Tree};

/// The largest manifest input accepted, so a runaway pipe cannot exhaust memory.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

/// One object read from the input, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 0-based index of the document in the stream.
    pub index: usize,
    /// For an item of a `kind: List`, its index in `items`.
    pub list_item: Option<usize>,
    /// The object.
    pub object: Value,
}

/// One document of a stream as written: its JSON, its key order and where its text is.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDocument {
    /// 0-based index of the document in the stream (empty documents count).
    pub index: usize,
    /// The object, as the API server would receive it from kubectl or Helm.
    pub object: Value,
    /// The same content in document order, to write a changed object back in that order.
    pub tree: Tree,
    /// The bytes of the input holding the object (see [`yaml::ParsedDocument::content`]).
    pub content: Range<usize>,
}

/// Why the input could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The input is larger than [`MAX_INPUT_BYTES`].
    #[error("input is larger than {MAX_INPUT_BYTES} bytes")]
    TooLarge,
    /// The input is not UTF-8 text.
    #[error("document {index}: not UTF-8 text (at byte {byte})")]
    NotUtf8 {
        /// 0-based index of the document holding the first invalid byte.
        index: usize,
        /// Offset of that byte in the input.
        byte: usize,
    },
    /// A document is not valid YAML, or has a value that has no JSON form.
    #[error(transparent)]
    Yaml(#[from] yaml::YamlError),
    /// A value that Kubernetes' tools would not send as JSON (NaN, an integer beyond 64 bits).
    #[error("document {index}: {path}: {message}")]
    Value {
        /// 0-based index of the document.
        index: usize,
        /// Where in the document.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A document is not a mapping (an object).
    #[error("document {index}: expected a Kubernetes object (a mapping), found {found}")]
    NotAnObject {
        /// 0-based index of the document.
        index: usize,
        /// What was found instead.
        found: &'static str,
    },
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// The input as text, or which document holds the first byte that is not UTF-8.
pub fn input_text(input: &[u8]) -> Result<&str, ReadError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(ReadError::TooLarge);
    }
    std::str::from_utf8(input).map_err(|e| {
        let byte = e.valid_up_to();
        let before = String::from_utf8_lossy(&input[..byte]);
        let index = before.lines().filter(|l| l.trim_end() == "---").count();
        ReadError::NotUtf8 { index, byte }
    })
}

/// Parses every non-empty document of `text` (YAML, of which JSON is a subset), with its
/// position, as it stands.
pub fn read_source_documents(text: &str) -> Result<Vec<SourceDocument>, ReadError> {
    let mut out = Vec::new();
    for parsed in yaml::parse_stream(text)? {
        let object = parsed.tree.to_json().map_err(|e| ReadError::Value {
            index: parsed.index,
            path: e.path,
            message: e.message,
        })?;
        match object {
            Value::Null => continue,
            Value::Object(_) => out.push(SourceDocument {
                index: parsed.index,
                object,
                tree: parsed.tree,
                content: parsed.content,
            }),
            other => {
                return Err(ReadError::NotAnObject {
                    index: parsed.index,
                    found: type_name(&other),
                });
            }
        }
    }
    Ok(out)
}

/// Parses every document of `input` as it stands, skipping empty documents. Each is paired with
/// its 0-based index in the stream.
pub fn read_raw_documents(input: &[u8]) -> Result<Vec<(usize, Value)>, ReadError> {
    Ok(read_source_documents(input_text(input)?)?
        .into_iter()
        .map(|d| (d.index, d.object))
        .collect())
}

/// Parses every document of `input`, expanding `kind: List` objects into their items.
pub fn read_documents(input: &[u8]) -> Result<Vec<Document>, ReadError> {
    let mut out = Vec::new();
    for (index, value) in read_raw_documents(input)? {
        if !is_list(&value) {
            out.push(Document {
                index,
                list_item: None,
                object: value,
            });
            continue;
        }
        let items = match value {
            Value::Object(mut map) => map.remove("items"),
            _ => None,
        };
        let Some(Value::Array(items)) = items else {
            continue;
        };
        for (i, object) in items.into_iter().enumerate() {
            if !object.is_object() {
                return Err(ReadError::NotAnObject {
                    index,
                    found: type_name(&object),
                });
            }
            out.push(Document {
                index,
                list_item: Some(i),
                object,
            });
        }
    }
    Ok(out)
}

/// Whether `v` is a `kind: List` (or `*List`) object with an `items` array.
pub fn is_list(v: &Value) -> bool {
    v.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k == "List" || k.ends_with("List"))
        && v.get("items").is_some_and(Value::is_array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_multi_document_yaml_json_and_lists() {
        let input = br#"
apiVersion: v1
kind: Pod
metadata: {name: a}
---
---
{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}}
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: c}}
- {apiVersion: v1, kind: Pod, metadata: {name: d}}
"#;
        let docs = read_documents(input).unwrap();
        let names: Vec<_> = docs
            .iter()
            .map(|d| d.object["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(docs[3].index, 3);
        assert_eq!(docs[3].list_item, Some(1));
    }

    #[test]
    fn names_the_bad_document() {
        for (input, expected) in [
            (
                &b"kind: Pod\n---\nkind: [unclosed\n"[..],
                "document 1: line 4 column 1: ",
            ),
            (
                b"kind: Pod\n---\n- a\n- b\n",
                "document 1: expected a Kubernetes object (a mapping), found a sequence",
            ),
            (
                b"kind: Pod\n---\na: \xff\n",
                "document 1: not UTF-8 text (at byte 17)",
            ),
            (
                b"kind: Pod\nspec:\n  x: !!int abc\n",
                "document 0: line 3: spec.x: cannot decode !!str `abc` as a !!int",
            ),
            (
                b"kind: Pod\nspec:\n  x: [1, .nan]\n",
                "document 0: spec.x[1]: unsupported value: .nan",
            ),
            (
                b"kind: Pod\n~: 1\n",
                "document 0: line 2: (root): unsupported map key: null",
            ),
        ] {
            let err = read_documents(input).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    #[test]
    fn reads_scalars_as_kubectl_does() {
        let docs = read_documents(
            b"kind: Pod\nspec:\n  volumes: [{name: v, configMap: {name: c, defaultMode: 0755}}]\n  \
              env: [{name: X, value: no}, {name: Y, value: \"no\"}]\n",
        )
        .unwrap();
        let spec = &docs[0].object["spec"];
        assert_eq!(spec["volumes"][0]["configMap"]["defaultMode"], 493);
        assert_eq!(spec["env"][0]["value"], false);
        assert_eq!(spec["env"][1]["value"], "no");
    }
}
