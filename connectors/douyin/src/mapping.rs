//! Douyin shop order JSON (one `shop_order_list` element of
//! `order.searchList`) → canonical `orders` rows.

use quanyu_connector_sdk::market::phone_fields;
use quanyu_schemas::time::from_unix_seconds;
use quanyu_schemas::{Channel, OrderRow, OrderStatus, PiiHasher, RefundRow, RefundStatus};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Order {
    order_id: Option<serde_json::Value>,
    order_status: Option<serde_json::Value>,
    create_time: Option<serde_json::Value>,
    update_time: Option<serde_json::Value>,
    pay_time: Option<serde_json::Value>,
    pay_amount: Option<serde_json::Value>,
    doudian_open_id: Option<String>,
    encrypt_post_tel: Option<String>,
    mask_post_tel: Option<String>,
    post_tel: Option<String>,
    post_addr: Option<Address>,
    #[serde(default)]
    sku_order_list: Option<Vec<Sku>>,
}

#[derive(Debug, Deserialize)]
struct Address {
    province: Option<Named>,
    city: Option<Named>,
}

#[derive(Debug, Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Sku {
    item_num: Option<serde_json::Value>,
    order_id: Option<serde_json::Value>,
    product_id: Option<serde_json::Value>,
    sku_id: Option<serde_json::Value>,
    product_name: Option<String>,
    pay_amount: Option<serde_json::Value>,
}

/// Map Douyin's `order_status` (1 待确认/待支付, 105 已支付, 2 备货中,
/// 101 部分发货, 3 已发货, 4 已取消, 5 已完成) into the closed vocabulary. A
/// cancelled order that had been paid (`pay_time` set) was refunded.
pub fn map_status(status: i64, paid: bool) -> Option<OrderStatus> {
    Some(match status {
        1 => OrderStatus::PendingPayment,
        105 | 2 => OrderStatus::Paid,
        101 | 3 => OrderStatus::Shipped,
        5 => OrderStatus::Completed,
        4 if paid => OrderStatus::Refunded,
        4 => OrderStatus::Cancelled,
        _ => return None,
    })
}

use quanyu_connector_sdk::market::{
    int_of, item_count_of, lines_of, text_of, Line, Money, RefundParts, TimeText,
};
pub use quanyu_connector_sdk::market::{MappedOrder, Rejected};

/// Map one raw order of `shop` (see [`map_order_with_cipher`]).
pub fn map_order(raw: &str, shop: &str, hasher: &PiiHasher) -> Result<OrderRow, Rejected> {
    map_order_with_cipher(raw, shop, hasher).map(|m| m.row)
}

