//! Jushuitan order JSON → canonical `orders` rows.
//!
//! The order id is the platform order id (`so_id`) of the ERP's shop; the
//! ERP's own `o_id` is only used in rejections. Amounts are yuan (numbers or
//! strings), converted to fen exactly from their text. The receiver phone is
//! whatever the source channel gave the ERP: a clear number is hashed, a
//! masked one kept masked.

use quanyu_schemas::time::{parse_beijing, yuan_to_fen};
use quanyu_schemas::{
    normalize_phone, Channel, OrderRow, OrderStatus, PhoneError, PiiHasher, RefundRow, RefundStatus,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use quanyu_connector_sdk::market::{
    item_count_of, lines_of, text_of, yuan_of, Line, Money, RefundParts, TimeText,
};
pub use quanyu_connector_sdk::market::{MappedOrder, Rejected};

#[derive(Deserialize)]
struct Order<'a> {
    o_id: Option<serde_json::Value>,
    so_id: Option<String>,
    status: Option<String>,
    order_date: Option<String>,
    modified: Option<String>,
    pay_date: Option<String>,
    #[serde(borrow)]
    pay_amount: Option<&'a RawValue>,
    shop_buyer_id: Option<String>,
    receiver_mobile: Option<String>,
    receiver_name: Option<String>,
    receiver_address: Option<String>,
    receiver_state: Option<String>,
    receiver_city: Option<String>,
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    qty: Option<i64>,
    oi_id: Option<serde_json::Value>,
    i_id: Option<String>,
    sku_id: Option<String>,
    name: Option<String>,
    price: Option<serde_json::Value>,
    amount: Option<serde_json::Value>,
}

/// Jushuitan's status (and whether it was paid) in our vocabulary.
pub fn map_status(status: &str, paid: bool) -> Option<OrderStatus> {
    Some(match status {
        "WaitPay" => OrderStatus::PendingPayment,
        "Delivering" | "Merged" | "Question" | "Split" | "WaitOuterSent" | "WaitConfirm"
        | "WaitFConfirm" => OrderStatus::Paid,
        "Sent" => OrderStatus::Shipped,
        // Closed: refunded when money was taken, else cancelled.
        "Cancelled" if paid => OrderStatus::Refunded,
        "Cancelled" => OrderStatus::Cancelled,
        _ => return None,
    })
}

/// A yuan amount given as a JSON number or string, to fen.
fn fen(raw: Option<&RawValue>) -> Result<i64, String> {
    let Some(raw) = raw else { return Ok(0) };
    let text = raw.get().trim().trim_matches('"');
    if text.is_empty() || text == "null" {
        return Ok(0);
    }
    yuan_to_fen(text).map_err(|e| e.to_string())
}

/// Map one raw order of ERP shop `shop` into a row.
pub fn map_order(raw: &str, shop: &str, hasher: &PiiHasher) -> Result<OrderRow, Rejected> {
    map_order_lines(raw, shop, hasher).map(|m| m.row)
}

