//! Where a list's answer holds its records, its total and its next
//! cursor, named by path: the page is read once, borrowing each record's
//! raw text, whatever the platform's envelope looks like.

use serde_json::value::RawValue;

use crate::error::{ConnectorError, ErrorKind, RequestContext};

use super::record::Rejected;
use super::stream::ListPage;

/// The paths (dot-separated object keys) of a list answer's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListAnswer {
    records: &'static str,
    holder: Option<&'static str>,
    total: Option<&'static str>,
    next: Option<&'static str>,
    no_more: Option<&'static str>,
}

impl ListAnswer {
    /// An answer holding its records at `records` (`data.list`): the
    /// first object on the path must be there (the platform's answer
    /// object); below it an absent or null part means no records.
    pub const fn records(records: &'static str) -> Self {
        ListAnswer {
            records,
            holder: None,
            total: None,
            next: None,
            no_more: None,
        }
    }

    /// The object at `path` must be in every answer (the platform's result
    /// object, deeper than the answer's first object): an answer without it
    /// is a protocol error, not an empty page.
    pub const fn holder(self, path: &'static str) -> Self {
        ListAnswer {
            holder: Some(path),
            ..self
        }
    }

    /// Its count of records in the window, at `path` (a number or a
    /// number in a string; left out of a page without records: 0).
    pub const fn total(self, path: &'static str) -> Self {
        ListAnswer {
            total: Some(path),
            ..self
        }
    }

    /// Its next page's cursor, at `path` (a string or a number; absent,
    /// null or empty: the listing ended).
    pub const fn next(self, path: &'static str) -> Self {
        ListAnswer {
            next: Some(path),
            ..self
        }
    }

    /// Its next page's cursor, at `path`, where the cursor `no_more` also
    /// says the listing ended (Kuaishou's `nomore`).
    pub const fn next_until(self, path: &'static str, no_more: &'static str) -> Self {
        ListAnswer {
            next: Some(path),
            no_more: Some(no_more),
            ..self
        }
    }

    /// Read `body` and map each record with `map`, keeping the raw text of
    /// those rejected. The answer is walked once: the parts the paths name
    /// are taken as they pass (each record borrowed as its raw text), the
    /// rest skipped unread. An answer that is not JSON, lacks the object
    /// its records sit in, or holds a part of the wrong type is a protocol
    /// error naming the part.
    pub fn read<R>(
        &self,
        ctx: &RequestContext,
        body: &[u8],
        map: impl Fn(&str) -> Result<R, Rejected>,
    ) -> Result<ListPage<R>, ConnectorError> {
        let paths = Paths::of(self);
        let mut found = Found {
            present: vec![false; paths.nodes],
            ..Found::default()
        };
        let mut de = serde_json::Deserializer::from_slice(body);
        serde::de::DeserializeSeed::deserialize(
            Walk {
                node: &paths.root,
                found: &mut found,
            },
            &mut de,
        )
        .and_then(|_| de.end())
        .map_err(|e| protocol(ctx, format!("unreadable list answer: {e}")))?;
        if let Some(holder) = self.holder {
            if !found.present[paths.id(holder)] {
                return Err(protocol(ctx, format!("answer has no {holder}")));
            }
        }
        // The envelope's first object must be there; below it, an absent
        // or null part means no records.
        if let Some((first, _)) = self.records.split_once('.') {
            if !found.present[paths.id(first)] {
                return Err(protocol(ctx, format!("answer has no {first}")));
            }
        }
        if let Some(e) = found.wrong {
            return Err(protocol(ctx, e));
        }
        let records = found.records.unwrap_or_default();
        let total = part(ctx, self.total, found.total, count_of)?;
        // A page without records may leave its total out: none there.
        let total = total.or((self.total.is_some() && records.is_empty()).then_some(0));
        let next = part(ctx, self.next, found.next, cursor_of)?
            .filter(|c| Some(c.as_str()) != self.no_more);
        Ok(ListPage {
            total,
            next,
            records: ListPage::mapped(records, map),
        })
    }
}

