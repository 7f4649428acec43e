//! Pinduoduo order JSON (one `order_sn_list` element of
//! `pdd.order.number.list.increment.get`) → canonical `orders` rows.

use quanyu_schemas::time::parse_beijing;
use quanyu_schemas::{
    normalize_phone, Channel, OrderRow, OrderStatus, PhoneError, PiiHasher, RefundRow, RefundStatus,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Order {
    order_sn: Option<String>,
    order_status: Option<serde_json::Value>,
    refund_status: Option<serde_json::Value>,
    created_time: Option<String>,
    pay_time: Option<String>,
    confirm_time: Option<String>,
    updated_at: Option<String>,
    pay_amount: Option<serde_json::Value>,
    #[serde(default)]
    item_list: Option<Vec<Item>>,
    receiver_phone: Option<String>,
    receiver_phone_mask: Option<String>,
    receiver_name_mask: Option<String>,
    receiver_address_mask: Option<String>,
    province: Option<String>,
    city: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Item {
    goods_count: Option<serde_json::Value>,
    goods_id: Option<serde_json::Value>,
    sku_id: Option<serde_json::Value>,
    goods_name: Option<String>,
    #[serde(default)]
    goods_price: serde_json::Value,
}

/// Map Pinduoduo's `order_status` (1 待发货, 2 已发货待签收, 3 已签收) and
/// `refund_status` (1 无售后或售后关闭, 2 售后处理中, 3 退款中, 4 退款成功)
/// into the closed vocabulary. A successful refund closes the order;
/// the platform lists only paid orders, so there is no "pending payment"
/// or "cancelled before payment".
pub fn map_status(order_status: i64, refund_status: i64) -> Option<OrderStatus> {
    if refund_status == 4 {
        return Some(OrderStatus::Refunded);
    }
    Some(match order_status {
        1 => OrderStatus::Paid,
        2 => OrderStatus::Shipped,
        3 => OrderStatus::Completed,
        _ => return None,
    })
}

use quanyu_connector_sdk::market::{
    int_of, item_count_of, lines_of, text_of, yuan_of, Line, Money, RefundParts, TimeText,
};
pub use quanyu_connector_sdk::market::{MappedOrder, Rejected};

/// Map one raw order of `shop` (see [`map_order_with_cipher`]).
pub fn map_order(raw: &str, shop: &str, hasher: &PiiHasher) -> Result<OrderRow, Rejected> {
    map_order_with_cipher(raw, shop, hasher).map(|m| m.row)
}

/// Map one raw order of `shop`: amounts are yuan numbers read through
/// their decimal text into fen, times Beijing `yyyy-MM-dd HH:mm:ss`.
/// Pinduoduo exposes no buyer id, so `buyer_id` stays empty. The masked
/// phone is kept as masked text; the ciphertext is only handed back for
/// the decrypt API.
pub fn map_order_with_cipher(
    raw: &str,
    shop: &str,
    hasher: &PiiHasher,
) -> Result<MappedOrder, Rejected> {
    let o: Order = Rejected::parse(raw, "Pinduoduo order")?;
    let order_id = o
        .order_sn
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Rejected::missing("order_sn"))?;
    let reject = |reason: String| Rejected::new(Some(&order_id), reason);
    let time = |name: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => parse_beijing(t)
            .map(Some)
            .map_err(|e| reject(format!("{name}: {e}"))),
    };
    let created_at = time("created_time", &o.created_time)?
        .ok_or_else(|| reject("order has no created_time".into()))?;
    let updated_at = time("updated_at", &o.updated_at)?
        .ok_or_else(|| reject("order has no updated_at".into()))?;
    let paid_at = match time("pay_time", &o.pay_time)? {
        Some(t) => Some(t),
        None => time("confirm_time", &o.confirm_time)?,
    };
    let status_value = o
        .order_status
        .as_ref()
        .ok_or_else(|| reject("order has no order_status".into()))?;
    let refund = o.refund_status.as_ref().and_then(int_of).unwrap_or(1);
    let platform_status = match o.refund_status.as_ref().and_then(int_of) {
        Some(r) => format!(
            "order_status={};refund_status={r}",
            int_of(status_value).map_or_else(|| status_value.to_string(), |s| s.to_string())
        ),
        None => format!("order_status={status_value}"),
    };
    let status = int_of(status_value)
        .and_then(|s| map_status(s, refund))
        .ok_or_else(|| reject(format!("unknown order status {platform_status:?}")))?;
    let amount_fen = yuan_of(o.pay_amount.as_ref().unwrap_or(&serde_json::Value::Null))
        .map_err(|e| reject(format!("pay_amount: {e}")))?
        .unwrap_or(0);
    let mut lines = Vec::new();
    for (k, i) in o.item_list.unwrap_or_default().into_iter().enumerate() {
        let n = i.goods_count.as_ref().and_then(int_of).unwrap_or(1);
        lines.push(Line {
            price_fen: yuan_of(&i.goods_price)
                .map_err(|e| reject(format!("item_list[{k}].goods_price: {e}")))?,
            id: i.sku_id.as_ref().and_then(text_of),
            sku: i.sku_id.as_ref().and_then(text_of),
            item: i.goods_id.as_ref().and_then(text_of),
            title: i.goods_name,
            quantity: Some(n),
            amount_fen: None,
        });
    }
    // Outside 多多云 the phone is ciphertext (`$…$…$`); inside it, or for
    // some order types, it may come in clear.
    let receiver = o.receiver_phone.as_deref().map(str::trim).unwrap_or("");
    let (mut phone_hash, mut phone_masked, mut cipher) = (None, None, None);
    if !receiver.is_empty() {
        match normalize_phone(receiver) {
            Ok(p) => {
                phone_hash = Some(hasher.phone(&p));
                phone_masked = Some(p.masked());
            }
            Err(PhoneError::Masked) => phone_masked = Some(receiver.to_string()),
            Err(_) => cipher = Some(receiver.to_string()),
        }
    }
    if phone_masked.is_none() {
        phone_masked = o
            .receiver_phone_mask
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty());
    }
    // Pinduoduo has no buyer id: the masked receiver tells its buyers apart.
    let receiver_hash = hasher.receiver(
        o.receiver_name_mask.as_deref(),
        o.receiver_address_mask.as_deref(),
    );
    let row = OrderRow {
        channel: Channel::Pdd,
        shop_id: shop.to_string(),
        buyer_id: None,
        order_id,
        phone_hash,
        phone_masked,
        status,
        platform_status,
        amount_fen,
        item_count: item_count_of(&lines),
        province: o.province.filter(|s| !s.is_empty()),
        city: o.city.filter(|s| !s.is_empty()),
        created_at,
        paid_at,
        updated_at,
        buyer_unionid: None,
        receiver_hash,
    };
    Ok(MappedOrder {
        lines: lines_of(&row, lines),
        row,
        cipher,
    })
}

