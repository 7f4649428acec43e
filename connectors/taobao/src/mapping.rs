//! TOP trade JSON → canonical `orders` rows.

use quanyu_schemas::time::{parse_beijing, yuan_to_fen};
use quanyu_schemas::{
    normalize_phone, Channel, OrderRow, OrderStatus, PhoneError, PiiHasher, RefundRow,
};
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
    oid: Option<Id>,
    num_iid: Option<Id>,
    sku_id: Option<String>,
    title: Option<String>,
    num: Option<i64>,
    price: Option<String>,
    payment: Option<String>,
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

use quanyu_connector_sdk::market::{
    item_count_of, lines_of, top_refund_status, Line, Money, RefundParts, TimeText,
};
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
    let items = t.orders.map(|o| o.order).unwrap_or_default();
    let mut lines = Vec::with_capacity(items.len());
    for (k, i) in items.into_iter().enumerate() {
        let money = |what: &str, v: Option<String>| -> Result<Option<i64>, Rejected> {
            v.filter(|v| !v.is_empty())
                .map(|v| yuan_to_fen(&v))
                .transpose()
                .map_err(|e| reject(format!("orders[{k}].{what}: {e}")))
        };
        lines.push(Line {
            price_fen: money("price", i.price)?,
            amount_fen: money("payment", i.payment)?,
            id: i.oid.map(Id::into_string),
            item: i.num_iid.map(Id::into_string),
            sku: i.sku_id,
            title: i.title,
            quantity: i.num,
        });
    }
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
        item_count: item_count_of(&lines),
        province: t.receiver_state.filter(|s| !s.is_empty()),
        city: t.receiver_city.filter(|s| !s.is_empty()),
        created_at: created,
        paid_at,
        updated_at: updated,
        buyer_unionid: None,
        receiver_hash: None,
    };
    let lines = lines_of(&row, lines);
    Ok(MappedOrder {
        row,
        cipher: oaid,
        lines,
    })
}

/// The refund fields quanyu reads (TOP `Refund`).
#[derive(Debug, Deserialize)]
struct Refund {
    refund_id: Option<Id>,
    tid: Option<Id>,
    oid: Option<Id>,
    refund_fee: Option<serde_json::Value>,
    status: Option<String>,
    created: Option<String>,
    modified: Option<String>,
}

/// Map one raw refund of `shop` (`taobao.refunds.receive.get`). A refund
/// of the whole trade names the trade as its `oid`: it has no line.
pub fn map_refund(raw: &str, shop: &str) -> Result<RefundRow, Rejected> {
    let r: Refund = Rejected::parse(raw, "TOP refund")?;
    let order_id = r.tid.map(Id::into_string);
    let line_id = r
        .oid
        .map(Id::into_string)
        .filter(|oid| Some(oid) != order_id.as_ref());
    RefundParts {
        refund_id: r.refund_id.map(Id::into_string),
        order_id: ("tid", order_id),
        line_id,
        status: ("status", r.status),
        amount: ("refund_fee", Money::Yuan(r.refund_fee)),
        created: ("created", TimeText::Beijing(r.created)),
        updated: ("modified", TimeText::Beijing(r.modified)),
    }
    .row(Channel::Taobao, shop, top_refund_status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::{LakeKey, RefundStatus};

    fn hasher() -> PiiHasher {
        PiiHasher::new(&LakeKey::from_bytes([1; 32]))
    }

    const TRADE: &str = r#"{"tid":3100000000000001,"tid_str":"3100000000000001","status":"WAIT_SELLER_SEND_GOODS",
        "created":"2024-03-18 10:00:00","modified":"2024-03-18 10:05:00","pay_time":"2024-03-18 10:05:00",
        "payment":"188.00","buyer_open_uid":"AAHxyz","receiver_mobile":"139****5678",
        "receiver_state":"浙江省","receiver_city":"杭州市","orders":{"order":[{"oid":31,"num_iid":600000001,"title":"商品","num":2,"price":"59.00","payment":"118.00"},{"num":1}]}}"#;

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

    /// Each sub-order is a line: its oid, item, quantity, price and payment;
    /// one without them keeps its position and one piece.
    #[test]
    fn sub_orders_are_lines() {
        let m = map_trade_with_oaid(TRADE, "shop1", &hasher()).unwrap();
        let l = &m.lines;
        assert_eq!(l.len(), 2);
        assert_eq!(
            (
                l[0].line_id.as_str(),
                l[0].item_id.as_deref(),
                l[0].quantity
            ),
            ("31", Some("600000001"), 2)
        );
        assert_eq!((l[0].unit_price_fen, l[0].amount_fen), (Some(5900), 11800));
        assert_eq!(
            (l[1].line_id.as_str(), l[1].quantity, l[1].amount_fen),
            ("2", 1, 0)
        );
        let bad = TRADE.replace("\"59.00\"", "\"5,9\"");
        let e = map_trade(&bad, "s", &hasher()).unwrap_err();
        assert!(e.reason.starts_with("orders[0].price"), "{}", e.reason);
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

    const REFUND: &str = r#"{"refund_id":310000000000000150,"tid":3100000000000001,"oid":31000000000000010,
        "total_fee":"188.00","refund_fee":"59.00","status":"SUCCESS","created":"2024-03-20 10:00:00",
        "modified":"2024-03-21 09:00:00","has_good_return":true}"#;

    /// A refund names its trade and sub-order, amount in fen and status in
    /// the vocabulary; one of the whole trade has no line; a bad amount or
    /// status is a rejection naming the refund.
    #[test]
    fn maps_a_refund() {
        let r = map_refund(REFUND, "shop1").unwrap();
        assert_eq!(
            (
                r.refund_id.as_str(),
                r.order_id.as_str(),
                r.line_id.as_deref()
            ),
            (
                "310000000000000150",
                "3100000000000001",
                Some("31000000000000010")
            )
        );
        assert_eq!((r.status, r.refund_fen), (RefundStatus::Succeeded, 5900));
        assert_eq!(r.created_at.to_rfc3339(), "2024-03-20T02:00:00+00:00");
        let whole = REFUND.replace("31000000000000010", "3100000000000001");
        assert_eq!(map_refund(&whole, "s").unwrap().line_id, None);
        let bad = REFUND.replace("\"59.00\"", "\"12,5\"");
        let e = map_refund(&bad, "s").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("310000000000000150"));
        assert!(e.reason.starts_with("refund_fee"), "{}", e.reason);
        let bad = REFUND.replace("SUCCESS", "NEW_STATE");
        assert_eq!(
            map_refund(&bad, "s").unwrap_err().reason,
            "unknown status \"NEW_STATE\""
        );
        for s in [
            "WAIT_SELLER_AGREE",
            "WAIT_BUYER_RETURN_GOODS",
            "WAIT_SELLER_CONFIRM_GOODS",
            "SELLER_REFUSE_BUYER",
            "CLOSED",
        ] {
            assert!(top_refund_status(s).is_some(), "{s}");
        }
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
