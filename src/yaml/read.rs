//! Reading a YAML stream into what kubectl and Helm would send the API server.
//!
//! saphyr-parser turns the text into events (with scalar styles, tags, anchors and positions);
//! this module builds each document the way go-yaml v2 decodes it into `interface{}` and
//! sigs.k8s.io/yaml then converts it to JSON (`yaml.go` `convertToJSONableObject`, and
//! `goyaml.v2/decode.go` `mapping`/`merge`/`alias`):
//! - plain scalars resolve with [`super::resolve`]; quoted and block scalars are strings;
//! - non-string keys become strings (`1` → `"1"`, `true` → `"true"`, floats with Go's
//!   `FormatFloat(f, 'g', -1, 32)`); null, sequence and mapping keys are errors;
//! - a duplicate key keeps its first position and its last value (Go maps: last wins);
//! - the merge key `<<` copies a mapping's entries (or, for a sequence of mappings, each one from
//!   the last to the first) into the mapping at that point, overriding keys already set;
//! - aliases are copies of their anchor's value;
//! - NaN and infinities are errors as values (`json.Marshal` refuses them), as are integers
//!   beyond 64 bits, which pod-hardener could not carry without changing them.
//!
//! The result keeps key order ([`Tree`]), for writing changed documents back in their order.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, StrInput};
use serde_json::{Map, Number, Value};

use super::resolve::{self, Resolved, Style};

/// One document's content, in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    /// null.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// An integer above `i64::MAX`.
    Uint(u64),
    /// A float.
    Float(f64),
    /// An integer beyond 64 bits, as written.
    BigInt(String),
    /// A string.
    String(String),
    /// A sequence.
    Seq(Vec<Tree>),
    /// A mapping, keys converted to strings, in document order without duplicates.
    Map(Vec<(String, Tree)>),
}

/// A document of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedDocument {
    /// 0-based index in the stream (empty documents count).
    pub index: usize,
    /// The content.
    pub tree: Tree,
    /// The bytes of the input holding the document's root node, from its first character (tag
    /// or anchor included) to the end of the line its last character is on.
    pub content: Range<usize>,
}

/// Why a YAML stream cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum YamlError {
    /// Not YAML.
    #[error("document {index}: line {line} column {column}: {message}")]
    Syntax {
        /// 0-based document index.
        index: usize,
        /// 1-based line in the stream.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// YAML that Kubernetes' tools would not turn into JSON either.
    #[error("document {index}: line {line}: {path}: {message}")]
    Value {
        /// 0-based document index.
        index: usize,
        /// 1-based line in the stream.
        line: usize,
        /// Where in the document, like `spec.volumes[0].configMap`.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A field path for messages: `spec.containers[0].env`.
#[derive(Debug, Clone, Default)]
pub struct FieldPath(Vec<PathStep>);

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

impl FieldPath {
    fn push_key(&mut self, key: &str) {
        self.0.push(PathStep::Key(key.to_owned()));
    }
    fn push_index(&mut self, index: usize) {
        self.0.push(PathStep::Index(index));
    }
    fn pop(&mut self) {
        self.0.pop();
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Index(n) => write!(f, "[{n}]")?,
                PathStep::Key(k) if is_simple_key(k) => {
                    if i > 0 {
                        f.write_char('.')?;
                    }
                    f.write_str(k)?;
                }
                PathStep::Key(k) => write!(f, "[{}]", Value::String(k.clone()))?,
            }
        }
        Ok(())
    }
}

fn is_simple_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// How many nodes aliases may copy into one document: go-yaml v2 refuses "excessive aliasing"
/// (billion laughs); this bound is simpler and as safe.
const MAX_ALIAS_NODES: usize = 1_000_000;

/// How deeply collections may nest: Kubernetes objects nest a few dozen levels; a bound keeps
/// hostile input from exhausting the stack of this recursive reader (and of the writer).
const MAX_DEPTH: usize = 256;

