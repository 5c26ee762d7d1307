//! AdmissionReview v1 on the wire, in and out.
//!
//! Our own types rather than kube-core's: the response's `patch` must be base64 as the API
//! server's Go decoder documents it (kube-core writes a JSON array of numbers, kube-rs issue
//! #1781), and a malformed review must still echo its `uid` when one can be read, which a single
//! typed parse cannot do.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::workload::TypedPod;

/// The only AdmissionReview version served.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Group, version and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupVersionKind {
    /// API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// Group, version and resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupVersionResource {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Resource (plural).
    #[serde(default)]
    pub resource: String,
}

/// The requesting user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserInfo {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// CREATE
    Create,
    /// UPDATE
    Update,
    /// DELETE
    Delete,
    /// CONNECT
    Connect,
}

impl Operation {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// The order the API server writes a request's fields in: Go's encoder follows the declaration
/// order of `admission/v1.AdmissionRequest`. Decoding is fastest in it (see `typed`): the kind,
/// resource and operation come before the object.
pub const REQUEST_FIELD_ORDER: [&str; 15] = [
    "uid",
    "kind",
    "resource",
    "subResource",
    "requestKind",
    "requestResource",
    "requestSubResource",
    "name",
    "namespace",
    "operation",
    "userInfo",
    "object",
    "oldObject",
    "dryRun",
    "options",
];

/// An AdmissionReview around `request` (a JSON object), its fields in [`REQUEST_FIELD_ORDER`]
/// (as the API server sends them; serde_json's own maps sort keys), for tests and benchmarks.
pub fn review_in_wire_order(request: &serde_json::Map<String, Value>) -> Vec<u8> {
    let mut out =
        format!(r#"{{"apiVersion":"{API_VERSION}","kind":"AdmissionReview","request":{{"#)
            .into_bytes();
    let mut first = true;
    let known = REQUEST_FIELD_ORDER
        .iter()
        .filter_map(|k| Some((*k, request.get(*k)?)));
    let others = request
        .iter()
        .filter(|(k, _)| !REQUEST_FIELD_ORDER.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v));
    for (key, value) in known.chain(others) {
        if !first {
            out.push(b',');
        }
        first = false;
        // Strings and JSON values: serialization cannot fail.
        let _ = serde_json::to_writer(&mut out, key);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, value);
    }
    out.extend_from_slice(b"}}");
    out
}

/// `request` of an AdmissionReview.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Echoed in the response.
    pub uid: String,
    /// The object's kind.
    pub kind: GroupVersionKind,
    /// The resource.
    pub resource: GroupVersionResource,
    /// The subresource, if any.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// Object name (empty with generateName).
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Operation.
    pub operation: Operation,
    /// Requesting user.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The new object (absent on DELETE), without the container fields no check reads
    /// (`object::SKIPPED_CONTAINER_FIELDS`). Derived decoding reads it as lean JSON; the fast
    /// way (`admission::typed`) reads a Pod create's into typed parts.
    #[serde(default, deserialize_with = "lean_object")]
    pub object: Option<ReviewObject>,
    /// The old object (UPDATE, DELETE), read the same way, as JSON.
    #[serde(default, deserialize_with = "super::object::deserialize")]
    pub old_object: Option<Value>,
    /// Whether the request is a dry run.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

impl AdmissionRequest {
    /// Whether the request creates a Pod (no subresource): the object `/mutate` hardens and
    /// `/validate` judges most, read straight into typed parts.
    pub(crate) fn creates_a_pod(&self) -> bool {
        is_pod_create(
            &self.kind,
            &self.resource,
            self.operation,
            self.sub_resource.as_deref(),
        )
    }
}

/// Whether a request of this kind, resource, operation and subresource creates a Pod.
pub(crate) fn is_pod_create(
    kind: &GroupVersionKind,
    resource: &GroupVersionResource,
    operation: Operation,
    sub_resource: Option<&str>,
) -> bool {
    kind.group.is_empty()
        && kind.kind == "Pod"
        && resource.group.is_empty()
        && resource.resource == "pods"
        && operation == Operation::Create
        && sub_resource.is_none()
}

