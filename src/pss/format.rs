//! The string helpers PSA builds its messages with (`policy/helpers.go`), reproduced byte for byte
//! so that users can search for our messages and find Kubernetes' documentation and issues.

use std::fmt::Write as _;

/// `"a", "b", "c"`: each item wrapped in double quotes with no escaping, joined by `", "`.
///
/// PSA's `joinQuote` is a raw wrap, so a name that itself contains a quote is not escaped.
pub(crate) fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = String::with_capacity(items.iter().map(|s| s.as_ref().len() + 4).sum());
    out.push('"');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str("\", \"");
        }
        out.push_str(item.as_ref());
    }
    out.push('"');
    out
}

/// `singular` when `n == 1`, otherwise `plural`.
pub(crate) fn pluralize(singular: &'static str, plural: &'static str, n: usize) -> &'static str {
    if n == 1 { singular } else { plural }
}

/// `container "a"` or `containers "a", "b"`: the subject PSA puts in front of most details.
pub(crate) fn containers_subject<S: AsRef<str>>(names: &[S]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Sorts and de-duplicates, like Go's `sets.String.List()` (byte order).
pub(crate) fn sorted_set(mut items: Vec<String>) -> Vec<String> {
    items.sort_unstable();
    items.dedup();
    items
}

/// Go's `strconv.Quote`, used by PSA's `%q` verbs (annotation values and the policy string).
///
/// Printable characters are kept; `"` and `\` are escaped; the usual control characters use their
/// short escapes; other non-printable characters use `\xNN`, `\uNNNN` or `\UNNNNNNNN`. Go decides
/// "printable" with Unicode tables; this uses Rust's control and whitespace classes plus the format
/// characters that show up in practice (zero-width and bidi marks), which agrees on every
/// character an annotation realistically holds.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c,
        '\u{ad}'
        | '\u{600}'..='\u{605}'
        | '\u{61c}'
        | '\u{6dd}'
        | '\u{70f}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{e000}'..='\u{f8ff}'
        | '\u{f0000}'..='\u{10ffff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_quote_wraps_without_escaping() {
        assert_eq!(join_quote(&["a"]), r#""a""#);
        assert_eq!(join_quote(&["a", "b\"c"]), r#""a", "b"c""#);
    }

    #[test]
    fn subject_is_pluralized_by_count() {
        assert_eq!(containers_subject(&["a"]), r#"container "a""#);
        assert_eq!(containers_subject(&["a", "b"]), r#"containers "a", "b""#);
    }

    #[test]
    fn go_quote_matches_strconv_quote() {
        for (input, expected) in [
            ("unconfined", r#""unconfined""#),
            ("a\"b", r#""a\"b""#),
            ("back\\slash", r#""back\\slash""#),
            ("tab\there", r#""tab\there""#),
            ("nl\n", r#""nl\n""#),
            ("\u{1}", r#""\x01""#),
            ("\u{7f}", r#""\x7f""#),
            ("héllo ✓ 日本", "\"héllo ✓ 日本\""),
            ("zero\u{200b}width", r#""zero\u200bwidth""#),
            ("\u{85}", r#""\u0085""#),
            ("\u{2028}", r#""\u2028""#),
            ("\u{feff}", r#""\ufeff""#),
            ("😀", "\"😀\""),
            ("\u{f0000}", r#""\U000f0000""#),
        ] {
            assert_eq!(go_quote(input), expected, "input {input:?}");
        }
    }
}
