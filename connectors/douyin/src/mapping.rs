//! Douyin shop order JSON (one `shop_order_list` element of
//! `order.searchList`) → canonical `orders` rows.

use quanyu_connector_sdk::market::phone_fields;
use quanyu_schemas::time::from_unix_seconds;
use quanyu_schemas::{Channel, OrderRow, OrderStatus, PiiHasher};
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

use quanyu_connector_sdk::market::{int_of, text_of};
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
    let o: Order = Rejected::parse(raw, "Douyin shop")?;
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
    let item_count = o
        .sku_order_list
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|s| s.item_num.as_ref().and_then(int_of).unwrap_or(1))
        .sum::<i64>()
        .clamp(0, i64::from(i32::MAX)) as i32;
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
        item_count,
        province,
        city,
        created_at,
        paid_at,
        updated_at,
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
