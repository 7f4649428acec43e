//! The canonical tables as Arrow schemas, with one typed row struct and one
//! builder per table that sources fill (declared once each, by
//! [`crate::row`]).
//!
//! All times are `Timestamp(Microsecond, "UTC")`; money is integer fen.

use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};

use crate::row::canonical_table;
use crate::vocab::{Channel, OrderStatus};

/// The canonical tables that sources land into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// One row per order.
    Orders,
    /// One row per (WeCom or CRM) contact and owner.
    Contacts,
    /// One row per bridge event (card scan, call, SMS, contact added).
    Touchpoints,
    /// One row per order line (item, SKU, quantity, price); lands with its
    /// order's page.
    OrderLines,
    /// One row per refund or after-sale request.
    Refunds,
}

impl TableKind {
    /// The table's name in the lake.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Orders => "orders",
            TableKind::Contacts => "contacts",
            TableKind::Touchpoints => "touchpoints",
            TableKind::OrderLines => "order_lines",
            TableKind::Refunds => "refunds",
        }
    }

    /// The Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            TableKind::Orders => orders_schema(),
            TableKind::Contacts => contacts_schema(),
            TableKind::Touchpoints => crate::touchpoints::touchpoints_schema(),
            TableKind::OrderLines => crate::sales::order_lines_schema(),
            TableKind::Refunds => crate::sales::refunds_schema(),
        }
    }

    /// Columns that identify one business entity: the lake keeps one current
    /// row per key.
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            TableKind::Orders => &["channel", "shop_id", "order_id"],
            TableKind::Contacts => &["channel", "contact_id", "owner_userid"],
            TableKind::Touchpoints => &["channel", "event_id"],
            TableKind::OrderLines => &["channel", "shop_id", "order_id", "line_id"],
            TableKind::Refunds => &["channel", "shop_id", "refund_id"],
        }
    }

    /// Columns that name the record a row belongs to: the latest version of
    /// a record replaces all of its rows, so an order whose item list
    /// shrank loses the lines it no longer has. The key itself for every
    /// table but `order_lines` (whose record is the order).
    pub fn record_columns(self) -> &'static [&'static str] {
        match self {
            TableKind::OrderLines => TableKind::Orders.key_columns(),
            other => other.key_columns(),
        }
    }

    /// Tables whose rows land with this table's pages (an order's lines
    /// with the order): refreshed whenever this table is.
    pub fn companions(self) -> &'static [TableKind] {
        match self {
            TableKind::Orders => &[TableKind::OrderLines],
            _ => &[],
        }
    }

    /// The column that decides which row of a key is current (the latest wins).
    pub fn version_column(self) -> &'static str {
        "updated_at"
    }
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

canonical_table! {
    /// One order in canonical form.
    pub struct OrderRow in orders_schema by OrdersBuilder {
        /// Platform.
        pub channel: Channel,
        /// Shop (seller) id on that platform.
        pub shop_id: String,
        /// Order id, unique within the shop.
        pub order_id: String,
        /// The platform's buyer id (scoped as the platform scopes it).
        pub buyer_id: Option<String>,
        /// Keyed hash of the receiver's phone when the platform gave it in clear.
        pub phone_hash: Option<String>,
        /// The masked phone as the platform showed it (`138****8000`); never joined on.
        pub phone_masked: Option<String>,
        /// Status in the closed vocabulary.
        pub status: OrderStatus,
        /// The platform's own status text, for audits.
        pub platform_status: String,
        /// What the buyer paid, in fen.
        pub amount_fen: i64,
        /// Number of items (sum of quantities).
        pub item_count: i32,
        /// Receiver province (plain on every platform).
        pub province: Option<String>,
        /// Receiver city.
        pub city: Option<String>,
        /// Order creation time.
        pub created_at: DateTime<Utc>,
        /// Payment time, if paid.
        pub paid_at: Option<DateTime<Utc>>,
        /// Last modification time: decides which version of an order is current.
        pub updated_at: DateTime<Utc>,
    }
    after stamps {
        /// Keyed hash of the receiver's name and address as the platform shows
        /// them ([`crate::PiiHasher::receiver`]): counts people, never links.
        pub receiver_hash: Option<String>,
        /// The buyer's WeChat unionid, where the platform gives one (a
        /// WeChat-bound shop): the same id a WeCom contact carries.
        pub buyer_unionid: Option<String>,
    }
}

canonical_table! {
    /// One contact in canonical form.
    pub struct ContactRow in contacts_schema by ContactsBuilder {
        /// Where the contact lives (`wecom`, `crm`).
        pub channel: Channel,
        /// The contact's id there (WeCom external_userid, CRM member id).
        pub contact_id: String,
        /// WeChat unionid when known.
        pub unionid: Option<String>,
        /// Keyed hash of the first valid remark phone.
        pub phone_hash: Option<String>,
        /// The staff member who holds the contact (WeCom follow userid).
        pub owner_userid: String,
        /// How the contact was added (WeCom `add_way`).
        pub add_way: Option<i32>,
        /// The `state` of the contact way that added it (card campaign, order...).
        pub state: Option<String>,
        /// Tag names.
        pub tags: Vec<String>,
        /// When the contact was added.
        pub created_at: Option<DateTime<Utc>>,
        /// When this version of the contact was observed.
        pub updated_at: DateTime<Utc>,
    }
}

/// Schema of `quarantine`: rejected input rows with their reason.
pub fn quarantine_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            utf8("source", false),
            utf8("target_table", false),
            utf8("record_key", true),
            utf8("raw", false),
            utf8("reason", false),
            utf8("run_id", false),
            Field::new("quarantined_at", crate::row::utc_micros(), false),
            utf8("field", true),
            // What makes two rows the same rejection (see
            // `QuarantineRow::fingerprint`); nullable so older lakes merge.
            utf8("fingerprint", true),
        ]))
    })
    .clone()
}

