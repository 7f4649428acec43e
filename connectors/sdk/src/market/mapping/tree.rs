//! A record read into the paths its layout names, and nothing else: each
//! path has a slot, filled as the record parses; everything else is
//! skipped unread. A list met on the way to a path stands for its first
//! element; the layout's list of lines is read element by element into
//! slots of its own.

use super::super::record::Rejected;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The paths a layout reads, as a tree with a slot at each path's end.
#[derive(Debug, Default)]
pub(super) struct Tree {
    root: Node,
    slots: HashMap<String, usize>,
    line_slots: HashMap<String, usize>,
}

/// A dotted path of a layout, with the slot a record's reader fills for
/// it (given by [`Tree::add`] or [`Tree::add_line`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "String")]
pub(super) struct Path {
    pub(super) name: String,
    slot: usize,
}

impl From<String> for Path {
    fn from(name: String) -> Self {
        Path {
            name,
            slot: usize::MAX,
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    children: BTreeMap<String, Node>,
    /// The slot this path's value goes to (the value whole).
    slot: Option<usize>,
    /// This node is the list of lines; its children are the lines' paths.
    lines: bool,
}

impl Node {
    /// The node at `path` below this one, made where missing; a path that
    /// would run through or end at another's value is refused.
    fn make(&mut self, path: &str) -> Result<&mut Node, String> {
        let mut node = self;
        for key in path.split('.') {
            if node.slot.is_some() || node.lines {
                return Err(format!("{path:?} runs inside another path's value"));
            }
            node = node.children.entry(key.to_string()).or_default();
        }
        Ok(node)
    }
}

impl Tree {
    /// Read the value at `path`, giving it its slot.
    pub(super) fn add(&mut self, path: &mut Path) -> Result<(), String> {
        let name = path.name.as_str();
        if let Some(slot) = self.slots.get(name) {
            path.slot = *slot;
            return Ok(());
        }
        let next = self.slots.len();
        let node = self.root.make(name)?;
        if !node.children.is_empty() || node.lines {
            return Err(format!("{name:?} holds other paths"));
        }
        node.slot = Some(next);
        self.slots.insert(name.to_string(), next);
        path.slot = next;
        Ok(())
    }

    /// Read `path` within each element of the list of lines at `list`,
    /// giving it its slot among the line's.
    pub(super) fn add_line(&mut self, list: &str, path: &mut Path) -> Result<(), String> {
        let node = self.root.make(list)?;
        if node.slot.is_some() {
            return Err(format!("{list:?} is also read whole"));
        }
        node.lines = true;
        let name = path.name.as_str();
        if let Some(slot) = self.line_slots.get(name) {
            path.slot = *slot;
            return Ok(());
        }
        let next = self.line_slots.len();
        let leaf = node.children_make(name)?;
        leaf.slot = Some(next);
        self.line_slots.insert(name.to_string(), next);
        path.slot = next;
        Ok(())
    }

    /// `raw` read through this tree, or why it is not a `what` object.
    pub(super) fn read(&self, raw: &str, what: &str) -> Result<Record, Rejected> {
        let not = |e: String| Rejected::new(None, format!("not a valid {what} object: {e}"));
        let mut record = Record {
            values: vec![None; self.slots.len()],
            lines: Vec::new(),
        };
        let mut de = serde_json::Deserializer::from_str(raw);
        let fill = Fill {
            node: &self.root,
            values: &mut record.values,
            lines: Some(&mut record.lines),
            line_slots: self.line_slots.len(),
        };
        let kind = fill.deserialize(&mut de).map_err(|e| not(e.to_string()))?;
        de.end().map_err(|e| not(e.to_string()))?;
        match kind {
            "an object" => Ok(record),
            other => Err(not(format!("{other} is not an object"))),
        }
    }
}

impl Node {
    /// Like [`Node::make`], for a line's path below the list node.
    fn children_make(&mut self, path: &str) -> Result<&mut Node, String> {
        let mut node = self;
        for (k, key) in path.split('.').enumerate() {
            if k > 0 && node.slot.is_some() {
                return Err(format!("{path:?} runs inside another path's value"));
            }
            node = node.children.entry(key.to_string()).or_default();
        }
        if !node.children.is_empty() {
            return Err(format!("{path:?} holds other paths"));
        }
        Ok(node)
    }
}

/// What a record holds at the layout's paths.
pub(super) trait Fields {
    /// The slots' values.
    fn values(&self) -> &[Option<Value>];

    /// The value at `path` (one given its slot here), unless absent or
    /// null.
    fn at(&self, path: &Path) -> Option<&Value> {
        self.values()
            .get(path.slot)?
            .as_ref()
            .filter(|v| !v.is_null())
    }
}

/// A record read through a [`Tree`].
#[derive(Debug)]
pub(super) struct Record {
    values: Vec<Option<Value>>,
    lines: Vec<Vec<Option<Value>>>,
}

impl Record {
    /// Its lines, in order.
    pub(super) fn lines(&self) -> impl Iterator<Item = LineFields<'_>> {
        self.lines.iter().map(|values| LineFields(values))
    }
}

impl Fields for Record {
    fn values(&self) -> &[Option<Value>] {
        &self.values
    }
}

/// One line of a record.
pub(super) struct LineFields<'r>(&'r [Option<Value>]);

