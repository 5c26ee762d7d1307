//! What a YAML scalar means to kubectl and Helm: go-yaml v2's resolution rules, as
//! sigs.k8s.io/yaml uses them.
//!
//! Ported from `goyaml.v2/resolve.go` in kubernetes-sigs/yaml (the fork of go-yaml v2.4.0 that
//! kubectl, Helm and the API machinery read manifests with), function `resolve` and its tables,
//! and from `goyaml.v2/decode.go` (`scalar`: quoted scalars are strings, timestamps decoded into
//! `interface{}` stay strings, `!!binary` is base64). Go's `strconv` number grammar, which
//! `resolve` delegates to, is reproduced below where it matters (base prefixes, underscores,
//! range errors). This is YAML 1.1 resolution: `yes`/`no`/`on`/`off`/`y`/`n` are booleans,
//! `0755` is octal, `1_000` is an integer.

/// The long form of the `!!` tag handle.
pub const CORE_TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// What a scalar resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// `~`, `null`, `Null`, `NULL` or nothing.
    Null,
    /// A boolean, in any of its YAML 1.1 spellings.
    Bool(bool),
    /// An integer that fits `i64` (Go's `int`).
    Int(i64),
    /// An integer above `i64::MAX` that fits `u64` (Go's `uint64`).
    Uint(u64),
    /// An integer beyond 64 bits (Go's `*big.Int`), with its spelling.
    BigInt,
    /// A float.
    Float(f64),
    /// A string: the scalar's own text (also what a timestamp decodes to).
    Str,
    /// The base64-decoded content of a `!!binary` scalar.
    Binary(String),
}

/// Why a tagged scalar cannot have its tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The scalar does not read as its explicit tag says (`!!int abc`).
    #[error("cannot decode {found} `{value}` as a {tag}")]
    WrongTag {
        /// What the text resolves to, short form (`!!str`).
        found: &'static str,
        /// The text.
        value: String,
        /// The explicit tag, short form.
        tag: String,
    },
    /// A `!!binary` scalar that is not base64.
    #[error("!!binary value contains invalid base64 data")]
    InvalidBinary,
}

/// How a scalar was written: plain scalars are resolved, quoted and block ones are strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted.
    Plain,
    /// Single- or double-quoted, literal or folded.
    NotPlain,
}

/// The go-yaml v2 tags a scalar can resolve to (long form, as libyaml reports them).
mod tag {
    pub const STR: &str = "tag:yaml.org,2002:str";
    pub const BOOL: &str = "tag:yaml.org,2002:bool";
    pub const INT: &str = "tag:yaml.org,2002:int";
    pub const FLOAT: &str = "tag:yaml.org,2002:float";
    pub const NULL: &str = "tag:yaml.org,2002:null";
    pub const TIMESTAMP: &str = "tag:yaml.org,2002:timestamp";
    pub const BINARY: &str = "tag:yaml.org,2002:binary";
    pub const MERGE: &str = "tag:yaml.org,2002:merge";
}

/// Resolves a scalar as go-yaml v2 decodes it into `interface{}`: `tag` is the explicit tag in
/// long form (`tag:yaml.org,2002:int`, `!custom`, `!`), `None` when there is none.
pub fn resolve(
    value: &str,
    style: Style,
    explicit_tag: Option<&str>,
) -> Result<Resolved, ResolveError> {
    // decode.go `scalar`: an untagged scalar that is not plain is a string.
    let Some(explicit) = explicit_tag else {
        return Ok(match style {
            Style::Plain => resolve_untagged(value).1,
            Style::NotPlain => Resolved::Str,
        });
    };
    if explicit == tag::BINARY {
        return decode_binary(value).map(Resolved::Binary);
    }
    // resolvableTag: any other tag (custom ones, `!`) leaves the text as a string.
    if !matches!(
        explicit,
        tag::STR | tag::BOOL | tag::INT | tag::FLOAT | tag::NULL | tag::TIMESTAMP
    ) {
        return Ok(Resolved::Str);
    }
    if explicit == tag::STR {
        return Ok(Resolved::Str);
    }
    let (found, resolved) = resolve_as(value, explicit);
    if found == explicit {
        return Ok(resolved);
    }
    // A `!!float` that reads as an integer becomes that float.
    if explicit == tag::FLOAT {
        match resolved {
            Resolved::Int(i) => return Ok(Resolved::Float(i as f64)),
            Resolved::Uint(u) => return Ok(Resolved::Float(u as f64)),
            _ => {}
        }
    }
    Err(ResolveError::WrongTag {
        found: short_tag(found),
        value: value.to_owned(),
        tag: short_tag(explicit).to_owned(),
    })
}

