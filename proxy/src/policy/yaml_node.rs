//! A YAML (or JSON) node tree that keeps the line each node was written on. Policy files are read
//! into it and then validated by hand rather than with `deny_unknown_fields`: serde stops at the
//! first error, and an operator fixing a large file wants every problem at once, with its line.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML/JSON node with the line it was written on (0 = unknown, e.g. JSON).
#[derive(Debug)]
pub(crate) struct N {
    pub(crate) line: u64,
    pub(crate) v: V,
}

#[derive(Debug)]
pub(crate) enum V {
    Null,
    Bool(bool),
    Int(i128),
    /// Floats are never valid in a rule; only their presence matters for the error.
    Float,
    Str(String),
    Seq(Vec<N>),
    Map(Vec<(N, N)>),
}

impl N {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.v {
            V::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for N {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<V>::deserialize(d)?;
        Ok(N { line: s.referenced.line(), v: s.value })
    }
}

impl<'de> Deserialize<'de> for V {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(VVisitor)
    }
}

struct VVisitor;

impl<'de> Visitor<'de> for VVisitor {
    type Value = V;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<V, E> {
        Ok(V::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<V, E> {
        Ok(V::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<V, E> {
        Ok(V::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<V, E> {
        Ok(V::Int(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<V, E> {
        let _ = v;
        Ok(V::Float)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<V, E> {
        Ok(V::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<V, E> {
        Ok(V::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<V, E> {
        Ok(V::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<V, E> {
        Ok(V::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V, D::Error> {
        V::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<V, A::Error> {
        let mut out = Vec::new();
        while let Some(n) = seq.next_element::<N>()? {
            out.push(n);
        }
        Ok(V::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<V, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<N, N>()? {
            out.push((k, v));
        }
        Ok(V::Map(out))
    }
}
