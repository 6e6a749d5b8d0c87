//! A serde deserializer over a located [`Node`] tree: typed structs (`crate::k8s`'s and ours)
//! are read from it, and any error they raise is tagged with the position and the path of the
//! innermost node that raised it (`spec.ports[0].port: invalid type: ...` at `12:13`).

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::Deserialize;

use crate::node::{Node, Pos, Val};

/// The path from the object's root to a node.
#[derive(Clone, Copy)]
enum Path<'p> {
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

/// A deserialization error, with where it happened once known.
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

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            pos: None,
        }
    }
}

/// Reads a `T` from `node`.
pub(crate) fn from_node<'a, T: Deserialize<'a>>(node: &Node) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node,
        path: Path::Root,
    })
}

struct NodeDe<'a> {
    node: &'a Node,
    path: Path<'a>,
}

impl NodeDe<'_> {
    fn locate<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|mut e| {
            if e.pos.is_none() {
                e.pos = Some(self.node.pos);
                let path = self.path.to_string();
                if !path.is_empty() {
                    e.message = format!("{path}: {}", e.message);
                }
            }
            e
        })
    }

    fn unexpected(&self) -> de::Unexpected<'_> {
        match &self.node.val {
            Val::Null => de::Unexpected::Unit,
            Val::Bool(b) => de::Unexpected::Bool(*b),
            Val::Int(i) => de::Unexpected::Signed(*i),
            Val::UInt(u) => de::Unexpected::Unsigned(*u),
            Val::Float(f) => de::Unexpected::Float(*f),
            Val::Str(s) => de::Unexpected::Str(s),
            Val::Seq(_) => de::Unexpected::Seq,
            Val::Map(_) => de::Unexpected::Map,
        }
    }
}

macro_rules! forward_to_any {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            self.deserialize_any(v)
        }
    )*};
}

