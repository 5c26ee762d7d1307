//! Raw bytes → the AdmissionReview handler's decisions: never a panic; a decoded review always
//! gets an answer with its uid; a patch always applies to the object it was computed for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pod_hardener::admission::{self, AdmissionSettings};
use pod_hardener::policy::{DefaultPolicy, NamespacePolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = admission::decode(data) else { return };
    let defaults = DefaultPolicy::default().parse().expect("default policy parses");
    let policy = NamespacePolicy::defaults(&defaults);
    let settings = AdmissionSettings::default();
    let mutated = admission::mutate::mutate(&req, &policy, &settings);
    assert_eq!(mutated.response.uid, req.uid);
    if let (Some(patch), Some(_)) = (&mutated.response.patch, &req.object) {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD.decode(patch).expect("patch is base64");
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("patch is JSON Patch");
        // The object as sent, whether decoding read it typed or as lean JSON.
        let review: serde_json::Value = serde_json::from_slice(data).expect("a decoded review is JSON");
        let mut out = review["request"]["object"].clone();
        json_patch::patch(&mut out, &patch.0).expect("the patch applies to its object");
    }
    let validated = admission::validate::validate(&req, &policy, &settings);
    assert_eq!(validated.response.uid, req.uid);
    let _ = validated.response.into_review_json();
});
