//! One declaration per canonical table: [`canonical_table!`] writes the
//! row struct, its Arrow schema and its batch builder from the same field
//! list, so a column cannot be added to one and forgotten in another. Each
//! field's Rust type says its Arrow type through [`Cell`].

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
pub use arrow::array::{ArrayRef, RecordBatch};
pub use arrow::datatypes::SchemaRef;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};

use crate::vocab::{Bridge, Channel, OrderStatus, Outcome, RefundStatus, TouchEvent};

/// A field type that is one Arrow column: its type, whether it may be
/// null, and how a value is appended.
pub trait Cell {
    /// The column's builder.
    type Builder: ArrayBuilder;
    /// Whether the column may hold nulls.
    const NULLABLE: bool;
    /// The column's Arrow type.
    fn data_type() -> DataType;
    /// An empty builder of the column.
    fn builder() -> Self::Builder;
    /// Append this value to `b`.
    fn append_to(&self, b: &mut Self::Builder);
    /// Append a null to `b`.
    fn append_null(b: &mut Self::Builder);
}

/// `Timestamp(Microsecond, "UTC")`: every time in the lake.
pub fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn timestamps() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

/// Implements [`Cell`] for types that are one value of a builder.
macro_rules! cells {
    ($($t:ty => $b:ty, $dt:expr, $new:expr, |$v:ident| $value:expr;)*) => {$(
        impl Cell for $t {
            type Builder = $b;
            const NULLABLE: bool = false;
            fn data_type() -> DataType {
                $dt
            }
            fn builder() -> $b {
                $new
            }
            fn append_to(&self, b: &mut $b) {
                let $v = self;
                b.append_value($value);
            }
            fn append_null(b: &mut $b) {
                b.append_null();
            }
        }
    )*};
}

/// An optional value: a null where it is `None`.
impl<T: Cell> Cell for Option<T> {
    type Builder = T::Builder;
    const NULLABLE: bool = true;
    fn data_type() -> DataType {
        T::data_type()
    }
    fn builder() -> T::Builder {
        T::builder()
    }
    fn append_to(&self, b: &mut T::Builder) {
        match self {
            Some(v) => v.append_to(b),
            None => T::append_null(b),
        }
    }
    fn append_null(b: &mut T::Builder) {
        T::append_null(b);
    }
}

cells! {
    String => StringBuilder, DataType::Utf8, StringBuilder::new(), |v| v.as_str();
    i32 => Int32Builder, DataType::Int32, Int32Builder::new(), |v| *v;
    i64 => Int64Builder, DataType::Int64, Int64Builder::new(), |v| *v;
    DateTime<Utc> => TimestampMicrosecondBuilder, utc_micros(), timestamps(), |v| v.timestamp_micros();
    Channel => StringBuilder, DataType::Utf8, StringBuilder::new(), |v| v.as_str();
    OrderStatus => StringBuilder, DataType::Utf8, StringBuilder::new(), |v| v.as_str();
    RefundStatus => StringBuilder, DataType::Utf8, StringBuilder::new(), |v| v.as_str();
    Bridge => StringBuilder, DataType::Utf8, StringBuilder::new(), |v| v.as_str();
    TouchEvent => StringBuilder, DataType::Utf8, StringBuilder::new(), |v| v.as_str();
    Outcome => StringBuilder, DataType::Utf8, StringBuilder::new(), |v| v.as_str();
}

/// A list of texts (tags); an empty list is an empty list, not a null.
impl Cell for Vec<String> {
    type Builder = ListBuilder<StringBuilder>;
    const NULLABLE: bool = true;
    fn data_type() -> DataType {
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
    }
    fn builder() -> Self::Builder {
        ListBuilder::new(StringBuilder::new())
    }
    fn append_to(&self, b: &mut Self::Builder) {
        for v in self {
            b.values().append_value(v);
        }
        b.append(true);
    }
    fn append_null(b: &mut Self::Builder) {
        b.append_null();
    }
}

/// The column of field `name` holding `T`.
pub fn field_of<T: Cell>(name: &str) -> Field {
    Field::new(name, T::data_type(), T::NULLABLE)
}

/// The column of field `name` holding `T`, nullable where `T` is or where
/// `nullable` says so (tables whose released schemas allow nulls in every
/// column).
pub fn column_of<T: Cell>(name: &str, nullable: bool) -> Field {
    Field::new(name, T::data_type(), T::NULLABLE || nullable)
}

/// One column of `rows`: the value `get` reads from each.
pub fn column_array<R, T: Cell>(rows: &[R], get: impl Fn(&R) -> &T) -> ArrayRef {
    let mut b = T::builder();
    rows.iter().for_each(|r| get(r).append_to(&mut b));
    ArrayBuilder::finish(&mut b)
}

/// The schema of `fields`, built once per table.
pub fn schema_once(cell: &'static OnceLock<SchemaRef>, fields: fn() -> Vec<Field>) -> SchemaRef {
    cell.get_or_init(|| Arc::new(Schema::new(fields()))).clone()
}

