//! Writing YAML that every reader reads back as the same JSON: go-yaml v2 (kubectl, Helm 3),
//! go-yaml v3 (kustomize, Helm 4), YAML 1.1 and YAML 1.2 parsers alike.
//!
//! Block style with two-space indentation and sequences at their key's indentation, as kubectl
//! and Helm write. A string is written plain only when no schema could read it as anything
//! else; otherwise it is double-quoted with escapes, or, for multi-line text whose every line
//! survives it unchanged, a literal block. Key order follows the document the value was read
//! from ([`Tree`]); keys it did not have come after, in the value's order.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::read::Tree;

/// Writes `value` as one YAML document (no `---`), ending in a newline. `order` is the document
/// the value came from, whose key order is kept.
pub fn write_document(value: &Value, order: Option<&Tree>) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_mapping(&mut out, map, order, 0, false),
        Value::Array(items) if !items.is_empty() => {
            write_sequence(&mut out, items, order, 0, false)
        }
        scalar => {
            write_inline(&mut out, scalar);
            out.push('\n');
        }
    }
    out
}

/// The keys of `map` in `order`'s order first, then the others in `map`'s order.
fn ordered_keys<'m>(
    map: &'m Map<String, Value>,
    order: Option<&'m Tree>,
) -> Vec<(&'m String, Option<&'m Tree>)> {
    let mut keys = Vec::with_capacity(map.len());
    let mut seen = std::collections::HashSet::new();
    if let Some(Tree::Map(entries)) = order {
        for (k, child) in entries {
            if let Some((key, _)) = map.get_key_value(k) {
                seen.insert(key.as_str());
                keys.push((key, Some(child)));
            }
        }
    }
    for key in map.keys() {
        if !seen.contains(key.as_str()) {
            keys.push((key, None));
        }
    }
    keys
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// The longest implicit key (`key: value`) YAML allows is 1024 characters up to the `:` (YAML 1.2
/// §7.4.2; go-yaml, libyaml and saphyr refuse a longer one as "mapping values are not allowed").
/// A key written longer, such as one whose control characters are escaped four to one, is written
/// as an explicit key. A margin below the limit: the readers differ in how they count.
const IMPLICIT_KEY_MAX_CHARS: usize = 1000;

/// Writes a non-empty mapping at `level`; with `continues_line`, the first key goes on the
/// current line (after a sequence's `- `).
fn write_mapping(
    out: &mut String,
    map: &Map<String, Value>,
    order: Option<&Tree>,
    level: usize,
    continues_line: bool,
) {
    for (i, (key, child_order)) in ordered_keys(map, order).into_iter().enumerate() {
        if i > 0 || !continues_line {
            indent(out, level);
        }
        let key_start = out.len();
        write_key(out, key);
        // Bytes bound characters from above: only a long key is counted.
        let written = &out[key_start..];
        if written.len() > IMPLICIT_KEY_MAX_CHARS
            && written.chars().count() > IMPLICIT_KEY_MAX_CHARS
        {
            // An explicit key: `? key`, then `:` and the value on the next line.
            out.insert_str(key_start, "? ");
            out.push('\n');
            indent(out, level);
        }
        out.push(':');
        write_value(out, &map[key.as_str()], child_order, level, Parent::Mapping);
    }
}

/// Writes a non-empty sequence at `level`.
fn write_sequence(
    out: &mut String,
    items: &[Value],
    order: Option<&Tree>,
    level: usize,
    continues_line: bool,
) {
    let item_orders = match order {
        Some(Tree::Seq(trees)) => Some(trees),
        _ => None,
    };
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !continues_line {
            indent(out, level);
        }
        out.push('-');
        let child_order = item_orders.and_then(|t| t.get(i));
        write_value(out, item, child_order, level, Parent::Sequence);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Parent {
    Mapping,
    Sequence,
}

/// Writes what follows `key:` or `-` on the current line (and the lines below it).
fn write_value(
    out: &mut String,
    value: &Value,
    order: Option<&Tree>,
    level: usize,
    parent: Parent,
) {
    match value {
        Value::Object(map) if !map.is_empty() => match parent {
            Parent::Mapping => {
                out.push('\n');
                write_mapping(out, map, order, level + 2, false);
            }
            Parent::Sequence => {
                out.push(' ');
                write_mapping(out, map, order, level + 2, true);
            }
        },
        Value::Array(items) if !items.is_empty() => match parent {
            // kubectl's style: a sequence under a key is not indented further.
            Parent::Mapping => {
                out.push('\n');
                write_sequence(out, items, order, level, false);
            }
            Parent::Sequence => {
                out.push(' ');
                write_sequence(out, items, order, level + 2, true);
            }
        },
        Value::String(s) if literal_block_keeps(s) => {
            out.push_str(if s.ends_with('\n') { " |\n" } else { " |-\n" });
            for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
                if !line.is_empty() {
                    indent(out, level + 2);
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        scalar => {
            out.push(' ');
            write_inline(out, scalar);
            out.push('\n');
        }
    }
}

/// A scalar, or an empty collection, on one line.
fn write_inline(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => out.push_str(&format_float(f)),
            _ => {
                let _ = write!(out, "{n}");
            }
        },
        Value::String(s) => write_string(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

fn write_key(out: &mut String, key: &str) {
    if is_plain_safe(key) && !key.contains(':') {
        out.push_str(key);
    } else {
        write_double_quoted(out, key);
    }
}

fn write_string(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else {
        write_double_quoted(out, s);
    }
}

/// A float that every schema reads as this float: a decimal point, and an exponent with its sign
/// (YAML 1.1 requires both for the exponent form).
pub fn format_float(f: f64) -> String {
    let plain = format!("{f}");
    let magnitude = f.abs();
    if plain.contains('.') && (1e-6..1e21).contains(&magnitude) {
        return plain;
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_owned()
    } else {
        format!("{mantissa}.0")
    };
    let exponent = if exponent.starts_with('-') {
        exponent.to_owned()
    } else {
        format!("+{exponent}")
    };
    format!("{mantissa}e{exponent}")
}

/// Words that some schema reads as a boolean or null, compared case-insensitively (more than
/// any one schema has, so that no reader is surprised).
const SPECIAL_WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// Letters that occur in no number or timestamp spelling of any YAML schema (not the hex digits,
/// exponent, base prefixes, `t`/`z` of timestamps, nor `inf`/`nan`, which need a `.` or sign
/// first anyway): a digit-led word holding one is a string everywhere.
fn is_non_numeric_letter(c: char) -> bool {
    matches!(c, 'g'..='s' | 'u' | 'v' | 'w' | 'y' | 'G'..='S' | 'U' | 'V' | 'W' | 'Y')
        && !matches!(c, 'o' | 'O')
}

/// Whether `s` may be written unquoted: a conservative subset of plain scalars that resolves to
/// a string under YAML 1.1, YAML 1.2 (core and JSON schemas) and go-yaml v2 and v3.
pub fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !s.chars().all(|c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-' | ':' | '@' | '+' | '=')
    }) {
        return false;
    }
    // `:` at the end would start a mapping value.
    if s.ends_with(':') {
        return false;
    }
    if SPECIAL_WORDS.iter().any(|w| w.eq_ignore_ascii_case(s)) {
        return false;
    }
    let plain_everywhere = match first {
        'a'..='z' | 'A'..='Z' | '/' => true,
        // Flags: `-c`, `--appendonly` (a letter after one or two dashes is no number).
        '-' => s
            .strip_prefix("--")
            .or_else(|| s.strip_prefix('-'))
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_alphabetic())),
        // A digit-led word is a string only if it holds a letter no number has, and no `:`
        // (YAML 1.1 base 60) nor `_`.
        '0'..='9' => s.chars().any(is_non_numeric_letter) && !s.contains([':', '_']),
        _ => false,
    };
    plain_everywhere
        && matches!(
            super::resolve::resolve_untagged(s).1,
            super::resolve::Resolved::Str
        )
}

/// Whether libyaml and YAML 1.1/1.2 readers all take `c` literally inside a scalar: printable,
/// not the byte order mark, and not LS or PS, which are line breaks in YAML 1.1.
fn is_printable(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && !matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}')
}