/// [`map_order`] with the order's lines (`oi_id`, `sku_id`, `qty`,
/// `price`, `amount`). The ERP has no decrypt API: no ciphertext is kept.
pub fn map_order_lines(raw: &str, shop: &str, hasher: &PiiHasher) -> Result<MappedOrder, Rejected> {
    let o: Order = serde_json::from_str(raw).map_err(|e| Rejected {
        key: None,
        reason: format!("not a Jushuitan order object: {e}"),
    })?;
    let order_id = o.so_id.filter(|s| !s.is_empty()).ok_or_else(|| Rejected {
        key: o.o_id.as_ref().map(|v| format!("o_id:{v}")),
        reason: "order has no so_id".into(),
    })?;
    let reject = |reason: String| Rejected::new(Some(&order_id), reason);
    let time = |name: &str,
                v: &Option<String>|
     -> Result<Option<chrono::DateTime<chrono::Utc>>, Rejected> {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(t) => parse_beijing(t)
                .map(Some)
                .map_err(|e| reject(format!("{name}: {e}"))),
        }
    };
    let created = time("order_date", &o.order_date)?
        .ok_or_else(|| reject("order has no order_date".into()))?;
    let updated = time("modified", &o.modified)?
        .ok_or_else(|| reject("order has no modified time".into()))?;
    let paid_at = time("pay_date", &o.pay_date)?;
    let platform_status = o
        .status
        .ok_or_else(|| reject("order has no status".into()))?;
    let status = map_status(&platform_status, paid_at.is_some())
        .ok_or_else(|| reject(format!("unknown order status {platform_status:?}")))?;
    let amount_fen = fen(o.pay_amount).map_err(|e| reject(format!("pay_amount: {e}")))?;
    let (phone_hash, phone_masked) = match o.receiver_mobile.as_deref().filter(|m| !m.is_empty()) {
        None => (None, None),
        Some(m) => match normalize_phone(m) {
            Ok(p) => (Some(hasher.phone(&p)), Some(p.masked())),
            Err(PhoneError::Masked) => (None, Some(m.trim().to_string())),
            Err(_) => (None, None),
        },
    };
    let receiver_hash = hasher.receiver(o.receiver_name.as_deref(), o.receiver_address.as_deref());
    let mut lines = Vec::with_capacity(o.items.len());
    for (k, i) in o.items.iter().enumerate() {
        let money = |what: &str, v: &Option<serde_json::Value>| {
            yuan_of(v.as_ref().unwrap_or(&serde_json::Value::Null))
                .map_err(|e| reject(format!("items[{k}].{what}: {e}")))
        };
        lines.push(Line {
            id: i.oi_id.as_ref().and_then(text_of),
            item: i.i_id.clone(),
            sku: i.sku_id.clone(),
            title: i.name.clone(),
            quantity: i.qty,
            price_fen: money("price", &i.price)?,
            amount_fen: money("amount", &i.amount)?,
        });
    }
    let row = OrderRow {
        channel: Channel::Jushuitan,
        shop_id: shop.to_string(),
        buyer_id: o
            .shop_buyer_id
            .filter(|b| !b.is_empty())
            .map(|b| format!("{b}@{shop}")),
        order_id,
        phone_hash,
        phone_masked,
        status,
        platform_status,
        amount_fen,
        item_count: item_count_of(&lines),
        province: o.receiver_state.filter(|s| !s.is_empty()),
        city: o.receiver_city.filter(|s| !s.is_empty()),
        created_at: created,
        paid_at,
        updated_at: updated,
        buyer_unionid: None,
        receiver_hash,
    };
    Ok(MappedOrder {
        lines: lines_of(&row, lines),
        row,
        cipher: None,
    })
}

#[derive(Deserialize)]
struct Refund {
    as_id: Option<serde_json::Value>,
    so_id: Option<String>,
    status: Option<String>,
    refund: Option<serde_json::Value>,
    as_date: Option<String>,
    modified: Option<String>,
}

/// Map the ERP's after-sale `status` into the closed vocabulary: a
/// confirmed after-sale order paid the buyer back, a cancelled one did
/// not, one waiting for confirmation is pending.
pub fn map_refund_status(status: &str) -> Option<RefundStatus> {
    Some(match status {
        "WaitConfirm" => RefundStatus::Pending,
        "Confirmed" => RefundStatus::Succeeded,
        "Cancelled" => RefundStatus::Closed,
        _ => return None,
    })
}

