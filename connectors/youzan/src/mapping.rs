//! Youzan order JSON (one `full_order_info_list` element of
//! `youzan.trades.sold.get` 4.0.4) → canonical `orders` rows.

use quanyu_connector_sdk::market::{
    self as kit, int_of, item_count_of, phone_fields, text_of, yuan_of,
};
use quanyu_connector_sdk::market::{MappedOrder, Rejected};
use quanyu_schemas::time::parse_beijing;
use quanyu_schemas::{Channel, OrderRow, OrderStatus, PiiHasher, RefundRow};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Element {
    full_order_info: Option<FullOrder>,
}

#[derive(Debug, Deserialize)]
struct FullOrder {
    order_info: Option<OrderInfo>,
    #[serde(default)]
    buyer_info: Option<BuyerInfo>,
    #[serde(default)]
    pay_info: Option<PayInfo>,
    #[serde(default)]
    orders: Option<Vec<Line>>,
    #[serde(default)]
    address_info: Option<AddressInfo>,
}

#[derive(Debug, Deserialize)]
struct OrderInfo {
    tid: Option<String>,
    status: Option<String>,
    refund_state: Option<serde_json::Value>,
    created: Option<String>,
    update_time: Option<String>,
    pay_time: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BuyerInfo {
    yz_open_id: Option<String>,
    buyer_phone: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PayInfo {
    payment: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Line {
    num: Option<serde_json::Value>,
    oid: Option<serde_json::Value>,
    item_id: Option<serde_json::Value>,
    sku_id: Option<serde_json::Value>,
    title: Option<String>,
    price: Option<serde_json::Value>,
    payment: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct AddressInfo {
    receiver_tel: Option<String>,
    delivery_province: Option<String>,
    delivery_city: Option<String>,
}

/// Youzan's `status` and `refund_state` (0 none, 1 partial refund under
/// way, 2 partial refund done, 11 full refund under way, 12 full refund
/// done) in the closed vocabulary. A closed order that was paid (or fully
/// refunded) is refunded; closed unpaid, cancelled. `None` for a status
/// Youzan does not document.
pub fn map_status(status: &str, refund_state: i64, paid: bool) -> Option<OrderStatus> {
    if refund_state == 12 {
        return Some(OrderStatus::Refunded);
    }
    Some(match status {
        "WAIT_BUYER_PAY" => OrderStatus::PendingPayment,
        "TRADE_PAID" | "WAIT_CONFIRM" | "WAIT_SELLER_SEND_GOODS" => OrderStatus::Paid,
        "WAIT_BUYER_CONFIRM_GOODS" => OrderStatus::Shipped,
        "TRADE_SUCCESS" => OrderStatus::Completed,
        // The closed status is spelled both ways in Youzan's own sources.
        "TRADE_CLOSED" | "TRADE_CLOSE" if paid => OrderStatus::Refunded,
        "TRADE_CLOSED" | "TRADE_CLOSE" => OrderStatus::Cancelled,
        _ => return None,
    })
}

/// Whether a value is Youzan's PII ciphertext, `$<base64>$<key version>$`.
pub fn is_cipher(v: &str) -> bool {
    let Some(inner) = v.strip_prefix('$').and_then(|s| s.strip_suffix('$')) else {
        return false;
    };
    matches!(inner.split_once('$'), Some((body, version))
        if !body.is_empty() && !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()))
}

/// Map one raw order of `shop`: amounts are yuan text into fen, times
/// Beijing `yyyy-MM-dd HH:mm:ss`, the buyer its `yz_open_id`. The receiver
/// phone (or, without one, the buyer's) comes as ciphertext: it is handed
/// back for the decrypt API and never stored; a phone in clear is hashed.
pub fn map_order(raw: &str, shop: &str, hasher: &PiiHasher) -> Result<MappedOrder, Rejected> {
    let e: Element = Rejected::parse(raw, "Youzan order")?;
    let full = e
        .full_order_info
        .ok_or_else(|| Rejected::missing("full_order_info"))?;
    let info = full
        .order_info
        .ok_or_else(|| Rejected::missing("order_info"))?;
    let order_id = info
        .tid
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Rejected::missing("tid"))?;
    let reject = |reason: String| Rejected::new(Some(&order_id), reason);
    let time = |name: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => parse_beijing(t)
            .map(Some)
            .map_err(|e| reject(format!("{name}: {e}"))),
    };
    let created_at =
        time("created", &info.created)?.ok_or_else(|| reject("order has no created".into()))?;
    let updated_at = time("update_time", &info.update_time)?
        .ok_or_else(|| reject("order has no update_time".into()))?;
    let paid_at = time("pay_time", &info.pay_time)?;
    let status_text = info
        .status
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| reject("order has no status".into()))?;
    let refund_state = info.refund_state.as_ref().and_then(int_of).unwrap_or(0);
    let platform_status = format!("{status_text};refund_state={refund_state}");
    let status = map_status(status_text, refund_state, paid_at.is_some())
        .ok_or_else(|| reject(format!("unknown order status {platform_status:?}")))?;
    let amount_fen = yuan_of(
        &full
            .pay_info
            .and_then(|p| p.payment)
            .unwrap_or(serde_json::Value::Null),
    )
    .map_err(|e| reject(format!("payment: {e}")))?
    .unwrap_or(0);
    let mut lines = Vec::new();
    for (k, l) in full.orders.unwrap_or_default().into_iter().enumerate() {
        let n = l.num.as_ref().and_then(int_of).unwrap_or(1);
        let money = |what: &str, v: &Option<serde_json::Value>| {
            yuan_of(v.as_ref().unwrap_or(&serde_json::Value::Null))
                .map_err(|e| reject(format!("orders[{k}].{what}: {e}")))
        };
        lines.push(kit::Line {
            price_fen: money("price", &l.price)?,
            amount_fen: money("payment", &l.payment)?,
            id: l.oid.as_ref().and_then(text_of),
            item: l.item_id.as_ref().and_then(text_of),
            // Youzan's sku_id is 0 for an item without SKUs.
            sku: l.sku_id.as_ref().and_then(text_of).filter(|s| s != "0"),
            title: l.title,
            quantity: Some(n),
        });
    }
    let buyer = full.buyer_info;
    let address = full.address_info;
    let phone = address
        .as_ref()
        .and_then(|a| a.receiver_tel.as_deref())
        .or_else(|| buyer.as_ref().and_then(|b| b.buyer_phone.as_deref()))
        .map(str::trim)
        .unwrap_or("");
    // Ciphertext goes to the decrypt API; a mobile in clear is hashed; a
    // landline or a foreign number stays out of the lake.
    let cipher = is_cipher(phone).then(|| phone.to_string());
    let (phone_hash, phone_masked) = match cipher {
        Some(_) => (None, None),
        None => phone_fields(Some(phone), hasher),
    };
    let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let (province, city) = match address {
        Some(a) => (text(a.delivery_province), text(a.delivery_city)),
        None => (None, None),
    };
    let row = OrderRow {
        channel: Channel::Youzan,
        shop_id: shop.to_string(),
        buyer_id: buyer.and_then(|b| text(b.yz_open_id)),
        order_id,
        phone_hash,
        phone_masked,
        status,
        platform_status,
        amount_fen,
        item_count: item_count_of(&lines),
        province,
        city,
        created_at,
        paid_at,
        updated_at,
        // Name and address are ciphertext: nothing to tell receivers apart.
        buyer_unionid: None,
        receiver_hash: None,
    };
    Ok(MappedOrder {
        lines: kit::lines_of(&row, lines),
        row,
        cipher,
    })
}