/// The part at `path` (when the answer names one and holds it) read with
/// `read`; `None` where it is absent, null or empty.
fn part<T>(
    ctx: &RequestContext,
    path: Option<&str>,
    raw: Option<&RawValue>,
    read: fn(&RequestContext, &RawValue, &str) -> Result<Option<T>, ConnectorError>,
) -> Result<Option<T>, ConnectorError> {
    match (path, raw) {
        (Some(path), Some(raw)) => read(ctx, raw, path),
        _ => Ok(None),
    }
}

fn protocol(ctx: &RequestContext, message: String) -> ConnectorError {
    ConnectorError::new(ctx, ErrorKind::Protocol, message)
}

/// Which part of the answer a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Records,
    Total,
    Next,
}

/// One object key on the paths; the part its value is, at a path's end.
#[derive(Debug, Default)]
struct Node {
    key: &'static str,
    /// The dotted path to here, for errors.
    path: &'static str,
    id: usize,
    part: Option<Part>,
    children: Vec<Node>,
}

/// The answer's paths as a tree of keys.
struct Paths {
    root: Node,
    nodes: usize,
}

impl Paths {
    fn of(a: &ListAnswer) -> Paths {
        let mut p = Paths {
            root: Node::default(),
            nodes: 1,
        };
        for (path, part) in [
            (Some(a.records), Some(Part::Records)),
            (a.total, Some(Part::Total)),
            (a.next, Some(Part::Next)),
            (a.holder, None),
        ] {
            if let Some(path) = path {
                let node = p.add(path);
                if part.is_some() {
                    node.part = part;
                }
            }
        }
        p
    }

    fn add(&mut self, path: &'static str) -> &mut Node {
        let mut node = &mut self.root;
        let mut end = 0;
        for key in path.split('.') {
            end += key.len();
            let at = match node.children.iter().position(|c| c.key == key) {
                Some(at) => at,
                None => {
                    node.children.push(Node {
                        key,
                        path: &path[..end],
                        id: self.nodes,
                        ..Node::default()
                    });
                    self.nodes += 1;
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at];
            end += 1;
        }
        node
    }

    fn id(&self, path: &str) -> usize {
        let mut node = &self.root;
        for key in path.split('.') {
            match node.children.iter().find(|c| c.key == key) {
                Some(c) => node = c,
                None => return 0,
            }
        }
        node.id
    }
}

/// What the walk found: which paths held a value (not null), the records,
/// the raw total and cursor, and the first part of the wrong type.
#[derive(Default)]
struct Found<'de> {
    present: Vec<bool>,
    records: Option<Vec<&'de RawValue>>,
    total: Option<&'de RawValue>,
    next: Option<&'de RawValue>,
    wrong: Option<String>,
}

/// Walks the value at `node`: an object's keys on the paths are followed,
/// the others skipped; a part is taken whole. Answers what kind of value
/// stood there.
struct Walk<'a, 'de> {
    node: &'a Node,
    found: &'a mut Found<'de>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = &'static str;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        let Walk { node, found } = self;
        let (kind, expected) = match node.part {
            Some(Part::Records) => match d.deserialize_any(Records)? {
                Ok(records) => {
                    found.records = Some(records);
                    ("a list", "a list")
                }
                Err(kind) => (kind, "a list"),
            },
            Some(part) => {
                let v = <&'de RawValue as serde::Deserialize>::deserialize(d)?;
                if v.get() != "null" {
                    match part {
                        Part::Total => found.total = Some(v),
                        _ => found.next = Some(v),
                    }
                }
                // A total or cursor is read (and refused) by its reader.
                ("a value", "a value")
            }
            None => (
                d.deserialize_any(Walk {
                    node,
                    found: &mut *found,
                })?,
                "an object",
            ),
        };
        if kind != "null" {
            found.present[node.id] = true;
        }
        if kind != "null" && kind != expected {
            let path = if node.id == 0 {
                "the answer"
            } else {
                node.path
            };
            found
                .wrong
                .get_or_insert_with(|| format!("unreadable {path}: {kind}, not {expected}"));
        }
        Ok(kind)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_, 'de> {
    type Value = &'static str;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<&'static str, A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.node.children.iter().find(|c| c.key == key) {
                Some(child) => {
                    map.next_value_seed(Walk {
                        node: child,
                        found: &mut *self.found,
                    })?;
                }
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok("an object")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<&'static str, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok("a list")
    }

