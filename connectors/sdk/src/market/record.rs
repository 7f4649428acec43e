//! What a platform's mapping makes of one record.

use quanyu_schemas::{OrderLineRow, OrderRow};

/// A mapped order, its lines, and its phone ciphertext when the platform
/// sent one (for the decrypt API; never stored).
#[derive(Debug, Clone)]
pub struct MappedOrder {
    /// The canonical row.
    pub row: OrderRow,
    /// The receiver phone's ciphertext, when it came encrypted.
    pub cipher: Option<String>,
    /// The order's lines (item, SKU, quantity, price).
    pub lines: Vec<OrderLineRow>,
}

/// One order line as a platform lists it; what it leaves out stays empty.
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// The platform's line (sub-order) id; the line's position when absent.
    pub id: Option<String>,
    /// Item (product) id.
    pub item: Option<String>,
    /// SKU id.
    pub sku: Option<String>,
    /// Item title.
    pub title: Option<String>,
    /// Pieces (1 when absent).
    pub quantity: Option<i64>,
    /// Price of one piece in fen.
    pub price_fen: Option<i64>,
    /// What the line cost in fen (quantity × price when absent).
    pub amount_fen: Option<i64>,
}

/// The pieces `lines` hold (one for a line that gives no quantity), as an
/// order's `item_count`.
pub fn item_count_of(lines: &[Line]) -> i32 {
    lines
        .iter()
        .map(|l| l.quantity.unwrap_or(1).max(0))
        .fold(0i64, i64::saturating_add)
        .min(i64::from(i32::MAX)) as i32
}

/// The `order_lines` rows of the order `row`: keyed by its channel, shop
/// and order, stamped with its times; ids that are blank count as absent,
/// and an id repeated within the order is told apart by its position
/// (`sku#3`).
pub fn lines_of(row: &OrderRow, lines: impl IntoIterator<Item = Line>) -> Vec<OrderLineRow> {
    let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let mut seen = std::collections::HashSet::new();
    lines
        .into_iter()
        .enumerate()
        .map(|(k, l)| {
            let quantity = l.quantity.unwrap_or(1).clamp(0, i64::from(i32::MAX));
            // An id seen before in the order (a SKU listed twice, as a gift
            // of the same item) keeps the line apart by its position.
            let id = text(l.id).unwrap_or_else(|| (k + 1).to_string());
            let line_id = if seen.insert(id.clone()) {
                id
            } else {
                format!("{id}#{}", k + 1)
            };
            OrderLineRow {
                channel: row.channel,
                shop_id: row.shop_id.clone(),
                order_id: row.order_id.clone(),
                line_id,
                item_id: text(l.item),
                sku_id: text(l.sku),
                title: text(l.title),
                quantity: quantity as i32,
                unit_price_fen: l.price_fen,
                amount_fen: l
                    .amount_fen
                    .or_else(|| l.price_fen.map(|p| p.saturating_mul(quantity)))
                    .unwrap_or(0),
                created_at: row.created_at,
                updated_at: row.updated_at,
            }
        })
        .collect()
}

/// Why a record could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The record's key (order id), when it could be read.
    pub key: Option<String>,
    /// Why.
    pub reason: String,
}

impl Rejected {
    /// A rejection of the record keyed `key`.
    pub fn new(key: Option<&str>, reason: impl Into<String>) -> Self {
        Rejected {
            key: key.map(str::to_string),
            reason: reason.into(),
        }
    }
}

/// A JSON number, or a string holding one, as an integer.
pub fn int_of(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A yuan amount sent as a JSON number or string (`95.0`, `"95.00"`) in
/// fen; `None` for null or a blank string; why not for anything else.
pub fn yuan_of(v: &serde_json::Value) -> Result<Option<i64>, String> {
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
        serde_json::Value::Number(n) => quanyu_schemas::time::yuan_to_fen(&n.to_string())
            .map(Some)
            .map_err(|e| e.to_string()),
        serde_json::Value::String(s) => quanyu_schemas::time::yuan_to_fen(s)
            .map(Some)
            .map_err(|e| e.to_string()),
        _ => Err("not an amount".into()),
    }
}