/// Whether `s` reads back unchanged as a literal block scalar (`|` or `|-`) indented under its
/// key: more than one line, at most one final line break (clip or strip chomping), no
/// whitespace-only line (it would read as empty), a first line that does not start with
/// whitespace (it would set the indentation), and only printable characters and tabs, none of
/// them a YAML 1.1 line break (NEL, LS, PS) or carriage return.
pub fn literal_block_keeps(s: &str) -> bool {
    let body = s.strip_suffix('\n').unwrap_or(s);
    if !body.contains('\n') || body.ends_with('\n') || body.starts_with([' ', '\t', '\n']) {
        return false;
    }
    body.chars()
        .all(|c| c == '\n' || c == '\t' || is_printable(c))
        && body
            .split('\n')
            .all(|line| line.is_empty() || !line.chars().all(|c| c == ' ' || c == '\t'))
}

/// Writes `s` double-quoted: `"` and `\` escaped, line breaks and every character a reader might
/// not take literally escaped.
pub fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            c if is_printable(c) => out.push(c),
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::read::parse_stream;
    use serde_json::json;

    /// `text` as go-yaml v2 reads it (our reader), checked to be what a YAML 1.2 reader
    /// (libyaml through serde_yaml_ng) reads too.
    fn read_back(text: &str) -> Value {
        let docs = parse_stream(text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        assert_eq!(docs.len(), 1, "{text}");
        let ours = docs[0].tree.to_json().unwrap();
        let yaml12: Value =
            serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        assert_eq!(yaml12, ours, "YAML 1.2 reads differently:\n{text}");
        ours
    }

    /// Strings that some YAML reader reads as something other than that string when unquoted,
    /// and strings that are awkward for other reasons.
    fn awkward_strings() -> Vec<String> {
        let mut strings: Vec<String> = [
            // YAML 1.1 and 1.2 booleans and nulls, in every case.
            "y",
            "Y",
            "yes",
            "Yes",
            "YES",
            "n",
            "N",
            "no",
            "No",
            "NO",
            "true",
            "True",
            "TRUE",
            "false",
            "False",
            "FALSE",
            "on",
            "On",
            "ON",
            "off",
            "Off",
            "OFF",
            "yEs",
            "nO",
            "null",
            "Null",
            "NULL",
            "~",
            "",
            "nULL",
            // Numbers in every base and spelling.
            "0",
            "1",
            "-1",
            "+1",
            "0755",
            "0o755",
            "0O755",
            "0x1F",
            "0X1f",
            "0b101",
            "-0b101",
            "1_000",
            "1__0",
            "0_7",
            "08",
            "09",
            "1.5",
            "1.",
            ".5",
            "-.5",
            "+.5",
            "1e3",
            "1E+3",
            "1e-3",
            "6.02e23",
            "1_000.5",
            ".5_5",
            ".nan",
            ".NaN",
            ".NAN",
            ".inf",
            ".Inf",
            "+.inf",
            "-.inf",
            "-.INF",
            "nan",
            "inf",
            "Infinity",
            "-Infinity",
            "NaN",
            "9223372036854775808",
            "18446744073709551616",
            "0x10000000000000000",
            // YAML 1.1 base 60, timestamps, merge and value keys.
            "1:20",
            "190:20:30",
            "-1:20",
            "1:20.5",
            "2001-12-14",
            "2001-12-14T21:59:43.10Z",
            "2001-12-14 21:59:43.10 -5",
            "2001-12-14t21:59:43.10-05:00",
            "<<",
            "=",
            // Indicators, comments, mapping values.
            "- a",
            "-",
            "--",
            "---",
            "...",
            "? a",
            "?",
            ":",
            "a:",
            "a: b",
            "a:b",
            "a #b",
            "#a",
            "a#b",
            "[a]",
            "{a}",
            "a, b",
            "&a",
            "*a",
            "!a",
            "!!str",
            "|",
            ">",
            "'",
            "\"",
            "%a",
            "@a",
            "`a",
            "a'b",
            "a\"b",
            "a\\b",
            "\\",
            ",",
            // Spaces and line breaks.
            " ",
            "  ",
            " a",
            "a ",
            " a ",
            "a  b",
            "\t",
            "a\tb",
            "\ta",
            "a\n",
            "\n",
            "\n\n",
            "a\nb",
            "a\nb\n",
            "a\nb\n\n",
            "\na",
            " a\nb",
            "a\n b",
            "a\n \nb",
            "a\n\nb\n",
            "a\r\nb",
            "a\rb",
            "line1\nline2 \n",
            "#!/bin/sh\nset -e\necho \"hi\"\n",
            // Unicode and control characters.
            "é",
            "日本語",
            "emoji 😀",
            "\u{0}",
            "\u{7}",
            "\u{1b}[0m",
            "\u{7f}",
            "\u{85}",
            "a\u{85}b\nc",
            "\u{a0}",
            "\u{2028}",
            "a\u{2029}b\nc",
            "\u{feff}a",
            "\u{fffe}",
            "\u{ffff}",
            "\u{10ffff}",
            "\u{9f}",
            // Kubernetes shapes that should stay plain.
            "nginx:1.25",
            "app.kubernetes.io/name",
            "100m",
            "512Mi",
            "/tmp",
            "RuntimeDefault",
            "ALL",
            "a-b_c.d/e",
            "v1",
            "3s",
            "1Gi",
            "1.25.3",
            "10.0.0.1",
            "0.0.0.0/0",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Every ASCII character alone and between letters.
        for b in 0u8..=127 {
            let c = char::from(b);
            strings.push(c.to_string());
            strings.push(format!("a{c}b"));
            strings.push(format!("{c}a"));
            strings.push(format!("a{c}"));
        }
        strings
    }

    #[test]
    fn every_string_reads_back_as_itself() {
        for s in awkward_strings() {
            for value in [
                json!({ "key": s }),
                json!({ "list": [s, "x"] }),
                json!({ "nested": { "deeper": [{ "k": s }] } }),
                json!({ s.clone(): "key position" }),
            ] {
                let text = write_document(&value, None);
                assert_eq!(read_back(&text), value, "{s:?} written as:\n{text}");
            }
        }
    }

    /// Keys past YAML's 1024-character limit on implicit keys (found by the `manifests` fuzz
    /// target: a key of control characters, 1,181 characters once escaped) are written as
    /// explicit keys, under each kind of value and after a sequence's `- `.
    #[test]
    fn keys_too_long_to_be_implicit_read_back_as_themselves() {
        let long = "k".repeat(1100);
        let escaped = format!("all{}ow", "\u{6}".repeat(300));
        let just_under = "j".repeat(IMPLICIT_KEY_MAX_CHARS);
        for key in [long, escaped, just_under] {
            for value in [
                json!({ key.clone(): null }),
                json!({ key.clone(): "x", "after": 1 }),
                json!({ "outer": { key.clone(): { "c": [1, 2] }, "b": true } }),
                json!({ "outer": { key.clone(): ["x", { "y": 1 }], "b": "s" } }),
                json!({ "list": [{ key.clone(): "first", "second": 2 }] }),
                json!({ "list": [{ "first": 1, key.clone(): { "deep": "x" } }] }),
            ] {
                let text = write_document(&value, None);
                assert_eq!(read_back(&text), value, "written as:\n{text}");
            }
        }
    }

    #[test]
    fn strings_that_could_be_something_else_are_quoted() {
        for s in [
            "no",
            "yes",
            "on",
            "off",
            "y",
            "n",
            "NO",
            "Yes",
            "1_000",
            "0755",
            "~",
            "null",
            "1:20",
            "2001-12-14",
            "<<",
            "1.0",
            "1e3",
            ".inf",
            "",
        ] {
            let text = write_document(&json!({ "v": s }), None);
            assert_eq!(text, format!("v: \"{s}\"\n"));
        }
        for s in [
            "nginx:1.25",
            "app.kubernetes.io/name",
            "100m",
            "512Mi",
            "/tmp",
            "RuntimeDefault",
            "v1",
        ] {
            let text = write_document(&json!({ "v": s }), None);
            assert_eq!(text, format!("v: {s}\n"));
        }
    }

    #[test]
    fn numbers_read_back_as_the_same_numbers() {
        for n in [
            json!(0),
            json!(-1),
            json!(493),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(0.5),
            json!(-0.25),
            json!(1e-7),
            json!(1.5e300),
            json!(1e20),
            json!(123456789.125),
            json!(f64::MAX),
            json!(f64::MIN_POSITIVE),
        ] {
            let value = json!({ "n": n });
            let text = write_document(&value, None);
            assert_eq!(read_back(&text), value, "{text}");
            if n.is_f64() {
                let written = text.trim_start_matches("n: ").trim_end();
                assert!(
                    written.contains('.'),
                    "YAML 1.1 floats need a point: {written}"
                );
                assert!(
                    !written.contains('e') || written.contains("e+") || written.contains("e-"),
                    "{written}"
                );
            }
        }
    }

    #[test]
    fn block_layout_is_kubectl_s() {
        let value = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": "p", "labels": {} },
            "spec": {
                "containers": [{ "name": "c", "args": ["-c", "echo hi\necho there\n"], "ports": [] }],
                "matrix": [[1, 2], []],
            }
        });
        let order = parse_stream(
            "kind: Pod\napiVersion: v1\nspec: {containers: [{name: c, args: []}]}\nmetadata: {}\n",
        )
        .unwrap();
        let text = write_document(&value, Some(&order[0].tree));
        assert_eq!(
            text,
            "kind: Pod\napiVersion: v1\nspec:\n  containers:\n  - name: c\n    args:\n    - -c\n    - |\n      echo hi\n      echo there\n    ports: []\n  matrix:\n  - - 1\n    - 2\n  - []\nmetadata:\n  labels: {}\n  name: p\n"
        );
        assert_eq!(read_back(&text), value);
    }

    #[test]
    fn literal_blocks_only_where_they_keep_the_text() {
        for (s, literal) in [
            ("a\nb\n", true),
            ("a\nb", true),
            ("a\n\nb\n", true),
            ("a\nb\n\n", false),
            ("a\n", false),
            (" a\nb", false),
            ("a\n  \nb", false),
            ("a\n\tb", true),
            ("a\r\nb", false),
            ("a\u{85}b\nc", false),
            ("a\u{2028}\nb", false),
        ] {
            assert_eq!(literal_block_keeps(s), literal, "{s:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Random strings over the characters YAML treats specially, digits, spaces, line breaks,
        /// controls and any Unicode, read back as themselves as values and as keys.
        #[test]
        fn random_strings_read_back_as_themselves(
            chars in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        ' ', '\t', '\n', '\r', ':', '#', '-', '?', ',', '[', ']', '{', '}', '&',
                        '*', '!', '|', '>', '\'', '"', '%', '@', '`', '.', '_', '+', '~', '\\',
                        '0', '1', '7', '8', 'e', 'x', 'o', 'b', 'y', 'n', 'N', 'T', 'Z', '\u{85}',
                        '\u{a0}', '\u{2028}', '\u{feff}', '\u{0}', '\u{1b}', 'é',
                    ]),
                    proptest::prelude::any::<char>(),
                ],
                0..16,
            )
        ) {
            let s: String = chars.into_iter().collect();
            for value in [json!({ "v": s }), json!({ s.clone(): [s, 1] })] {
                let text = write_document(&value, None);
                proptest::prop_assert_eq!(read_back(&text), value, "{}", text);
            }
        }
    }
}
