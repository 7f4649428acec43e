//! A record read into the paths its layout names, skipping the rest as it
//! parses.

use super::super::record::Rejected;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The paths a layout reads, as a tree: a record is read into a JSON
/// value holding only them, skipping everything else as it parses.
#[derive(Debug, Default)]
pub(super) struct Tree(BTreeMap<String, Tree>);

impl Tree {
    pub(super) fn add(&mut self, path: &str) {
        let mut node = self;
        for key in path.split('.') {
            node = node.0.entry(key.to_string()).or_default();
        }
    }

    /// `raw` read through this tree, or why it is not a `what` object.
    pub(super) fn read(&self, raw: &str, what: &str) -> Result<Value, Rejected> {
        let not = |e: String| Rejected::new(None, format!("not a valid {what} object: {e}"));
        let mut de = serde_json::Deserializer::from_str(raw);
        let v = self.deserialize(&mut de).map_err(|e| not(e.to_string()))?;
        de.end().map_err(|e| not(e.to_string()))?;
        match v {
            Value::Object(_) => Ok(v),
            other => Err(not(format!("{} is not an object", kind(&other)))),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl<'de> DeserializeSeed<'de> for &Tree {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0.is_empty() {
            true => Value::deserialize(d),
            false => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for &Tree {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key_seed(KeyIn(self))? {
            match key {
                Some((name, child)) => {
                    let v = map.next_value_seed(child)?;
                    out.insert(name.to_string(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A key of a map, looked up in the tree without keeping it.
struct KeyIn<'t>(&'t Tree);

impl<'de, 't> DeserializeSeed<'de> for KeyIn<'t> {
    type Value = Option<(&'t str, &'t Tree)>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 't> Visitor<'de> for KeyIn<'t> {
    type Value = Option<(&'t str, &'t Tree)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0 .0.get_key_value(v).map(|(k, t)| (k.as_str(), t)))
    }
}