/// Parses every document of `text`.
pub fn parse_stream(text: &str) -> Result<Vec<ParsedDocument>, YamlError> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        positions: Positions::new(text),
        text,
        index: 0,
        anchors: HashMap::new(),
        alias_nodes: 0,
        extent: None,
        depth: 0,
    };
    builder.stream()
}

/// Character index to byte offset (saphyr's markers count characters).
struct Positions {
    /// Byte offset of each character, and the length at the end; empty for ASCII text.
    bytes: Vec<usize>,
}

impl Positions {
    fn new(text: &str) -> Self {
        if text.is_ascii() {
            return Positions { bytes: Vec::new() };
        }
        let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bytes.push(text.len());
        Positions { bytes }
    }

    fn byte(&self, char_index: usize) -> usize {
        if self.bytes.is_empty() {
            char_index
        } else {
            self.bytes
                .get(char_index)
                .or(self.bytes.last())
                .copied()
                .unwrap_or(0)
        }
    }
}

struct Builder<'a> {
    parser: Parser<'a, StrInput<'a>>,
    positions: Positions,
    text: &'a str,
    index: usize,
    /// Anchored values of the current document, by saphyr's anchor id, with their node counts.
    anchors: HashMap<usize, (Tree, usize)>,
    alias_nodes: usize,
    /// Character range of the current document's root node so far.
    extent: Option<(usize, usize)>,
    /// Collections open around the current node.
    depth: usize,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next_event() {
            Some(Ok((event, span))) => {
                self.note_extent(&event, span);
                Ok((event, span))
            }
            Some(Err(e)) => Err(YamlError::Syntax {
                index: self.index,
                line: e.marker().line(),
                column: e.marker().col() + 1,
                message: e.info().to_owned(),
            }),
            None => Err(self.syntax_error_at_end("unexpected end of the stream")),
        }
    }

    fn syntax_error_at_end(&self, message: &str) -> YamlError {
        YamlError::Syntax {
            index: self.index,
            line: self.text.lines().count().max(1),
            column: 1,
            message: message.to_owned(),
        }
    }

    /// Widens the root node's extent by an event inside it. The end events of block
    /// collections sit at the next token (an empty span there), so they do not count.
    fn note_extent(&mut self, event: &Event<'a>, span: Span) {
        let counts = match event {
            Event::Scalar(..) | Event::Alias(_) => true,
            Event::MappingStart(..) | Event::SequenceStart(..) => true,
            Event::MappingEnd | Event::SequenceEnd => span.end.index() > span.start.index(),
            _ => false,
        };
        if !counts {
            return;
        }
        let (start, end) = (span.start.index(), span.end.index());
        self.extent = Some(match self.extent {
            None => (start, end),
            Some((s, e)) => (s.min(start), e.max(end)),
        });
    }

    fn stream(&mut self) -> Result<Vec<ParsedDocument>, YamlError> {
        let mut documents = Vec::new();
        loop {
            let (event, _) = self.next()?;
            match event {
                Event::StreamStart | Event::Nothing => {}
                Event::StreamEnd => return Ok(documents),
                Event::DocumentStart(_) => {
                    self.anchors.clear();
                    self.alias_nodes = 0;
                    self.extent = None;
                    let mut path = FieldPath::default();
                    let (event, span) = self.next()?;
                    let tree = self.node(event, span, &mut path)?;
                    let (event, _) = self.next()?;
                    if !matches!(event, Event::DocumentEnd) {
                        return Err(self.syntax_error_at_end("expected the end of the document"));
                    }
                    let (start, end) = self.extent.unwrap_or((0, 0));
                    documents.push(ParsedDocument {
                        index: self.index,
                        tree,
                        content: self.content_bytes(start, end),
                    });
                    self.index += 1;
                }
                _ => return Err(self.syntax_error_at_end("expected a document")),
            }
        }
    }

    /// The byte range from `start` to the end of the line that holds the character before
    /// `end`.
    fn content_bytes(&self, start: usize, end: usize) -> Range<usize> {
        let start = self.positions.byte(start);
        let mut end = self.positions.byte(end).max(start);
        let bytes = self.text.as_bytes();
        if end > start && bytes.get(end - 1) != Some(&b'\n') {
            end = match bytes[end..].iter().position(|&b| b == b'\n') {
                Some(n) => end + n + 1,
                None => bytes.len(),
            };
        }
        start..end
    }

    fn value_error(&self, span: Span, path: &FieldPath, message: impl Into<String>) -> YamlError {
        YamlError::Value {
            index: self.index,
            line: span.start.line(),
            path: path.to_string(),
            message: message.into(),
        }
    }

    fn node(
        &mut self,
        event: Event<'a>,
        span: Span,
        path: &mut FieldPath,
    ) -> Result<Tree, YamlError> {
        let (tree, anchor) = match event {
            Event::Scalar(value, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    _ => Style::NotPlain,
                };
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                let resolved = resolve::resolve(&value, style, tag.as_deref())
                    .map_err(|e| self.value_error(span, path, e.to_string()))?;
                let tree = match resolved {
                    Resolved::Null => Tree::Null,
                    Resolved::Bool(b) => Tree::Bool(b),
                    Resolved::Int(i) => Tree::Int(i),
                    Resolved::Uint(u) => Tree::Uint(u),
                    Resolved::Float(f) => Tree::Float(f),
                    Resolved::BigInt => Tree::BigInt(value.into_owned()),
                    Resolved::Binary(s) => Tree::String(s),
                    Resolved::Str => Tree::String(value.into_owned()),
                };
                (tree, anchor)
            }
            Event::Alias(id) => {
                let Some((tree, nodes)) = self.anchors.get(&id) else {
                    return Err(self.value_error(span, path, "unknown anchor referenced"));
                };
                self.alias_nodes += nodes;
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(self.value_error(
                        span,
                        path,
                        "document contains excessive aliasing",
                    ));
                }
                return Ok(tree.clone());
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if self.depth >= MAX_DEPTH => {
                return Err(self.value_error(
                    span,
                    path,
                    format!("collections nest more than {MAX_DEPTH} levels deep"),
                ));
            }
            Event::SequenceStart(anchor, _) => {
                self.depth += 1;
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    path.push_index(items.len());
                    items.push(self.node(event, span, path)?);
                    path.pop();
                }
                self.depth -= 1;
                (Tree::Seq(items), anchor)
            }
            Event::MappingStart(anchor, _) => {
                self.depth += 1;
                let tree = self.mapping(path)?;
                self.depth -= 1;
                (tree, anchor)
            }
            _ => return Err(self.syntax_error_at_end("expected a node")),
        };
        if anchor != 0 {
            let nodes = count_nodes(&tree);
            self.anchors.insert(anchor, (tree.clone(), nodes));
        }
        Ok(tree)
    }

    fn mapping(&mut self, path: &mut FieldPath) -> Result<Tree, YamlError> {
        let mut entries = Entries::default();
        loop {
            let (event, key_span) = self.next()?;
            if matches!(event, Event::MappingEnd) {
                return Ok(Tree::Map(entries.list));
            }
            let is_merge = match &event {
                Event::Scalar(value, style, _, tag) => {
                    value == "<<"
                        && match tag {
                            None => *style == ScalarStyle::Plain,
                            Some(t) => t.handle == resolve::CORE_TAG_PREFIX && t.suffix == "merge",
                        }
                }
                _ => false,
            };
            let key = self.node(event, key_span, path)?;
            let (event, value_span) = self.next()?;
            if is_merge {
                path.push_key("<<");
                let merged = self.node(event, value_span, path)?;
                self.merge(&mut entries, merged, value_span, path)?;
                path.pop();
                continue;
            }
            let key = key_string(&key).map_err(|m| self.value_error(key_span, path, m))?;
            path.push_key(&key);
            let value = self.node(event, value_span, path)?;
            path.pop();
            entries.insert(key, value);
        }
    }

    fn merge(
        &self,
        entries: &mut Entries,
        merged: Tree,
        span: Span,
        path: &FieldPath,
    ) -> Result<(), YamlError> {
        let wrong = || {
            self.value_error(
                span,
                path,
                "map merge requires map or sequence of maps as the value",
            )
        };
        match merged {
            Tree::Map(from) => {
                for (k, v) in from {
                    entries.insert(k, v);
                }
            }
            // Earlier mappings take precedence: they are merged last.
            Tree::Seq(maps) => {
                for map in maps.into_iter().rev() {
                    let Tree::Map(from) = map else {
                        return Err(wrong());
                    };
                    for (k, v) in from {
                        entries.insert(k, v);
                    }
                }
            }
            _ => return Err(wrong()),
        }
        Ok(())
    }
}

