//! AdmissionReview v1 on the wire, in and out.
//!
//! Our own types rather than kube-core's: the response's `patch` must be base64 as the API
//! server's Go decoder documents it (kube-core writes a JSON array of numbers, kube-rs issue
//! #1781), and a malformed review must still echo its `uid` when one can be read, which a single
//! typed parse cannot do.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// (`object::SKIPPED_CONTAINER_FIELDS`).
    #[serde(default, deserialize_with = "super::object::deserialize")]
    pub object: Option<Value>,
    /// The old object (UPDATE, DELETE), read the same way.
    #[serde(default, deserialize_with = "super::object::deserialize")]
    pub old_object: Option<Value>,
    /// Whether the request is a dry run.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingReview {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    request: Option<AdmissionRequest>,
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
        // Serializing a patch of JSON values cannot fail. Buffers are sized up front: growing
        // them is a large share of the allocator's work per request.
        let mut bytes = Vec::with_capacity(1024);
        let _ = serde_json::to_writer(&mut bytes, patch);
        let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
        base64::engine::general_purpose::STANDARD.encode_string(&bytes, &mut encoded);
        self.patch = Some(encoded);
        self.patch_type = Some("JSONPatch");
        self
    }

    /// The full AdmissionReview to send back.
    #[must_use]
    pub fn into_review_json(mut self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct OutgoingReview {
            api_version: &'static str,
            kind: &'static str,
            response: AdmissionResponse,
        }
        // The patch is spliced in after the rest is serialized: base64 never needs JSON
        // escaping, and serde_json's escaping scan over kilobytes of it was a tenth of a
        // review's CPU time.
        let patch = self.patch.take();
        let patch_type = self.patch_type.take().unwrap_or("JSONPatch");
        let mut out = Vec::with_capacity(512 + patch.as_ref().map_or(0, String::len));
        let review = OutgoingReview {
            api_version: API_VERSION,
            kind: "AdmissionReview",
            response: self,
        };
        // Strings, maps and booleans only: serialization cannot fail, and compact JSON of two
        // nested structs always ends with the two closing braces the splice replaces.
        let _ = serde_json::to_writer(&mut out, &review);
        if let Some(patch) = patch
            && let Some(body_end) = out.len().checked_sub(2)
        {
            out.truncate(body_end);
            out.extend_from_slice(b",\"patch\":\"");
            out.extend_from_slice(patch.as_bytes());
            out.extend_from_slice(b"\",\"patchType\":\"");
            out.extend_from_slice(patch_type.as_bytes());
            out.extend_from_slice(b"\"}}");
        }
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
    let review: IncomingReview =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed {
            uid: readable_uid(body),
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
