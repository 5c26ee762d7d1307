//! The reviewed object, decoded without the fields that no Pod Security check and no hardening
//! control reads: a container's `env`, `envFrom`, `args`, `command` and `resources`,
//! `metadata.managedFields`, and a projected volume's `sources`.
//!
//! Why: they are most of a large Pod's bytes (a chart's containers with dozens of variables each;
//! server-side apply's field sets) and, as `serde_json::Value`s and then typed structs, most of its
//! allocations; skipped while parsing, they cost a scan and nothing else. Profiles of the load harness put decoding and typed
//! extraction at a quarter of a review's CPU time (README, Benchmarks).
//!
//! Safe because the webhook only ever answers with a JSON Patch of security fields, never with the
//! object: what is skipped can neither be judged nor lost. Container fields are dropped only
//! inside objects of a `containers`, `initContainers` or `ephemeralContainers` array, wherever
//! that array sits (a Pod's spec or a workload's template), `managedFields` only inside a
//! `metadata` object, and `sources` only inside the `projected` object of an item of a
//! `volumes` array (checks ask only which source a volume has, never what a projection holds;
//! decoding volumes, mostly the service account token volume every Pod gets, was 7% of the
//! server's CPU on the load harness's 3 KB `/validate` review);
//! everything else is kept as is.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Container fields that feed no check and no control.
pub const SKIPPED_CONTAINER_FIELDS: [&str; 5] = ["env", "envFrom", "args", "command", "resources"];
/// Metadata fields that feed no check and no control.
pub const SKIPPED_METADATA_FIELDS: [&str; 1] = ["managedFields"];
/// Fields of a volume's `projected` source that feed no check and no control.
pub const SKIPPED_PROJECTED_FIELDS: [&str; 1] = ["sources"];

/// Keys whose value is a list of containers.
const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Where in the object a value sits, as far as skipping is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Anywhere else: kept whole.
    Other,
    /// The value of a container-list key.
    ContainerList,
    /// One container of such a list: its skipped fields are dropped.
    Container,
    /// The value of a `metadata` key.
    Metadata,
    /// The value of a `volumes` key.
    VolumeList,
    /// One volume of such a list.
    Volume,
    /// The `projected` source of such a volume: its skipped fields are dropped.
    Projected,
}

impl Place {
    /// The fields dropped from an object in this place.
    fn skipped_fields(self) -> &'static [&'static str] {
        match self {
            Place::Container => &SKIPPED_CONTAINER_FIELDS,
            Place::Metadata => &SKIPPED_METADATA_FIELDS,
            Place::Projected => &SKIPPED_PROJECTED_FIELDS,
            Place::Other | Place::ContainerList | Place::VolumeList | Place::Volume => &[],
        }
    }
}

/// Deserializes an optional object, skipping the fields above.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    let value = Lean(Place::Other).deserialize(deserializer)?;
    Ok(match value {
        Value::Null => None,
        other => Some(other),
    })
}

/// A `serde_json::Value` seed that knows its place.
struct Lean(Place);

impl<'de> DeserializeSeed<'de> for Lean {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Lean {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so this is always a number; Null mirrors serde_json.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let element = match self.0 {
            Place::ContainerList => Place::Container,
            Place::VolumeList => Place::Volume,
            Place::Other
            | Place::Container
            | Place::Metadata
            | Place::Volume
            | Place::Projected => Place::Other,
        };
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(Lean(element))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.0.skipped_fields().contains(&key.as_str()) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let place = match (self.0, key.as_str()) {
                (_, k) if CONTAINER_LISTS.contains(&k) => Place::ContainerList,
                (_, "metadata") => Place::Metadata,
                (_, "volumes") => Place::VolumeList,
                (Place::Volume, "projected") => Place::Projected,
                _ => Place::Other,
            };
            let value = map.next_value_seed(Lean(place))?;
            // A duplicate key keeps the last value, as serde_json's Value does.
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lean(json: &str) -> Option<Value> {
        let mut de = serde_json::Deserializer::from_str(json);
        deserialize(&mut de).expect("valid JSON")
    }

    #[test]
    fn drops_only_the_skipped_fields_of_containers() {
        let pod = json!({
            "metadata": {"name": "p", "annotations": {"env": "kept", "command": "kept"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {
                "containers": [{"name": "a", "image": "i", "env": [{"name": "X", "value": "1"}],
                    "envFrom": [{"configMapRef": {"name": "c"}}], "args": ["-v"], "command": ["/a"],
                    "resources": {"limits": {"memory": "1Gi"}},
                    "securityContext": {"runAsNonRoot": true}}],
                "initContainers": [{"name": "b", "command": ["/b"], "ports": [{"hostPort": 80}]}],
                "ephemeralContainers": [{"name": "e", "args": ["x"], "targetContainerName": "a"}],
                "volumes": [{"name": "v", "csi": {"driver": "d", "volumeAttributes": {"env": "kept"}}}],
                "env": "kept outside containers",
                "managedFields": "kept outside metadata"
            }
        });
        let lean = lean(&pod.to_string()).expect("an object");
        let mut expected = pod.clone();
        expected["metadata"]
            .as_object_mut()
            .expect("object")
            .remove("managedFields");
        for (list, index, fields) in [
            (
                "containers",
                0,
                &["env", "envFrom", "args", "command", "resources"][..],
            ),
            ("initContainers", 0, &["command"][..]),
            ("ephemeralContainers", 0, &["args"][..]),
        ] {
            let container = expected["spec"][list][index]
                .as_object_mut()
                .expect("object");
            for f in fields {
                container.remove(*f);
            }
        }
        assert_eq!(lean, expected);
    }

    #[test]
    fn finds_containers_in_workload_templates() {
        let deployment = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "env": [], "securityContext": {}}]}}}});
        assert_eq!(
            lean(&deployment.to_string()).expect("an object"),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "securityContext": {}}]}}}})
        );
    }

    #[test]
    fn keeps_every_other_value_as_serde_json_reads_it() {
        for text in [
            r#"{"a": [1, -2, 3.5, 1e300, true, false, null, "s\u00e9", {"b": []}], "c": {}}"#,
            r#"{"containers": "not a list", "x": {"containers": [1, "two", null]}}"#,
            r#"{"k": 1, "k": 2}"#,
            "null",
        ] {
            let via_value: Value = serde_json::from_str(text).expect("valid JSON");
            let lean = lean(text).unwrap_or(Value::Null);
            assert_eq!(lean, via_value, "{text}");
        }
    }
}
