//! Typed structs (`crate::k8s`'s and ours) read from a located [`Node`] tree, with any error
//! tagged with the position and the path of the innermost node that raised it
//! (`spec.ports[0].port: invalid type: ...` at `12:13`).
//!
//! The messages are serde's (`invalid type: string "eighty", expected i32`, `missing field
//! `name``), but the code is not: each struct lists its fields once in [`impl_from_node!`], which
//! reads them in document order like a serde derive would. That keeps the WebAssembly module
//! small (serde's derived visitors were about a sixth of it).

use std::collections::BTreeMap;
use std::fmt;

use crate::node::{Node, Pos, Val};

/// The path from the object's root to a node.
#[derive(Clone, Copy)]
pub(crate) enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(p, k) => {
                if matches!(p, Path::Root) {
                    write!(f, "{k}")
                } else {
                    write!(f, "{p}.{k}")
                }
            }
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// A deserialization error, with where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeError {
    pub message: String,
    pub pos: Option<Pos>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

/// `message` raised by the node `n` at `path`.
pub(crate) fn fail(n: &Node, path: Path<'_>, message: String) -> DeError {
    let path = path.to_string();
    DeError {
        message: if path.is_empty() {
            message
        } else {
            format!("{path}: {message}")
        },
        pos: Some(n.pos),
    }
}

/// What a node holds, as serde's `Unexpected` words it.
fn unexpected(n: &Node) -> String {
    match &n.val {
        Val::Null => "unit value".to_string(),
        Val::Bool(b) => format!("boolean `{b}`"),
        Val::Int(i) => format!("integer `{i}`"),
        Val::UInt(u) => format!("integer `{u}`"),
        Val::Float(f) => {
            let mut s = f.to_string();
            if f.is_finite() && !s.contains('.') {
                s.push_str(".0");
            }
            format!("floating point `{s}`")
        }
        Val::Str(s) => format!("string {s:?}"),
        Val::Seq(_) => "sequence".to_string(),
        Val::Map(_) => "map".to_string(),
    }
}

pub(crate) fn invalid_type(n: &Node, path: Path<'_>, expected: &str) -> DeError {
    fail(
        n,
        path,
        format!("invalid type: {}, expected {expected}", unexpected(n)),
    )
}

pub(crate) fn invalid_value(n: &Node, path: Path<'_>, expected: &str) -> DeError {
    fail(
        n,
        path,
        format!("invalid value: {}, expected {expected}", unexpected(n)),
    )
}

/// A value read from a node.
pub(crate) trait FromNode: Sized {
    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError>;

    /// The value of a struct field that is left out, `None` when it is required.
    fn absent() -> Option<Self> {
        None
    }
}

/// Reads a `T` from `node`.
pub(crate) fn from_node<T: FromNode>(node: &Node) -> Result<T, DeError> {
    T::from_node(node, Path::Root)
}

/// Calls `field` with each entry of the mapping `n` (a struct `expecting`) in document order.
pub(crate) fn fields<'n>(
    n: &'n Node,
    path: Path<'_>,
    expecting: &str,
    field: &mut dyn FnMut(&str, &'n Node, Path<'_>) -> Result<(), DeError>,
) -> Result<(), DeError> {
    let Val::Map(entries) = &n.val else {
        return Err(invalid_type(n, path, expecting));
    };
    for (k, v) in entries {
        let key = match (&k.val, k.as_str()) {
            (Val::Null | Val::Seq(_) | Val::Map(_), _) | (_, None) => {
                return Err(invalid_type(k, path, "field identifier"))
            }
            (_, Some(key)) => key,
        };
        field(key, v, Path::Key(&path, key))?;
    }
    Ok(())
}

/// A required field that was left out: its type's [`FromNode::absent`] or an error.
pub(crate) fn absent<T: FromNode>(n: &Node, path: Path<'_>, key: &str) -> Result<T, DeError> {
    T::absent().ok_or_else(|| fail(n, path, format!("missing field `{key}`")))
}

/// `impl FromNode` for a struct from its fields and their YAML names. `default`: every field
/// left out is its type's default (`#[serde(default)]` on the struct); otherwise a field left
/// out is an error unless it is an `Option` or marked `= default`.
macro_rules! impl_from_node {
    ($ty:ident, default { $($f:ident: $k:literal),* $(,)? }) => {
        impl $crate::de::FromNode for $ty {
            fn from_node(
                n: &$crate::node::Node,
                path: $crate::de::Path<'_>,
            ) -> Result<Self, $crate::de::DeError> {
                let mut out = Self::default();
                $crate::de::fields(n, path, concat!("struct ", stringify!($ty)), &mut |k, v, p| {
                    match k {
                        $($k => out.$f = $crate::de::FromNode::from_node(v, p)?,)*
                        _ => {}
                    }
                    Ok(())
                })?;
                Ok(out)
            }
        }
    };
    ($ty:ident { $($f:ident: $k:literal $(= $d:ident)?),* $(,)? }) => {
        impl $crate::de::FromNode for $ty {
            fn from_node(
                n: &$crate::node::Node,
                path: $crate::de::Path<'_>,
            ) -> Result<Self, $crate::de::DeError> {
                $(let mut $f = None;)*
                $crate::de::fields(n, path, concat!("struct ", stringify!($ty)), &mut |k, v, p| {
                    match k {
                        $($k => $f = Some($crate::de::FromNode::from_node(v, p)?),)*
                        _ => {}
                    }
                    Ok(())
                })?;
                Ok(Self {
                    $($f: match $f {
                        Some(v) => v,
                        None => impl_from_node!(@absent n, path, $k $(, $d)?),
                    },)*
                })
            }
        }
    };
    (@absent $n:ident, $path:ident, $k:literal) => {
        $crate::de::absent($n, $path, $k)?
    };
    (@absent $n:ident, $path:ident, $k:literal, default) => {
        Default::default()
    };
}
pub(crate) use impl_from_node;