/// A mapping being built: entries in document order, and where each key is (a large mapping
/// must not cost quadratic time).
#[derive(Default)]
struct Entries {
    list: Vec<(String, Tree)>,
    index: HashMap<String, usize>,
}

impl Entries {
    /// Sets `key`: a key already there keeps its position and takes the new value.
    fn insert(&mut self, key: String, value: Tree) {
        match self.index.get(&key) {
            Some(&i) => self.list[i].1 = value,
            None => {
                self.index.insert(key.clone(), self.list.len());
                self.list.push((key, value));
            }
        }
    }
}

fn count_nodes(tree: &Tree) -> usize {
    match tree {
        Tree::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Tree::Map(entries) => {
            1 + entries
                .iter()
                .map(|(_, v)| 1 + count_nodes(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// sigs.k8s.io/yaml's key conversion.
fn key_string(key: &Tree) -> Result<String, String> {
    Ok(match key {
        Tree::String(s) => s.clone(),
        Tree::Int(i) => i.to_string(),
        Tree::Bool(b) => b.to_string(),
        Tree::Float(f) => go_format_float32_g(*f),
        Tree::Null => return Err("unsupported map key: null".into()),
        Tree::Uint(u) => return Err(format!("unsupported map key of type uint64: {u}")),
        Tree::BigInt(s) => return Err(format!("unsupported map key of type *big.Int: {s}")),
        Tree::Seq(_) | Tree::Map(_) => return Err("invalid map key: a sequence or mapping".into()),
    })
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)` with go-yaml's spellings of the infinities and NaN.
pub fn go_format_float32_g(f: f64) -> String {
    let f = f as f32;
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest digits and decimal exponent, from Rust's shortest round-trip formatting.
    let scientific = format!("{:e}", f.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    // strconv ftoa, 'g' with the shortest precision: %e when the exponent is below -4 or at
    // least 6.
    if !(-4..6).contains(&exponent) {
        let mut out = format!("{sign}{}", &digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        );
        return out;
    }
    let point = exponent + 1;
    let mut out = sign.to_owned();
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&digits);
    } else if point as usize >= digits.len() {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    out
}

/// Why a document has no JSON form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Where.
    pub path: String,
    /// What.
    pub message: String,
}

impl Tree {
    /// The JSON that sigs.k8s.io/yaml would produce (and the API server receive): floats that are
    /// whole numbers are written as integers by Go's `json.Marshal`, so they are integers here.
    pub fn to_json(&self) -> Result<Value, JsonError> {
        let mut path = FieldPath::default();
        self.to_json_at(&mut path)
    }

    fn to_json_at(&self, path: &mut FieldPath) -> Result<Value, JsonError> {
        let error = |path: &FieldPath, message: String| JsonError {
            path: path.to_string(),
            message,
        };
        Ok(match self {
            Tree::Null => Value::Null,
            Tree::Bool(b) => Value::Bool(*b),
            Tree::Int(i) => Value::from(*i),
            Tree::Uint(u) => Value::from(*u),
            Tree::Float(f) => Value::Number(json_number(*f).ok_or_else(|| {
                error(
                    path,
                    format!("unsupported value: {}", go_format_float32_g(*f)),
                )
            })?),
            Tree::BigInt(s) => {
                return Err(error(path, format!("integer {s} does not fit in 64 bits")));
            }
            Tree::String(s) => Value::String(s.clone()),
            Tree::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push_index(i);
                    out.push(item.to_json_at(path)?);
                    path.pop();
                }
                Value::Array(out)
            }
            Tree::Map(entries) => {
                let mut out = Map::new();
                for (k, v) in entries {
                    path.push_key(k);
                    out.insert(k.clone(), v.to_json_at(path)?);
                    path.pop();
                }
                Value::Object(out)
            }
        })
    }
}

/// A float as the number Go's `json.Marshal` text denotes: whole numbers below 1e21 are written
/// without a fraction, so they read back as integers.
fn json_number(f: f64) -> Option<Number> {
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f >= i64::MIN as f64 && f < i64::MAX as f64 {
            return Some(Number::from(f as i64));
        }
        if f >= 0.0 && f < u64::MAX as f64 {
            return Some(Number::from(f as u64));
        }
    }
    Number::from_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_of(text: &str) -> Value {
        let docs = parse_stream(text).unwrap();
        assert_eq!(docs.len(), 1, "{text}");
        docs[0].tree.to_json().unwrap()
    }

    #[test]
    fn documents_read_as_sigs_k8s_io_yaml_converts_them() {
        for (text, expected) in [
            // Non-string keys become strings.
            (
                "1: a\n0x10: b\ntrue: c\nno: d\n1.5: e\n0.1: f\n1e6: g\n.inf: h\n",
                json!({
                    "1": "a", "16": "b", "true": "c", "false": "d", "1.5": "e", "0.1": "f",
                    "1e+06": "g", ".inf": "h"
                }),
            ),
            // Duplicate keys: the last value wins.
            ("a: 1\nb: 2\na: 3\n", json!({"a": 3, "b": 2})),
            // Merge keys, in order: a later explicit key overrides, an earlier one is overridden.
            (
                "base: &b {p: 1, q: 2}\nm:\n  <<: *b\n  q: 3\n",
                json!({"base": {"p": 1, "q": 2}, "m": {"p": 1, "q": 3}}),
            ),
            (
                "base: &b {p: 1, q: 2}\nm:\n  q: 3\n  <<: *b\n",
                json!({"base": {"p": 1, "q": 2}, "m": {"p": 1, "q": 2}}),
            ),
            // YAML 1.1 boolean keys: `y` and `n` are true and false.
            ("y: 1\nn: 2\nx: 3\n", json!({"true": 1, "false": 2, "x": 3})),
            // A sequence of merges: earlier mappings take precedence.
            (
                "a: &a {k: 1}\nb: &b {k: 2, l: 2}\nm: {<<: [*a, *b]}\n",
                json!({"a": {"k": 1}, "b": {"k": 2, "l": 2}, "m": {"k": 1, "l": 2}}),
            ),
            // A quoted "<<" is an ordinary key; !!merge makes one a merge key.
            ("\"<<\": {k: 1}\n", json!({"<<": {"k": 1}})),
            ("m: {!!merge <<: {k: 1}}\n", json!({"m": {"k": 1}})),
            // Aliases copy; a redefined anchor applies from its new definition on.
            (
                "a: &x 1\nb: *x\nc: &x 2\nd: *x\n",
                json!({"a": 1, "b": 1, "c": 2, "d": 2}),
            ),
            // Tags.
            (
                "a: !!str 0755\nb: !!int \"0755\"\nc: !!float 1\nd: !!binary aGk=\ne: !custom 12\nf: ! 12\n",
                json!({"a": "0755", "b": 493, "c": 1, "d": "hi", "e": "12", "f": "12"}),
            ),
            // Floats that are whole numbers are integers in Go's JSON.
            (
                "a: 1.0\nb: 1e3\nc: 0.5\nd: 08\n",
                json!({"a": 1, "b": 1000, "c": 0.5, "d": 8}),
            ),
            // Timestamps stay text; empty values are null; block scalars are strings.
            (
                "a: 2001-12-14\nb:\nc: |\n  no\nd: >-\n  0755\n",
                json!({"a": "2001-12-14", "b": null, "c": "no\n", "d": "0755"}),
            ),
        ] {
            assert_eq!(json_of(text), expected, "{text}");
        }
    }

    #[test]
    fn values_without_json_form_are_errors_naming_the_path() {
        for (text, expected) in [
            ("a: {b: [.nan]}\n", "a.b[0]: unsupported value: .nan"),
            ("a: -.inf\n", "a: unsupported value: -.inf"),
            (
                "a: 0x10000000000000000\n",
                "a: integer 0x10000000000000000 does not fit in 64 bits",
            ),
        ] {
            let tree = &parse_stream(text).unwrap()[0].tree;
            let e = tree.to_json().unwrap_err();
            assert_eq!(format!("{}: {}", e.path, e.message), expected, "{text}");
        }
        for (text, expected) in [
            (
                "a:\n  b: *nope\n",
                "document 0: line 2 column 6: while parsing node, found unknown anchor",
            ),
            (
                "a: {<<: 1}\n",
                "document 0: line 1: a[\"<<\"]: map merge requires map or sequence of maps as the value",
            ),
            (
                "a: {<<: [{k: 1}, 2]}\n",
                "document 0: line 1: a[\"<<\"]: map merge requires map or sequence of maps as the value",
            ),
            (
                "? [a]\n: b\n",
                "document 0: line 1: (root): invalid map key: a sequence or mapping",
            ),
            (
                "9223372036854775808: x\n",
                "document 0: line 1: (root): unsupported map key of type uint64: 9223372036854775808",
            ),
            (
                "x: 1\n---\nx: !!bool maybe\n",
                "document 1: line 3: x: cannot decode !!str `maybe` as a !!bool",
            ),
        ] {
            assert_eq!(
                parse_stream(text).unwrap_err().to_string(),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        // saphyr-parser refuses deep nesting itself; MAX_DEPTH is the reader's own bound.
        for deep in [
            format!("{}x\n", "- ".repeat(300)),
            format!("{}{}", "[".repeat(300), "]".repeat(300)),
        ] {
            let err = parse_stream(&deep).unwrap_err().to_string();
            assert!(
                err.ends_with("recursion limit exceeded")
                    || err.ends_with("collections nest more than 256 levels deep"),
                "{err}"
            );
        }
        let fine = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_stream(&fine).is_ok());
    }

    #[test]
    fn aliases_cannot_explode() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let err = parse_stream(&text).unwrap_err().to_string();
        assert!(
            err.ends_with("document contains excessive aliasing"),
            "{err}"
        );
    }

    #[test]
    fn each_document_knows_the_bytes_of_its_root_node() {
        let text = "---\n# Source: a\napiVersion: v1 # trailing\nlist:\n- é\n---\n  indented: yes\n--- !!map\nx: |\n  keep\n\n# after\n---\n{\"json\": 1}\n...\n";
        let docs = parse_stream(text).unwrap();
        let contents: Vec<&str> = docs.iter().map(|d| &text[d.content.clone()]).collect();
        assert_eq!(
            contents,
            [
                "apiVersion: v1 # trailing\nlist:\n- é\n",
                "indented: yes\n",
                "!!map\nx: |\n  keep\n\n",
                "{\"json\": 1}\n",
            ]
        );
    }

    #[test]
    fn float_keys_use_go_float32_formatting() {
        for (f, expected) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (123456789.0, "1.2345679e+08"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (std::f64::consts::PI, "3.1415927"),
            (f64::INFINITY, ".inf"),
            (f64::NEG_INFINITY, "-.inf"),
            (f64::NAN, ".nan"),
        ] {
            assert_eq!(go_format_float32_g(f), expected, "{f}");
        }
    }
}