/// The reviewed object, as decoding read it.
#[derive(Debug, Clone)]
pub enum ReviewObject {
    /// A Pod being created, read straight into its typed parts (see `admission::typed`).
    Pod(Box<TypedPod>),
    /// Any other object (and a Pod create that did not read typed), as lean JSON (see
    /// [`super::object`]).
    Json(Value),
}

impl ReviewObject {
    /// The object in JSON form: as read, or a typed Pod's parts (see [`TypedPod::to_json`]).
    pub fn to_json(&self) -> Cow<'_, Value> {
        match self {
            ReviewObject::Pod(pod) => Cow::Owned(pod.to_json()),
            ReviewObject::Json(json) => Cow::Borrowed(json),
        }
    }
}

/// An object read as lean JSON ([`super::object`]).
fn lean_object<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<ReviewObject>, D::Error> {
    Ok(super::object::deserialize(deserializer)?.map(ReviewObject::Json))
}

/// An AdmissionReview whose `request` reads as `R`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingReview<R> {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    request: Option<R>,
}

/// `status` of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// HTTP-like code: 403 for a policy denial, 400 for a bad request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// `Forbidden`, `BadRequest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Shown to the user.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `response` of an AdmissionReview.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Allowed or denied.
    pub allowed: bool,
    /// Why not, when denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Base64 of the JSON Patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` when there is a patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Audit annotations (the API server prefixes keys with the webhook name).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
    /// Warnings for the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The patch's longest string value as written in JSON (the record annotation, which is
    /// also an audit annotation): escaped once for both.
    #[serde(skip)]
    pub(crate) escaped: Option<super::wire::EscapedString>,
}

impl AdmissionResponse {
    /// An allowing response for `uid`.
    #[must_use]
    pub fn allow(uid: &str) -> Self {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed: true,
            ..Default::default()
        }
    }

    /// A policy denial (403 Forbidden) for `uid`.
    #[must_use]
    pub fn forbid(uid: &str, message: String) -> Self {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed: false,
            status: Some(Status {
                code: Some(403),
                reason: Some("Forbidden"),
                message,
            }),
            ..Default::default()
        }
    }

    /// A denial of a malformed request (400 BadRequest).
    #[must_use]
    pub fn bad_request(uid: &str, message: String) -> Self {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed: false,
            status: Some(Status {
                code: Some(400),
                reason: Some("BadRequest"),
                message,
            }),
            ..Default::default()
        }
    }

    /// Attaches a JSON Patch (nothing when it is empty).
    #[must_use]
    pub fn with_patch(mut self, patch: &json_patch::Patch) -> Self {
        if patch.0.is_empty() {
            return self;
        }
        // Buffers are sized up front: growing them is a large share of the allocator's work per
        // request.
        let mut bytes = Vec::with_capacity(1024);
        self.escaped = super::wire::write_patch(&mut bytes, patch);
        self.patch = Some(base64_simd::STANDARD.encode_to_string(&bytes));
        self.patch_type = Some("JSONPatch");
        self
    }

    /// The full AdmissionReview to send back (written by hand: see the `wire` module).
    #[must_use]
    pub fn into_review_json(self) -> Vec<u8> {
        let strings: usize = self
            .audit_annotations
            .values()
            .map(String::len)
            .sum::<usize>()
            + self.warnings.iter().map(String::len).sum::<usize>();
        let mut out =
            Vec::with_capacity(512 + self.patch.as_ref().map_or(0, String::len) + strings);
        super::wire::write_review(&mut out, API_VERSION, &self);
        out
    }
}