/// A JSON number or non-empty string as text (ids sent either way).
pub fn text_of(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// An error code sent as a number or a string, as text (empty when
/// absent).
pub fn code_text(v: Option<&serde_json::Value>) -> String {
    v.and_then(text_of).unwrap_or_default()
}

/// True when one of `texts` contains one of `words` (an error envelope
/// saying its kind in words where its code does not).
pub fn says(texts: &[&str], words: &[&str]) -> bool {
    texts.iter().any(|t| words.iter().any(|w| t.contains(w)))
}

/// An error envelope as one line: `{label} {code}: {msg} / {sub}
/// ({detail})`, each part left out when empty (and the detail when it
/// repeats the message).
pub fn error_text(label: &str, code: &str, msg: &str, sub: &str, detail: &str) -> String {
    let mut text = format!("{label} {code}");
    if !msg.is_empty() {
        text.push_str(&format!(": {msg}"));
    }
    if !sub.is_empty() && sub != code {
        text.push_str(&format!(" / {sub}"));
    }
    if !detail.is_empty() && detail != msg {
        text.push_str(&format!(" ({detail})"));
    }
    text
}

/// A platform's answer `body` read as `T` (borrowing from it where `T`
/// does), or a protocol error saying which answer did not read.
pub fn read_answer<'a, T: serde::Deserialize<'a>>(
    ctx: &crate::error::RequestContext,
    body: &'a [u8],
    what: &str,
) -> Result<T, crate::error::ConnectorError> {
    let said = format!("unreadable {what} answer");
    read_as(ctx, body, crate::error::ErrorKind::Protocol, &said)
}

/// A token endpoint's answer read as `T`; one that is not JSON was cut
/// off on the way and is retried (transient).
pub fn read_token_answer<T: serde::de::DeserializeOwned>(
    ctx: &crate::error::RequestContext,
    body: &[u8],
) -> Result<T, crate::error::ConnectorError> {
    let said = "the token answer is not a JSON object";
    read_as(ctx, body, crate::error::ErrorKind::Transient, said)
}

/// `body` read as `T`, or an error of `kind` saying `said` and why.
fn read_as<'a, T: serde::Deserialize<'a>>(
    ctx: &crate::error::RequestContext,
    body: &'a [u8],
    kind: crate::error::ErrorKind,
    said: &str,
) -> Result<T, crate::error::ConnectorError> {
    serde_json::from_slice(body)
        .map_err(|e| crate::error::ConnectorError::new(ctx, kind, format!("{said}: {e}")))
}

/// For each `(order id, ciphertext)` of a decrypt batch, the phone of the
/// result that `matches` it, as `phone` reads it (`None` where the platform
/// returned no usable result for the item).
pub fn phones_for<R>(
    items: &[(&str, &str)],
    results: &[R],
    matches: impl Fn(&R, &str, &str) -> bool,
    phone: impl Fn(&R) -> Option<String>,
) -> Vec<Option<String>> {
    items
        .iter()
        .map(|(id, cipher)| {
            results
                .iter()
                .find(|r| matches(r, id, cipher))
                .and_then(&phone)
        })
        .collect()
}

/// The scalar values of every `"key":` in a JSON answer, read from its
/// bytes without parsing it (quotes stripped): how a platform's `attempt`
/// tells a page from an error envelope before the page's reader parses it
/// once. An object or array value is yielded as its first byte.
pub fn values_of<'a>(body: &'a [u8], key: &str) -> impl Iterator<Item = &'a [u8]> + 'a {
    let pattern = format!("\"{key}\"");
    let ends: Vec<usize> = memchr::memmem::find_iter(body, pattern.as_bytes())
        .map(|at| at + pattern.len())
        .collect();
    ends.into_iter().filter_map(move |end| {
        let rest = &body[end..];
        let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        if rest[colon] != b':' {
            return None;
        }
        let rest = &rest[colon + 1..];
        let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        let rest = &rest[start..];
        match rest[0] {
            b'"' => {
                let len = memchr::memchr(b'"', &rest[1..])?;
                Some(&rest[1..1 + len])
            }
            b'{' | b'[' => Some(&rest[..1]),
            _ => {
                let len = rest
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                Some(&rest[..len])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines take the order's key and times; a missing id is the line's
    /// position, a missing amount is quantity × price.
    #[test]
    fn lines_take_the_orders_key_and_fill_what_is_missing() {
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let row = OrderRow {
            channel: quanyu_schemas::Channel::Jd,
            shop_id: "s".into(),
            order_id: "o".into(),
            buyer_id: None,
            phone_hash: None,
            phone_masked: None,
            status: quanyu_schemas::OrderStatus::Paid,
            platform_status: "x".into(),
            amount_fen: 0,
            item_count: 0,
            province: None,
            city: None,
            created_at: t,
            paid_at: None,
            updated_at: t,
            receiver_hash: None,
            buyer_unionid: None,
        };
        let lines = lines_of(
            &row,
            [
                Line {
                    id: Some(" 77 ".into()),
                    quantity: Some(2),
                    price_fen: Some(300),
                    ..Line::default()
                },
                Line {
                    id: Some("".into()),
                    sku: Some("  ".into()),
                    amount_fen: Some(50),
                    ..Line::default()
                },
            ],
        );
        assert_eq!(
            (lines[0].line_id.as_str(), lines[0].amount_fen),
            ("77", 600)
        );
        assert_eq!((lines[1].line_id.as_str(), lines[1].quantity), ("2", 1));
        assert_eq!((lines[1].sku_id.clone(), lines[1].amount_fen), (None, 50));
        assert!(lines.iter().all(|l| l.order_id == "o" && l.updated_at == t));
        let twice = Line {
            id: Some("sku9".into()),
            ..Line::default()
        };
        let ids: Vec<String> = lines_of(&row, [twice.clone(), twice])
            .into_iter()
            .map(|l| l.line_id)
            .collect();
        assert_eq!(ids, ["sku9", "sku9#2"], "a SKU listed twice is two lines");
    }

    #[test]
    fn values_of_reads_scalars_without_parsing() {
        let body = br#"{"code": "0", "x":{"code":12,"ok":true}, "list":[{"code" :false}], "codes":1, "code":{"a":1}}"#;
        let got: Vec<&[u8]> = values_of(body, "code").collect();
        assert_eq!(got, [&b"0"[..], b"12", b"false", b"{"]);
        assert_eq!(values_of(b"{}", "code").count(), 0);
        assert_eq!(values_of(br#"{"code"#, "code").count(), 0, "cut off");
        assert_eq!(values_of(br#"{"code":"#, "code").count(), 0, "cut off");
    }

    /// Each item gets the phone of the result naming it, in any order; an
    /// item with no matching result, or a result for another ciphertext,
    /// gets none.
    #[test]
    fn phones_follow_their_items_not_the_answer_order() {
        let results = [
            ("b", "cb", "139"),
            ("a", "ca", "138"),
            ("c", "other", "137"),
        ];
        let phones = phones_for(
            &[("a", "ca"), ("b", "cb"), ("c", "cc"), ("d", "cd")],
            &results,
            |r, id, cipher| r.0 == id && r.1 == cipher,
            |r| Some(r.2.to_string()),
        );
        assert_eq!(phones, [Some("138".into()), Some("139".into()), None, None]);
    }

    /// An answer that does not read names which answer it was.
    #[test]
    fn an_unreadable_answer_says_which() {
        let ctx = crate::error::RequestContext::new("t", Some("s"), "api");
        let e = read_answer::<serde_json::Value>(&ctx, b"{", "decrypt").unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::Protocol);
        assert!(e.message.starts_with("unreadable decrypt answer"), "{e}");
        assert_eq!(int_of(&serde_json::json!(" 42 ")), Some(42));
        assert_eq!(text_of(&serde_json::json!(7)), Some("7".into()));
        assert_eq!(text_of(&serde_json::json!("  ")), None);
        assert_eq!(yuan_of(&serde_json::json!(95.5)), Ok(Some(9550)));
        assert_eq!(yuan_of(&serde_json::json!("0.05")), Ok(Some(5)));
        assert_eq!(yuan_of(&serde_json::Value::Null), Ok(None));
        assert!(yuan_of(&serde_json::json!([1])).is_err());
        assert!(yuan_of(&serde_json::json!("abc")).is_err());
    }
}
