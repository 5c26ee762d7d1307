//! The fast decoding of a request ([`InOrderRequest`]): a Pod being created is read straight
//! from the review's bytes into its typed parts, without the fields no check and no control
//! reads (the same as [`super::object`] drops).
//!
//! Why: the JSON tree [`super::object`] builds is read once, into k8s-openapi's `PodSpec` and
//! `ObjectMeta`, and freed; building and freeing it was a third of a 3 KB review's decoding. This
//! path is only ever an optimization: whenever it fails, the caller decodes the review the old way
//! ([`super::review::decode`]), so a review it cannot read is answered exactly as before, error
//! message included. When it succeeds it reads what the old way reads: serde reads the same JSON
//! into the same types (the last of duplicate keys wins in both), and the dropped fields are the
//! same ones, matched here by the struct serde is filling (`Container`, `EphemeralContainer`,
//! `ObjectMeta`, `ProjectedVolumeSource`) where the old way matches them by the key above
//! (`containers`, ..., `metadata`, a `volumes` item's `projected`), which in a PodSpec and its
//! metadata are the same places.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, forward_to_deserialize_any};

use super::object::{SKIPPED_CONTAINER_FIELDS, SKIPPED_METADATA_FIELDS, SKIPPED_PROJECTED_FIELDS};
use super::review::{
    AdmissionRequest, GroupVersionKind, GroupVersionResource, ReviewObject, is_pod_create,
};
use crate::workload::{PodParts, TypedPod};

/// A Pod object's parts as serde reads them (other fields, `status` included, ignored).
#[derive(Deserialize)]
struct PodFields {
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    #[serde(default)]
    spec: Option<PodSpec>,
}

impl PodFields {
    /// The typed Pod; `None` without a spec (the old way then says so).
    fn into_typed(self) -> Option<TypedPod> {
        Some(TypedPod {
            has_metadata: self.metadata.is_some(),
            parts: PodParts {
                metadata: self.metadata.unwrap_or_default(),
                spec: self.spec?,
            },
        })
    }
}

/// Reads a Pod object's JSON into its typed parts; `None` when it does not read.
#[cfg(test)]
fn read_pod(json: &str) -> Option<TypedPod> {
    let mut de = serde_json::Deserializer::from_str(json);
    let fields = PodFields::deserialize(Lean(&mut de)).ok()?;
    de.end().ok()?;
    fields.into_typed()
}

/// An AdmissionReview's `request`, read in the order the API server writes it: Go's encoder
/// writes struct fields in declaration order, so the kind, resource, operation (and a
/// subresource, when there is one) come before the object, and a Pod create's object can go
/// straight into typed parts; any other object, or one that comes before what decides, is read
/// as lean JSON. Anything the derived decoding ([`AdmissionRequest`]'s `Deserialize`) would
/// read differently is an error instead (a duplicate or missing field, a subresource after a
/// typed object, a Pod without a spec), for the caller to take the old way.
pub(crate) struct InOrderRequest(pub(crate) AdmissionRequest);

impl<'de> Deserialize<'de> for InOrderRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RequestVisitor)
    }
}

struct RequestVisitor;

/// Sets a field once, as derived decoding does.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

/// A lean JSON value ([`super::object`]), as a seed.
struct LeanJson;

impl<'de> DeserializeSeed<'de> for LeanJson {
    type Value = Option<serde_json::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        super::object::deserialize(deserializer)
    }
}

/// A Pod's typed parts without the dropped fields, as a seed.
struct LeanPod;

