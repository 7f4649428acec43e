//! Where a list's answer holds its records, its total and its next
//! cursor, named by path: the page is read once, borrowing each record's
//! raw text, whatever the platform's envelope looks like.

use std::collections::HashMap;

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
    /// those rejected. An answer that is not JSON, lacks the object its
    /// records sit in, or holds a part of the wrong type is a protocol
    /// error naming the part.
    pub fn read<R>(
        &self,
        ctx: &RequestContext,
        body: &[u8],
        map: impl Fn(&str) -> Result<R, Rejected>,
    ) -> Result<ListPage<R>, ConnectorError> {
        let root: &RawValue = serde_json::from_slice(body)
            .map_err(|e| protocol(ctx, format!("unreadable list answer: {e}")))?;
        if let Some(holder) = self.holder {
            if at(ctx, root, holder)?.is_none() {
                return Err(protocol(ctx, format!("answer has no {holder}")));
            }
        }
        // The envelope's first object must be there; below it, an absent
        // or null part means no records.
        let records: Vec<&RawValue> = match self.records.split_once('.') {
            Some((first, rest)) => {
                let holder = at(ctx, root, first)?
                    .ok_or_else(|| protocol(ctx, format!("answer has no {first}")))?;
                at(ctx, holder, rest)?
            }
            None => at(ctx, root, self.records)?,
        }
        .map(|list| read_part(ctx, list, self.records))
        .transpose()?
        .unwrap_or_default();
        let total = optional_part(ctx, root, self.total, count_of)?;
        // A page without records may leave its total out: none there.
        let total = total.or((self.total.is_some() && records.is_empty()).then_some(0));
        let next = optional_part(ctx, root, self.next, cursor_of)?
            .filter(|c| Some(c.as_str()) != self.no_more);
        Ok(ListPage {
            total,
            next,
            records: ListPage::mapped(records, map),
        })
    }
}

fn protocol(ctx: &RequestContext, message: String) -> ConnectorError {
    ConnectorError::new(ctx, ErrorKind::Protocol, message)
}

fn read_part<'a, T: serde::Deserialize<'a>>(
    ctx: &RequestContext,
    v: &'a RawValue,
    path: &str,
) -> Result<T, ConnectorError> {
    serde_json::from_str(v.get()).map_err(|e| protocol(ctx, format!("unreadable {path}: {e}")))
}

/// The part at `path` (when the answer names one) read with `read`;
/// `None` where it is absent, null or empty.
fn optional_part<T>(
    ctx: &RequestContext,
    root: &RawValue,
    path: Option<&str>,
    read: fn(&RequestContext, &RawValue, &str) -> Result<Option<T>, ConnectorError>,
) -> Result<Option<T>, ConnectorError> {
    let Some(path) = path else {
        return Ok(None);
    };
    Ok(at(ctx, root, path)?
        .map(|v| read(ctx, v, path))
        .transpose()?
        .flatten())
}

/// The value at `path` below `v`, `None` where a key is absent or a value
/// on the way is null.
fn at<'a>(
    ctx: &RequestContext,
    mut v: &'a RawValue,
    path: &str,
) -> Result<Option<&'a RawValue>, ConnectorError> {
    for key in path.split('.') {
        if v.get() == "null" {
            return Ok(None);
        }
        let object: HashMap<String, &RawValue> = read_part(ctx, v, path)?;
        match object.get(key) {
            Some(next) => v = next,
            None => return Ok(None),
        }
    }
    Ok((v.get() != "null").then_some(v))
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