/// A rejected input record.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRow {
    /// `connector.stream@scope` or a file name.
    pub source: String,
    /// The canonical table it was meant for.
    pub target_table: String,
    /// The record's key when it could be read (e.g. the order id).
    pub record_key: Option<String>,
    /// The raw record, phones already replaced by their hashes.
    pub raw: String,
    /// Why it was rejected.
    pub reason: String,
    /// For a field-level problem, the field: the row itself landed without
    /// that field's value. `None` when the whole record was rejected.
    pub field: Option<String>,
}

impl QuarantineRow {
    /// What makes two rows the same rejection: the SHA-256 (hex) of source,
    /// target table, key, raw record, reason and field. A record pulled
    /// again (a look-back window, a run repeated after a crash) has the
    /// same fingerprint, and is quarantined once.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            Some(self.source.as_str()),
            Some(self.target_table.as_str()),
            self.record_key.as_deref(),
            Some(self.raw.as_str()),
            Some(self.reason.as_str()),
            self.field.as_deref(),
        ] {
            // Absent and empty differ; parts are length-prefixed.
            match part {
                Some(p) => {
                    h.update((p.len() as u64 + 1).to_le_bytes());
                    h.update(p.as_bytes());
                }
                None => h.update(0u64.to_le_bytes()),
            }
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Builds `quarantine` batches.
pub struct QuarantineBuilder {
    run_id: String,
    at: i64,
    source: StringBuilder,
    target_table: StringBuilder,
    record_key: StringBuilder,
    raw: StringBuilder,
    reason: StringBuilder,
    field: StringBuilder,
    fingerprint: StringBuilder,
    len: usize,
}

impl QuarantineBuilder {
    /// A builder for one run.
    pub fn new(run_id: &str, at: DateTime<Utc>) -> Self {
        QuarantineBuilder {
            run_id: run_id.to_string(),
            at: at.timestamp_micros(),
            source: StringBuilder::new(),
            target_table: StringBuilder::new(),
            record_key: StringBuilder::new(),
            raw: StringBuilder::new(),
            reason: StringBuilder::new(),
            field: StringBuilder::new(),
            fingerprint: StringBuilder::new(),
            len: 0,
        }
    }

    /// Append one rejected record.
    pub fn append(&mut self, r: &QuarantineRow) {
        self.source.append_value(&r.source);
        self.target_table.append_value(&r.target_table);
        self.record_key.append_option(r.record_key.as_deref());
        self.raw.append_value(&r.raw);
        self.reason.append_value(&r.reason);
        self.field.append_option(r.field.as_deref());
        self.fingerprint.append_value(r.fingerprint());
        self.len += 1;
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no row is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Take the pending rows as a batch.
    pub fn finish(&mut self) -> RecordBatch {
        let n = std::mem::take(&mut self.len);
        let mut run = StringBuilder::new();
        let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for _ in 0..n {
            run.append_value(&self.run_id);
            at.append_value(self.at);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.source.finish()),
            Arc::new(self.target_table.finish()),
            Arc::new(self.record_key.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(run.finish()),
            Arc::new(at.finish()),
            Arc::new(self.field.finish()),
            Arc::new(self.fingerprint.finish()),
        ];
        RecordBatch::try_new(quarantine_schema(), columns)
            .expect("builder columns match the schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    fn order(id: &str) -> OrderRow {
        OrderRow {
            channel: Channel::Taobao,
            shop_id: "shop1".into(),
            order_id: id.into(),
            buyer_id: Some("ouid@shop1".into()),
            phone_hash: None,
            phone_masked: Some("138****8000".into()),
            status: OrderStatus::Paid,
            platform_status: "WAIT_SELLER_SEND_GOODS".into(),
            amount_fen: 18800,
            item_count: 2,
            province: Some("浙江省".into()),
            city: Some("杭州市".into()),
            created_at: DateTime::from_timestamp(1_704_067_200, 0).unwrap(),
            paid_at: None,
            updated_at: DateTime::from_timestamp(1_704_067_260, 0).unwrap(),
            receiver_hash: None,
            buyer_unionid: None,
        }
    }

    #[test]
    fn orders_builder_matches_schema_and_is_reusable() {
        let mut b = OrdersBuilder::new("run-1", Utc::now());
        b.append(&order("1"));
        b.append(&order("2"));
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), orders_schema());
        assert_eq!(
            batch
                .column_by_name("amount_fen")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(1),
            18800
        );
        assert!(batch.column_by_name("paid_at").unwrap().is_null(0));
        b.append(&order("3"));
        assert_eq!(b.finish().num_rows(), 1);
        assert!(b.is_empty());
    }

    #[test]
    fn contacts_builder_handles_tags() {
        let mut b = ContactsBuilder::new("run-1", Utc::now());
        b.append(&ContactRow {
            channel: Channel::Wecom,
            contact_id: "wmABC".into(),
            unionid: None,
            phone_hash: None,
            owner_userid: "zhangsan".into(),
            add_way: Some(1),
            state: Some("pk_tm_2403".into()),
            tags: vec!["复购".into(), "高意向".into()],
            created_at: None,
            updated_at: Utc::now(),
        });
        let batch = b.finish();
        assert_eq!(batch.schema(), contacts_schema());
        let tags = batch.column_by_name("tags").unwrap().as_list::<i32>();
        assert_eq!(tags.value(0).len(), 2);
    }
}
