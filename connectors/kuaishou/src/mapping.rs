//! Kuaishou order JSON (one `orderList` element of `open.order.cursor.list`)
//! → canonical `orders` rows.

use quanyu_connector_sdk::market::{
    item_count_of, lines_of, phone_fields, Line, Money, RefundParts, TimeText,
};
use quanyu_schemas::time::from_unix_millis;
use quanyu_schemas::{Channel, OrderRow, OrderStatus, PiiHasher, RefundRow, RefundStatus};
use serde::Deserialize;

/// Ids and amounts come as JSON numbers; tolerate text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Num {
    Int(i64),
    Text(String),
}

impl Num {
    fn text(&self) -> String {
        match self {
            Num::Int(n) => n.to_string(),
            Num::Text(s) => s.trim().to_string(),
        }
    }
    fn int(&self) -> Option<i64> {
        match self {
            Num::Int(n) => Some(*n),
            Num::Text(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    order_base_info: Option<BaseInfo>,
    order_item_info: Option<Items>,
    order_address: Option<Address>,
    #[serde(default)]
    order_refund_list: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BaseInfo {
    oid: Option<Num>,
    status: Option<Num>,
    create_time: Option<Num>,
    pay_time: Option<Num>,
    update_time: Option<Num>,
    total_fee: Option<Num>,
    buyer_open_id: Option<String>,
}

/// `orderItemInfo` is one object in the documented answer; accept a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Items {
    One(Item),
    Many(Vec<Item>),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    num: Option<Num>,
    order_item_id: Option<Num>,
    item_id: Option<Num>,
    sku_id: Option<Num>,
    item_title: Option<String>,
    price: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Address {
    encrypted_mobile: Option<String>,
    desensitise_mobile: Option<String>,
    province: Option<String>,
    city: Option<String>,
}

/// Map Kuaishou's order status into the closed vocabulary. Kuaishou has no
/// "refunded" status: a full refund closes the order (80 关闭). A closed
/// order that had been paid (payTime set) or carries refunds was refunded;
/// one closed before payment was cancelled.
pub fn map_status(status: i64, paid: bool, refunds: bool) -> Option<OrderStatus> {
    Some(match status {
        10 => OrderStatus::PendingPayment,
        30 => OrderStatus::Paid,
        40 => OrderStatus::Shipped,
        50 => OrderStatus::Delivered,
        70 => OrderStatus::Completed,
        80 if paid || refunds => OrderStatus::Refunded,
        80 => OrderStatus::Cancelled,
        _ => return None,
    })
}

pub use quanyu_connector_sdk::market::{MappedOrder, Rejected};

/// Map one raw order of `shop` into a row (see [`map_order_with_cipher`]).
pub fn map_order(raw: &str, shop: &str, hasher: &PiiHasher) -> Result<OrderRow, Rejected> {
    map_order_with_cipher(raw, shop, hasher).map(|m| m.row)
}

/// Map one raw order of `shop`: amounts are fen integers, times unix
/// milliseconds, the buyer id `buyerOpenId@shop` (open ids are per shop);
/// the masked phone is kept as masked text, the ciphertext is only handed
/// back for the decrypt API.
pub fn map_order_with_cipher(
    raw: &str,
    shop: &str,
    hasher: &PiiHasher,
) -> Result<MappedOrder, Rejected> {
    let o: Order = Rejected::parse(raw, "Kuaishou order")?;
    let base = o
        .order_base_info
        .ok_or_else(|| Rejected::missing("orderBaseInfo"))?;
    let order_id = base
        .oid
        .as_ref()
        .map(Num::text)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Rejected::missing("oid"))?;
    let reject = |reason: String| Rejected::new(Some(&order_id), reason);
    let ms =
        |name: &str, v: &Option<Num>| -> Result<Option<chrono::DateTime<chrono::Utc>>, Rejected> {
            match v {
                None => Ok(None),
                Some(n) => match n.int() {
                    Some(0) => Ok(None),
                    Some(x) => from_unix_millis(x)
                        .map(Some)
                        .map_err(|e| reject(format!("{name}: {e}"))),
                    None => Err(reject(format!("{name}: not a millisecond timestamp"))),
                },
            }
        };
    let status_code = base
        .status
        .as_ref()
        .ok_or_else(|| reject("order has no status".into()))?;
    let platform_status = status_code.text();
    let created_at = ms("createTime", &base.create_time)?
        .ok_or_else(|| reject("order has no createTime".into()))?;
    let updated_at = ms("updateTime", &base.update_time)?
        .ok_or_else(|| reject("order has no updateTime".into()))?;
    let paid_at = ms("payTime", &base.pay_time)?;
    let refunds = o.order_refund_list.as_ref().is_some_and(|l| !l.is_empty());
    let status = status_code
        .int()
        .and_then(|s| map_status(s, paid_at.is_some(), refunds))
        .ok_or_else(|| reject(format!("unknown order status {platform_status:?}")))?;
    let amount_fen = match &base.total_fee {
        None => 0,
        Some(n) => n
            .int()
            .ok_or_else(|| reject("totalFee: not an amount in fen".into()))?,
    };
    let items = match o.order_item_info {
        None => vec![],
        Some(Items::One(i)) => vec![i],
        Some(Items::Many(v)) => v,
    };
    let mut lines = Vec::with_capacity(items.len());
    for (k, i) in items.into_iter().enumerate() {
        let n = i.num.as_ref().and_then(Num::int).unwrap_or(1);
        // A blank price is no price: the line lands without it.
        let price_fen = match &i.price {
            None => None,
            Some(p) if p.text().is_empty() => None,
            Some(p) => Some(p.int().ok_or_else(|| {
                reject(format!("orderItemInfo[{k}].price: not an amount in fen"))
            })?),
        };
        lines.push(Line {
            id: i.order_item_id.as_ref().map(Num::text),
            item: i.item_id.as_ref().map(Num::text),
            sku: i.sku_id.as_ref().map(Num::text),
            title: i.item_title,
            quantity: Some(n),
            price_fen,
            amount_fen: None,
        });
    }
    let addr = o.order_address;
    let (phone_hash, phone_masked) = phone_fields(
        addr.as_ref().and_then(|a| a.desensitise_mobile.as_deref()),
        hasher,
    );
    let cipher = addr
        .as_ref()
        .and_then(|a| a.encrypted_mobile.clone())
        .filter(|c| !c.is_empty());
    let (province, city) = match addr {
        Some(a) => (
            a.province.filter(|s| !s.is_empty()),
            a.city.filter(|s| !s.is_empty()),
        ),
        None => (None, None),
    };
    let row = OrderRow {
        channel: Channel::Kuaishou,
        shop_id: shop.to_string(),
        buyer_id: base
            .buyer_open_id
            .filter(|u| !u.is_empty())
            .map(|u| format!("{u}@{shop}")),
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
        buyer_unionid: None,
        receiver_hash: None,
    };
    Ok(MappedOrder {
        lines: lines_of(&row, lines),
        row,
        cipher,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refund {
    refund_id: Option<Num>,
    oid: Option<Num>,
    status: Option<Num>,
    refund_fee: Option<serde_json::Value>,
    create_time: Option<serde_json::Value>,
    update_time: Option<serde_json::Value>,
}

/// Map Kuaishou's refund `status` into the closed vocabulary: 60 退款成功
/// is succeeded, 70 退款关闭 closed, 10–59 (申请, 待退货, 待确认收货,
/// 退款执行中) pending.
pub fn map_refund_status(status: i64) -> Option<RefundStatus> {
    Some(match status {
        10..=59 => RefundStatus::Pending,
        60 => RefundStatus::Succeeded,
        70 => RefundStatus::Closed,
        _ => return None,
    })
}

/// Map one raw refund of `shop` (`open.seller.order.refund.pcursor.list`:
/// amounts in fen, times in ms). A Kuaishou order holds one item, so the
/// refund has no line of its own.
pub fn map_refund(raw: &str, shop: &str) -> Result<RefundRow, Rejected> {
    let r: Refund = Rejected::parse(raw, "Kuaishou refund")?;
    let text = |n: Option<Num>| n.as_ref().map(Num::text);
    RefundParts {
        refund_id: text(r.refund_id),
        order_id: ("oid", text(r.oid)),
        line_id: None,
        status: ("refund status", text(r.status)),
        amount: ("refundFee", Money::Fen(r.refund_fee)),
        created: ("createTime", TimeText::UnixMillis(r.create_time)),
        updated: ("updateTime", TimeText::UnixMillis(r.update_time)),
    }
    .row(Channel::Kuaishou, shop, |s| {
        s.parse().ok().and_then(map_refund_status)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    fn hasher() -> PiiHasher {
        PiiHasher::new(&LakeKey::from_bytes([1; 32]))
    }

    const ORDER: &str = r##"{"orderBaseInfo":{"oid":2400000012345678,"status":30,
        "createTime":1710727200000,"payTime":1710727500000,"updateTime":1710727500000,"sendTime":0,
        "totalFee":18800,"expressFee":800,"discountFee":1000,"buyerOpenId":"f19a3c","buyerNick":"快手用户"},
        "orderItemInfo":{"itemId":1,"skuId":2,"num":3,"price":6000,"itemTitle":"商品"},
        "orderAddress":{"encryptedMobile":"$QUJD$1$","desensitiseMobile":"139****5678",
        "encryptedConsignee":"#QUJD#1#","province":"浙江省","city":"杭州市"},"orderRefundList":[]}"##;

    /// A refund lands with its order, status and amount in fen; a bad
    /// amount or status is rejected with the refund's id.
    #[test]
    fn maps_a_refund() {
        let raw = r#"{"refundId":91001,"oid":2400000012345678,"refundType":1,"status":60,
            "refundFee":18800,"createTime":1710727200000,"updateTime":1710813600000}"#;
        let r = map_refund(raw, "shop1").unwrap();
        assert_eq!(
            (r.refund_id.as_str(), r.order_id.as_str()),
            ("91001", "2400000012345678")
        );
        assert_eq!((r.status, r.refund_fen), (RefundStatus::Succeeded, 18800));
        assert_eq!(r.updated_at.to_rfc3339(), "2024-03-19T02:00:00+00:00");
        let e = map_refund(&raw.replace("18800", "\"12,5\""), "s").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("91001"));
        assert!(e.reason.starts_with("refundFee"), "{}", e.reason);
        assert!(map_refund(&raw.replace(":60,", ":99,"), "s").is_err());
        assert_eq!(map_refund_status(70), Some(RefundStatus::Closed));
    }

    #[test]
    fn maps_an_order() {
        let m = map_order_with_cipher(ORDER, "shop1", &hasher()).unwrap();
        let r = m.row;
        assert_eq!(r.order_id, "2400000012345678");
        assert_eq!(r.status, OrderStatus::Paid);
        assert_eq!(r.platform_status, "30");
        assert_eq!(r.amount_fen, 18800);
        assert_eq!(r.item_count, 3);
        assert_eq!(r.buyer_id.as_deref(), Some("f19a3c@shop1"));
        assert_eq!(r.phone_hash, None, "a masked phone is never hashed");
        assert_eq!(r.phone_masked.as_deref(), Some("139****5678"));
        assert_eq!(r.created_at.to_rfc3339(), "2024-03-18T02:00:00+00:00");
        assert_eq!(r.province.as_deref(), Some("浙江省"));
        assert_eq!(m.cipher.as_deref(), Some("$QUJD$1$"));
        let l = &m.lines;
        assert_eq!(l.len(), 1, "one item per Kuaishou order");
        assert_eq!(
            (
                l[0].line_id.as_str(),
                l[0].sku_id.as_deref(),
                l[0].quantity,
                l[0].amount_fen
            ),
            ("1", Some("2"), 3, 18000)
        );
    }

    #[test]
    fn closed_orders_are_refunded_or_cancelled() {
        let refunded = ORDER.replace("\"status\":30", "\"status\":80");
        assert_eq!(
            map_order(&refunded, "s", &hasher()).unwrap().status,
            OrderStatus::Refunded
        );
        let cancelled = refunded.replace("\"payTime\":1710727500000", "\"payTime\":0");
        assert_eq!(
            map_order(&cancelled, "s", &hasher()).unwrap().status,
            OrderStatus::Cancelled
        );
        let with_refund = cancelled.replace(
            "\"orderRefundList\":[]",
            "\"orderRefundList\":[{\"refundId\":1}]",
        );
        assert_eq!(
            map_order(&with_refund, "s", &hasher()).unwrap().status,
            OrderStatus::Refunded
        );
        for (s, want) in [
            (10, OrderStatus::PendingPayment),
            (40, OrderStatus::Shipped),
            (50, OrderStatus::Delivered),
            (70, OrderStatus::Completed),
        ] {
            assert_eq!(map_status(s, true, false), Some(want));
        }
    }

    #[test]
    fn rejects_with_reasons() {
        let bad = ORDER.replace("\"totalFee\":18800", "\"totalFee\":\"abc\"");
        let e = map_order(&bad, "s", &hasher()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("2400000012345678"));
        assert!(e.reason.starts_with("totalFee"), "{}", e.reason);
        let bad = ORDER.replace("\"status\":30", "\"status\":99");
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .contains("unknown order status"));
        let bad = ORDER.replace(
            "\"createTime\":1710727200000",
            "\"createTime\":\"yesterday\"",
        );
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .starts_with("createTime"));
        let e = map_order(r#"{"orderBaseInfo":{"status":10}}"#, "s", &hasher()).unwrap_err();
        assert_eq!(e.key, None);
        assert!(map_order("[1,2]", "s", &hasher()).is_err());
        assert!(map_order("{}", "s", &hasher()).is_err());
    }

    #[test]
    fn a_clear_phone_is_hashed() {
        let raw = ORDER.replace("139****5678", "13912345678");
        let r = map_order(&raw, "s", &hasher()).unwrap();
        assert_eq!(r.phone_hash, hasher().phone_text("13912345678"));
        assert_eq!(r.phone_masked.as_deref(), Some("139****5678"));
    }
}