#[derive(Debug, Deserialize)]
struct Refund {
    id: Option<serde_json::Value>,
    order_sn: Option<String>,
    after_sales_status: Option<serde_json::Value>,
    refund_amount: Option<serde_json::Value>,
    created_time: Option<String>,
    updated_time: Option<String>,
}

/// Map Pinduoduo's `after_sales_status` into the closed vocabulary. 10
/// 退款成功 is succeeded. Closed, no money back: 9 平台拒绝, 11 买家撤销,
/// 12/13 逾期; and exchanges, reissues and repairs once done (16 换货补寄成功,
/// 17 换货补寄失败, 24 维修关闭, 25 维修成功). Pending: 2–8 (待处理, 退款中,
/// 驳回待买家处理, 待退货), exchanges and repairs under way (14, 15, 18, 21,
/// 22, 27, 32) and refunds agreed after a rejection or recall (31, 33).
pub fn map_refund_status(status: i64) -> Option<RefundStatus> {
    Some(match status {
        2..=8 | 14 | 15 | 18 | 21 | 22 | 27 | 31..=33 => RefundStatus::Pending,
        10 => RefundStatus::Succeeded,
        9 | 11..=13 | 16 | 17 | 24 | 25 => RefundStatus::Closed,
        _ => return None,
    })
}