/// `columns` as a batch of `schema` (a table declaration's own columns).
pub fn batch_of(schema: SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, columns).expect("declared columns match the declared schema")
}

/// A schema as `name:type` (`?` where nullable) with short type names
/// (`s`, `i32`, `i64`, `ts`, `[s]`): what tests pin released schemas to.
pub fn schema_shape(schema: &Schema) -> String {
    let names = schema.fields().iter().map(|f| {
        let t = match f.data_type() {
            DataType::Utf8 => "s".to_string(),
            DataType::Int32 => "i32".into(),
            DataType::Int64 => "i64".into(),
            t if *t == utc_micros() => "ts".into(),
            DataType::List(item) if item.data_type() == &DataType::Utf8 => "[s]".into(),
            other => format!("{other:?}"),
        };
        let null = if f.is_nullable() { "?" } else { "" };
        format!("{}:{t}{null}", f.name())
    });
    names.collect::<Vec<_>>().join(" ")
}

/// Declares a table of the engine's own (runs, identity logs): the row
/// struct (with `Debug`, `Clone`, `PartialEq`), the schema function, and
/// `Row::batch(&rows)`. The columns are the fields in order; a column is
/// nullable where its type is an `Option`, where the field ends in `as
/// nullable`, or everywhere when the table is declared `, nullable`.
#[macro_export]
macro_rules! record_table {
    (@flag) => { false };
    (@flag $flag:ident) => { true };
    (
        $(#[$meta:meta])*
        pub struct $row:ident in $schema:ident $(, $all:ident)? {
            $( $(#[$fmeta:meta])* pub $f:ident : $t:ty $(as $null:ident)?, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $row {
            $( $(#[$fmeta])* pub $f: $t, )*
        }

        #[doc = concat!("Schema of the table of [`", stringify!($row), "`]s.")]
        pub fn $schema() -> $crate::row::SchemaRef {
            static S: std::sync::OnceLock<$crate::row::SchemaRef> = std::sync::OnceLock::new();
            $crate::row::schema_once(&S, || {
                let all = $crate::record_table!(@flag $($all)?);
                vec![$( $crate::row::column_of::<$t>(
                    stringify!($f),
                    all || $crate::record_table!(@flag $($null)?),
                ) ),*]
            })
        }

        impl $row {
            /// `rows` as one batch.
            pub fn batch(rows: &[$row]) -> $crate::row::RecordBatch {
                let columns = vec![$( $crate::row::column_array(rows, |r: &$row| &r.$f) ),*];
                $crate::row::batch_of($schema(), columns)
            }
        }
    };
}

/// The two columns every batch of one run carries after its row's fields:
/// when it was ingested and by which run.
pub fn stamp_fields() -> [Field; 2] {
    [
        Field::new("ingested_at", utc_micros(), false),
        Field::new("run_id", DataType::Utf8, false),
    ]
}

/// The stamp columns for `n` rows.
pub fn stamp_columns(n: usize, run_id: &str, ingested_at: i64) -> [arrow::array::ArrayRef; 2] {
    let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut run = StringBuilder::with_capacity(n, n * run_id.len());
    for _ in 0..n {
        at.append_value(ingested_at);
        run.append_value(run_id);
    }
    [Arc::new(at.finish()), Arc::new(run.finish())]
}

/// Declares a canonical table: the row struct (with `Debug`, `Clone`,
/// `PartialEq`), the schema function and a builder of batches of one run
/// (`new(run_id, ingested_at)`, `append(&row)`, `len`, `is_empty`,
/// `finish`), and `Row::batch(&rows, run_id, ingested_at)`.
///
/// The columns are the fields in order, then `version = field` (a column
/// copying a field, where a table's version is another field), then the
/// stamps `ingested_at` and `run_id`, then the fields of an `after
/// stamps` block (columns added to a table after its first release stay
/// at the end, so older lakes keep their column order).
macro_rules! canonical_table {
    (
        $(#[$meta:meta])*
        pub struct $row:ident in $schema:ident by $builder:ident {
            $( $(#[$fmeta:meta])* pub $f:ident : $t:ty, )*
        }
        $(version $version:ident = $source:ident;)?
        $(after stamps {
            $( $(#[$lmeta:meta])* pub $late:ident : $lt:ty, )*
        })?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $row {
            $( $(#[$fmeta])* pub $f: $t, )*
            $($( $(#[$lmeta])* pub $late: $lt, )*)?
        }

        #[doc = concat!("Schema of the table of [`", stringify!($row), "`]s.")]
        pub fn $schema() -> arrow::datatypes::SchemaRef {
            static S: std::sync::OnceLock<arrow::datatypes::SchemaRef> = std::sync::OnceLock::new();
            S.get_or_init(|| {
                let mut fields = vec![$( crate::row::field_of::<$t>(stringify!($f)) ),*];
                $(
                    let copied = fields
                        .iter()
                        .find(|f| f.name() == stringify!($source))
                        .expect("the version copies a field")
                        .clone();
                    fields.push(copied.with_name(stringify!($version)));
                )?
                fields.extend(crate::row::stamp_fields());
                $($( fields.push(crate::row::field_of::<$lt>(stringify!($late))); )*)?
                std::sync::Arc::new(arrow::datatypes::Schema::new(fields))
            })
            .clone()
        }

        #[doc = concat!("Builds batches of [`", stringify!($row), "`]s of one run.")]
        pub struct $builder {
            ingested_at: i64,
            run_id: String,
            rows: usize,
            $( $f: <$t as crate::row::Cell>::Builder, )*
            $($( $late: <$lt as crate::row::Cell>::Builder, )*)?
        }

        impl $builder {
            /// A builder for rows of one run, ingested at `ingested_at`.
            pub fn new(run_id: &str, ingested_at: chrono::DateTime<chrono::Utc>) -> Self {
                $builder {
                    ingested_at: ingested_at.timestamp_micros(),
                    run_id: run_id.to_string(),
                    rows: 0,
                    $( $f: <$t as crate::row::Cell>::builder(), )*
                    $($( $late: <$lt as crate::row::Cell>::builder(), )*)?
                }
            }

            /// Append one row.
            pub fn append(&mut self, r: &$row) {
                use crate::row::Cell;
                $( r.$f.append_to(&mut self.$f); )*
                $($( r.$late.append_to(&mut self.$late); )*)?
                self.rows += 1;
            }

            /// Rows appended since the last `finish`.
            pub fn len(&self) -> usize {
                self.rows
            }

            /// True when no row is pending.
            pub fn is_empty(&self) -> bool {
                self.rows == 0
            }

            /// Take the pending rows as a batch; the builder can be reused.
            pub fn finish(&mut self) -> arrow::array::RecordBatch {
                use arrow::array::ArrayBuilder;
                let n = std::mem::take(&mut self.rows);
                let schema = $schema();
                let mut columns: Vec<arrow::array::ArrayRef> = vec![$( ArrayBuilder::finish(&mut self.$f) ),*];
                $(
                    let at = schema.index_of(stringify!($source)).expect("the version copies a field");
                    columns.push(columns[at].clone());
                )?
                columns.extend(crate::row::stamp_columns(n, &self.run_id, self.ingested_at));
                $($( columns.push(ArrayBuilder::finish(&mut self.$late)); )*)?
                arrow::array::RecordBatch::try_new(schema, columns)
                    .expect("builder columns match the schema")
            }
        }

        impl $row {
            /// `rows` as one batch of run `run_id`.
            pub fn batch(
                rows: &[$row],
                run_id: &str,
                ingested_at: chrono::DateTime<chrono::Utc>,
            ) -> arrow::array::RecordBatch {
                let mut b = $builder::new(run_id, ingested_at);
                rows.iter().for_each(|r| b.append(r));
                b.finish()
            }
        }
    };
}

pub(crate) use canonical_table;

#[cfg(test)]
mod tests {
    use crate::TableKind;

    fn shape(kind: TableKind) -> String {
        super::schema_shape(&kind.schema())
    }

    /// The columns, their order, types and nullability are what lakes
    /// written by every earlier release hold: a declaration that moves or
    /// retypes one fails here.
    #[test]
    fn declared_tables_keep_their_released_schemas() {
        let stamps = "ingested_at:ts run_id:s";
        let expect = [
            (
                TableKind::Orders,
                format!(
                    "channel:s shop_id:s order_id:s buyer_id:s? phone_hash:s? phone_masked:s? \
                     status:s platform_status:s amount_fen:i64 item_count:i32 province:s? \
                     city:s? created_at:ts paid_at:ts? updated_at:ts {stamps} \
                     receiver_hash:s? buyer_unionid:s?"
                ),
            ),
            (
                TableKind::Contacts,
                format!(
                    "channel:s contact_id:s unionid:s? phone_hash:s? owner_userid:s add_way:i32? \
                     state:s? tags:[s]? created_at:ts? updated_at:ts {stamps}"
                ),
            ),
            (
                TableKind::OrderLines,
                format!(
                    "channel:s shop_id:s order_id:s line_id:s item_id:s? sku_id:s? title:s? \
                     quantity:i32 unit_price_fen:i64? amount_fen:i64 created_at:ts \
                     updated_at:ts {stamps}"
                ),
            ),
            (
                TableKind::Refunds,
                format!(
                    "channel:s shop_id:s refund_id:s order_id:s line_id:s? status:s \
                     platform_status:s refund_fen:i64 created_at:ts updated_at:ts {stamps}"
                ),
            ),
            (
                TableKind::Touchpoints,
                format!(
                    "channel:s event_id:s event_type:s occurred_at:ts phone_hash:s? \
                     order_channel:s? order_id:s? unionid:s? external_userid:s? \
                     owner_userid:s? state:s? campaign:s? outcome:s? intent_level:s? \
                     duration_secs:i32? cost_fen:i64? source:s updated_at:ts {stamps}"
                ),
            ),
        ];
        for (kind, want) in expect {
            assert_eq!(shape(kind), want, "{}", kind.name());
        }
    }
}