/// Why a body is not an AdmissionReview this webhook can decide. Each carries the request's uid
/// whenever it could be read, so the 400 answer echoes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("malformed AdmissionReview: {message}")]
    Malformed {
        /// The request's uid, if readable.
        uid: String,
        /// What serde_json said.
        message: String,
    },
    /// Another API version or kind.
    #[error(
        "expected apiVersion {API_VERSION} kind AdmissionReview, got apiVersion {api_version:?} kind {kind:?}"
    )]
    WrongType {
        /// The request's uid, if present.
        uid: String,
        /// The body's `apiVersion`.
        api_version: String,
        /// The body's `kind`.
        kind: String,
    },
    /// An AdmissionReview without a request.
    #[error("AdmissionReview has no request")]
    NoRequest,
}

impl DecodeError {
    /// The request's uid, empty when it could not be read.
    pub fn uid(&self) -> &str {
        match self {
            DecodeError::Malformed { uid, .. } | DecodeError::WrongType { uid, .. } => uid,
            DecodeError::NoRequest => "",
        }
    }

    /// The 400 answer: a well-formed AdmissionReview response that denies with the reason.
    #[must_use]
    pub fn into_response(self) -> AdmissionResponse {
        AdmissionResponse::bad_request(self.uid(), self.to_string())
    }
}

/// Decodes an AdmissionReview.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest, DecodeError> {
    // JSON is UTF-8 (RFC 8259 §8.1), and the API server sends nothing else. serde_json checks
    // only the strings it reads, so without this a stray byte in a field pod-hardener skips
    // would be accepted here while every other JSON reader of the same review refuses it.
    // Once checked, the text is read as `str`: serde_json's slice reader would check every
    // string it reads again (`from_utf8` was 2% of the server's CPU on a 3 KB review).
    let body = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => {
            return Err(DecodeError::Malformed {
                uid: readable_uid(body),
                message: format!("not UTF-8 (invalid byte at offset {})", e.valid_up_to()),
            });
        }
    };
    match decode_typed(body) {
        Some(req) => Ok(req),
        None => decode_lean(body),
    }
}

/// The fast way ([`super::typed`]): a Pod create's object straight into typed parts, any other
/// object into lean JSON. `None` whenever anything does not read as the derived decoding reads
/// it, for [`decode_lean`] to decide (and word) as it always has.
fn decode_typed(body: &str) -> Option<AdmissionRequest> {
    let review: IncomingReview<super::typed::InOrderRequest> = serde_json::from_str(body).ok()?;
    if review.kind.as_deref() != Some("AdmissionReview")
        || review.api_version.as_deref() != Some(API_VERSION)
    {
        return None;
    }
    review.request.map(|r| r.0)
}

/// The way every review decoded before [`decode_typed`]: the object as lean JSON.
fn decode_lean(body: &str) -> Result<AdmissionRequest, DecodeError> {
    let review: IncomingReview<AdmissionRequest> =
        serde_json::from_str(body).map_err(|e| DecodeError::Malformed {
            uid: readable_uid(body.as_bytes()),
            message: e.to_string(),
        })?;
    if review.kind.as_deref() != Some("AdmissionReview")
        || review.api_version.as_deref() != Some(API_VERSION)
    {
        return Err(DecodeError::WrongType {
            uid: review.request.map(|r| r.uid).unwrap_or_default(),
            api_version: review.api_version.unwrap_or_default(),
            kind: review.kind.unwrap_or_default(),
        });
    }
    review.request.ok_or(DecodeError::NoRequest)
}