/// Map one raw after-sale request of `shop` (`pdd.refund.list.increment.get`;
/// `refund_amount` in fen). The request names the goods, not a line id:
/// the line stays empty.
pub fn map_refund(raw: &str, shop: &str) -> Result<RefundRow, Rejected> {
    let r: Refund = Rejected::parse(raw, "Pinduoduo refund")?;
    RefundParts {
        refund_id: r.id.as_ref().and_then(text_of),
        order_id: ("order_sn", r.order_sn),
        line_id: None,
        status: (
            "after_sales_status",
            r.after_sales_status.as_ref().and_then(text_of),
        ),
        amount: ("refund_amount", Money::Fen(r.refund_amount)),
        created: ("created_time", TimeText::Beijing(r.created_time)),
        updated: ("updated_time", TimeText::Beijing(r.updated_time)),
    }
    .row(Channel::Pdd, shop, |s| {
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

    // Shaped after a captured answer (contracts doc §3).
    const ORDER: &str = r#"{"order_sn":"240318-422796379670125","order_status":1,"refund_status":1,
        "confirm_status":1,"created_time":"2024-03-18 10:00:00","confirm_time":"2024-03-18 10:05:00",
        "pay_time":"2024-03-18 10:05:00","updated_at":"2024-03-18 10:05:00","shipping_time":"",
        "pay_amount":188.3,"goods_amount":190.0,"discount_amount":10.0,"postage":8.3,
        "receiver_name":"~AgAAAAEx~e3T2WeW7~0~~","receiver_phone":"$Y/YK1$AgAAAAEx$0$$",
        "receiver_name_mask":"林*坤","receiver_phone_mask":"1*********5",
        "province":"浙江省","city":"杭州市","town":"西湖区",
        "item_list":[{"goods_id":1,"sku_id":2,"goods_name":"商品","goods_count":2,"goods_price":95.0},
                     {"goods_id":3,"sku_id":4,"goods_name":"赠品","goods_count":1,"goods_price":0}],
        "risk_control_status":0}"#;

    /// An after-sale request lands with its order, status and amount in
    /// fen; an unknown status or an amount that is not fen is rejected
    /// with the request's id.
    #[test]
    fn maps_a_refund() {
        let raw = r#"{"id":88001,"order_sn":"240318-422796379670125","after_sales_status":10,
            "after_sales_type":2,"refund_amount":18830,"created_time":"2024-03-19 10:00:00",
            "updated_time":"2024-03-20 10:00:00"}"#;
        let r = map_refund(raw, "shop1").unwrap();
        assert_eq!(
            (r.refund_id.as_str(), r.order_id.as_str()),
            ("88001", "240318-422796379670125")
        );
        assert_eq!(
            (r.status, r.refund_fen, r.platform_status.as_str()),
            (RefundStatus::Succeeded, 18830, "10")
        );
        assert_eq!(r.updated_at.to_rfc3339(), "2024-03-20T02:00:00+00:00");
        let e = map_refund(&raw.replace(":10,", ":99,"), "s").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("88001"));
        assert!(
            e.reason.contains("unknown after_sales_status"),
            "{}",
            e.reason
        );
        let e = map_refund(&raw.replace("18830", "\"12,5\""), "s").unwrap_err();
        assert!(e.reason.starts_with("refund_amount"), "{}", e.reason);
        assert_eq!(map_refund_status(3), Some(RefundStatus::Pending));
        assert_eq!(map_refund_status(11), Some(RefundStatus::Closed));
        assert_eq!(
            map_refund_status(16),
            Some(RefundStatus::Closed),
            "an exchange gives no money back"
        );
        assert_eq!(map_refund_status(21), Some(RefundStatus::Pending));
        assert_eq!(map_refund_status(1), None, "1 is 无售后: not a request");
    }

    #[test]
    fn maps_an_order() {
        let m = map_order_with_cipher(ORDER, "shop1", &hasher()).unwrap();
        let r = m.row;
        assert_eq!(r.order_id, "240318-422796379670125");
        assert_eq!(r.status, OrderStatus::Paid);
        assert_eq!(r.platform_status, "order_status=1;refund_status=1");
        assert_eq!(r.amount_fen, 18830, "188.3 yuan, exactly");
        assert_eq!(r.item_count, 3);
        assert_eq!(r.buyer_id, None, "Pinduoduo has no buyer id");
        assert_eq!(r.phone_hash, None, "ciphertext is never hashed");
        assert_eq!(r.phone_masked.as_deref(), Some("1*********5"));
        assert_eq!(r.created_at.to_rfc3339(), "2024-03-18T02:00:00+00:00");
        assert_eq!(r.paid_at.unwrap().to_rfc3339(), "2024-03-18T02:05:00+00:00");
        assert_eq!(r.city.as_deref(), Some("杭州市"));
        let l = &m.lines;
        assert_eq!(l.len(), 2);
        assert_eq!(
            (
                l[0].line_id.as_str(),
                l[0].item_id.as_deref(),
                l[0].quantity,
                l[0].amount_fen
            ),
            ("2", Some("1"), 2, 19000)
        );
        assert_eq!(l[1].unit_price_fen, Some(0));
        assert_eq!(m.cipher.as_deref(), Some("$Y/YK1$AgAAAAEx$0$$"));
    }

    #[test]
    fn statuses_and_refunds() {
        for (s, r, want) in [
            (1, 1, OrderStatus::Paid),
            (2, 2, OrderStatus::Shipped),
            (3, 1, OrderStatus::Completed),
            (1, 4, OrderStatus::Refunded),
            (3, 4, OrderStatus::Refunded),
        ] {
            assert_eq!(map_status(s, r), Some(want));
        }
        assert_eq!(map_status(9, 1), None);
        let refunded = ORDER.replace("\"refund_status\":1", "\"refund_status\":4");
        assert_eq!(
            map_order(&refunded, "s", &hasher()).unwrap().status,
            OrderStatus::Refunded
        );
    }

    #[test]
    fn rejects_with_reasons() {
        let bad = ORDER.replace("\"pay_amount\":188.3", "\"pay_amount\":\"abc\"");
        let e = map_order(&bad, "s", &hasher()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("240318-422796379670125"));
        assert!(e.reason.starts_with("pay_amount"), "{}", e.reason);
        let bad = ORDER.replace("\"pay_amount\":188.3", "\"pay_amount\":1.005");
        assert!(map_order(&bad, "s", &hasher()).is_err(), "three decimals");
        let bad = ORDER.replace("\"order_status\":1", "\"order_status\":7");
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .contains("unknown order status"));
        let bad = ORDER.replace("2024-03-18 10:00:00", "yesterday");
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .starts_with("created_time"));
        let e = map_order(r#"{"order_status":1}"#, "s", &hasher()).unwrap_err();
        assert_eq!(e.key, None);
        assert!(map_order("[1,2]", "s", &hasher()).is_err());
    }

    #[test]
    fn a_clear_phone_is_hashed_and_a_missing_one_is_fine() {
        let raw = ORDER.replace("$Y/YK1$AgAAAAEx$0$$", "13912345678");
        let m = map_order_with_cipher(&raw, "s", &hasher()).unwrap();
        assert_eq!(m.row.phone_hash, hasher().phone_text("13912345678"));
        assert_eq!(m.row.phone_masked.as_deref(), Some("139****5678"));
        assert_eq!(m.cipher, None);
        let raw = ORDER.replace("$Y/YK1$AgAAAAEx$0$$", "");
        let m = map_order_with_cipher(&raw, "s", &hasher()).unwrap();
        assert_eq!(m.row.phone_hash, None);
        assert_eq!(m.cipher, None);
        assert_eq!(m.row.phone_masked.as_deref(), Some("1*********5"));
    }
}