/// Resolves an untagged plain scalar; returns the tag it resolves to and the value.
pub fn resolve_untagged(value: &str) -> (&'static str, Resolved) {
    resolve_as(value, "")
}

fn short_tag(long: &str) -> &'static str {
    match long {
        tag::STR => "!!str",
        tag::BOOL => "!!bool",
        tag::INT => "!!int",
        tag::FLOAT => "!!float",
        tag::NULL => "!!null",
        tag::TIMESTAMP => "!!timestamp",
        tag::BINARY => "!!binary",
        tag::MERGE => "!!merge",
        _ => "!!str",
    }
}

/// resolve.go `resolveMap`: the spellings looked up whole. Its `<<` entry is never reached
/// (`<` has no hint): a plain `<<` resolves as a string, and only a mapping key `<<` merges
/// (decode.go `isMerge`, in [`super::read`]).
fn lookup(value: &str) -> Option<(&'static str, Resolved)> {
    Some(match value {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            (tag::BOOL, Resolved::Bool(true))
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            (tag::BOOL, Resolved::Bool(false))
        }
        "" | "~" | "null" | "Null" | "NULL" => (tag::NULL, Resolved::Null),
        ".nan" | ".NaN" | ".NAN" => (tag::FLOAT, Resolved::Float(f64::NAN)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            (tag::FLOAT, Resolved::Float(f64::INFINITY))
        }
        "-.inf" | "-.Inf" | "-.INF" => (tag::FLOAT, Resolved::Float(f64::NEG_INFINITY)),
        _ => return None,
    })
}

/// resolve.go `resolve(tag, in)` for the resolvable tags other than `!!str`: `explicit` is ""
/// for an untagged plain scalar.
fn resolve_as(value: &str, explicit: &str) -> (&'static str, Resolved) {
    // resolveTable: the first byte hints at what the scalar might be; anything else is a string.
    let hint = match value.as_bytes().first() {
        None => b'N',
        Some(b'+' | b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        Some(_) => return (tag::STR, Resolved::Str),
    };
    if let Some(found) = lookup(value) {
        return found;
    }
    match hint {
        b'.' => {
            if let Some(f) = go_parse_float(value) {
                return (tag::FLOAT, Resolved::Float(f));
            }
        }
        b'D' | b'S' => {
            // Only untagged scalars and explicit timestamps are tried as timestamps; a timestamp
            // decodes into interface{} as its text.
            if (explicit.is_empty() || explicit == tag::TIMESTAMP) && is_timestamp(value) {
                return (tag::TIMESTAMP, Resolved::Str);
            }
            let plain: String = value.chars().filter(|&c| c != '_').collect();
            let int_error = match go_parse_int(&plain) {
                Ok(i) => return (tag::INT, Resolved::Int(i)),
                Err(_) => match go_parse_uint(&plain) {
                    Ok(u) => return (tag::INT, Resolved::Uint(u)),
                    Err(e) => e,
                },
            };
            if let Some(f) = is_yaml_style_float(&plain)
                .then(|| go_parse_float(&plain))
                .flatten()
            {
                return (tag::FLOAT, Resolved::Float(f));
            }
            if let Some(binary) = plain.strip_prefix("0b") {
                if let Ok(i) = parse_signed_radix(binary, 2) {
                    return (tag::INT, Resolved::Int(i));
                }
                if let Ok(u) = parse_unsigned_radix(binary, 2) {
                    return (tag::INT, Resolved::Uint(u));
                }
            } else if let Some(Ok(i)) = plain
                .strip_prefix("-0b")
                .map(|binary| parse_signed_radix(&format!("-{binary}"), 2))
            {
                return (tag::INT, Resolved::Int(i));
            }
            // Out of 64-bit range but well-formed for math/big: an integer all the same.
            if int_error == NumError::Range && is_big_int(&plain) {
                return (tag::INT, Resolved::BigInt);
            }
        }
        _ => {}
    }
    (tag::STR, Resolved::Str)
}

/// `strconv` error classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumError {
    Syntax,
    Range,
}