#[derive(Debug, Deserialize)]
struct Refund {
    refund_id: Option<serde_json::Value>,
    tid: Option<String>,
    oid: Option<serde_json::Value>,
    status: Option<String>,
    refund_fee: Option<serde_json::Value>,
    created: Option<String>,
    modified: Option<String>,
}

/// Map one raw refund of `shop` (`youzan.trade.refund.search`: `refund_fee`
/// in yuan, TOP-style status words); one naming a sub-order has it as its
/// line.
pub fn map_refund(raw: &str, shop: &str) -> Result<RefundRow, Rejected> {
    let r: Refund = Rejected::parse(raw, "Youzan refund")?;
    kit::RefundParts {
        refund_id: r.refund_id.as_ref().and_then(text_of),
        order_id: ("tid", r.tid),
        line_id: r.oid.as_ref().and_then(text_of),
        status: ("status", r.status),
        amount: ("refund_fee", kit::Money::Yuan(r.refund_fee)),
        created: ("created", kit::TimeText::Beijing(r.created)),
        updated: ("modified", kit::TimeText::Beijing(r.modified)),
    }
    .row(Channel::Youzan, shop, kit::top_refund_status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    fn hasher() -> PiiHasher {
        PiiHasher::new(&LakeKey::from_bytes([1; 32]))
    }

    // Shaped after the 4.0.4 answer (research notes §3, a captured 2026
    // answer for the ciphertexts).
    const ORDER: &str = r#"{"full_order_info":{
        "order_info":{"tid":"E20260318150848096300018","status":"WAIT_SELLER_SEND_GOODS",
          "status_str":"待发货","type":0,"created":"2026-03-18 15:08:48",
          "update_time":"2026-03-18 15:09:30","pay_time":"2026-03-18 15:09:30","refund_state":0,
          "order_tags":{"is_payed":true}},
        "buyer_info":{"yz_open_id":"Xq8r2Dw1543872216406347776","buyer_phone":"$uJszQm1Xb4vWl0dQ==$1$"},
        "pay_info":{"total_fee":"99.00","post_fee":"0.00","payment":"98.20"},
        "orders":[{"oid":"1","num":2,"price":"45.00","payment":"88.20"},{"oid":"2","num":1,"payment":"10.00"}],
        "address_info":{"receiver_name":"$uhqbqg15Dn5slYolRHAzZw==$1$","receiver_tel":"$uJszQm1Xb4vWl0dQ==$1$",
          "delivery_province":"广东省","delivery_city":"深圳市","delivery_address":"$uJsz9Q==$1$"}}}"#;

    #[test]
    fn maps_an_order() {
        let m = map_order(ORDER, "mall", &hasher()).unwrap();
        let r = m.row;
        assert_eq!(r.order_id, "E20260318150848096300018");
        assert_eq!(r.status, OrderStatus::Paid);
        assert_eq!(r.platform_status, "WAIT_SELLER_SEND_GOODS;refund_state=0");
        assert_eq!(r.amount_fen, 9820);
        assert_eq!(r.item_count, 3);
        assert_eq!(r.buyer_id.as_deref(), Some("Xq8r2Dw1543872216406347776"));
        assert_eq!(r.phone_hash, None, "ciphertext is never hashed");
        assert_eq!(r.phone_masked, None);
        assert_eq!(m.cipher.as_deref(), Some("$uJszQm1Xb4vWl0dQ==$1$"));
        assert_eq!(r.created_at.to_rfc3339(), "2026-03-18T07:08:48+00:00");
        assert_eq!(r.city.as_deref(), Some("深圳市"));
        assert_eq!(r.receiver_hash, None);
        let l = &m.lines;
        assert_eq!(
            l.iter()
                .map(|l| (
                    l.line_id.as_str(),
                    l.quantity,
                    l.unit_price_fen,
                    l.amount_fen
                ))
                .collect::<Vec<_>>(),
            [("1", 2, Some(4500), 8820), ("2", 1, None, 1000)]
        );
    }

    /// A refund names its trade and, for an after-sale on one item, the
    /// sub-order; a bad fee is rejected with the refund's id.
    #[test]
    fn maps_a_refund() {
        let raw = r#"{"refund_id":"201903081210000000001","tid":"E20260318150848096300018","oid":"1",
            "status":"SUCCESS","refund_fee":"45.00","created":"2026-03-20 10:00:00","modified":"2026-03-21 10:00:00"}"#;
        let r = map_refund(raw, "mall").unwrap();
        assert_eq!(
            (r.order_id.as_str(), r.line_id.as_deref(), r.refund_fen),
            ("E20260318150848096300018", Some("1"), 4500)
        );
        assert_eq!(r.status, quanyu_schemas::RefundStatus::Succeeded);
        let e = map_refund(&raw.replace("\"45.00\"", "\"12,5\""), "s").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("201903081210000000001"));
        assert!(e.reason.starts_with("refund_fee"), "{}", e.reason);
    }

    #[test]
    fn statuses_and_refunds() {
        for (s, refund, paid, want) in [
            ("WAIT_BUYER_PAY", 0, false, OrderStatus::PendingPayment),
            ("WAIT_CONFIRM", 0, true, OrderStatus::Paid),
            ("WAIT_BUYER_CONFIRM_GOODS", 1, true, OrderStatus::Shipped),
            ("TRADE_SUCCESS", 2, true, OrderStatus::Completed),
            ("TRADE_SUCCESS", 12, true, OrderStatus::Refunded),
            ("TRADE_CLOSED", 0, false, OrderStatus::Cancelled),
            ("TRADE_CLOSE", 0, true, OrderStatus::Refunded),
        ] {
            assert_eq!(map_status(s, refund, paid), Some(want), "{s} {refund}");
        }
        assert_eq!(map_status("TRADE_LOST", 0, true), None);
    }

    #[test]
    fn clear_and_odd_phones() {
        let raw = ORDER.replace("$uJszQm1Xb4vWl0dQ==$1$", "13912345678");
        let m = map_order(&raw, "s", &hasher()).unwrap();
        assert_eq!(m.row.phone_hash, hasher().phone_text("13912345678"));
        assert_eq!(m.row.phone_masked.as_deref(), Some("139****5678"));
        assert_eq!(m.cipher, None);
        let raw = ORDER.replace("$uJszQm1Xb4vWl0dQ==$1$", "0755-8888");
        let m = map_order(&raw, "s", &hasher()).unwrap();
        assert_eq!((m.row.phone_hash, m.cipher), (None, None));
        assert!(is_cipher("$a$1$"));
        for no in ["$a$$", "$$1$", "a$1$", "$a$x$", "$a$1", ""] {
            assert!(!is_cipher(no), "{no}");
        }
    }

    #[test]
    fn rejects_with_reasons() {
        let bad = ORDER.replace("\"98.20\"", "\"9x\"");
        let e = map_order(&bad, "s", &hasher()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("E20260318150848096300018"));
        assert!(e.reason.starts_with("payment"), "{}", e.reason);
        let bad = ORDER.replace("WAIT_SELLER_SEND_GOODS", "LOST");
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .contains("unknown order status"));
        let bad = ORDER.replace("2026-03-18 15:08:48", "yesterday");
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .starts_with("created"));
        assert_eq!(
            map_order(r#"{"full_order_info":{"order_info":{}}}"#, "s", &hasher())
                .unwrap_err()
                .reason,
            "order has no tid"
        );
        assert!(map_order("[1]", "s", &hasher()).is_err());
        assert!(map_order("{}", "s", &hasher()).is_err());
    }
}
