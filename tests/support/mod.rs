//! Helpers shared by the server tests (`tests/server_http.rs`, `tests/server_tls.rs`): the sample
//! AdmissionReview, review builders, and reading an AdmissionReview answer.

// Each integration test is its own crate and uses only part of these helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use serde_json::Value;

use pod_hardener::pss::{self, LevelVersion};
use pod_hardener::workload::{self, WorkloadKind};

/// `examples/admission-review.json`, as shipped.
pub const EXAMPLE_REVIEW: &str = include_str!("../../examples/admission-review.json");

/// The uid of the sample review.
pub const EXAMPLE_UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

/// The sample review, parsed.
pub fn example_review() -> Value {
    serde_json::from_str(EXAMPLE_REVIEW).expect("examples/admission-review.json is JSON")
}

/// The sample review's `request.object` (an unhardened Pod).
pub fn example_pod() -> Value {
    example_review()["request"]["object"].clone()
}

/// A Pod review like the sample, with another uid, operation, object and old object.
pub fn pod_review(uid: &str, operation: &str, object: Value, old_object: Option<Value>) -> Value {
    let mut review = example_review();
    let request = &mut review["request"];
    request["uid"] = uid.into();
    request["operation"] = operation.into();
    request["object"] = object;
    request["oldObject"] = old_object.unwrap_or(Value::Null);
    review
}

/// The JSON Patch of an AdmissionReview `response`, decoded from base64.
pub fn decode_patch(response: &Value) -> json_patch::Patch {
    assert_eq!(response["patchType"], "JSONPatch", "response: {response}");
    let b64 = response["patch"]
        .as_str()
        .expect("patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("patch is valid base64");
    serde_json::from_slice(&bytes).expect("patch is a JSON Patch")
}

/// `object` with the response's patch applied.
pub fn apply_patch(object: &Value, response: &Value) -> Value {
    let patch = decode_patch(response);
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch.0).expect("the patch applies to the object");
    patched
}

/// The reasons a Pod fails `restricted:latest` (empty when it passes).
pub fn restricted_violations(pod: &Value) -> Vec<String> {
    let parts = workload::extract(WorkloadKind::Pod, pod).expect("a readable pod");
    pss::evaluate(
        &parts.metadata,
        &parts.spec,
        LevelVersion::restricted_latest(),
    )
    .into_iter()
    .map(|v| format!("{} ({})", v.reason, v.detail))
    .collect()
}

/// Parses an AdmissionReview answer and returns its `response`, checking the envelope.
pub fn response_of(body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "the answer is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{review}");
    assert_eq!(review["kind"], "AdmissionReview", "{review}");
    assert!(review["response"].is_object(), "{review}");
    review["response"].clone()
}