impl Fields for LineFields<'_> {
    fn values(&self) -> &[Option<Value>] {
        self.0
    }
}

/// Fills the slots of the paths below `node` from the value being read;
/// answers what kind of value it was.
struct Fill<'a> {
    node: &'a Node,
    values: &'a mut Vec<Option<Value>>,
    /// Where lines go, when `node` may hold the list of lines.
    lines: Option<&'a mut Vec<Vec<Option<Value>>>>,
    line_slots: usize,
}

impl<'de> DeserializeSeed<'de> for Fill<'_> {
    type Value = &'static str;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        if let Some(slot) = self.node.slot {
            let v = Value::deserialize(d)?;
            let kind = kind(&v);
            self.values[slot] = Some(v);
            return Ok(kind);
        }
        if self.node.lines {
            return d.deserialize_any(Lines(self));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fill<'_> {
    type Value = &'static str;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<&'static str, A::Error> {
        let Fill {
            node,
            values,
            mut lines,
            line_slots,
        } = self;
        while let Some(child) = map.next_key_seed(KeyIn(node))? {
            match child {
                Some(child) => {
                    map.next_value_seed(Fill {
                        node: child,
                        values: &mut *values,
                        lines: lines.as_deref_mut(),
                        line_slots,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok("an object")
    }

    /// A list on the way to a path stands for its first element.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<&'static str, A::Error> {
        seq.next_element_seed(self)?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok("a list")
    }

    scalars_say_their_kind!();
}

/// The list of lines: each element (or one object alone) is a line with
/// slots of its own.
struct Lines<'a>(Fill<'a>);

impl Lines<'_> {
    fn line(&mut self) -> Option<Fill<'_>> {
        let lines = self.0.lines.as_deref_mut()?;
        lines.push(vec![None; self.0.line_slots]);
        let values = lines.last_mut()?;
        Some(Fill {
            node: self.0.node,
            values,
            lines: None,
            line_slots: 0,
        })
    }
}

impl<'de> Visitor<'de> for Lines<'_> {
    type Value = &'static str;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of lines")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<&'static str, A::Error> {
        loop {
            let Some(fill) = self.line() else {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                break;
            };
            if seq.next_element_seed(LineSeed(fill))?.is_none() {
                // The slots pushed for an element that was not there.
                self.0.lines.as_deref_mut().map(Vec::pop);
                break;
            }
        }
        Ok("a list")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<&'static str, A::Error> {
        match self.line() {
            Some(fill) => fill.visit_map(map),
            None => Fill {
                node: &Node::default(),
                values: &mut Vec::new(),
                lines: None,
                line_slots: 0,
            }
            .visit_map(map),
        }
    }

    scalars_say_their_kind!();
}

/// One element of the list of lines: an object is read into the line's
/// slots; anything else leaves them empty.
struct LineSeed<'a>(Fill<'a>);

impl<'de> DeserializeSeed<'de> for LineSeed<'_> {
    type Value = &'static str;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_any(self.0)
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

/// A key of a map, looked up among a node's children without keeping it.
struct KeyIn<'t>(&'t Node);

impl<'de, 't> DeserializeSeed<'de> for KeyIn<'t> {
    type Value = Option<&'t Node>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 't> Visitor<'de> for KeyIn<'t> {
    type Value = Option<&'t Node>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.children.get(v))
    }
}
