//! WeChat Channels shop order JSON (the `order` of
//! `/channels/ec/order/get`) → canonical `orders` rows.

use quanyu_connector_sdk::market::{
    int_of, item_count_of, lines_of, phone_fields, text_of, Line, Money, RefundParts, TimeText,
};
use quanyu_connector_sdk::market::{MappedOrder, Rejected};
use quanyu_schemas::{Channel, OrderRow, OrderStatus, PiiHasher, RefundRow, RefundStatus};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Order {
    order_id: Option<serde_json::Value>,
    status: Option<serde_json::Value>,
    create_time: Option<serde_json::Value>,
    update_time: Option<serde_json::Value>,
    openid: Option<String>,
    unionid: Option<String>,
    #[serde(default)]
    order_detail: Option<Detail>,
}

#[derive(Debug, Deserialize)]
struct Detail {
    #[serde(default)]
    product_infos: Option<Vec<Product>>,
    #[serde(default)]
    price_info: Option<PriceInfo>,
    #[serde(default)]
    pay_info: Option<PayInfo>,
    #[serde(default)]
    delivery_info: Option<DeliveryInfo>,
}

#[derive(Debug, Deserialize)]
struct Product {
    sku_cnt: Option<serde_json::Value>,
    product_id: Option<serde_json::Value>,
    sku_id: Option<serde_json::Value>,
    title: Option<String>,
    sale_price: Option<serde_json::Value>,
    real_price: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct PriceInfo {
    order_price: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct PayInfo {
    pay_time: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct DeliveryInfo {
    #[serde(default)]
    address_info: Option<AddressInfo>,
}

#[derive(Debug, Deserialize)]
struct AddressInfo {
    province_name: Option<String>,
    city_name: Option<String>,
    tel_number: Option<String>,
    /// 1 when `tel_number` is a virtual number, not the receiver's.
    use_tel_number: Option<serde_json::Value>,
}

/// The shop's order `status` (10 待付款, 12 礼物待收下, 13 一起买待成团,
/// 20 待发货, 21 部分发货, 30 待收货, 100 完成, 190 超卖商家取消,
/// 200 全部售后后取消, 250 取消) in the closed vocabulary: a cancellation
/// after payment is a refund. `None` for a status not documented.
pub fn map_status(status: i64, paid: bool) -> Option<OrderStatus> {
    Some(match status {
        10 => OrderStatus::PendingPayment,
        12 | 13 | 20 => OrderStatus::Paid,
        21 | 30 => OrderStatus::Shipped,
        100 => OrderStatus::Completed,
        190 | 200 => OrderStatus::Refunded,
        250 if paid => OrderStatus::Refunded,
        250 => OrderStatus::Cancelled,
        _ => return None,
    })
}

/// Map one raw order of `shop`: amounts are integer fen, times unix
/// seconds, the buyer its `openid` (per shop account) and, where the shop
/// is bound to the brand's WeChat Open Platform account, its `unionid`,
/// which joins the WeCom contact with the same unionid. The receiver phone
/// comes masked (`138****0000`) and is kept masked; a virtual number is
/// not the receiver's and is dropped.
pub fn map_order(raw: &str, shop: &str, hasher: &PiiHasher) -> Result<MappedOrder, Rejected> {
    let o: Order = Rejected::parse(raw, "WeChat shop order")?;
    let order_id = o
        .order_id
        .as_ref()
        .and_then(text_of)
        .ok_or_else(|| Rejected::missing("order_id"))?;
    let reject = |reason: String| Rejected::new(Some(&order_id), reason);
    let time = |name: &str, v: &Option<serde_json::Value>| match v.as_ref().and_then(int_of) {
        None | Some(0) => Ok(None),
        Some(t) => chrono::DateTime::from_timestamp(t, 0)
            .filter(|_| t > 0)
            .map(Some)
            .ok_or_else(|| reject(format!("{name}: {t} is not a time"))),
    };
    let created_at = time("create_time", &o.create_time)?
        .ok_or_else(|| reject("order has no create_time".into()))?;
    let updated_at = time("update_time", &o.update_time)?
        .ok_or_else(|| reject("order has no update_time".into()))?;
    let detail = o.order_detail;
    let (products, price, pay, delivery) = match detail {
        Some(d) => (d.product_infos, d.price_info, d.pay_info, d.delivery_info),
        None => (None, None, None, None),
    };
    let paid_at = time("pay_time", &pay.and_then(|p| p.pay_time))?;
    let status_value = o
        .status
        .as_ref()
        .ok_or_else(|| reject("order has no status".into()))?;
    let platform_status = format!("status={status_value}");
    let status = int_of(status_value)
        .and_then(|s| map_status(s, paid_at.is_some()))
        .ok_or_else(|| reject(format!("unknown order status {platform_status:?}")))?;
    let amount_fen = match price.and_then(|p| p.order_price) {
        None | Some(serde_json::Value::Null) => 0,
        Some(v) => int_of(&v)
            .filter(|f| *f >= 0)
            .ok_or_else(|| reject(format!("order_price: {v} is not an amount in fen")))?,
    };
    let mut lines = Vec::new();
    // One line per SKU (the shop has no sub-order ids); prices in fen.
    for (k, p) in products.unwrap_or_default().into_iter().enumerate() {
        let n = p.sku_cnt.as_ref().and_then(int_of).unwrap_or(1);
        let fen = |what: &str, v: &Option<serde_json::Value>| match v {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) if text_of(v).is_none() => Ok(None),
            Some(v) => int_of(v).filter(|f| *f >= 0).map(Some).ok_or_else(|| {
                reject(format!(
                    "product_infos[{k}].{what}: {v} is not an amount in fen"
                ))
            }),
        };
        lines.push(Line {
            price_fen: fen("sale_price", &p.sale_price)?,
            amount_fen: fen("real_price", &p.real_price)?,
            id: p.sku_id.as_ref().and_then(text_of),
            sku: p.sku_id.as_ref().and_then(text_of),
            item: p.product_id.as_ref().and_then(text_of),
            title: p.title,
            quantity: Some(n),
        });
    }
    let address = delivery.and_then(|d| d.address_info);
    let text = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    // A virtual number is not the receiver's: dropped.
    let tel = address
        .as_ref()
        .filter(|a| a.use_tel_number.as_ref().and_then(int_of) != Some(1))
        .and_then(|a| a.tel_number.as_deref());
    let (phone_hash, phone_masked) = phone_fields(tel, hasher);
    let (province, city) = match address {
        Some(a) => (text(a.province_name), text(a.city_name)),
        None => (None, None),
    };
    let row = OrderRow {
        channel: Channel::WechatShop,
        shop_id: shop.to_string(),
        buyer_id: text(o.openid),
        buyer_unionid: text(o.unionid),
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
        // Name and address come masked only; a mask tells nobody apart.
        receiver_hash: None,
    };
    Ok(MappedOrder {
        lines: lines_of(&row, lines),
        row,
        cipher: None,
    })
}

#[derive(Debug, Deserialize)]
struct AfterSale {
    after_sale_order_id: Option<serde_json::Value>,
    order_id: Option<serde_json::Value>,
    status: Option<String>,
    #[serde(default)]
    product_info: Option<AfterSaleProduct>,
    #[serde(default)]
    refund_info: Option<RefundInfo>,
    create_time: Option<serde_json::Value>,
    update_time: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct AfterSaleProduct {
    sku_id: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RefundInfo {
    amount: Option<serde_json::Value>,
}

/// Map a Channels shop after-sale `status` into the closed vocabulary:
/// the refund-success states are succeeded; cancelled, rejected, closed
/// and failed ones closed; the waiting ones pending.
pub fn map_after_sale_status(status: &str) -> Option<RefundStatus> {
    Some(match status {
        "MERCHANT_PROCESSING"
        | "USER_WAIT_RETURN"
        | "MERCHANT_WAIT_RECEIPT"
        | "PLATFORM_REFUNDING"
        | "USER_WAIT_CONFIRM"
        | "MERCHANT_OVERDUE_REFUND"
        | "MERCHANT_REFUND_RETRY_FAIL"
        | "USER_WAIT_CONFIRM_UPDATE" => RefundStatus::Pending,
        "MERCHANT_REFUND_SUCCESS" | "MERCHANT_RETURN_SUCCESS" => RefundStatus::Succeeded,
        "USER_CANCELD"
        | "MERCHANT_REJECT_REFUND"
        | "MERCHANT_REJECT_RETURN"
        | "RETURN_CLOSED"
        | "PLATFORM_REFUND_FAIL"
        | "MERCHANT_FAIL" => RefundStatus::Closed,
        _ => return None,
    })
}

/// Map one after-sale order of `shop` (`aftersale/getaftersaleorder`:
/// amount in fen, times in unix seconds); its SKU is the line.
pub fn map_after_sale(raw: &str, shop: &str) -> Result<RefundRow, Rejected> {
    let a: AfterSale = Rejected::parse(raw, "WeChat shop after-sale")?;
    RefundParts {
        refund_id: a.after_sale_order_id.as_ref().and_then(text_of),
        order_id: ("order_id", a.order_id.as_ref().and_then(text_of)),
        line_id: a
            .product_info
            .and_then(|p| p.sku_id.as_ref().and_then(text_of)),
        status: ("after-sale status", a.status),
        amount: (
            "refund_info.amount",
            Money::Fen(a.refund_info.and_then(|r| r.amount)),
        ),
        created: ("create_time", TimeText::UnixSeconds(a.create_time)),
        updated: ("update_time", TimeText::UnixSeconds(a.update_time)),
    }
    .row(Channel::WechatShop, shop, map_after_sale_status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    fn hasher() -> PiiHasher {
        PiiHasher::new(&LakeKey::from_bytes([1; 32]))
    }

    // Shaped after the documented example (research notes §3).
    const ORDER: &str = r#"{"order_id":"3704612354559743232","status":20,"create_time":1773817700,
        "update_time":1773817800,"openid":"oZ0a45xyzOpenId","unionid":"oUn0000002a1b2c3d4e5f60718",
        "order_detail":{"product_infos":[{"product_id":"1","sku_id":"2","sku_cnt":2,"sale_price":4500,"title":"T"},
          {"product_id":"3","sku_id":"4","sku_cnt":1,"sale_price":1000}],
          "price_info":{"product_price":10000,"order_price":9820,"freight":0,"discounted_price":180},
          "pay_info":{"prepay_id":"wx1","pay_time":1773817760,"transaction_id":"42000"},
          "delivery_info":{"address_info":{"user_name":"陈*","tel_number":"139****5678","province_name":"广东省",
            "city_name":"深圳市","county_name":"南山区","detail_info":"科技园****","use_tel_number":0}}}}"#;

    /// An after-sale order: its order, SKU as the line, status and amount
    /// in fen; a negative amount is rejected with its id.
    #[test]
    fn maps_an_after_sale() {
        let raw = r#"{"after_sale_order_id":"4000000001","order_id":"3704612354559743232","status":"MERCHANT_REFUND_SUCCESS",
            "product_info":{"product_id":"1","sku_id":"2","count":1},"refund_info":{"amount":4500},
            "create_time":1773817700,"update_time":1773904100}"#;
        let r = map_after_sale(raw, "store").unwrap();
        assert_eq!(
            (
                r.order_id.as_str(),
                r.line_id.as_deref(),
                r.status,
                r.refund_fen
            ),
            (
                "3704612354559743232",
                Some("2"),
                RefundStatus::Succeeded,
                4500
            )
        );
        let e = map_after_sale(&raw.replace("4500", "-1"), "s").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("4000000001"));
        assert!(map_after_sale(&raw.replace("MERCHANT_REFUND_SUCCESS", "NEW"), "s").is_err());
    }

    #[test]
    fn maps_an_order() {
        let m = map_order(ORDER, "store", &hasher()).unwrap();
        let r = m.row;
        assert_eq!(r.order_id, "3704612354559743232");
        assert_eq!(r.status, OrderStatus::Paid);
        assert_eq!(r.platform_status, "status=20");
        assert_eq!(r.amount_fen, 9820);
        assert_eq!(r.item_count, 3);
        assert_eq!(
            m.lines
                .iter()
                .map(|l| (
                    l.line_id.as_str(),
                    l.item_id.as_deref(),
                    l.quantity,
                    l.amount_fen
                ))
                .collect::<Vec<_>>()[0],
            ("2", Some("1"), 2, 9000)
        );
        assert_eq!(r.buyer_id.as_deref(), Some("oZ0a45xyzOpenId"));
        assert_eq!(
            r.buyer_unionid.as_deref(),
            Some("oUn0000002a1b2c3d4e5f60718")
        );
        assert_eq!(r.phone_masked.as_deref(), Some("139****5678"));
        assert_eq!(r.phone_hash, None);
        assert_eq!(m.cipher, None);
        assert_eq!(r.created_at.timestamp(), 1_773_817_700);
        assert_eq!(r.paid_at.unwrap().timestamp(), 1_773_817_760);
        assert_eq!(r.city.as_deref(), Some("深圳市"));
    }

    #[test]
    fn ids_as_numbers_virtual_numbers_and_no_unionid() {
        let raw = ORDER
            .replace("\"3704612354559743232\"", "3704612354559743232")
            .replace("\"use_tel_number\":0", "\"use_tel_number\":1")
            .replace(",\"unionid\":\"oUn0000002a1b2c3d4e5f60718\"", "");
        let r = map_order(&raw, "s", &hasher()).unwrap().row;
        assert_eq!(r.order_id, "3704612354559743232");
        assert_eq!(
            r.phone_masked, None,
            "a virtual number is not the receiver's"
        );
        assert_eq!(r.buyer_unionid, None);
    }

    #[test]
    fn statuses() {
        for (s, paid, want) in [
            (10, false, OrderStatus::PendingPayment),
            (20, true, OrderStatus::Paid),
            (21, true, OrderStatus::Shipped),
            (30, true, OrderStatus::Shipped),
            (100, true, OrderStatus::Completed),
            (200, true, OrderStatus::Refunded),
            (250, true, OrderStatus::Refunded),
            (250, false, OrderStatus::Cancelled),
        ] {
            assert_eq!(map_status(s, paid), Some(want), "{s}");
        }
        assert_eq!(map_status(11, true), None);
    }

    #[test]
    fn rejects_with_reasons() {
        let bad = ORDER.replace("\"order_price\":9820", "\"order_price\":\"98.20\"");
        let e = map_order(&bad, "s", &hasher()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("3704612354559743232"));
        assert!(e.reason.starts_with("order_price"), "{}", e.reason);
        let bad = ORDER.replace("\"status\":20", "\"status\":77");
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .contains("unknown order status"));
        let bad = ORDER.replace("\"create_time\":1773817700", "\"create_time\":\"soon\"");
        assert!(map_order(&bad, "s", &hasher())
            .unwrap_err()
            .reason
            .contains("create_time"));
        assert_eq!(
            map_order(r#"{"status":20}"#, "s", &hasher())
                .unwrap_err()
                .reason,
            "order has no order_id"
        );
        assert!(map_order("[]", "s", &hasher()).is_err());
    }
}