impl<T: FromNode> FromNode for Option<T> {
    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
        match n.val {
            Val::Null => Ok(None),
            _ => T::from_node(n, path).map(Some),
        }
    }
    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl FromNode for String {
    /// Any scalar but null: a plain one as written (`version: 1.10` is `1.10`).
    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
        match (&n.val, n.as_str()) {
            (Val::Null | Val::Seq(_) | Val::Map(_), _) | (_, None) => {
                Err(invalid_type(n, path, "a string"))
            }
            (_, Some(s)) => Ok(s.to_string()),
        }
    }
}

impl FromNode for bool {
    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
        match n.val {
            Val::Bool(b) => Ok(b),
            _ => Err(invalid_type(n, path, "a boolean")),
        }
    }
}

macro_rules! int_from_node {
    ($($t:ty)*) => {$(
        impl FromNode for $t {
            fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
                let v = match n.val {
                    Val::Int(i) => <$t>::try_from(i).ok(),
                    Val::UInt(u) => <$t>::try_from(u).ok(),
                    _ => return Err(invalid_type(n, path, stringify!($t))),
                };
                v.ok_or_else(|| invalid_value(n, path, stringify!($t)))
            }
        }
    )*};
}
int_from_node!(u16 u32 u64 i32);

impl<T: FromNode> FromNode for Vec<T> {
    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
        let Val::Seq(items) = &n.val else {
            return Err(invalid_type(n, path, "a sequence"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| T::from_node(item, Path::Index(&path, i)))
            .collect()
    }
}

/// Labels and other small string maps (`podnet::policy::Labels`): a flat sorted map, filled
/// one key at a time (a later duplicate key wins, as for a `BTreeMap`).
impl<T: FromNode> FromNode for litemap::LiteMap<String, T> {
    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
        let Val::Map(entries) = &n.val else {
            return Err(invalid_type(n, path, "a map"));
        };
        let mut out = litemap::LiteMap::new();
        for (k, v) in entries {
            let key = String::from_node(k, path)?;
            let value = T::from_node(v, Path::Key(&path, k.as_str().unwrap_or("?")))?;
            out.insert(key, value);
        }
        Ok(out)
    }
}

impl<T: FromNode> FromNode for BTreeMap<String, T> {
    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
        let Val::Map(entries) = &n.val else {
            return Err(invalid_type(n, path, "a map"));
        };
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            let key = String::from_node(k, path)?;
            let value = T::from_node(v, Path::Key(&path, k.as_str().unwrap_or("?")))?;
            out.insert(key, value);
        }
        Ok(out)
    }
}

/// A value with the position it was read from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct At<T> {
    /// The value.
    pub value: T,
    /// Where it was written (0:0 when it was not read from a file).
    pub pos: Pos,
}

impl<T> At<T> {
    /// A value read from nowhere.
    pub fn new(value: T) -> Self {
        At {
            value,
            pos: Pos::default(),
        }
    }
}

impl<T: FromNode> FromNode for At<T> {
    fn from_node(n: &Node, path: Path<'_>) -> Result<Self, DeError> {
        Ok(At {
            value: T::from_node(n, path)?,
            pos: n.pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::parse_stream;

    #[derive(Debug)]
    #[allow(dead_code)]
    struct T {
        name: String,
        port: u16,
        tag: Option<At<String>>,
        list: Option<Vec<u32>>,
    }
    impl_from_node!(T {
        name: "name",
        port: "port",
        tag: "tag",
        list: "list",
    });

    fn de(text: &str) -> Result<T, DeError> {
        from_node(&parse_stream(text).unwrap()[0])
    }

    #[test]
    fn errors_carry_the_innermost_position_and_path() {
        let e = de("name: x\nport: 80\nlist:\n  - 1\n  - nope\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 5, col: 5 }));
        assert_eq!(
            e.message,
            "list[1]: invalid type: string \"nope\", expected u32"
        );
        let e = de("name: x\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 1, col: 1 }));
        assert_eq!(e.message, "missing field `port`");
        let e = de("name: x\nport: 70000\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 2, col: 7 }));
        assert_eq!(
            e.message,
            "port: invalid value: integer `70000`, expected u16"
        );
        let e = de("name: x\nport: 1.0\n").unwrap_err();
        assert_eq!(
            e.message,
            "port: invalid type: floating point `1.0`, expected u16"
        );
        let e = de("name:\nport: 1\n").unwrap_err();
        assert_eq!(
            e.message,
            "name: invalid type: unit value, expected a string"
        );
        let e = de("- 1\n").unwrap_err();
        assert_eq!(e.message, "invalid type: sequence, expected struct T");
    }

    #[test]
    fn plain_scalars_read_as_strings_and_at_has_positions() {
        let t = de("name: 1.10\nport: 80\ntag: 007\n").unwrap();
        assert_eq!(t.name, "1.10");
        let tag = t.tag.unwrap();
        assert_eq!(tag.value, "007");
        assert_eq!(tag.pos, Pos { line: 3, col: 6 });
    }
}