/// Map one raw order of `shop`: amounts are fen integers, times unix
/// seconds, the buyer id `doudian_open_id@shop` (open ids are per shop);
/// the masked phone is kept as masked text, the ciphertext is only handed
/// back for the decrypt API.
pub fn map_order_with_cipher(
    raw: &str,
    shop: &str,
    hasher: &PiiHasher,
) -> Result<MappedOrder, Rejected> {
    let o: Order = Rejected::parse(raw, "Douyin shop order")?;
    let order_id = o
        .order_id
        .as_ref()
        .and_then(text_of)
        .ok_or_else(|| Rejected::missing("order_id"))?;
    let reject = |reason: String| Rejected::new(Some(&order_id), reason);
    let secs = |name: &str, v: &Option<serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(x) => match int_of(x) {
            Some(0) => Ok(None),
            Some(t) => from_unix_seconds(t)
                .map(Some)
                .map_err(|e| reject(format!("{name}: {e}"))),
            None => Err(reject(format!("{name}: not a unix time in seconds"))),
        },
    };
    let created_at = secs("create_time", &o.create_time)?
        .ok_or_else(|| reject("order has no create_time".into()))?;
    let updated_at = secs("update_time", &o.update_time)?
        .ok_or_else(|| reject("order has no update_time".into()))?;
    let paid_at = secs("pay_time", &o.pay_time)?;
    let status_value = o
        .order_status
        .as_ref()
        .ok_or_else(|| reject("order has no order_status".into()))?;
    let platform_status = text_of(status_value).unwrap_or_else(|| status_value.to_string());
    let status = int_of(status_value)
        .and_then(|s| map_status(s, paid_at.is_some()))
        .ok_or_else(|| reject(format!("unknown order status {platform_status:?}")))?;
    let amount_fen = match &o.pay_amount {
        None | Some(serde_json::Value::Null) => 0,
        Some(v) => int_of(v).ok_or_else(|| reject("pay_amount: not an amount in fen".into()))?,
    };
    let mut lines = Vec::new();
    // Each SKU is a sub-order with its own id and payment (in fen).
    for (k, sku) in o.sku_order_list.unwrap_or_default().into_iter().enumerate() {
        let n = sku.item_num.as_ref().and_then(int_of).unwrap_or(1);
        let amount_fen = match &sku.pay_amount {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(int_of(v).ok_or_else(|| {
                reject(format!(
                    "sku_order_list[{k}].pay_amount: not an amount in fen"
                ))
            })?),
        };
        lines.push(Line {
            id: sku.order_id.as_ref().and_then(text_of),
            item: sku.product_id.as_ref().and_then(text_of),
            sku: sku.sku_id.as_ref().and_then(text_of),
            title: sku.product_name,
            quantity: Some(n),
            price_fen: None,
            amount_fen,
        });
    }
    // `post_tel` is empty for merchants without the clear-text permission;
    // a clear value is hashed at once, a mask kept as a mask.
    let (phone_hash, mut phone_masked) = phone_fields(o.post_tel.as_deref(), hasher);
    if phone_masked.is_none() {
        phone_masked = o
            .mask_post_tel
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty());
    }
    let cipher = o.encrypt_post_tel.filter(|c| !c.trim().is_empty());
    let (province, city) = match o.post_addr {
        Some(a) => (
            a.province.and_then(|p| p.name).filter(|s| !s.is_empty()),
            a.city.and_then(|c| c.name).filter(|s| !s.is_empty()),
        ),
        None => (None, None),
    };
    let row = OrderRow {
        channel: Channel::Douyin,
        shop_id: shop.to_string(),
        buyer_id: o
            .doudian_open_id
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
struct AfterSale {
    aftersale_info: Option<AfterSaleInfo>,
    order_info: Option<AfterSaleOrder>,
}

#[derive(Debug, Default, Deserialize)]
struct AfterSaleInfo {
    aftersale_id: Option<serde_json::Value>,
    aftersale_status: Option<serde_json::Value>,
    refund_amount: Option<serde_json::Value>,
    create_time: Option<serde_json::Value>,
    update_time: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct AfterSaleOrder {
    shop_order_id: Option<serde_json::Value>,
    #[serde(default)]
    related_order_info: Vec<RelatedOrder>,
}

#[derive(Debug, Deserialize)]
struct RelatedOrder {
    sku_order_id: Option<serde_json::Value>,
}

/// Map Douyin's `aftersale_status` into the closed vocabulary: 12 售后成功
/// is succeeded; 27 拒绝售后申请, 28 售后失败, 29 拒绝收货, 4 已撤销 are
/// closed; the waiting states (6 申请, 7 待退货, 8 待商家收货, 11 已发货,
/// 14 换货待收货...) pending.
pub fn map_after_sale_status(status: i64) -> Option<RefundStatus> {
    Some(match status {
        6..=11 | 13..=26 => RefundStatus::Pending,
        12 => RefundStatus::Succeeded,
        4 | 27..=29 => RefundStatus::Closed,
        _ => return None,
    })
}

/// Map one raw after-sale item of `shop` (`afterSale.List`: amounts in
/// fen, times in unix seconds). A request on one SKU order names it as
/// the line.
pub fn map_after_sale(raw: &str, shop: &str) -> Result<RefundRow, Rejected> {
    let a: AfterSale = Rejected::parse(raw, "Douyin after-sale")?;
    let info = a.aftersale_info.unwrap_or_default();
    let (order_id, line_id) = match a.order_info {
        Some(o) => (
            o.shop_order_id.as_ref().and_then(text_of),
            o.related_order_info
                .into_iter()
                .next()
                .and_then(|r| r.sku_order_id.as_ref().and_then(text_of)),
        ),
        None => (None, None),
    };
    RefundParts {
        refund_id: info.aftersale_id.as_ref().and_then(text_of),
        order_id: ("shop_order_id", order_id),
        line_id,
        status: (
            "aftersale_status",
            info.aftersale_status.as_ref().and_then(text_of),
        ),
        amount: ("refund_amount", Money::Fen(info.refund_amount)),
        created: ("create_time", TimeText::UnixSeconds(info.create_time)),
        updated: ("update_time", TimeText::UnixSeconds(info.update_time)),
    }
    .row(Channel::Douyin, shop, |s| {
        s.parse().ok().and_then(map_after_sale_status)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    fn hasher() -> PiiHasher {
        PiiHasher::new(&LakeKey::from_bytes([1; 32]))
    }

    // Shaped after the official SDK's response type (contracts doc §4).
    const ORDER: &str = r##"{"order_id":"6920000012345678901","order_status":2,"main_status":103,
        "create_time":1710727200,"update_time":1710727500,"pay_time":1710727500,"finish_time":0,
        "order_amount":19600,"pay_amount":18800,"post_amount":800,"promotion_amount":1600,
        "doudian_open_id":"1@#dyOpen123","encrypt_post_tel":"$dGVzdA==$3$$","mask_post_tel":"139****5678",
        "encrypt_post_receiver":"#dGVzdA==#1##","mask_post_receiver":"*某","post_tel":"","post_receiver":"",
        "post_addr":{"province":{"name":"浙江省","id":"33"},"city":{"name":"杭州市","id":"3301"},
                     "town":{"name":"西湖区","id":"330106"},"street":{"name":"","id":""},"encrypt_detail":"#eA==#1##"},
        "sku_order_list":[{"order_id":"6920000012345678902","item_num":2,"pay_amount":12000},
                          {"order_id":"6920000012345678903","item_num":1,"pay_amount":6800}]}"##;

    /// An after-sale request: id, order, the SKU order as its line,
    /// status and amount in fen; a bad amount is rejected with its id.
    #[test]
    fn maps_an_after_sale() {
        let raw = r#"{"aftersale_info":{"aftersale_id":"7000001","aftersale_status":12,"aftersale_type":0,
            "refund_amount":6800,"create_time":1710727200,"update_time":1710813600},
            "order_info":{"shop_order_id":"6920000012345678901","related_order_info":[{"sku_order_id":"6920000012345678903"}]}}"#;
        let r = map_after_sale(raw, "shop1").unwrap();
        assert_eq!(
            (
                r.refund_id.as_str(),
                r.order_id.as_str(),
                r.line_id.as_deref()
            ),
            (
                "7000001",
                "6920000012345678901",
                Some("6920000012345678903")
            )
        );
        assert_eq!((r.status, r.refund_fen), (RefundStatus::Succeeded, 6800));
        assert_eq!(r.updated_at.to_rfc3339(), "2024-03-19T02:00:00+00:00");
        let e = map_after_sale(&raw.replace("6800", "\"12,5\""), "s").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("7000001"));
        assert!(e.reason.starts_with("refund_amount"), "{}", e.reason);
        assert_eq!(map_after_sale_status(27), Some(RefundStatus::Closed));
        assert_eq!(map_after_sale_status(6), Some(RefundStatus::Pending));
        assert!(map_after_sale(r#"{"order_info":{}}"#, "s").is_err());
    }

    #[test]
    fn maps_an_order() {
        let m = map_order_with_cipher(ORDER, "shop1", &hasher()).unwrap();
        let r = m.row;
        assert_eq!(r.order_id, "6920000012345678901");
        assert_eq!(r.status, OrderStatus::Paid);
        assert_eq!(r.platform_status, "2");
        assert_eq!(r.amount_fen, 18800);
        assert_eq!(r.item_count, 3);
        assert_eq!(r.buyer_id.as_deref(), Some("1@#dyOpen123@shop1"));
        assert_eq!(r.phone_hash, None, "ciphertext is never hashed");
        assert_eq!(r.phone_masked.as_deref(), Some("139****5678"));
        assert_eq!(r.created_at.to_rfc3339(), "2024-03-18T02:00:00+00:00");
        assert_eq!(r.province.as_deref(), Some("浙江省"));
        let l = &m.lines;
        assert_eq!(
            l.iter()
                .map(|l| (l.line_id.as_str(), l.quantity, l.amount_fen))
                .collect::<Vec<_>>(),
            [
                ("6920000012345678902", 2, 12000),
                ("6920000012345678903", 1, 6800)
            ]
        );
        assert_eq!(r.city.as_deref(), Some("杭州市"));
        assert_eq!(m.cipher.as_deref(), Some("$dGVzdA==$3$$"));
    }

    #[test]
    fn statuses() {
        for (s, paid, want) in [
            (1, false, OrderStatus::PendingPayment),
            (105, true, OrderStatus::Paid),
            (2, true, OrderStatus::Paid),
            (101, true, OrderStatus::Shipped),
            (3, true, OrderStatus::Shipped),
            (5, true, OrderStatus::Completed),
            (4, true, OrderStatus::Refunded),
            (4, false, OrderStatus::Cancelled),
        ] {
            assert_eq!(map_status(s, paid), Some(want), "{s}");
        }
        assert_eq!(map_status(7, true), None);
        let cancelled = ORDER
            .replace("\"order_status\":2", "\"order_status\":4")
            .replace("\"pay_time\":1710727500", "\"pay_time\":0");
        assert_eq!(
            map_order(&cancelled, "s", &hasher()).unwrap().status,
            OrderStatus::Cancelled
        );
    }

    #[test]
    fn rejects_with_reasons() {
        let bad = ORDER.replace("\"pay_amount\":18800", "\"pay_amount\":\"188.00\"");
        let e = map_order(&bad, "s", &hasher()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("6920000012345678901"));
        assert!(e.reason.starts_with("pay_amount"), "{}", e.reason);
        let bad = ORDER.replace(
            "\"create_time\":1710727200",
            "\"create_time\":\"yesterday\"",
        );
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .starts_with("create_time"));
        let bad = ORDER.replace("\"order_status\":2", "\"order_status\":42");
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .contains("unknown order status"));
        assert_eq!(
            map_order(r#"{"order_status":2}"#, "s", &hasher())
                .unwrap_err()
                .key,
            None
        );
        assert!(map_order("[]", "s", &hasher()).is_err());
    }

    #[test]
    fn a_clear_phone_is_hashed() {
        let raw = ORDER.replace("\"post_tel\":\"\"", "\"post_tel\":\"13912345678\"");
        let r = map_order(&raw, "s", &hasher()).unwrap();
        assert_eq!(r.phone_hash, hasher().phone_text("13912345678"));
        assert_eq!(r.phone_masked.as_deref(), Some("139****5678"));
    }
}
