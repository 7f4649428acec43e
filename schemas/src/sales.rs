//! The `order_lines` and `refunds` tables: what was bought (item, SKU,
//! quantity, price) and what went back, so GMV nets out refunds and marts
//! can segment by product. Both are written whole from a page's rows.

use chrono::{DateTime, Utc};

use crate::row::canonical_table;
use crate::vocab::{Channel, RefundStatus};

canonical_table! {
    /// One line of an order: an item (SKU) and how many of it.
    pub struct OrderLineRow in order_lines_schema by OrderLinesBuilder {
        /// Platform.
        pub channel: Channel,
        /// Shop (seller) id on that platform.
        pub shop_id: String,
        /// The order the line belongs to.
        pub order_id: String,
        /// The line's id within the order (the platform's sub-order id, or the
        /// line's position where it has none).
        pub line_id: String,
        /// The platform's item (product) id.
        pub item_id: Option<String>,
        /// The platform's SKU id.
        pub sku_id: Option<String>,
        /// The item's title as listed.
        pub title: Option<String>,
        /// Pieces bought.
        pub quantity: i32,
        /// Price of one piece in fen, when the platform gives it.
        pub unit_price_fen: Option<i64>,
        /// What the line cost in fen (the platform's line payment, or
        /// quantity × price).
        pub amount_fen: i64,
        /// The order's creation time.
        pub created_at: DateTime<Utc>,
        /// The order's last modification: the latest version of a line wins.
        pub updated_at: DateTime<Utc>,
    }
}

canonical_table! {
    /// One refund or after-sale request.
    pub struct RefundRow in refunds_schema by RefundsBuilder {
        /// Platform.
        pub channel: Channel,
        /// Shop (seller) id on that platform.
        pub shop_id: String,
        /// The platform's refund / after-sale id.
        pub refund_id: String,
        /// The order refunded.
        pub order_id: String,
        /// The order line refunded, when the request names one.
        pub line_id: Option<String>,
        /// Where it stands.
        pub status: RefundStatus,
        /// The platform's own status, for audits.
        pub platform_status: String,
        /// The amount asked for (pending), paid back (succeeded) or refused
        /// (closed), in fen.
        pub refund_fen: i64,
        /// When the buyer asked.
        pub created_at: DateTime<Utc>,
        /// Last modification: the latest version of a refund wins.
        pub updated_at: DateTime<Utc>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use chrono::TimeZone;

    #[test]
    fn lines_and_refunds_build_in_their_schemas() {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap();
        let line = OrderLineRow {
            channel: Channel::Jd,
            shop_id: "s".into(),
            order_id: "o".into(),
            line_id: "1".into(),
            item_id: Some("i".into()),
            sku_id: None,
            title: Some("商品".into()),
            quantity: 2,
            unit_price_fen: Some(3990),
            amount_fen: 7980,
            created_at: t,
            updated_at: t,
        };
        let b = OrderLineRow::batch(&[line.clone(), line], "r", t);
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.schema(), order_lines_schema());
        assert!(b.column_by_name("sku_id").unwrap().is_null(0));
        let refund = RefundRow {
            channel: Channel::Pdd,
            shop_id: "s".into(),
            refund_id: "r1".into(),
            order_id: "o".into(),
            line_id: None,
            status: RefundStatus::Succeeded,
            platform_status: "10".into(),
            refund_fen: 100,
            created_at: t,
            updated_at: t,
        };
        let b = RefundRow::batch(&[refund], "run", t);
        assert_eq!(b.schema(), refunds_schema());
        let status = b.column_by_name("status").unwrap().as_string::<i32>();
        assert_eq!(status.value(0), "succeeded");
        let run = b.column_by_name("run_id").unwrap().as_string::<i32>();
        assert_eq!(run.value(0), "run");
        assert_eq!(RefundRow::batch(&[], "run", t).num_rows(), 0);
    }
}
