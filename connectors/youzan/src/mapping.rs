//! Youzan order JSON (one `full_order_info_list` element of
//! `youzan.trades.sold.get` 4.0.4) → canonical `orders` rows.

use quanyu_connector_sdk::market::{int_of, phone_fields, MappedOrder, Rejected};
use quanyu_schemas::time::{parse_beijing, yuan_to_fen};
use quanyu_schemas::{Channel, OrderRow, OrderStatus, PiiHasher};
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
    let e: Element = Rejected::parse(raw, "Youzan")?;
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
    let amount_fen = match full.pay_info.and_then(|p| p.payment) {
        None | Some(serde_json::Value::Null) => 0,
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => 0,
        Some(serde_json::Value::String(s)) => {
            yuan_to_fen(&s).map_err(|e| reject(format!("payment: {e}")))?
        }
        Some(v @ serde_json::Value::Number(_)) => {
            yuan_to_fen(&v.to_string()).map_err(|e| reject(format!("payment: {e}")))?
        }
        Some(_) => return Err(reject("payment: not an amount".into())),
    };
    let item_count = full
        .orders
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|l| l.num.as_ref().and_then(int_of).unwrap_or(1))
        .sum::<i64>()
        .clamp(0, i64::from(i32::MAX)) as i32;
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
        item_count,
        province,
        city,
        created_at,
        paid_at,
        updated_at,
        // Name and address are ciphertext: nothing to tell receivers apart.
        buyer_unionid: None,
        receiver_hash: None,
    };
    Ok(MappedOrder { row, cipher })
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