impl<'de> DeserializeSeed<'de> for LeanPod {
    type Value = Option<PodFields>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Option::<PodFields>::deserialize(Lean(deserializer))
    }
}

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = InOrderRequest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionRequest")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InOrderRequest, A::Error> {
        let mut uid = None;
        let mut kind: Option<GroupVersionKind> = None;
        let mut resource: Option<GroupVersionResource> = None;
        let mut sub_resource: Option<Option<String>> = None;
        let mut name = None;
        let mut namespace = None;
        let mut operation = None;
        let mut user_info = None;
        let mut object: Option<Option<ReviewObject>> = None;
        let mut old_object = None;
        let mut dry_run = None;
        let mut typed = false;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "uid" => once(&mut uid, map.next_value()?, "uid")?,
                "kind" => once(&mut kind, map.next_value()?, "kind")?,
                "resource" => once(&mut resource, map.next_value()?, "resource")?,
                "subResource" => once(&mut sub_resource, map.next_value()?, "subResource")?,
                "name" => once(&mut name, map.next_value()?, "name")?,
                "namespace" => once(&mut namespace, map.next_value()?, "namespace")?,
                "operation" => once(&mut operation, map.next_value()?, "operation")?,
                "userInfo" => once(&mut user_info, map.next_value()?, "userInfo")?,
                "oldObject" => once(&mut old_object, map.next_value_seed(LeanJson)?, "oldObject")?,
                "dryRun" => once(&mut dry_run, map.next_value()?, "dryRun")?,
                "object" => {
                    typed = match (&kind, &resource, operation) {
                        (Some(kind), Some(resource), Some(operation)) => is_pod_create(
                            kind,
                            resource,
                            operation,
                            sub_resource.as_ref().and_then(Option::as_deref),
                        ),
                        _ => false,
                    };
                    let value = if typed {
                        match map.next_value_seed(LeanPod)? {
                            None => None,
                            Some(fields) => Some(ReviewObject::Pod(Box::new(
                                fields
                                    .into_typed()
                                    .ok_or_else(|| de::Error::missing_field("spec"))?,
                            ))),
                        }
                    } else {
                        map.next_value_seed(LeanJson)?.map(ReviewObject::Json)
                    };
                    once(&mut object, value, "object")?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let req = AdmissionRequest {
            uid: uid.ok_or_else(|| de::Error::missing_field("uid"))?,
            kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
            resource: resource.ok_or_else(|| de::Error::missing_field("resource"))?,
            sub_resource: sub_resource.flatten(),
            name: name.flatten(),
            namespace: namespace.flatten(),
            operation: operation.ok_or_else(|| de::Error::missing_field("operation"))?,
            user_info: user_info.unwrap_or_default(),
            object: object.flatten(),
            old_object: old_object.flatten(),
            dry_run: dry_run.flatten(),
        };
        if typed && !req.creates_a_pod() {
            return Err(de::Error::custom("a subresource after a typed object"));
        }
        Ok(InOrderRequest(req))
    }
}

/// The fields dropped from the struct serde is filling, by its name.
fn skipped_fields(struct_name: &str) -> &'static [&'static str] {
    match struct_name {
        "Container" | "EphemeralContainer" => &SKIPPED_CONTAINER_FIELDS,
        "ObjectMeta" => &SKIPPED_METADATA_FIELDS,
        "ProjectedVolumeSource" => &SKIPPED_PROJECTED_FIELDS,
        _ => &[],
    }
}

/// A deserializer that hands every value below it to its visitor through [`LeanVisitor`], so
/// the structs named in [`skipped_fields`] never see their dropped fields.
struct Lean<D>(D);

/// A seed deserialized through [`Lean`].
struct LeanSeed<S>(S);

/// A visitor whose maps and sequences are read through [`Lean`]; `skip` names the keys a map
/// drops.
struct LeanVisitor<V> {
    visitor: V,
    skip: &'static [&'static str],
}

impl<V> LeanVisitor<V> {
    fn new(visitor: V) -> Self {
        LeanVisitor { visitor, skip: &[] }
    }
}

struct LeanMap<A> {
    map: A,
    skip: &'static [&'static str],
}

struct LeanSeq<A>(A);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for LeanSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Lean(deserializer))
    }
}

