//! The `order_lines` and `refunds` tables: what was bought (item, SKU,
//! quantity, price) and what went back, so GMV nets out refunds and marts
//! can segment by product. Both are written whole from a page's rows.

use std::sync::{Arc, OnceLock};

use arrow::array::TimestampMicrosecondArray;
use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use crate::vocab::{Channel, RefundStatus};

fn ts(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        nullable,
    )
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// Schema of `order_lines`.
pub fn order_lines_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            utf8("channel", false),
            utf8("shop_id", false),
            utf8("order_id", false),
            utf8("line_id", false),
            utf8("item_id", true),
            utf8("sku_id", true),
            utf8("title", true),
            Field::new("quantity", DataType::Int32, false),
            Field::new("unit_price_fen", DataType::Int64, true),
            Field::new("amount_fen", DataType::Int64, false),
            ts("created_at", false),
            ts("updated_at", false),
            ts("ingested_at", false),
            utf8("run_id", false),
        ]))
    })
    .clone()
}

/// Schema of `refunds`.
pub fn refunds_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            utf8("channel", false),
            utf8("shop_id", false),
            utf8("refund_id", false),
            utf8("order_id", false),
            utf8("line_id", true),
            utf8("status", false),
            utf8("platform_status", false),
            Field::new("refund_fen", DataType::Int64, false),
            ts("created_at", false),
            ts("updated_at", false),
            ts("ingested_at", false),
            utf8("run_id", false),
        ]))
    })
    .clone()
}

/// One line of an order: an item (SKU) and how many of it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderLineRow {
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

/// One refund or after-sale request.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundRow {
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

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn times(values: impl Iterator<Item = DateTime<Utc>>) -> ArrayRef {
    Arc::new(
        values
            .map(|t| Some(t.timestamp_micros()))
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC"),
    )
}

fn stamps(n: usize, run_id: &str, ingested_at: DateTime<Utc>) -> [ArrayRef; 2] {
    [
        times(std::iter::repeat_n(ingested_at, n)),
        strings(std::iter::repeat_n(Some(run_id), n)),
    ]
}

/// `rows` as an `order_lines` batch of run `run_id`.
pub fn order_lines_batch(
    rows: &[OrderLineRow],
    run_id: &str,
    ingested_at: DateTime<Utc>,
) -> RecordBatch {
    let mut columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|r| Some(r.channel.as_str()))),
        strings(rows.iter().map(|r| Some(r.shop_id.as_str()))),
        strings(rows.iter().map(|r| Some(r.order_id.as_str()))),
        strings(rows.iter().map(|r| Some(r.line_id.as_str()))),
        strings(rows.iter().map(|r| r.item_id.as_deref())),
        strings(rows.iter().map(|r| r.sku_id.as_deref())),
        strings(rows.iter().map(|r| r.title.as_deref())),
        Arc::new(rows.iter().map(|r| r.quantity).collect::<Int32Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.unit_price_fen)
                .collect::<Int64Array>(),
        ),
        Arc::new(rows.iter().map(|r| r.amount_fen).collect::<Int64Array>()),
        times(rows.iter().map(|r| r.created_at)),
        times(rows.iter().map(|r| r.updated_at)),
    ];
    columns.extend(stamps(rows.len(), run_id, ingested_at));
    RecordBatch::try_new(order_lines_schema(), columns).expect("columns match the schema")
}

/// `rows` as a `refunds` batch of run `run_id`.
pub fn refunds_batch(rows: &[RefundRow], run_id: &str, ingested_at: DateTime<Utc>) -> RecordBatch {
    let mut columns: Vec<ArrayRef> = vec![
        strings(rows.iter().map(|r| Some(r.channel.as_str()))),
        strings(rows.iter().map(|r| Some(r.shop_id.as_str()))),
        strings(rows.iter().map(|r| Some(r.refund_id.as_str()))),
        strings(rows.iter().map(|r| Some(r.order_id.as_str()))),
        strings(rows.iter().map(|r| r.line_id.as_deref())),
        strings(rows.iter().map(|r| Some(r.status.as_str()))),
        strings(rows.iter().map(|r| Some(r.platform_status.as_str()))),
        Arc::new(rows.iter().map(|r| r.refund_fen).collect::<Int64Array>()),
        times(rows.iter().map(|r| r.created_at)),
        times(rows.iter().map(|r| r.updated_at)),
    ];
    columns.extend(stamps(rows.len(), run_id, ingested_at));
    RecordBatch::try_new(refunds_schema(), columns).expect("columns match the schema")
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
        let b = order_lines_batch(&[line.clone(), line], "r", t);
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
        let b = refunds_batch(&[refund], "run", t);
        assert_eq!(b.schema(), refunds_schema());
        let status = b.column_by_name("status").unwrap().as_string::<i32>();
        assert_eq!(status.value(0), "succeeded");
        let run = b.column_by_name("run_id").unwrap().as_string::<i32>();
        assert_eq!(run.value(0), "run");
        assert_eq!(refunds_batch(&[], "run", t).num_rows(), 0);
    }
}