/// The `request.uid` of a body that did not decode as a whole, if it is readable JSON.
fn readable_uid(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct UidOnly {
        request: UidRequest,
    }
    #[derive(Deserialize)]
    struct UidRequest {
        uid: String,
    }
    serde_json::from_slice::<UidOnly>(body)
        .map(|r| r.request.uid)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    #[test]
    fn echoes_the_uid_of_a_malformed_request_when_readable() {
        let body = json!({"apiVersion": API_VERSION, "kind": "AdmissionReview",
            "request": {"uid": "u-1", "operation": "EXPLODE"}});
        let err = decode(&serde_json::to_vec(&body).unwrap()).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed { .. }), "{err}");
        let rsp = err.into_response();
        assert_eq!(rsp.uid, "u-1");
        assert!(!rsp.allowed);
        assert_eq!(rsp.status.as_ref().unwrap().code, Some(400));
        let err = decode(b"{not json").unwrap_err();
        assert_eq!(err.uid(), "");
        let body = json!({"apiVersion": API_VERSION, "kind": "AdmissionReview"});
        let err = decode(&serde_json::to_vec(&body).unwrap()).unwrap_err();
        assert_eq!(err, DecodeError::NoRequest);
    }

    /// Found by the `admission_review` fuzz target: a non-UTF-8 byte inside a key of a field
    /// pod-hardener skips (`requestKind`) decoded, though no JSON reader accepts the body.
    #[test]
    fn refuses_a_body_that_is_not_utf8_even_in_a_skipped_field() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let review = json!({"apiVersion": API_VERSION, "kind": "AdmissionReview",
            "request": {"uid": "u-8", "kind": {"kind": "Pod", "version": "v1"},
                "resource": {"resource": "pods", "version": "v1"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE", "namespace": "ns", "object": pod}});
        let text = serde_json::to_string(&review).unwrap();
        assert!(decode(text.as_bytes()).is_ok(), "the valid body decodes");
        // The second letter of requestKind's first key.
        let key = "\"requestKind\":{\"";
        let at = text.find(key).unwrap() + key.len() + 1;
        let mut body = text.into_bytes();
        body[at] = 0xb1;
        assert!(serde_json::from_slice::<Value>(&body).is_err());
        let err = decode(&body).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        let rsp = err.into_response();
        assert_eq!(rsp.status.as_ref().unwrap().code, Some(400));
        assert!(!rsp.allowed);
    }

    #[test]
    fn reads_a_pod_create_typed_only_in_wire_order_and_whole() {
        let request = |spec: Value| {
            json!({"uid": "u", "kind": {"kind": "Pod", "version": "v1"},
                "resource": {"resource": "pods", "version": "v1"}, "operation": "CREATE",
                "object": {"metadata": {"name": "p"}, "spec": spec}})
        };
        let spec = json!({"containers": [{"name": "a", "image": "i"}]});
        let wire = review_in_wire_order(request(spec.clone()).as_object().unwrap());
        let sorted = serde_json::to_vec(&json!({"apiVersion": API_VERSION,
            "kind": "AdmissionReview", "request": request(spec)}))
        .unwrap();
        let malformed = review_in_wire_order(
            request(json!({"containers": [{"name": 1}]}))
                .as_object()
                .unwrap(),
        );
        for (body, typed) in [(wire, true), (sorted, false), (malformed, false)] {
            let req = decode(&body).unwrap();
            assert_eq!(
                matches!(req.object, Some(ReviewObject::Pod(_))),
                typed,
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn rejects_other_versions() {
        let body = json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
            "request": {"uid": "u-2", "kind": {"kind": "Pod"}, "resource": {"resource": "pods"}, "operation": "CREATE"}});
        let err = decode(&serde_json::to_vec(&body).unwrap()).unwrap_err();
        assert_eq!(
            err,
            DecodeError::WrongType {
                uid: "u-2".into(),
                api_version: "admission.k8s.io/v1beta1".into(),
                kind: "AdmissionReview".into()
            }
        );
        let rsp = err.into_response();
        assert_eq!(rsp.uid, "u-2");
        assert!(
            rsp.status
                .unwrap()
                .message
                .contains("admission.k8s.io/v1beta1")
        );
    }

    #[test]
    fn encodes_the_patch_as_base64_json_patch() {
        let patch: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/a", "value": 1}])).unwrap();
        let out: Value = serde_json::from_slice(
            &AdmissionResponse::allow("u")
                .with_patch(&patch)
                .into_review_json(),
        )
        .unwrap();
        assert_eq!(out["apiVersion"], API_VERSION);
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(out["response"]["patch"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            json!([{"op": "add", "path": "/a", "value": 1}])
        );
        let out: Value =
            serde_json::from_slice(&AdmissionResponse::allow("u").into_review_json()).unwrap();
        assert_eq!(out["response"], json!({"uid": "u", "allowed": true}));
    }
}