/// `Deserializer` methods that hand the visitor on wrapped in [`LeanVisitor`].
macro_rules! forward_through_lean {
    ($($method:ident $(($($arg:ident: $ty:ty),*))?)*) => {
        $(
            fn $method<V: Visitor<'de>>(
                self,
                $($($arg: $ty,)*)?
                visitor: V,
            ) -> Result<V::Value, D::Error> {
                self.0.$method($($($arg,)*)? LeanVisitor::new(visitor))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Lean<D> {
    type Error = D::Error;

    forward_through_lean! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    forward_through_lean! {
        deserialize_unit_struct(name: &'static str)
        deserialize_newtype_struct(name: &'static str)
        deserialize_tuple(len: usize)
        deserialize_tuple_struct(name: &'static str, len: usize)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = LeanVisitor {
            visitor,
            skip: skipped_fields(name),
        };
        self.0.deserialize_struct(name, fields, visitor)
    }

    forward_through_lean! {
        deserialize_enum(name: &'static str, variants: &'static [&'static str])
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visits {
    ($($method:ident($ty:ty))*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.visitor.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for LeanVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visits! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64)
        visit_i128(i128) visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64)
        visit_u128(u128) visit_f32(f32) visit_f64(f64) visit_char(char) visit_str(&str)
        visit_borrowed_str(&'de str) visit_string(String) visit_bytes(&[u8])
        visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_some(Lean(deserializer))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.visitor.visit_newtype_struct(Lean(deserializer))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_seq(LeanSeq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(LeanMap {
            map,
            skip: self.skip,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        // No type of a PodSpec or ObjectMeta reads an enum from JSON: nothing below one to skip.
        self.visitor.visit_enum(data)
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for LeanSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(LeanSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for LeanMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if self.skip.is_empty() {
            return self.map.next_key_seed(LeanSeed(seed));
        }
        // Read the key first, to drop it and its value unseen.
        while let Some(Key(key)) = self.map.next_key::<Key<'de>>()? {
            if self.skip.contains(&key.as_ref()) {
                self.map.next_value::<IgnoredAny>()?;
                continue;
            }
            return seed
                .deserialize(KeyDeserializer::<A::Error>::new(key))
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.map.next_value_seed(LeanSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Hands a key already read to the struct's field visitor.
struct KeyDeserializer<'de, E> {
    key: Cow<'de, str>,
    error: std::marker::PhantomData<E>,
}

impl<'de, E> KeyDeserializer<'de, E> {
    fn new(key: Cow<'de, str>) -> Self {
        KeyDeserializer {
            key,
            error: std::marker::PhantomData,
        }
    }
}

impl<'de, E: de::Error> Deserializer<'de> for KeyDeserializer<'de, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.key {
            Cow::Borrowed(key) => visitor.visit_borrowed_str(key),
            Cow::Owned(key) => visitor.visit_string(key),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_parts_without_the_dropped_fields() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {"env": "kept"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"containers": [{"name": "a", "image": "i", "env": [{"name": "X"}],
                    "envFrom": "not even a list", "args": ["-v"], "command": ["/a"],
                    "resources": {"limits": {"memory": "1Gi"}},
                    "securityContext": {"runAsNonRoot": true}}],
                "ephemeralContainers": [{"name": "e", "command": 7}],
                "volumes": [{"name": "v", "ephemeral": {"volumeClaimTemplate": {
                    "metadata": {"managedFields": "dropped too"}, "spec": {}}}},
                    {"name": "token", "projected": {"defaultMode": 420,
                        "sources": "not even a list"}},
                    {"name": "cm", "configMap": {"name": "c", "items": [
                        {"key": "k", "path": "p"}]}}]},
            "status": {"phase": "Pending"}});
        let typed = read_pod(&pod.to_string()).expect("reads");
        assert!(typed.has_metadata);
        let c = &typed.parts.spec.containers[0];
        assert_eq!((c.name.as_str(), c.image.as_deref()), ("a", Some("i")));
        assert_eq!(
            (&c.env, &c.env_from, &c.args, &c.command, &c.resources),
            (&None, &None, &None, &None, &None)
        );
        assert_eq!(
            c.security_context.as_ref().and_then(|s| s.run_as_non_root),
            Some(true)
        );
        assert_eq!(typed.parts.metadata.managed_fields, None);
        assert_eq!(
            typed.parts.metadata.annotations.expect("kept")["env"],
            "kept"
        );
        let volumes = typed.parts.spec.volumes.expect("kept");
        let projected = volumes[1].projected.as_ref().expect("the source is kept");
        assert_eq!(
            (projected.default_mode, &projected.sources),
            (Some(420), &None)
        );
        let config_map = volumes[2].config_map.as_ref().expect("kept");
        assert_eq!(config_map.items.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn declines_what_the_old_way_must_answer() {
        for (object, why) in [
            (json!({"metadata": {"name": "p"}}), "no spec"),
            (json!({"spec": null}), "a null spec"),
            (json!({"spec": {"containers": "x"}}), "a malformed spec"),
            (
                json!({"spec": {}, "metadata": {"labels": []}}),
                "malformed metadata",
            ),
        ] {
            assert!(read_pod(&object.to_string()).is_none(), "{why}");
        }
        let typed = read_pod(r#"{"spec": {}, "metadata": null}"#).expect("reads");
        assert!(!typed.has_metadata);
    }
}
