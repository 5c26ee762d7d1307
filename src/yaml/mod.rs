//! YAML as Kubernetes' tools read it, and YAML that every tool reads back the same.
//!
//! kubectl and Helm read manifests through sigs.k8s.io/yaml, which is go-yaml v2: YAML 1.1
//! resolution, so `0755` is the number 493 and `no` is `false`. [`read`] reads a stream exactly
//! so ([`resolve`] holds the rules); [`write`](mod@write) writes documents that go-yaml v2 and v3, YAML 1.1
//! and 1.2 all read back as the same JSON; [`splice`] puts rewritten documents back into the
//! input, leaving every other byte as it was.

pub mod read;
pub mod resolve;
pub mod write;

use std::ops::Range;

pub use read::{ParsedDocument, Tree, YamlError, parse_stream};
pub use write::write_document;

/// `input` with each range replaced by its text. Ranges are sorted and do not overlap (each is
/// one document's root node, ending at a line end).
pub fn splice(input: &str, replacements: &[(Range<usize>, String)]) -> String {
    let mut out = String::with_capacity(input.len() + 1024);
    let mut at = 0;
    for (range, text) in replacements {
        // The root node may be indented, or follow `--- ` on its line: the replacement, written
        // at indentation 0, starts a line of its own.
        let line_start = input[..range.start].rfind('\n').map_or(0, |i| i + 1);
        if input[line_start..range.start].trim().is_empty() {
            out.push_str(&input[at..line_start.max(at)]);
        } else {
            out.push_str(&input[at..range.start]);
            out.push('\n');
        }
        out.push_str(text);
        at = range.end;
    }
    out.push_str(&input[at..]);
    out
}
