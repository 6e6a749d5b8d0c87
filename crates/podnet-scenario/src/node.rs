//! A YAML stream parsed into trees whose every node knows its line and column.
//!
//! [`crate::yaml`] does the parsing (YAML 1.2 core schema, budgets against alias bombs and
//! deep nesting, never a panic), so the typed deserializer in [`crate::de`] can put a location
//! on any error, and validation can point at any field after the fact.

pub(crate) use crate::yaml::parse_stream;

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
