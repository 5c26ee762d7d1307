//! Reading manifests: one or more YAML or JSON documents, multi-document YAML streams, and
//! `kind: List` objects, as `kubectl` and Helm produce them.

use serde::Deserialize;
use serde_json::Value;

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

/// Why the input could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The input is larger than [`MAX_INPUT_BYTES`].
    #[error("input is larger than {MAX_INPUT_BYTES} bytes")]
    TooLarge,
    /// A document is not valid YAML or JSON.
    #[error("document {index}: {message}")]
    Syntax {
        /// 0-based index of the document.
        index: usize,
        /// The parser's message, with line and column.
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

/// Parses every document of `input` (YAML, of which JSON is a subset) as it stands, skipping
/// empty documents. Each is paired with its 0-based index in the stream.
pub fn read_raw_documents(input: &[u8]) -> Result<Vec<(usize, Value)>, ReadError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(ReadError::TooLarge);
    }
    let mut out = Vec::new();
    for (index, de) in serde_yaml_ng::Deserializer::from_slice(input).enumerate() {
        let value = Value::deserialize(de).map_err(|e| ReadError::Syntax {
            index,
            message: e.to_string(),
        })?;
        match value {
            Value::Null => continue,
            Value::Object(_) => out.push((index, value)),
            other => {
                return Err(ReadError::NotAnObject {
                    index,
                    found: type_name(&other),
                });
            }
        }
    }
    Ok(out)
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
        let err = read_documents(b"kind: Pod\n---\nkind: [unclosed\n").unwrap_err();
        assert!(err.to_string().starts_with("document 1: "), "{err}");
        let err = read_documents(b"kind: Pod\n---\n- a\n- b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: expected a Kubernetes object (a mapping), found a sequence"
        );
    }
}