/// The newtype name through which [`At`] asks for its node's position.
const AT: &str = "$podnet::At";

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.val {
            Val::Null => v.visit_unit(),
            Val::Bool(b) => v.visit_bool(*b),
            Val::Int(i) => v.visit_i64(*i),
            Val::UInt(u) => v.visit_u64(*u),
            Val::Float(f) => v.visit_f64(*f),
            Val::Str(s) => v.visit_str(s),
            Val::Seq(items) => v.visit_seq(SeqDe {
                items,
                next: 0,
                path: &self.path,
            }),
            Val::Map(entries) => v.visit_map(MapDe {
                entries,
                next: 0,
                value: None,
                path: &self.path,
            }),
        };
        self.locate(r)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.node.val == Val::Null {
            let r = v.visit_none();
            self.locate(r)
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match (&self.node.val, &self.node.raw) {
            (Val::Null, _) => {
                let r = Err(de::Error::invalid_type(de::Unexpected::Unit, &v));
                self.locate(r)
            }
            (Val::Seq(_) | Val::Map(_) | Val::Str(_), _) | (_, None) => self.deserialize_any(v),
            (_, Some(raw)) => {
                let r = v.visit_str(raw);
                self.locate(r)
            }
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_any(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        if name == AT {
            let pos = self.node.pos;
            return v.visit_map(AtMap {
                de: Some(self),
                pos: Some(pos),
            });
        }
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.val {
            Val::Map(entries) if entries.len() == 1 => v.visit_enum(EnumDe {
                key: &entries[0].0,
                value: Some(&entries[0].1),
                path: &self.path,
            }),
            Val::Map(_) | Val::Seq(_) | Val::Null => Err(de::Error::invalid_type(
                self.unexpected(),
                &"a string or a mapping with one key",
            )),
            _ => v.visit_enum(EnumDe {
                key: self.node,
                value: None,
                path: &self.path,
            }),
        };
        self.locate(r)
    }

    forward_to_any! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_bytes
        deserialize_byte_buf deserialize_seq deserialize_map
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(v)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_any(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(v)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(v)
    }
}

struct SeqDe<'a, 'p> {
    items: &'a [Node],
    next: usize,
    path: &'p Path<'p>,
}

impl<'de> SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.get(self.next) else {
            return Ok(None);
        };
        let i = self.next;
        self.next += 1;
        seed.deserialize(NodeDe {
            node,
            path: Path::Index(self.path, i),
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

struct MapDe<'a, 'p> {
    entries: &'a [(Node, Node)],
    next: usize,
    value: Option<&'a (Node, Node)>,
    path: &'p Path<'p>,
}

impl<'de> MapAccess<'de> for MapDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        self.value = Some(entry);
        seed.deserialize(NodeDe {
            node: &entry.0,
            path: *self.path,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((k, v)) = self.value.take() else {
            return Err(de::Error::custom("value without a key"));
        };
        let key = k.as_str().unwrap_or("?");
        seed.deserialize(NodeDe {
            node: v,
            path: Path::Key(self.path, key),
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.next)
    }
}

struct EnumDe<'a, 'p> {
    key: &'a Node,
    value: Option<&'a Node>,
    path: &'p Path<'p>,
}

impl<'de, 'a, 'p> EnumAccess<'de> for EnumDe<'a, 'p> {
    type Error = DeError;
    type Variant = EnumDe<'a, 'p>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let v = seed.deserialize(NodeDe {
            node: self.key,
            path: *self.path,
        })?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for EnumDe<'_, '_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.value {
            None => Ok(()),
            Some(n) if n.val == Val::Null => Ok(()),
            Some(_) => Err(de::Error::custom("expected a plain value, not a mapping")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        let Some(node) = self.value else {
            return Err(de::Error::custom("expected a mapping with one key"));
        };
        let key = self.key.as_str().unwrap_or("?");
        seed.deserialize(NodeDe {
            node,
            path: Path::Key(self.path, key),
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, DeError> {
        let Some(node) = self.value else {
            return Err(de::Error::custom("expected a mapping with one key"));
        };
        let key = self.key.as_str().unwrap_or("?");
        NodeDe {
            node,
            path: Path::Key(self.path, key),
        }
        .deserialize_any(v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.tuple_variant(0, v)
    }
}

/// The map `{line, col, value}` an [`At`] reads.
struct AtMap<'a> {
    de: Option<NodeDe<'a>>,
    pos: Option<Pos>,
}

impl<'de> MapAccess<'de> for AtMap<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let key = if self.pos.is_some() {
            "pos"
        } else if self.de.is_some() {
            "value"
        } else {
            return Ok(None);
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        if let Some(pos) = self.pos.take() {
            let v = u64::from(pos.line) << 32 | u64::from(pos.col);
            return seed.deserialize(v.into_deserializer());
        }
        match self.de.take() {
            Some(de) => seed.deserialize(de),
            None => Err(de::Error::custom("no value")),
        }
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

impl<'de, T: Deserialize<'de>> Deserialize<'de> for At<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AtVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for AtVisitor<T> {
            type Value = At<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<At<T>, D::Error> {
                T::deserialize(d).map(At::new)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<At<T>, A::Error> {
                let mut pos = Pos::default();
                let mut value = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k == "pos" {
                        let v: u64 = m.next_value()?;
                        pos = Pos {
                            line: (v >> 32) as u32,
                            col: v as u32,
                        };
                    } else {
                        value = Some(m.next_value::<T>()?);
                    }
                }
                value
                    .map(|value| At { value, pos })
                    .ok_or_else(|| de::Error::missing_field("value"))
            }
        }
        d.deserialize_newtype_struct(AT, AtVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::parse_stream;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct T {
        name: String,
        port: u16,
        tag: Option<At<String>>,
        list: Option<Vec<u32>>,
    }

    fn de(text: &str) -> Result<T, DeError> {
        from_node(&parse_stream(text).unwrap()[0])
    }

    #[test]
    fn errors_carry_the_innermost_position_and_path() {
        let e = de("name: x\nport: 80\nlist:\n  - 1\n  - nope\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 5, col: 5 }));
        assert!(e.message.starts_with("list[1]: invalid type"), "{e:?}");
        let e = de("name: x\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 1, col: 1 }));
        assert!(e.message.contains("missing field `port`"), "{e:?}");
        let e = de("name: x\nport: 70000\n").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 2, col: 7 }));
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
