//! The answer's JSON, written by hand: the AdmissionReview response and the JSON Patch inside it.
//!
//! Why not serde_json here: it escapes a string one fragment and one escape at a time (two
//! buffer writes for every quote), and the record annotation (675 bytes of JSON for the
//! benchmarks' typical Pod, 90 of them quotes) is a string twice in every `/mutate` answer: the
//! patch's value and the audit annotation. Writing strings was 43k of that review's 248k
//! instructions (callgrind, `benches/instructions.rs`), half of it the answer's and the patch's
//! top-level strings. Here a string is copied eight bytes at a time where none needs escaping
//! and escaped a byte at a time where one does, into a buffer sized for the worst case, and the
//! record is escaped once for both places. Values other than strings, and `status`, are still
//! written by serde_json. What is written is what serde_json writes for the same response (the
//! unit tests compare the two, string by string and answer by answer, and
//! `admission::tests` on every PSA fixture).

use json_patch::{Patch, PatchOperation};
use serde_json::Value;

use super::review::AdmissionResponse;

/// How serde_json escapes each ASCII byte below 0x20 and `"` and `\`: the second byte of a
/// two-byte escape, `u` for `\u00XX`, 0 for a byte written as it is.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `s` as a JSON string, quotes included.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    // The longest escape is six bytes (`\u001f`); reserving for it keeps the loop to writes
    // that never grow the buffer.
    out.reserve(s.len() * 6 + 2);
    out.push(b'"');
    // Eight bytes at a time where none needs escaping (most of a message or a warning), a byte
    // at a time where one does (a record's quotes are about eight bytes apart).
    let (words, rest) = s.as_bytes().as_chunks::<8>();
    for word in words {
        if needs_escape(u64::from_le_bytes(*word)) {
            word.iter().for_each(|&b| write_byte(out, b));
        } else {
            out.extend_from_slice(word);
        }
    }
    rest.iter().for_each(|&b| write_byte(out, b));
    out.push(b'"');
}

/// Whether any of the eight bytes of `word` is below 0x20, `"` or `\` (exact: the classic
/// "has a zero byte" and "has a byte less than n" tests, for n at most 0x80).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    let quote = has_zero(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(word ^ (ONES * u64::from(b'\\')));
    control | quote | backslash != 0
}

/// One byte of a string, escaped as serde_json escapes it.
fn write_byte(out: &mut Vec<u8>, b: u8) {
    match ESCAPE[usize::from(b)] {
        0 => out.push(b),
        b'u' => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX_DIGITS[usize::from(b >> 4)],
            HEX_DIGITS[usize::from(b & 0xf)],
        ]),
        short => out.extend_from_slice(&[b'\\', short]),
    }
}

/// A string of a patch, kept with its JSON form so the answer need not escape it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EscapedString {
    plain: String,
    json: Vec<u8>,
}

/// Strings shorter than this are escaped wherever they appear: remembering them costs more.
const REMEMBERED_FROM_BYTES: usize = 256;

/// A JSON value: strings by [`write_str`], anything else by serde_json (the patch's other values
/// are small objects, arrays and booleans).
fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => write_str(out, s),
        // Writing a JSON value into a Vec cannot fail.
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

/// The patch as RFC 6902 JSON, each operation's members in json-patch's order (`op`, then its
/// fields as declared). Returns its longest string value of at least 256 bytes, escaped (the
/// record annotation, which the answer also carries as an audit annotation).
pub(crate) fn write_patch(out: &mut Vec<u8>, patch: &Patch) -> Option<EscapedString> {
    let mut longest: Option<(&str, std::ops::Range<usize>)> = None;
    out.push(b'[');
    for (i, op) in patch.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let (name, path, value) = match op {
            PatchOperation::Add(add) => ("add", &add.path, Some(&add.value)),
            PatchOperation::Remove(remove) => ("remove", &remove.path, None),
            PatchOperation::Replace(replace) => ("replace", &replace.path, Some(&replace.value)),
            // The patch builder makes none of these; written by serde_json all the same.
            other => {
                let _ = serde_json::to_writer(&mut *out, other);
                continue;
            }
        };
        out.extend_from_slice(b"{\"op\":\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\",\"path\":");
        write_str(out, path.as_str());
        if let Some(value) = value {
            out.extend_from_slice(b",\"value\":");
            let start = out.len();
            write_value(out, value);
            if let Value::String(s) = value
                && s.len() >= REMEMBERED_FROM_BYTES
                && longest.as_ref().is_none_or(|(l, _)| l.len() < s.len())
            {
                longest = Some((s, start..out.len()));
            }
        }
        out.push(b'}');
    }
    out.push(b']');
    longest.and_then(|(plain, range)| {
        Some(EscapedString {
            plain: plain.to_owned(),
            json: out.get(range)?.to_vec(),
        })
    })
}

