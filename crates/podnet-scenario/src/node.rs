//! A YAML stream parsed into trees whose every node knows its line and column.
//!
//! serde-saphyr does the parsing (YAML 1.2 core schema, budgets against alias bombs and deep
//! nesting, never a panic); every node is read through its [`serde_saphyr::Spanned`] wrapper,
//! so the typed deserializer in [`crate::de`] can put a location on any error, and validation
//! can point at any field after the fact.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned};

/// A 1-based line and column in a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Line, from 1 (0: unknown).
    pub line: u32,
    /// Column, from 1 (0: unknown).
    pub col: u32,
}

/// A scalar's or collection's value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// One node of a document.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub val: Val,
    pub pos: Pos,
    /// The text of a plain (unquoted) scalar as written, for string targets (`version: 1.10`
    /// is the string `1.10`, as in Kubernetes' YAML).
    pub raw: Option<String>,
}

impl Node {
    /// The value at `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.val {
            Val::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a dotted path of mapping keys.
    pub fn get_path(&self, path: &str) -> Option<&Node> {
        path.split('.').try_fold(self, |n, k| n.get(k))
    }

    /// The position of the node at `path`, or of the deepest existing node on the way.
    pub fn pos_of(&self, path: &str) -> Pos {
        let mut n = self;
        for seg in path.split('.').filter(|s| !s.is_empty()) {
            let next = match (&n.val, seg.parse::<usize>()) {
                (Val::Seq(items), Ok(i)) => items.get(i),
                _ => n.get(seg),
            };
            match next {
                Some(x) => n = x,
                None => break,
            }
        }
        n.pos
    }

    /// A string scalar's text (a plain scalar's as written).
    pub fn as_str(&self) -> Option<&str> {
        match &self.val {
            Val::Str(s) => Some(s),
            Val::Seq(_) | Val::Map(_) | Val::Null => None,
            _ => self.raw.as_deref(),
        }
    }

    /// What kind of node this is, for messages.
    pub fn kind_name(&self) -> &'static str {
        match self.val {
            Val::Null => "null",
            Val::Bool(_) => "a boolean",
            Val::Int(_) | Val::UInt(_) => "an integer",
            Val::Float(_) => "a float",
            Val::Str(_) => "a string",
            Val::Seq(_) => "a sequence",
            Val::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error (or a budget breach) with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

struct Raw(Val);

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }
    fn visit_none<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        d.deserialize_any(ValVisitor)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Val, E> {
        Ok(Val::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Val, E> {
        Ok(Val::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Val, E> {
        Ok(Val::UInt(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Val, E> {
        i64::try_from(v)
            .map(Val::Int)
            .or_else(|_| u64::try_from(v).map(Val::UInt))
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Val, E> {
        u64::try_from(v)
            .map(Val::UInt)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Val, E> {
        Ok(Val::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val, E> {
        Ok(Val::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Val, E> {
        Ok(Val::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Val, E> {
        Ok(Val::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Val, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = a.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Val::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Val, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = a.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(Val::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor).map(Raw)
    }
}

thread_local! {
    /// The text being parsed, to recover plain scalars as written.
    static SOURCE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Raw>::deserialize(d)?;
        let loc = s.referenced;
        let pos = Pos {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            col: u32::try_from(loc.column()).unwrap_or(u32::MAX),
        };
        let val = s.value.0;
        let raw = match &val {
            Val::Bool(_) | Val::Int(_) | Val::UInt(_) | Val::Float(_) | Val::Null => {
                let span = loc.span();
                let text = match (span.byte_offset(), span.byte_len()) {
                    (Some(off), Some(len)) => SOURCE.with(|src| {
                        let src = src.borrow();
                        let (off, len) = (off as usize, len as usize);
                        src.get(off..off.saturating_add(len))
                            .filter(|t| !t.is_empty() && !t.starts_with(['*', '&', '!']))
                            .map(str::to_string)
                    }),
                    _ => None,
                };
                text.or_else(|| scalar_text(&val))
            }
            _ => None,
        };
        Ok(Node { val, pos, raw })
    }
}

fn scalar_text(v: &Val) -> Option<String> {
    match v {
        Val::Bool(b) => Some(b.to_string()),
        Val::Int(i) => Some(i.to_string()),
        Val::UInt(u) => Some(u.to_string()),
        Val::Float(f) => Some(f.to_string()),
        Val::Null => Some(String::new()),
        _ => None,
    }
}

/// Parses every document of a YAML stream.
pub(crate) fn parse_stream(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::AsString,
        with_snippet: false,
    };
    SOURCE.with(|s| *s.borrow_mut() = text.to_string());
    let result = serde_saphyr::from_multiple_with_options::<Option<Node>>(text, options);
    SOURCE.with(|s| s.borrow_mut().clear());
    match result {
        Ok(docs) => Ok(docs.into_iter().flatten().collect()),
        Err(e) => {
            let e = e.without_snippet();
            let pos = e.location().map_or(Pos::default(), |l| Pos {
                line: u32::try_from(l.line()).unwrap_or(u32::MAX),
                col: u32::try_from(l.column()).unwrap_or(u32::MAX),
            });
            let message = serde_saphyr::DefaultMessageFormatter
                .format_message(e)
                .escape_debug()
                .to_string();
            Err(SyntaxError { pos, message })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_plain_text() {
        let docs = parse_stream("a: 80\nb: \"80\"\nv: 1.10\nn: x\n---\n- 1\n").unwrap();
        assert_eq!(docs.len(), 2);
        let d = &docs[0];
        assert_eq!(d.get("a").unwrap().val, Val::UInt(80));
        assert_eq!(d.get("a").unwrap().pos, Pos { line: 1, col: 4 });
        assert_eq!(d.get("b").unwrap().val, Val::Str("80".into()));
        assert_eq!(d.get("v").unwrap().as_str(), Some("1.10"));
        assert_eq!(d.get("n").unwrap().as_str(), Some("x"));
        assert_eq!(docs[1].pos_of("0"), Pos { line: 6, col: 3 });
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse_stream("a: [1\nb: 2\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
        let e = parse_stream("a: 1\n  b: 2\n").unwrap_err();
        assert_eq!(e.pos.line, 2, "{e:?}");
    }

    #[test]
    fn empty_documents_are_skipped() {
        assert!(parse_stream("").unwrap().is_empty());
        assert_eq!(parse_stream("---\n---\na: 1\n").unwrap().len(), 1);
    }
}