/// `strconv.ParseInt(s, 0, 64)` (underscores are already gone).
fn go_parse_int(s: &str) -> Result<i64, NumError> {
    with_sign(s, go_parse_uint)
}

/// `strconv.ParseInt(s, radix, 64)` for an explicit radix: sign allowed, no prefix.
fn parse_signed_radix(s: &str, radix: u32) -> Result<i64, NumError> {
    with_sign(s, |digits| parse_unsigned_radix(digits, radix))
}

/// An optional sign, then a magnitude that must fit `i64`.
fn with_sign(s: &str, magnitude: impl Fn(&str) -> Result<u64, NumError>) -> Result<i64, NumError> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let u = magnitude(digits)?;
    if negative {
        0i64.checked_sub_unsigned(u).ok_or(NumError::Range)
    } else {
        i64::try_from(u).map_err(|_| NumError::Range)
    }
}

/// Go's base prefixes for base 0: `0b`, `0o`, `0x` (either case), and a leading `0` for octal.
fn split_base_prefix(s: &str) -> (u32, &str) {
    match s.as_bytes() {
        [b'0', p, ..] if p.eq_ignore_ascii_case(&b'b') => (2, &s[2..]),
        [b'0', p, ..] if p.eq_ignore_ascii_case(&b'o') => (8, &s[2..]),
        [b'0', p, ..] if p.eq_ignore_ascii_case(&b'x') => (16, &s[2..]),
        [b'0', _, ..] => (8, &s[1..]),
        _ => (10, s),
    }
}

/// `strconv.ParseUint(s, 0, 64)`: base from the prefix, no sign.
fn go_parse_uint(s: &str) -> Result<u64, NumError> {
    let (radix, digits) = split_base_prefix(s);
    parse_unsigned_radix(digits, radix)
}

fn parse_unsigned_radix(digits: &str, radix: u32) -> Result<u64, NumError> {
    if digits.is_empty() {
        return Err(NumError::Syntax);
    }
    let mut n: u64 = 0;
    let mut overflow = false;
    for c in digits.chars() {
        let d = c.to_digit(radix).ok_or(NumError::Syntax)?;
        match n
            .checked_mul(u64::from(radix))
            .and_then(|m| m.checked_add(u64::from(d)))
        {
            Some(m) => n = m,
            None => overflow = true,
        }
    }
    if overflow {
        Err(NumError::Range)
    } else {
        Ok(n)
    }
}

/// `big.Int.SetString(s, 0)`: optional sign, base prefix, digits of that base.
fn is_big_int(s: &str) -> bool {
    let (radix, digits) = split_base_prefix(s.strip_prefix(['-', '+']).unwrap_or(s));
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
}

/// resolve.go `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// `strconv.ParseFloat(s, 64)` for the decimal forms `resolve` can hand it (a leading `.`, or
/// text that matched [`is_yaml_style_float`]): `None` on a syntax error and on overflow (Go's
/// `ErrRange`, which `resolve` treats as not-a-float).
fn go_parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let mut mantissa_digits = 0;
    let mut saw_dot = false;
    let mut saw_underscore = false;
    while i < b.len() {
        match b[i] {
            b'0'..=b'9' => mantissa_digits += 1,
            b'_' => saw_underscore = true,
            b'.' if !saw_dot => saw_dot = true,
            _ => break,
        }
        i += 1;
    }
    if mantissa_digits == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let mut exponent_digits = 0;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            if b[i] == b'_' {
                saw_underscore = true;
            } else {
                exponent_digits += 1;
            }
            i += 1;
        }
        if exponent_digits == 0 {
            return None;
        }
    }
    if i != b.len() || (saw_underscore && !go_underscore_ok(s)) {
        return None;
    }
    let cleaned: String = s.chars().filter(|&c| c != '_').collect();
    let f: f64 = cleaned.parse().ok()?;
    // Go reports overflow as ErrRange; the text then stays a string.
    f.is_finite().then_some(f)
}