/// `s` as a JSON string, from `escaped` when that is its JSON form.
fn write_known_str(out: &mut Vec<u8>, s: &str, escaped: Option<&EscapedString>) {
    match escaped {
        Some(known) if known.plain == s => out.extend_from_slice(&known.json),
        _ => write_str(out, s),
    }
}

/// The AdmissionReview that carries `rsp`, its members in the order of the response's fields.
pub(crate) fn write_review(out: &mut Vec<u8>, api_version: &str, rsp: &AdmissionResponse) {
    out.extend_from_slice(b"{\"apiVersion\":");
    write_str(out, api_version);
    out.extend_from_slice(b",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
    write_str(out, &rsp.uid);
    out.extend_from_slice(if rsp.allowed {
        b",\"allowed\":true"
    } else {
        b",\"allowed\":false"
    });
    if let Some(status) = &rsp.status {
        out.extend_from_slice(b",\"status\":");
        // Strings, numbers and options of them: writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, status);
    }
    if let Some(patch) = &rsp.patch {
        // Base64 needs no escaping.
        out.extend_from_slice(b",\"patch\":\"");
        out.extend_from_slice(patch.as_bytes());
        out.push(b'"');
    }
    if let Some(patch_type) = rsp.patch_type {
        out.extend_from_slice(b",\"patchType\":");
        write_str(out, patch_type);
    }
    if !rsp.audit_annotations.is_empty() {
        out.extend_from_slice(b",\"auditAnnotations\":{");
        for (i, (key, value)) in rsp.audit_annotations.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, key);
            out.push(b':');
            write_known_str(out, value, rsp.escaped.as_ref());
        }
        out.push(b'}');
    }
    if !rsp.warnings.is_empty() {
        out.extend_from_slice(b",\"warnings\":[");
        for (i, warning) in rsp.warnings.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, warning);
        }
        out.push(b']');
    }
    out.extend_from_slice(b"}}");
}

