//! TOP trade JSON → canonical `orders` rows.

use quanyu_schemas::time::{parse_beijing, yuan_to_fen};
use quanyu_schemas::{normalize_phone, Channel, OrderRow, OrderStatus, PhoneError, PiiHasher};
use serde::Deserialize;

/// `tid` comes as a JSON number, `tid_str` as text; either may be missing.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Id {
    Num(u64),
    Text(String),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Id::Num(n) => n.to_string(),
            Id::Text(s) => s,
        }
    }
}

/// The trade fields quanyu reads (TOP `Trade`).
#[derive(Debug, Deserialize)]
struct Trade {
    tid: Option<Id>,
    tid_str: Option<String>,
    status: Option<String>,
    created: Option<String>,
    modified: Option<String>,
    pay_time: Option<String>,
    payment: Option<String>,
    buyer_open_uid: Option<String>,
    receiver_mobile: Option<String>,
    receiver_state: Option<String>,
    receiver_city: Option<String>,
    oaid: Option<String>,
    orders: Option<OrdersWrap>,
}

#[derive(Debug, Deserialize)]
struct OrdersWrap {
    #[serde(default)]
    order: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct Item {
    num: Option<i64>,
}

/// Map TOP's trade status into the closed vocabulary.
pub fn map_status(status: &str) -> Option<OrderStatus> {
    Some(match status {
        "TRADE_NO_CREATE_PAY" | "WAIT_BUYER_PAY" | "PAY_PENDING" | "WAIT_PRE_AUTH_CONFIRM" => {
            OrderStatus::PendingPayment
        }
        "WAIT_SELLER_SEND_GOODS" | "PAID_FORBID_CONSIGN" => OrderStatus::Paid,
        "SELLER_CONSIGNED_PART" | "WAIT_BUYER_CONFIRM_GOODS" => OrderStatus::Shipped,
        "TRADE_BUYER_SIGNED" => OrderStatus::Delivered,
        "TRADE_FINISHED" => OrderStatus::Completed,
        // 付款以后用户退款成功，交易自动关闭
        "TRADE_CLOSED" => OrderStatus::Refunded,
        // 付款以前，卖家或买家主动关闭交易
        "TRADE_CLOSED_BY_TAOBAO" => OrderStatus::Cancelled,
        _ => return None,
    })
}

pub use quanyu_connector_sdk::market::{MappedOrder, Rejected};

/// Map one raw trade JSON object of `shop` into an order row.
///
/// The receiver phone is hashed when TOP returns it in clear and kept as
/// masked text when TOP masks it; the buyer id is `buyer_open_uid@shop`
/// because an open_uid is only stable within one shop.
pub fn map_trade(raw: &str, shop: &str, hasher: &PiiHasher) -> Result<OrderRow, Rejected> {
    map_trade_with_oaid(raw, shop, hasher).map(|m| m.row)
}

/// [`map_trade`], also returning the trade's OAID for the decrypt API.
pub fn map_trade_with_oaid(
    raw: &str,
    shop: &str,
    hasher: &PiiHasher,
) -> Result<MappedOrder, Rejected> {
    let t: Trade = serde_json::from_str(raw).map_err(|e| Rejected {
        key: None,
        reason: format!("trade is not a valid TOP trade object: {e}"),
    })?;
    let order_id = t
        .tid_str
        .filter(|s| !s.is_empty())
        .or_else(|| t.tid.map(Id::into_string))
        .ok_or_else(|| Rejected {
            key: None,
            reason: "trade has no tid".into(),
        })?;
    let reject = |reason: String| Rejected::new(Some(&order_id), reason);
    let platform_status = t
        .status
        .ok_or_else(|| reject("trade has no status".into()))?;
    let status = map_status(&platform_status)
        .ok_or_else(|| reject(format!("unknown trade status {platform_status:?}")))?;
    let created = parse_beijing(
        t.created
            .as_deref()
            .ok_or_else(|| reject("trade has no created time".into()))?,
    )
    .map_err(|e| reject(format!("created: {e}")))?;
    let updated = parse_beijing(
        t.modified
            .as_deref()
            .ok_or_else(|| reject("trade has no modified time".into()))?,
    )
    .map_err(|e| reject(format!("modified: {e}")))?;
    let paid_at = match t.pay_time.as_deref().filter(|s| !s.is_empty()) {
        Some(p) => Some(parse_beijing(p).map_err(|e| reject(format!("pay_time: {e}")))?),
        None => None,
    };
    let amount_fen = yuan_to_fen(t.payment.as_deref().unwrap_or("0"))
        .map_err(|e| reject(format!("payment: {e}")))?;
    let item_count = t
        .orders
        .map(|o| o.order.iter().map(|i| i.num.unwrap_or(1)).sum::<i64>())
        .unwrap_or(0)
        .clamp(0, i64::from(i32::MAX)) as i32;
    let (phone_hash, phone_masked) = match t.receiver_mobile.as_deref() {
        None => (None, None),
        Some(m) => match normalize_phone(m) {
            Ok(p) => (Some(hasher.phone(&p)), Some(p.masked())),
            Err(PhoneError::Masked) => (None, Some(m.trim().to_string())),
            Err(_) => (None, None),
        },
    };
    let oaid = t.oaid.filter(|o| !o.is_empty());
    let row = OrderRow {
        channel: Channel::Taobao,
        shop_id: shop.to_string(),
        buyer_id: t
            .buyer_open_uid
            .filter(|u| !u.is_empty())
            .map(|u| format!("{u}@{shop}")),
        order_id,
        phone_hash,
        phone_masked,
        status,
        platform_status,
        amount_fen,
        item_count,
        province: t.receiver_state.filter(|s| !s.is_empty()),
        city: t.receiver_city.filter(|s| !s.is_empty()),
        created_at: created,
        paid_at,
        updated_at: updated,
        buyer_unionid: None,
        receiver_hash: None,
    };
    Ok(MappedOrder { row, cipher: oaid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    fn hasher() -> PiiHasher {
        PiiHasher::new(&LakeKey::from_bytes([1; 32]))
    }

    const TRADE: &str = r#"{"tid":3100000000000001,"tid_str":"3100000000000001","status":"WAIT_SELLER_SEND_GOODS",
        "created":"2024-03-18 10:00:00","modified":"2024-03-18 10:05:00","pay_time":"2024-03-18 10:05:00",
        "payment":"188.00","buyer_open_uid":"AAHxyz","receiver_mobile":"139****5678",
        "receiver_state":"浙江省","receiver_city":"杭州市","orders":{"order":[{"num":2},{"num":1}]}}"#;

    #[test]
    fn maps_a_trade() {
        let r = map_trade(TRADE, "shop1", &hasher()).unwrap();
        assert_eq!(r.order_id, "3100000000000001");
        assert_eq!(r.status, OrderStatus::Paid);
        assert_eq!(r.amount_fen, 18800);
        assert_eq!(r.item_count, 3);
        assert_eq!(r.buyer_id.as_deref(), Some("AAHxyz@shop1"));
        assert_eq!(r.phone_hash, None, "a masked phone is never hashed");
        assert_eq!(r.phone_masked.as_deref(), Some("139****5678"));
        assert_eq!(r.created_at.to_rfc3339(), "2024-03-18T02:00:00+00:00");
    }

    #[test]
    fn hashes_a_clear_phone() {
        let raw = TRADE.replace("139****5678", "+86 139 1234 5678");
        let r = map_trade(&raw, "shop1", &hasher()).unwrap();
        assert_eq!(r.phone_hash, hasher().phone_text("13912345678"));
        assert_eq!(r.phone_masked.as_deref(), Some("139****5678"));
    }

    #[test]
    fn rejects_with_reasons() {
        let bad = TRADE.replace("\"payment\":\"188.00\"", "\"payment\":\"abc\"");
        let e = map_trade(&bad, "s", &hasher()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("3100000000000001"));
        assert!(e.reason.starts_with("payment:"), "{}", e.reason);
        let bad = TRADE.replace("WAIT_SELLER_SEND_GOODS", "SOMETHING_NEW");
        assert!(map_trade(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .contains("unknown trade status"));
        let bad = TRADE.replace("2024-03-18 10:00:00", "18/03/2024");
        assert!(map_trade(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .starts_with("created:"));
        let e = map_trade(r#"{"status":"TRADE_FINISHED"}"#, "s", &hasher()).unwrap_err();
        assert_eq!(e.key, None);
        assert!(map_trade("[1,2]", "s", &hasher()).is_err());
    }

    #[test]
    fn every_documented_status_maps() {
        for s in [
            "TRADE_NO_CREATE_PAY",
            "WAIT_BUYER_PAY",
            "SELLER_CONSIGNED_PART",
            "WAIT_SELLER_SEND_GOODS",
            "WAIT_BUYER_CONFIRM_GOODS",
            "TRADE_BUYER_SIGNED",
            "TRADE_FINISHED",
            "TRADE_CLOSED",
            "TRADE_CLOSED_BY_TAOBAO",
            "PAY_PENDING",
            "WAIT_PRE_AUTH_CONFIRM",
            "PAID_FORBID_CONSIGN",
        ] {
            assert!(map_status(s).is_some(), "{s}");
        }
    }
}
