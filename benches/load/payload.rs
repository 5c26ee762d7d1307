//! The reviews the harness sends: the 3.7 KB and 37 KB Pods shared with `benches/core.rs`.

use bytes::Bytes;

use crate::common;

/// The ids `--payload` accepts.
pub(crate) const PAYLOAD_IDS: [&str; 3] = ["mutate-3k", "mutate-30k", "validate-3k"];

pub(crate) struct Payload {
    /// For `--payload`.
    pub(crate) id: &'static str,
    pub(crate) label: &'static str,
    pub(crate) path: &'static str,
    pub(crate) body: Bytes,
    /// Minimum throughput ratio P/B from the issue, if any.
    pub(crate) throughput_target: Option<f64>,
}

pub(crate) fn payloads() -> Vec<Payload> {
    let typical = Bytes::from(common::review_around(common::typical_pod()));
    let fat = Bytes::from(common::review_around(common::fat_pod()));
    vec![
        Payload {
            id: "mutate-3k",
            label: "3 KB /mutate",
            path: "/mutate",
            body: typical.clone(),
            throughput_target: Some(0.85),
        },
        Payload {
            id: "mutate-30k",
            label: "30 KB /mutate",
            path: "/mutate",
            body: fat,
            throughput_target: Some(0.6),
        },
        Payload {
            id: "validate-3k",
            label: "3 KB /validate",
            path: "/validate",
            body: typical,
            throughput_target: None,
        },
    ]
}
