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

/// A time as a platform writes it.
#[derive(Debug, Clone)]
pub enum TimeText {
    /// `yyyy-MM-dd HH:mm:ss` in Beijing time.
    Beijing(Option<String>),
    /// Unix seconds (a number or a string holding one).
    UnixSeconds(Option<serde_json::Value>),
    /// Unix milliseconds.
    UnixMillis(Option<serde_json::Value>),
}

/// An amount as a platform writes it.
#[derive(Debug, Clone)]
pub enum Money {
    /// Integer fen (a number or a string holding one).
    Fen(Option<serde_json::Value>),
    /// Yuan as decimal text or a number (converted exactly).
    Yuan(Option<serde_json::Value>),
}

/// A refund or after-sale request as a platform's record gives it, each
/// part with the platform's field name (named in a rejection).
#[derive(Debug, Clone)]
pub struct RefundParts {
    /// The refund id (its absence rejects the record).
    pub refund_id: Option<String>,
    /// The order refunded.
    pub order_id: (&'static str, Option<String>),
    /// The line, where the request names one.
    pub line_id: Option<String>,
    /// The platform's status, verbatim.
    pub status: (&'static str, Option<String>),
    /// The amount.
    pub amount: (&'static str, Money),
    /// When it was asked.
    pub created: (&'static str, TimeText),
    /// Its last change.
    pub updated: (&'static str, TimeText),
}

impl RefundParts {
    /// The `refunds` row of `shop` on `channel`, its status read by
    /// `status_of` (the platform's vocabulary), or why not: a missing or
    /// unreadable part rejects the record, naming the part and the refund.
    pub fn row(
        self,
        channel: quanyu_schemas::Channel,
        shop: &str,
        status_of: impl Fn(&str) -> Option<quanyu_schemas::RefundStatus>,
    ) -> Result<quanyu_schemas::RefundRow, Rejected> {
        let refund_id = self
            .refund_id
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Rejected::new(None, "refund has no id"))?;
        let reject = |reason: String| Rejected::new(Some(&refund_id), reason);
        let present = |(name, v): (&str, Option<String>)| {
            v.map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| reject(format!("refund has no {name}")))
        };
        let order_id = present(self.order_id)?;
        let platform_status = present(self.status.clone())?;
        let status = status_of(&platform_status)
            .ok_or_else(|| reject(format!("unknown {} {platform_status:?}", self.status.0)))?;
        let (name, money) = self.amount;
        // An amount must be there: a refund of unknown size would count as
        // nothing paid back.
        let missing_amount = || reject(format!("refund has no {name}"));
        let refund_fen = match money {
            Money::Fen(None | Some(serde_json::Value::Null)) | Money::Yuan(None) => {
                return Err(missing_amount())
            }
            Money::Fen(Some(v)) => {
                int_of(&v).ok_or_else(|| reject(format!("{name}: {v} is not an amount in fen")))?
            }
            Money::Yuan(Some(v)) => yuan_of(&v)
                .map_err(|e| reject(format!("{name}: {e}")))?
                .ok_or_else(missing_amount)?,
        };
        if refund_fen < 0 {
            return Err(reject(format!("{name}: {refund_fen} is negative")));
        }
        let time = |(name, t): (&str, TimeText)| {
            use quanyu_schemas::time::{from_unix_millis, from_unix_seconds, parse_beijing};
            let missing = || reject(format!("refund has no {name}"));
            match t {
                TimeText::Beijing(v) => parse_beijing(v.as_deref().ok_or_else(missing)?)
                    .map_err(|e| reject(format!("{name}: {e}"))),
                TimeText::UnixSeconds(v) => from_unix_seconds(
                    int_of(&v.ok_or_else(missing)?)
                        .ok_or_else(|| reject(format!("{name}: not a unix time")))?,
                )
                .map_err(|e| reject(format!("{name}: {e}"))),
                TimeText::UnixMillis(v) => from_unix_millis(
                    int_of(&v.ok_or_else(missing)?)
                        .ok_or_else(|| reject(format!("{name}: not a time in ms")))?,
                )
                .map_err(|e| reject(format!("{name}: {e}"))),
            }
        };
        Ok(quanyu_schemas::RefundRow {
            channel,
            shop_id: shop.to_string(),
            created_at: time(self.created)?,
            updated_at: time(self.updated)?,
            line_id: self
                .line_id
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty()),
            refund_id,
            order_id,
            status,
            platform_status,
            refund_fen,
        })
    }
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
    /// The record read as the platform's `what` object (`JD order`), or why not.
    pub fn parse<T: serde::de::DeserializeOwned>(raw: &str, what: &str) -> Result<T, Rejected> {
        serde_json::from_str(raw).map_err(|e| Rejected {
            key: None,
            reason: format!("not a valid {what} object: {e}"),
        })
    }

    /// An order without its key `field`.
    pub fn missing(field: &str) -> Rejected {
        Rejected {
            key: None,
            reason: format!("order has no {field}"),
        }
    }

    /// A rejection of the record keyed `key`.
    pub fn new(key: Option<&str>, reason: impl Into<String>) -> Self {
        Rejected {
            key: key.map(str::to_string),
            reason: reason.into(),
        }
    }
}

/// The refund status words Taobao's TOP uses and Youzan copied, in the
/// closed vocabulary: a refusal the buyer can still answer
/// (`SELLER_REFUSE_BUYER`, `SELLER_REFUSE_RETURN_GOODS`) is pending,
/// `CLOSED` is closed, `SUCCESS` succeeded.
pub fn top_refund_status(status: &str) -> Option<quanyu_schemas::RefundStatus> {
    use quanyu_schemas::RefundStatus::*;
    Some(match status {
        "WAIT_SELLER_AGREE"
        | "WAIT_BUYER_RETURN_GOODS"
        | "WAIT_SELLER_CONFIRM_GOODS"
        | "SELLER_REFUSE_BUYER"
        | "SELLER_REFUSE_RETURN_GOODS" => Pending,
        "SUCCESS" => Succeeded,
        "CLOSED" => Closed,
        _ => return None,
    })
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

/// A platform's answer `body` read as `T` (borrowing from it where `T`
/// does), or a protocol error saying which answer did not read.
pub fn read_answer<'a, T: serde::Deserialize<'a>>(
    ctx: &crate::error::RequestContext,
    body: &'a [u8],
    what: &str,
) -> Result<T, crate::error::ConnectorError> {
    serde_json::from_slice(body).map_err(|e| {
        crate::error::ConnectorError::new(
            ctx,
            crate::error::ErrorKind::Protocol,
            format!("unreadable {what} answer: {e}"),
        )
    })
}

/// A receiver phone as a row keeps it: `(hash, mask)` of a mobile in
/// clear; the platform's own mask when it sent one; nothing for a blank,
/// a ciphertext or anything else (never stored).
pub fn phone_fields(
    text: Option<&str>,
    hasher: &quanyu_schemas::PiiHasher,
) -> (Option<String>, Option<String>) {
    let t = text.map(str::trim).unwrap_or("");
    match quanyu_schemas::normalize_phone(t) {
        _ if t.is_empty() => (None, None),
        Ok(p) => (Some(hasher.phone(&p)), Some(p.masked())),
        Err(quanyu_schemas::PhoneError::Masked) => (None, Some(t.to_string())),
        Err(_) => (None, None),
    }
}

/// A token endpoint's answer read as `T`; one that is not JSON was cut
/// off on the way and is retried (transient).
pub fn read_token_answer<T: serde::de::DeserializeOwned>(
    ctx: &crate::error::RequestContext,
    body: &[u8],
) -> Result<T, crate::error::ConnectorError> {
    serde_json::from_slice(body).map_err(|e| {
        crate::error::ConnectorError::new(
            ctx,
            crate::error::ErrorKind::Transient,
            format!("the token answer is not a JSON object: {e}"),
        )
    })
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

    fn parts() -> RefundParts {
        RefundParts {
            refund_id: Some("r1".into()),
            order_id: ("tid", Some("o1".into())),
            line_id: Some(" ".into()),
            status: ("status", Some("SUCCESS".into())),
            amount: ("refund_fee", Money::Yuan(Some(serde_json::json!("12.30")))),
            created: (
                "created",
                TimeText::Beijing(Some("2026-03-20 10:00:00".into())),
            ),
            updated: (
                "modified",
                TimeText::UnixMillis(Some(serde_json::json!(1_774_000_000_000i64))),
            ),
        }
    }

    /// A refund's parts make its row; each missing or unreadable part is
    /// a rejection naming the part and the refund.
    #[test]
    fn refund_parts_make_a_row_or_say_which_part_is_wrong() {
        let row = |p: RefundParts| p.row(quanyu_schemas::Channel::Taobao, "s", top_refund_status);
        let r = row(parts()).unwrap();
        assert_eq!((r.refund_fen, r.line_id.clone()), (1230, None));
        assert_eq!(r.created_at.to_rfc3339(), "2026-03-20T02:00:00+00:00");
        assert_eq!(r.status, quanyu_schemas::RefundStatus::Succeeded);
        type Case = (fn(&mut RefundParts), &'static str);
        let cases: [Case; 8] = [
            (
                |p| p.amount.1 = Money::Fen(None),
                "refund has no refund_fee",
            ),
            (
                |p| p.amount.1 = Money::Yuan(Some(serde_json::json!(" "))),
                "refund has no refund_fee",
            ),
            (|p| p.refund_id = None, "refund has no id"),
            (|p| p.order_id.1 = Some(" ".into()), "refund has no tid"),
            (
                |p| p.status.1 = Some("NEW".into()),
                "unknown status \"NEW\"",
            ),
            (
                |p| p.amount.1 = Money::Fen(Some(serde_json::json!("12,5"))),
                "refund_fee: \"12,5\" is not an amount in fen",
            ),
            (
                |p| p.created.1 = TimeText::Beijing(None),
                "refund has no created",
            ),
            (
                |p| p.updated.1 = TimeText::UnixSeconds(Some(serde_json::json!("soon"))),
                "modified: not a unix time",
            ),
        ];
        for (break_it, why) in cases {
            let mut p = parts();
            break_it(&mut p);
            let e = row(p).unwrap_err();
            assert_eq!(e.reason, why);
            assert_eq!(e.key.is_none(), why == "refund has no id");
        }
    }

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
    fn phones_are_kept_hashed_masked_or_not_at_all() {
        let h = quanyu_schemas::PiiHasher::new(&quanyu_schemas::LakeKey::from_bytes([3; 32]));
        let (hash, mask) = phone_fields(Some(" 139 1234 5678 "), &h);
        assert_eq!(hash, h.phone_text("13912345678"));
        assert_eq!(mask.as_deref(), Some("139****5678"));
        assert_eq!(
            phone_fields(Some("138****0000"), &h),
            (None, Some("138****0000".into()))
        );
        for none in [
            None,
            Some(""),
            Some("  "),
            Some("$Y/YK1$AgAAAAEx$0$$"),
            Some("0755-8888"),
        ] {
            assert_eq!(phone_fields(none, &h), (None, None), "{none:?}");
        }
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