/// Map one raw after-sale order of ERP shop `shop` (`refund/single/query`:
/// `refund` in yuan); the order is the platform order (`so_id`).
pub fn map_refund(raw: &str, shop: &str) -> Result<RefundRow, Rejected> {
    let r: Refund = Rejected::parse(raw, "Jushuitan after-sale")?;
    RefundParts {
        refund_id: r.as_id.as_ref().and_then(text_of),
        order_id: ("so_id", r.so_id),
        line_id: None,
        status: ("after-sale status", r.status),
        amount: ("refund", Money::Yuan(r.refund)),
        created: ("as_date", TimeText::Beijing(r.as_date)),
        updated: ("modified", TimeText::Beijing(r.modified)),
    }
    .row(Channel::Jushuitan, shop, map_refund_status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    fn hasher() -> PiiHasher {
        PiiHasher::new(&LakeKey::from_bytes([5; 32]))
    }

    const ORDER: &str = r#"{"o_id":12345,"so_id":"XCX000000000123","shop_id":10000001,"status":"Sent",
        "order_date":"2024-06-01 10:00:00","modified":"2024-06-02 09:00:00","pay_date":"2024-06-01 10:05:00",
        "pay_amount":188.5,"paid_amount":"188.50","freight":0,"shop_buyer_id":"u777","receiver_mobile":"13912345678",
        "receiver_state":"浙江省","receiver_city":"杭州市","items":[{"oi_id":71,"sku_id":"A","qty":2,"price":"10.00","amount":"18.00"},{"sku_id":"B","qty":1}]}"#;

    /// An after-sale order lands with its platform order, status and
    /// amount in fen; a bad amount is rejected naming it.
    #[test]
    fn maps_a_refund() {
        let raw = r#"{"as_id":5501,"o_id":77,"so_id":"XCX000000000123","shop_id":10001,"type":"仅退款",
            "status":"Confirmed","refund":"188.50","as_date":"2024-06-02 10:00:00","modified":"2024-06-03 10:00:00"}"#;
        let r = map_refund(raw, "jst-miniapp").unwrap();
        assert_eq!(
            (r.refund_id.as_str(), r.order_id.as_str()),
            ("5501", "XCX000000000123")
        );
        assert_eq!((r.status, r.refund_fen), (RefundStatus::Succeeded, 18850));
        let e = map_refund(&raw.replace("\"188.50\"", "\"12,5\""), "s").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("5501"));
        assert!(e.reason.starts_with("refund:"), "{}", e.reason);
        assert!(map_refund(&raw.replace("Confirmed", "Merged"), "s").is_err());
    }

    #[test]
    fn maps_an_order() {
        let r = map_order(ORDER, "jst-miniapp", &hasher()).unwrap();
        assert_eq!(r.order_id, "XCX000000000123");
        assert_eq!(r.status, OrderStatus::Shipped);
        assert_eq!(r.amount_fen, 18850);
        assert_eq!(r.item_count, 3);
        assert_eq!(r.buyer_id.as_deref(), Some("u777@jst-miniapp"));
        assert_eq!(r.phone_hash, hasher().phone_text("13912345678"));
        assert_eq!(r.phone_masked.as_deref(), Some("139****5678"));
        assert_eq!(r.created_at.to_rfc3339(), "2024-06-01T02:00:00+00:00");
        let l = map_order_lines(ORDER, "s", &hasher()).unwrap().lines;
        assert_eq!(
            l.iter()
                .map(|l| (
                    l.line_id.as_str(),
                    l.quantity,
                    l.unit_price_fen,
                    l.amount_fen
                ))
                .collect::<Vec<_>>(),
            [("71", 2, Some(1000), 1800), ("2", 1, None, 0)],
            "the ERP's line amount (after discount) wins over quantity × price"
        );
        let masked = ORDER.replace("13912345678", "139****5678");
        let r = map_order(&masked, "s", &hasher()).unwrap();
        assert_eq!(
            (r.phone_hash, r.phone_masked.as_deref()),
            (None, Some("139****5678"))
        );
    }

    #[test]
    fn closed_orders_are_refunded_only_when_paid_and_bad_ones_rejected() {
        let refunded = ORDER.replace("\"Sent\"", "\"Cancelled\"");
        assert_eq!(
            map_order(&refunded, "s", &hasher()).unwrap().status,
            OrderStatus::Refunded
        );
        let cancelled =
            refunded.replace("\"pay_date\":\"2024-06-01 10:05:00\"", "\"pay_date\":\"\"");
        assert_eq!(
            map_order(&cancelled, "s", &hasher()).unwrap().status,
            OrderStatus::Cancelled
        );
        let bad = ORDER.replace("2024-06-01 10:00:00", "not-a-date");
        let e = map_order(&bad, "s", &hasher()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("XCX000000000123"));
        assert!(e.reason.starts_with("order_date"), "{}", e.reason);
        assert!(map_order(&ORDER.replace("\"Sent\"", "\"Weird\""), "s", &hasher()).is_err());
        assert!(map_order(&ORDER.replace("188.5", "\"abc\""), "s", &hasher()).is_err());
        assert!(map_order("[]", "s", &hasher()).is_err());
        for s in [
            "WaitPay",
            "Delivering",
            "Merged",
            "Question",
            "Split",
            "WaitOuterSent",
            "WaitConfirm",
            "WaitFConfirm",
            "Sent",
            "Cancelled",
        ] {
            assert!(map_status(s, true).is_some(), "{s}");
        }
    }
}