/// strconv `underscoreOK`: underscores only between digits.
fn go_underscore_ok(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let mut saw = b'^';
    for &c in s.as_bytes() {
        if c.is_ascii_digit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// resolve.go `parseTimestamp`: `YYYY-` and then one of Go's layouts
/// `2006-1-2T15:4:5.999999999Z07:00` (also with a lower-case `t`), `2006-1-2 15:4:5.999999999`
/// and `2006-1-2`, with `time.Parse`'s range checks.
pub fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut i = 5;
    let year: u32 = s[..4].parse().unwrap_or(0);
    let Some(month) = number(b, &mut i, 1, 12) else {
        return false;
    };
    if b.get(i) != Some(&b'-') {
        return false;
    }
    i += 1;
    let Some(day) = number(b, &mut i, 1, 31) else {
        return false;
    };
    if day > days_in_month(year, month) {
        return false;
    }
    if i == b.len() {
        return true;
    }
    let zoned = match b[i] {
        b'T' | b't' => true,
        b' ' => false,
        _ => return false,
    };
    i += 1;
    let clock = number(b, &mut i, 0, 23).is_some()
        && b.get(i) == Some(&b':')
        && {
            i += 1;
            number(b, &mut i, 0, 59).is_some()
        }
        && b.get(i) == Some(&b':')
        && {
            i += 1;
            number(b, &mut i, 0, 59).is_some()
        };
    if !clock {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if !zoned {
        return i == b.len();
    }
    match &b[i..] {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
                && (h1 - b'0') * 10 + (h2 - b'0') <= 24
                && (m1 - b'0') * 10 + (m2 - b'0') <= 59
        }
        _ => false,
    }
}

/// One or two digits at `i` (Go's non-fixed `getnum`), within `min..=max`.
fn number(b: &[u8], i: &mut usize, min: u32, max: u32) -> Option<u32> {
    let start = *i;
    while *i < b.len() && *i - start < 2 && b[*i].is_ascii_digit() {
        *i += 1;
    }
    if *i == start {
        return None;
    }
    let n = b[start..*i]
        .iter()
        .fold(0, |n, d| n * 10 + u32::from(d - b'0'));
    (min..=max).contains(&n).then_some(n)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Go's `base64.StdEncoding.DecodeString` after libyaml removed line breaks: padded standard
/// alphabet; the bytes become a Go string (invalid UTF-8 is replaced when JSON-encoded).
fn decode_binary(text: &str) -> Result<String, ResolveError> {
    use base64::Engine as _;
    let compact: String = text.chars().filter(|c| !matches!(c, '\n' | '\r')).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| ResolveError::InvalidBinary)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> Resolved {
        resolve(s, Style::Plain, None).unwrap()
    }

    #[test]
    fn plain_scalars_resolve_as_go_yaml_v2_does() {
        use Resolved::*;
        for (text, expected) in [
            // Booleans: every YAML 1.1 spelling go-yaml v2 knows, and near misses.
            ("y", Bool(true)),
            ("Y", Bool(true)),
            ("yes", Bool(true)),
            ("Yes", Bool(true)),
            ("YES", Bool(true)),
            ("true", Bool(true)),
            ("True", Bool(true)),
            ("TRUE", Bool(true)),
            ("on", Bool(true)),
            ("On", Bool(true)),
            ("ON", Bool(true)),
            ("n", Bool(false)),
            ("N", Bool(false)),
            ("no", Bool(false)),
            ("No", Bool(false)),
            ("NO", Bool(false)),
            ("false", Bool(false)),
            ("False", Bool(false)),
            ("FALSE", Bool(false)),
            ("off", Bool(false)),
            ("Off", Bool(false)),
            ("OFF", Bool(false)),
            ("yEs", Str),
            ("tRUE", Str),
            ("oN", Str),
            // Null.
            ("", Null),
            ("~", Null),
            ("null", Null),
            ("Null", Null),
            ("NULL", Null),
            ("nULL", Str),
            // Integers: decimal, octal (YAML 1.1 and 1.2 spellings), hex, binary, signs,
            // underscores anywhere.
            ("0", Int(0)),
            ("42", Int(42)),
            ("-42", Int(-42)),
            ("+42", Int(42)),
            ("0755", Int(493)),
            ("-0755", Int(-493)),
            ("0o755", Int(493)),
            ("0O755", Int(493)),
            ("0x1F", Int(31)),
            ("0X1f", Int(31)),
            ("-0x1F", Int(-31)),
            ("0b101", Int(5)),
            ("-0b101", Int(-5)),
            ("1_000", Int(1000)),
            ("1__0", Int(10)),
            ("_1", Str),
            ("0_755", Int(493)),
            ("9223372036854775807", Int(i64::MAX)),
            ("-9223372036854775808", Int(i64::MIN)),
            ("9223372036854775808", Uint(9_223_372_036_854_775_808)),
            ("18446744073709551615", Uint(u64::MAX)),
            ("0xFFFFFFFFFFFFFFFF", Uint(u64::MAX)),
            // Beyond 64 bits: decimal spellings become floats (yamlStyleFloat comes first),
            // prefixed ones big integers.
            ("18446744073709551616", Float(18_446_744_073_709_551_616.0)),
            ("0x10000000000000000", BigInt),
            // Not octal: 08 and 09 fall through to the float pattern.
            ("08", Float(8.0)),
            ("0778", Float(778.0)),
            // Floats.
            ("1.5", Float(1.5)),
            ("-1.5", Float(-1.5)),
            ("1.", Float(1.0)),
            (".5", Float(0.5)),
            ("-.5", Float(-0.5)),
            ("1e3", Float(1000.0)),
            ("1E+3", Float(1000.0)),
            ("1_000.5", Float(1000.5)),
            ("6.02e23", Float(6.02e23)),
            (".5_5", Float(0.55)),
            ("._5", Str),
            ("1e400", Str),
            (".1e400", Str),
            (".nan", Float(f64::NAN)),
            (".NaN", Float(f64::NAN)),
            (".NAN", Float(f64::NAN)),
            (".inf", Float(f64::INFINITY)),
            (".Inf", Float(f64::INFINITY)),
            (".INF", Float(f64::INFINITY)),
            ("+.inf", Float(f64::INFINITY)),
            ("-.inf", Float(f64::NEG_INFINITY)),
            ("-.Inf", Float(f64::NEG_INFINITY)),
            ("-.INF", Float(f64::NEG_INFINITY)),
            (".iNf", Str),
            ("nan", Str),
            ("inf", Str),
            ("Infinity", Str),
            (".", Str),
            // Base 60 is unsupported on purpose in go-yaml v2.
            ("1:20", Str),
            ("190:20:30", Str),
            // Timestamps decode into interface{} as their text.
            ("2001-12-14", Str),
            ("2001-12-14T21:59:43.10Z", Str),
            ("2001-12-14t21:59:43.10-05:00", Str),
            ("2001-12-14 21:59:43.10", Str),
            // Only a mapping key `<<` merges; as a value it is a string.
            ("<<", Str),
            // Other strings.
            ("=", Str),
            ("1.2.3", Str),
            ("1-2", Str),
            ("0x", Str),
            ("0b", Str),
            ("0b102", Str),
            ("+", Str),
            ("-", Str),
            ("--1", Str),
            ("1e", Str),
            ("12:30", Str),
            ("v1", Str),
            ("0.0.0.0", Str),
        ] {
            let got = plain(text);
            let same = match (&got, &expected) {
                (Float(a), Float(b)) => a == b || (a.is_nan() && b.is_nan()),
                (a, b) => a == b,
            };
            assert!(same, "{text:?}: got {got:?}, expected {expected:?}");
        }
    }

    #[test]
    fn quoted_and_block_scalars_are_strings() {
        for text in ["no", "0755", "1_000", "~", "", "<<", "true"] {
            assert_eq!(
                resolve(text, Style::NotPlain, None).unwrap(),
                Resolved::Str,
                "{text:?}"
            );
        }
    }

    #[test]
    fn explicit_tags() {
        let long = |t: &str| format!("{CORE_TAG_PREFIX}{t}");
        for (text, style, tag, expected) in [
            ("123", Style::Plain, long("str"), Ok(Resolved::Str)),
            ("yes", Style::Plain, long("str"), Ok(Resolved::Str)),
            ("123", Style::NotPlain, long("int"), Ok(Resolved::Int(123))),
            ("0x10", Style::Plain, long("int"), Ok(Resolved::Int(16))),
            (
                "yes",
                Style::NotPlain,
                long("bool"),
                Ok(Resolved::Bool(true)),
            ),
            ("~", Style::Plain, long("null"), Ok(Resolved::Null)),
            ("1", Style::Plain, long("float"), Ok(Resolved::Float(1.0))),
            ("1.5", Style::Plain, long("float"), Ok(Resolved::Float(1.5))),
            (
                "2001-12-14",
                Style::Plain,
                long("timestamp"),
                Ok(Resolved::Str),
            ),
            ("12", Style::Plain, "!".to_owned(), Ok(Resolved::Str)),
            ("12", Style::Plain, "!custom".to_owned(), Ok(Resolved::Str)),
            ("12", Style::Plain, long("seq"), Ok(Resolved::Str)),
            (
                "aGVsbG8=",
                Style::Plain,
                long("binary"),
                Ok(Resolved::Binary("hello".into())),
            ),
            (
                "aGVs\nbG8=",
                Style::NotPlain,
                long("binary"),
                Ok(Resolved::Binary("hello".into())),
            ),
            (
                "aGVsbG8",
                Style::Plain,
                long("binary"),
                Err(ResolveError::InvalidBinary),
            ),
            (
                "abc",
                Style::Plain,
                long("int"),
                Err(ResolveError::WrongTag {
                    found: "!!str",
                    value: "abc".into(),
                    tag: "!!int".into(),
                }),
            ),
            (
                "1.5",
                Style::Plain,
                long("int"),
                Err(ResolveError::WrongTag {
                    found: "!!float",
                    value: "1.5".into(),
                    tag: "!!int".into(),
                }),
            ),
            (
                "2001-13-14",
                Style::Plain,
                long("timestamp"),
                Err(ResolveError::WrongTag {
                    found: "!!str",
                    value: "2001-13-14".into(),
                    tag: "!!timestamp".into(),
                }),
            ),
        ] {
            assert_eq!(resolve(text, style, Some(&tag)), expected, "{tag} {text:?}");
        }
    }

    #[test]
    fn timestamps_follow_go_time_layouts() {
        for (text, expected) in [
            ("2001-12-14", true),
            ("2001-1-2", true),
            ("2000-02-29", true),
            ("1900-02-29", false),
            ("2001-02-29", false),
            ("2001-13-01", false),
            ("2001-12-32", false),
            ("2001-12-14T21:59:43Z", true),
            ("2001-12-14T21:59:43.123456789+05:30", true),
            ("2001-12-14T21:59:43", false),
            ("2001-12-14 21:59:43", true),
            ("2001-12-14 21:59:43Z", false),
            ("2001-12-14T25:59:43Z", false),
            ("201-12-14", false),
            ("20011-12-14", false),
        ] {
            assert_eq!(is_timestamp(text), expected, "{text}");
        }
    }
}