    scalars_say_their_kind!();
}

/// Reads the records part: a list, each element borrowed as its raw
/// text, or the kind of value that stood there instead (skipped).
struct Records;

impl<'de> serde::de::Visitor<'de> for Records {
    type Value = Result<Vec<&'de RawValue>, &'static str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(r) = seq.next_element::<&'de RawValue>()? {
            records.push(r);
        }
        Ok(Ok(records))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Err("an object"))
    }

    scalars_say_their_kind!(|kind| Err(kind));
}

fn count_of(ctx: &RequestContext, v: &RawValue, path: &str) -> Result<Option<u64>, ConnectorError> {
    let text = v.get().trim_matches('"').trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| protocol(ctx, format!("{path} is not a count: {}", v.get())))
}

fn cursor_of(
    ctx: &RequestContext,
    v: &RawValue,
    path: &str,
) -> Result<Option<String>, ConnectorError> {
    let text = match serde_json::from_str::<serde_json::Value>(v.get()) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Number(n)) => n.to_string(),
        _ => {
            return Err(protocol(
                ctx,
                format!("{path} is not a cursor: {}", v.get()),
            ))
        }
    };
    Ok((!text.is_empty()).then_some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext::new("test", Some("shop"), "list")
    }

    /// A page's (records, total, next cursor).
    type Read = (Vec<String>, Option<u64>, Option<String>);

    fn ids(body: &str, answer: ListAnswer) -> Result<Read, String> {
        let page = answer
            .read(&ctx(), body.as_bytes(), |raw| Ok(raw.to_string()))
            .map_err(|e| e.message)?;
        let records = page.records.into_iter().map(|r| r.unwrap()).collect();
        Ok((records, page.total, page.next))
    }

    /// Records, a total (number or text) and a cursor are read where the
    /// paths say; an absent list below the answer object is no records.
    #[test]
    fn reads_parts_by_path() {
        let a = ListAnswer::records("r.page.list")
            .total("r.total")
            .next("r.page.cursor");
        let (records, total, next) = ids(
            r#"{"r":{"total":"12","page":{"list":[{"id":1},2],"cursor":"c2"}}}"#,
            a,
        )
        .unwrap();
        assert_eq!(
            (records, total, next.as_deref()),
            (
                vec![r#"{"id":1}"#.to_string(), "2".into()],
                Some(12),
                Some("c2")
            )
        );
        let (records, total, next) = ids(r#"{"r":{}}"#, a).unwrap();
        assert_eq!((records.len(), total, next), (0, Some(0), None));
        let (records, total, _) = ids(r#"{"r":{"page":{"list":[1]}}}"#, a).unwrap();
        assert_eq!(
            (records.len(), total),
            (1, None),
            "records without a total say none"
        );
        let (_, _, next) = ids(r#"{"r":{"page":{"list":null,"cursor":""}}}"#, a).unwrap();
        assert_eq!(next, None, "an empty cursor ends the listing");
        let (_, _, next) = ids(r#"{"r":{"page":{"cursor":7}}}"#, a).unwrap();
        assert_eq!(next.as_deref(), Some("7"));
        let a = ListAnswer::records("r.list").next_until("r.cursor", "nomore");
        assert_eq!(ids(r#"{"r":{"cursor":"nomore"}}"#, a).unwrap().2, None);
        assert_eq!(
            ids(r#"{"r":{"cursor":"x"}}"#, a).unwrap().2.as_deref(),
            Some("x")
        );
    }

    /// The walk takes the parts wherever they stand among other keys (an
    /// escaped key is the same key), skips what the paths do not name
    /// however deep, and refuses text after the answer.
    #[test]
    fn one_walk_finds_the_parts_in_any_order() {
        let a = ListAnswer::records("r.page.list")
            .total("r.total")
            .next("r.page.cursor");
        let body = r#"{"x":{"r":{"list":[9]}},"r":{"page":{"cursor":"c","junk":[{"a":[[{}]]}],
            "\u006cist":[{"id":1},{"id":2}]},"total":2,"other":"r.total"}}"#;
        let (records, total, next) = ids(body, a).unwrap();
        assert_eq!(records, [r#"{"id":1}"#, r#"{"id":2}"#]);
        assert_eq!((total, next.as_deref()), (Some(2), Some("c")));
        assert!(ids(r#"{"r":{}} {"r":{}}"#, a)
            .unwrap_err()
            .starts_with("unreadable list answer"));
        assert_eq!(
            ids(r#"[{"r":{}}]"#, a).unwrap_err(),
            "answer has no r",
            "a list is not the answer object"
        );
    }

    /// Hostile answers: every cut-off prefix of a page is refused, every
    /// byte changed to a bracket, quote or digit reads or is refused
    /// without a panic, and nesting far past any page is refused.
    #[test]
    fn cut_or_garbled_answers_are_refused_not_panicked_on() {
        let a = ListAnswer::records("r.page.list")
            .holder("r.page")
            .total("r.total")
            .next("r.page.cursor");
        let page =
            r#"{"r":{"total":"2","page":{"list":[{"id":1,"t":"a\"b"},{"id":2}],"cursor":7}}}"#;
        assert_eq!(ids(page, a).unwrap().0.len(), 2);
        for cut in 0..page.len() {
            assert!(ids(&page[..cut], a).is_err(), "prefix of {cut} bytes read");
        }
        for at in 0..page.len() {
            for b in ["[", "]", "{", "}", "\"", "0", ","] {
                let garbled = format!("{}{b}{}", &page[..at], &page[at + 1..]);
                let _ = ids(&garbled, a);
            }
        }
        let deep = format!(r#"{{"r":{{"junk":{}}}}}"#, "[".repeat(100_000));
        assert!(ids(&deep, a).is_err());
        let deep = format!(r#"{{"r":{{"page":{{"list":[{}]}}}}}}"#, "[".repeat(100_000));
        assert!(ids(&deep, a).is_err());
    }

    /// A missing answer object, a body that is not JSON or a part of the
    /// wrong type is a protocol error naming it.
    #[test]
    fn refuses_what_it_cannot_read() {
        let a = ListAnswer::records("r.list").total("r.total");
        assert_eq!(ids(r#"{"other":{}}"#, a).unwrap_err(), "answer has no r");
        assert_eq!(ids(r#"{"r":null}"#, a).unwrap_err(), "answer has no r");
        assert!(ids("<html>", a)
            .unwrap_err()
            .starts_with("unreadable list answer"));
        assert!(ids(r#"{"r":{"list":{"a":1}}}"#, a)
            .unwrap_err()
            .starts_with("unreadable r.list"));
        assert!(ids(r#"{"r":{"list":[],"total":"many"}}"#, a)
            .unwrap_err()
            .starts_with("r.total is not a count"));
        assert!(ids(r#"{"r":[1]}"#, a).is_err());
        // A required result object deeper down: absent is an error, not an
        // empty page; a count in text may carry spaces.
        let a = ListAnswer::records("r.result.list")
            .holder("r.result")
            .total("r.result.total");
        assert_eq!(
            ids(r#"{"r":{"code":"0"}}"#, a).unwrap_err(),
            "answer has no r.result"
        );
        let (_, total, _) = ids(r#"{"r":{"result":{"total":" 3 ","list":[1]}}}"#, a).unwrap();
        assert_eq!(total, Some(3));
    }
}
