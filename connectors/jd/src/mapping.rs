//! JD order JSON (one `orderInfoList` element of `jingdong.pop.order.search`)
//! → canonical `orders` rows.

use quanyu_connector_sdk::market::{
    item_count_of, lines_of, phone_fields, Line, MappedOrder, Money, RefundParts, TimeText,
};
use quanyu_schemas::time::{parse_beijing, yuan_to_fen};
use quanyu_schemas::{Channel, OrderRow, OrderStatus, PiiHasher, RefundRow, RefundStatus};
use serde::Deserialize;

/// Ids, amounts and counts come as strings, sometimes as numbers.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Text {
    Str(String),
    Num(serde_json::Number),
}

impl Text {
    fn text(&self) -> String {
        match self {
            Text::Str(s) => s.trim().to_string(),
            Text::Num(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    order_id: Option<Text>,
    order_state: Option<String>,
    order_payment: Option<Text>,
    order_start_time: Option<String>,
    payment_confirm_time: Option<String>,
    modified: Option<String>,
    pin: Option<String>,
    #[serde(rename = "open_id_buyer")]
    open_id_buyer: Option<String>,
    consignee_info: Option<Consignee>,
    #[serde(default)]
    item_info_list: Option<Vec<Item>>,
}

#[derive(Debug, Deserialize)]
struct Consignee {
    mobile: Option<String>,
    desen_mobile: Option<String>,
    province: Option<String>,
    city: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    item_total: Option<Text>,
    sku_id: Option<Text>,
    sku_name: Option<String>,
    ware_id: Option<Text>,
    jd_price: Option<Text>,
}

/// Map JD's `orderState` into the closed vocabulary. `paid` says whether
/// the order has a payment time: JD closes an order with `TRADE_CANCELED`
/// whether or not it was paid (a paid one is refunded in full), and locks it
/// (`LOCKED`) while a cancellation is being processed, so both read as
/// refunded once paid and cancelled before. `DELIVERY_RETURN` (配送退货,
/// refused on delivery) is refunded.
pub fn map_status(state: &str, paid: bool) -> Option<OrderStatus> {
    Some(match state {
        "NOT_PAY" | "WAIT_PAY" => OrderStatus::PendingPayment,
        "WAIT_SELLER_STOCK_OUT"
        | "WAIT_SELLER_DELIVERY"
        | "PAUSE"
        | "POP_ORDER_PAUSE"
        | "WAIT_SEND_CODE" => OrderStatus::Paid,
        "WAIT_GOODS_RECEIVE_CONFIRM" => OrderStatus::Shipped,
        "FINISHED_L" => OrderStatus::Completed,
        "DELIVERY_RETURN" => OrderStatus::Refunded,
        "TRADE_CANCELED" | "LOCKED" if paid => OrderStatus::Refunded,
        "TRADE_CANCELED" | "LOCKED" => OrderStatus::Cancelled,
        _ => return None,
    })
}

pub use quanyu_connector_sdk::market::Rejected;

/// JD writes an unset time as empty text or as a sentinel year.
fn unset_time(t: &str) -> bool {
    t.is_empty() || t.starts_with("0001-") || t.starts_with("1970-01-01")
}

/// Map one raw order of `shop`: amounts are yuan strings read exactly into
/// fen (`orderPayment`, what the buyer pays), times Beijing
/// `yyyy-MM-dd HH:mm:ss`, the buyer id `open_id_buyer@shop` (or the legacy
/// `pin@shop`; JD's buyer ids are per app). The receiver's mobile is only
/// kept as a mask: a clear number is hashed and masked, a masked one kept
/// as it is, a ciphertext (JD TDE, base64) never stored; `desen_mobile`
/// supplies the mask then.
pub fn map_order(raw: &str, shop: &str, hasher: &PiiHasher) -> Result<OrderRow, Rejected> {
    map_order_lines(raw, shop, hasher).map(|m| m.row)
}

/// [`map_order`] with the order's lines (one per SKU: `skuId`, `wareId`,
/// `skuName`, `itemTotal`, `jdPrice`). JD's receivers are TDE ciphertext
/// with no decrypt API in scope: no ciphertext is kept.
pub fn map_order_lines(raw: &str, shop: &str, hasher: &PiiHasher) -> Result<MappedOrder, Rejected> {
    let o: Order = Rejected::parse(raw, "JD order")?;
    let order_id = o
        .order_id
        .as_ref()
        .map(Text::text)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Rejected::missing("orderId"))?;
    let reject = |reason: String| Rejected::new(Some(&order_id), reason);
    let time = |name: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
        None => Ok(None),
        Some(t) if unset_time(t) => Ok(None),
        Some(t) => parse_beijing(t)
            .map(Some)
            .map_err(|e| reject(format!("{name}: {e}"))),
    };
    let created_at = time("orderStartTime", &o.order_start_time)?
        .ok_or_else(|| reject("order has no orderStartTime".into()))?;
    let updated_at =
        time("modified", &o.modified)?.ok_or_else(|| reject("order has no modified".into()))?;
    let paid_at = time("paymentConfirmTime", &o.payment_confirm_time)?;
    let platform_status = o
        .order_state
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| reject("order has no orderState".into()))?
        .to_string();
    let status = map_status(&platform_status, paid_at.is_some())
        .ok_or_else(|| reject(format!("unknown order state {platform_status:?}")))?;
    let amount_fen = match &o.order_payment {
        None => 0,
        Some(t) => yuan_to_fen(&t.text()).map_err(|e| reject(format!("orderPayment: {e}")))?,
    };
    let mut lines = Vec::new();
    for (k, item) in o.item_info_list.unwrap_or_default().into_iter().enumerate() {
        let n = match &item.item_total {
            None => 1,
            Some(t) => t
                .text()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| reject("itemTotal: not a piece count".into()))?,
        };
        // A blank price is no price: the line lands without it.
        let price_fen = match item.jd_price.as_ref().map(Text::text) {
            None => None,
            Some(p) if p.is_empty() => None,
            Some(p) => Some(
                yuan_to_fen(&p).map_err(|e| reject(format!("itemInfoList[{k}].jdPrice: {e}")))?,
            ),
        };
        lines.push(Line {
            id: item.sku_id.as_ref().map(Text::text),
            sku: item.sku_id.as_ref().map(Text::text),
            item: item.ware_id.as_ref().map(Text::text),
            title: item.sku_name,
            quantity: Some(n),
            price_fen,
            amount_fen: None,
        });
    }
    let (mut phone_hash, mut phone_masked) = (None, None);
    let (mut province, mut city) = (None, None);
    if let Some(c) = o.consignee_info {
        // Ciphertext (or garbage) is never stored.
        (phone_hash, phone_masked) = phone_fields(c.mobile.as_deref(), hasher);
        if phone_masked.is_none() {
            phone_masked = c
                .desen_mobile
                .map(|m| m.trim().to_string())
                .filter(|m| m.contains('*'));
        }
        province = c.province.filter(|s| !s.trim().is_empty());
        city = c.city.filter(|s| !s.trim().is_empty());
    }
    let buyer = o
        .open_id_buyer
        .filter(|u| !u.trim().is_empty())
        .or(o.pin.filter(|u| !u.trim().is_empty() && !u.contains('*')));
    let row = OrderRow {
        channel: Channel::Jd,
        shop_id: shop.to_string(),
        buyer_id: buyer.map(|u| format!("{}@{shop}", u.trim())),
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
        cipher: None,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refund {
    id: Option<Text>,
    order_id: Option<Text>,
    status: Option<Text>,
    apply_refund_sum: Option<serde_json::Value>,
    apply_time: Option<String>,
    check_time: Option<String>,
}

/// Map JD's refund application `status` into the closed vocabulary: 0 未审核,
/// 1 审核通过, 5 人工审核通过, 7 拦截成功, 10 物流待跟进 pending; 3 京东财务审核通过,
/// 6 拦截并退款, 9 强制关单并退款 succeeded; 2 审核不通过, 4 京东财务审核不通过,
/// 8 拦截失败, 11 用户撤销 closed.
pub fn map_refund_status(status: i64) -> Option<RefundStatus> {
    Some(match status {
        0 | 1 | 5 | 7 | 10 => RefundStatus::Pending,
        3 | 6 | 9 => RefundStatus::Succeeded,
        2 | 4 | 8 | 11 => RefundStatus::Closed,
        _ => return None,
    })
}

/// Map one refund application of `shop` (`applyRefundSum` in fen). Its
/// last change is its review (`checkTime`), else its application.
pub fn map_refund(raw: &str, shop: &str) -> Result<RefundRow, Rejected> {
    let r: Refund = Rejected::parse(raw, "JD refund application")?;
    let set = |t: Option<String>| t.filter(|t| !unset_time(t.trim()));
    let applied = set(r.apply_time);
    let text = |t: Option<Text>| t.as_ref().map(Text::text);
    RefundParts {
        refund_id: text(r.id),
        order_id: ("orderId", text(r.order_id)),
        line_id: None,
        status: ("refund status", text(r.status)),
        amount: ("applyRefundSum", Money::Fen(r.apply_refund_sum)),
        updated: (
            "checkTime",
            TimeText::Beijing(set(r.check_time).or(applied.clone())),
        ),
        created: ("applyTime", TimeText::Beijing(applied)),
    }
    .row(Channel::Jd, shop, |s| {
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

    // Shaped after jingdong.pop.order.search answers (contracts doc §2).
    const ORDER: &str = r#"{"orderId":"230000012345","venderId":"10086","orderState":"WAIT_SELLER_STOCK_OUT",
        "orderTotalPrice":"199.00","orderSellerPrice":"189.00","orderPayment":"197.00",
        "freightPrice":"8.00","sellerDiscount":"10.00","orderStartTime":"2024-03-18 10:00:00",
        "paymentConfirmTime":"2024-03-18 10:05:00","modified":"2024-03-18 10:05:09",
        "pin":"","open_id_buyer":"o8AbCdEf123","orderRemark":"","venderRemark":"",
        "consigneeInfo":{"fullname":"AQAQtM3V0Zm9vYmFy","mobile":"AQAQtM3V0Zm9vYmFyYmF6cXV4","telephone":"",
          "fullAddress":"AQAQtM3VhZGRy","province":"浙江","city":"杭州市","county":"西湖区","town":"",
          "desen_mobile":"139****5678"},
        "itemInfoList":[{"skuId":"100001","outerSkuId":"","skuName":"商品","jdPrice":"99.50","itemTotal":"2","wareId":"9"},
                        {"skuId":"100002","skuName":"赠品","jdPrice":"0.00","itemTotal":"1"}]}"#;

    /// A refund application: reviewed ones change at their review, open
    /// ones at their application; a bad amount is rejected with the id.
    #[test]
    fn maps_a_refund_application() {
        let raw = r#"{"id":5550001,"orderId":"230000012345","status":3,"applyRefundSum":19700,
            "applyTime":"2024-03-19 10:00:00","checkTime":"2024-03-20 10:00:00","buyerId":""}"#;
        let r = map_refund(raw, "shop1").unwrap();
        assert_eq!(
            (r.refund_id.as_str(), r.order_id.as_str()),
            ("5550001", "230000012345")
        );
        assert_eq!((r.status, r.refund_fen), (RefundStatus::Succeeded, 19700));
        assert_eq!(r.updated_at.to_rfc3339(), "2024-03-20T02:00:00+00:00");
        let open = map_refund(
            &raw.replace(
                r#""checkTime":"2024-03-20 10:00:00""#,
                r#""checkTime":null"#,
            )
            .replace(":3,", ":0,"),
            "s",
        )
        .unwrap();
        assert_eq!(
            (open.status, open.updated_at),
            (RefundStatus::Pending, open.created_at)
        );
        let e = map_refund(&raw.replace("19700", "\"12,5\""), "s").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("5550001"));
        assert!(e.reason.starts_with("applyRefundSum"), "{}", e.reason);
    }

    /// One line per SKU, priced from `jdPrice` × `itemTotal`.
    #[test]
    fn skus_are_lines() {
        let l = map_order_lines(ORDER, "shop1", &hasher()).unwrap().lines;
        assert_eq!(l.len(), 2);
        assert_eq!(
            (
                l[0].line_id.as_str(),
                l[0].item_id.as_deref(),
                l[0].quantity,
                l[0].amount_fen
            ),
            ("100001", Some("9"), 2, 19900)
        );
        assert_eq!((l[1].item_id.as_deref(), l[1].amount_fen), (None, 0));
        let blank = ORDER.replace("\"99.50\"", "\"\"");
        let l = map_order_lines(&blank, "s", &hasher()).unwrap().lines;
        assert_eq!(
            (l[0].unit_price_fen, l[0].amount_fen),
            (None, 0),
            "a blank price lands as none"
        );
        let bad = ORDER.replace("\"99.50\"", "\"n/a\"");
        let e = map_order(&bad, "s", &hasher()).unwrap_err();
        assert!(
            e.reason.starts_with("itemInfoList[0].jdPrice"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn maps_an_order() {
        let r = map_order(ORDER, "shop1", &hasher()).unwrap();
        assert_eq!(r.channel, Channel::Jd);
        assert_eq!(r.order_id, "230000012345");
        assert_eq!(r.status, OrderStatus::Paid);
        assert_eq!(r.platform_status, "WAIT_SELLER_STOCK_OUT");
        assert_eq!(r.amount_fen, 19700, "197.00 yuan, exactly");
        assert_eq!(r.item_count, 3);
        assert_eq!(r.buyer_id.as_deref(), Some("o8AbCdEf123@shop1"));
        assert_eq!(r.phone_hash, None, "ciphertext is never hashed");
        assert_eq!(r.phone_masked.as_deref(), Some("139****5678"));
        assert_eq!(r.created_at.to_rfc3339(), "2024-03-18T02:00:00+00:00");
        assert_eq!(r.paid_at.unwrap().to_rfc3339(), "2024-03-18T02:05:00+00:00");
        assert_eq!(r.updated_at.to_rfc3339(), "2024-03-18T02:05:09+00:00");
        assert_eq!(r.province.as_deref(), Some("浙江"));
        assert_eq!(r.city.as_deref(), Some("杭州市"));
    }

    #[test]
    fn states_map_into_the_vocabulary() {
        for (s, paid, want) in [
            ("NOT_PAY", false, OrderStatus::PendingPayment),
            ("WAIT_SELLER_STOCK_OUT", true, OrderStatus::Paid),
            ("WAIT_SELLER_DELIVERY", true, OrderStatus::Paid),
            ("PAUSE", true, OrderStatus::Paid),
            ("WAIT_GOODS_RECEIVE_CONFIRM", true, OrderStatus::Shipped),
            ("FINISHED_L", true, OrderStatus::Completed),
            ("TRADE_CANCELED", false, OrderStatus::Cancelled),
            ("TRADE_CANCELED", true, OrderStatus::Refunded),
            ("LOCKED", false, OrderStatus::Cancelled),
            ("LOCKED", true, OrderStatus::Refunded),
            ("DELIVERY_RETURN", true, OrderStatus::Refunded),
        ] {
            assert_eq!(map_status(s, paid), Some(want), "{s}");
        }
        assert_eq!(map_status("SOMETHING_NEW", true), None);
        let unpaid = ORDER
            .replace("WAIT_SELLER_STOCK_OUT", "TRADE_CANCELED")
            .replace(
                "\"paymentConfirmTime\":\"2024-03-18 10:05:00\"",
                "\"paymentConfirmTime\":\"\"",
            );
        let r = map_order(&unpaid, "s", &hasher()).unwrap();
        assert_eq!(r.status, OrderStatus::Cancelled);
        assert_eq!(r.paid_at, None);
        let sentinel = ORDER.replace(
            "2024-03-18 10:05:00\",\"modified",
            "0001-01-01 00:00:00\",\"modified",
        );
        assert_eq!(map_order(&sentinel, "s", &hasher()).unwrap().paid_at, None);
    }

    #[test]
    fn rejects_with_reasons() {
        let bad = ORDER.replace("\"orderPayment\":\"197.00\"", "\"orderPayment\":\"abc\"");
        let e = map_order(&bad, "s", &hasher()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("230000012345"));
        assert!(e.reason.starts_with("orderPayment"), "{}", e.reason);
        let bad = ORDER.replace("\"orderPayment\":\"197.00\"", "\"orderPayment\":\"1.005\"");
        assert!(map_order(&bad, "s", &hasher()).is_err(), "three decimals");
        let bad = ORDER.replace("WAIT_SELLER_STOCK_OUT", "WHATEVER");
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .contains("unknown order state"));
        let bad = ORDER.replace("2024-03-18 10:00:00", "yesterday");
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .starts_with("orderStartTime"));
        let bad = ORDER.replace("\"itemTotal\":\"2\"", "\"itemTotal\":\"two\"");
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .starts_with("itemTotal"));
        let e = map_order(r#"{"orderState":"NOT_PAY"}"#, "s", &hasher()).unwrap_err();
        assert_eq!(e.key, None);
        assert!(map_order("[1,2]", "s", &hasher()).is_err());
        assert!(map_order("{}", "s", &hasher()).is_err());
        assert!(map_order(r#"{"orderId":{"x":1}}"#, "s", &hasher()).is_err());
    }

    #[test]
    fn a_clear_phone_is_hashed_and_numbers_are_read() {
        let raw = ORDER.replace("AQAQtM3V0Zm9vYmFyYmF6cXV4", "13912345678");
        let r = map_order(&raw, "s", &hasher()).unwrap();
        assert_eq!(r.phone_hash, hasher().phone_text("13912345678"));
        assert_eq!(r.phone_masked.as_deref(), Some("139****5678"));
        let raw = ORDER
            .replace("\"orderId\":\"230000012345\"", "\"orderId\":230000012345")
            .replace("\"orderPayment\":\"197.00\"", "\"orderPayment\":197.5")
            .replace(
                "\"open_id_buyer\":\"o8AbCdEf123\"",
                "\"open_id_buyer\":\"\"",
            )
            .replace("\"pin\":\"\"", "\"pin\":\"jd_buyer\"")
            .replace("\"desen_mobile\":\"139****5678\"", "\"desen_mobile\":\"\"");
        let r = map_order(&raw, "s", &hasher()).unwrap();
        assert_eq!(r.order_id, "230000012345");
        assert_eq!(r.amount_fen, 19750);
        assert_eq!(r.buyer_id.as_deref(), Some("jd_buyer@s"));
        assert_eq!(r.phone_masked, None, "no mask without desen_mobile");
        assert_eq!(r.phone_hash, None);
    }
}