/// The AdmissionReview serde_json writes for `rsp` (from the response's `Serialize`): what
/// [`write_review`] must match, for the tests here and in `admission::tests`.
#[cfg(test)]
pub(crate) fn serde_review_json(rsp: &AdmissionResponse) -> Vec<u8> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Outgoing<'a> {
        api_version: &'a str,
        kind: &'a str,
        response: &'a AdmissionResponse,
    }
    serde_json::to_vec(&Outgoing {
        api_version: super::review::API_VERSION,
        kind: "AdmissionReview",
        response: rsp,
    })
    .expect("serde_json writes responses")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn written(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let every_ascii: String = (0u8..0x80).map(char::from).collect();
        let record =
            r#"{"v":2,"level":"restricted","mode":"fill","changes":{"pod":{"runAsNonRoot":true}}}"#;
        let cases = [
            "",
            "plain",
            every_ascii.as_str(),
            record,
            "a \"quoted\" \\ back\\slash",
            "line\nbreak\ttab\r\u{8}\u{c}\u{1f}\u{0}",
            "naïve ünïcödé — 日本語 🚀",
            "\u{7f}\u{80}\u{2028}",
        ];
        for s in cases {
            let expected = serde_json::to_string(s).expect("serde_json writes strings");
            assert_eq!(written(s), expected, "{s:?}");
        }
        // Each byte that needs escaping (and its neighbours that do not) at every offset of an
        // eight-byte word, so both the word and the byte path see it.
        for special in [
            '"', '\\', '\n', '\u{0}', '\u{1f}', ' ', '!', '#', '[', ']', '\u{7f}', 'é',
        ] {
            for offset in 0..17 {
                let s: String = std::iter::repeat_n('a', offset)
                    .chain([special])
                    .chain(std::iter::repeat_n('b', 9))
                    .collect();
                let expected = serde_json::to_string(&s).expect("serde_json writes strings");
                assert_eq!(written(&s), expected, "{s:?}");
            }
        }
    }

    #[test]
    fn patches_are_written_as_serde_json_writes_them() {
        let patches = [
            json!([]),
            json!([{"op": "add", "path": "/spec/securityContext", "value": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}}]),
            json!([
                {"op": "add", "path": "/spec/containers/0/securityContext/capabilities/drop/-", "value": "ALL"},
                {"op": "remove", "path": "/spec/containers/1/securityContext/capabilities/add"},
                {"op": "replace", "path": "/spec/containers/1/securityContext/allowPrivilegeEscalation", "value": false},
                {"op": "add", "path": "/metadata/annotations/pod-hardener.io~1hardened", "value": "{\"v\":2,\"level\":\"restricted\"}"},
                {"op": "test", "path": "/a~0b", "value": null},
                {"op": "move", "from": "/a", "path": "/b"},
                {"op": "copy", "from": "/a", "path": "/c"}
            ]),
        ];
        for patch in patches {
            let patch: Patch = serde_json::from_value(patch).expect("a JSON patch");
            let mut out = Vec::new();
            let _ = write_patch(&mut out, &patch);
            let expected = serde_json::to_vec(&patch).expect("serde_json writes patches");
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&expected)
            );
        }
    }

    #[test]
    fn answers_are_written_as_serde_json_writes_the_response() {
        // Long enough to be escaped once for the patch and the audit annotation.
        let record = r#"{"v":2,"level":"restricted","mode":"fill","changes":{"pod":{"runAsNonRoot":true,"seccompProfile":"RuntimeDefault"},"containers/web":{"allowPrivilegeEscalation":false,"capabilities":"ALL","readOnlyRootFilesystem":true}},"skips":{"containers/app":{"readOnlyRootFilesystem":{"reason":"explicit-value","detail":"readOnlyRootFilesystem: false"}}}}"#;
        assert!(record.len() >= REMEMBERED_FROM_BYTES);
        let patch: Patch = serde_json::from_value(json!([
            {"op": "add", "path": "/spec/securityContext", "value": {"runAsNonRoot": true}},
            {"op": "add", "path": "/metadata/annotations/pod-hardener.io~1hardened", "value": record}
        ]))
        .expect("a JSON patch");
        let mut annotated = AdmissionResponse::allow("0f1e-\"uid\"").with_patch(&patch);
        assert!(
            annotated.escaped.is_some(),
            "the record is remembered escaped"
        );
        annotated
            .audit_annotations
            .insert("hardened".into(), record.into());
        // As long, but not the patch's: escaped on its own.
        let other = record.replace("restricted", "baseline\n\"x\"");
        annotated.audit_annotations.insert("shadow".into(), other);
        annotated
            .audit_annotations
            .insert("short".into(), "line\nbreak".into());
        annotated.warnings = vec![
            "pod-hardener set: runAsNonRoot, seccomp".into(),
            "a \"quoted\" warning\twith a tab".into(),
        ];
        let responses = [
            AdmissionResponse::allow("u"),
            AdmissionResponse::allow(""),
            AdmissionResponse::forbid("u", "pods \"web\" is forbidden:\nviolates".into()),
            AdmissionResponse::bad_request("u", String::new()),
            annotated,
        ];
        for rsp in responses {
            let expected = serde_review_json(&rsp);
            let mut out = Vec::new();
            write_review(&mut out, super::super::review::API_VERSION, &rsp);
            let (out, expected) = (String::from_utf8(out), String::from_utf8(expected));
            assert_eq!(out, expected);
        }
    }
}
