//! The identity tables' schemas.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn schema(cell: &'static OnceLock<SchemaRef>, fields: fn() -> Vec<Field>) -> SchemaRef {
    cell.get_or_init(|| Arc::new(Schema::new(fields()))).clone()
}

/// `identity_map`: one row per identifier.
pub fn identity_map_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    schema(&S, || {
        vec![
            Field::new("id_type", DataType::Utf8, true),
            Field::new("id_value", DataType::Utf8, true),
            Field::new("unified_id", DataType::Utf8, true),
            Field::new("excluded_reason", DataType::Utf8, true),
            Field::new("rule", DataType::Utf8, true),
            Field::new("people", DataType::Int32, true),
            Field::new("partners", DataType::Int32, true),
            Field::new("evidence", DataType::Int32, true),
            Field::new("cluster", DataType::Utf8, true),
            Field::new("unified_since", DataType::Int64, true),
            Field::new("build", DataType::Int64, true),
        ]
    })
}

/// `identity_aliases`: every retired id and the id it resolves to now.
pub fn identity_aliases_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    schema(&S, || {
        vec![
            Field::new("retired_id", DataType::Utf8, true),
            Field::new("current_id", DataType::Utf8, true),
            Field::new("reason", DataType::Utf8, true),
            Field::new("build", DataType::Int64, true),
            Field::new("retired_at", ts(), true),
        ]
    })
}

quanyu_schemas::record_table! {
    /// A row of `identity_changes`: one mint, merge, split or retirement,
    /// with the edge and source record that caused it.
    pub struct IdentityChange in identity_changes_schema, nullable {
        /// The identity build.
        pub build: i64,
        /// When the build ran.
        pub changed_at: DateTime<Utc>,
        /// `mint`, `merge`, `split` or `retire`.
        pub change: String,
        /// The unified id changed.
        pub unified_id: String,
        /// The id it merged with or split from.
        pub other_id: Option<String>,
        /// Identifiers of the customer after the change.
        pub members: i64,
        /// The causing edge's first identifier (type, value).
        pub a_type: Option<String>,
        /// Its value.
        pub a_value: Option<String>,
        /// The edge's second identifier.
        pub b_type: Option<String>,
        /// Its value.
        pub b_value: Option<String>,
        /// The rule that drew the edge.
        pub rule: Option<String>,
        /// The table of the record that showed the edge.
        pub source_table: Option<String>,
        /// That record's key.
        pub record_key: Option<String>,
        /// When that record was seen.
        pub observed_at: Option<DateTime<Utc>>,
    }
}

quanyu_schemas::record_table! {
    /// A row of `identity_audit`: an exclusion or cut decided (or lifted)
    /// in one build.
    pub struct AuditEntry in identity_audit_schema, nullable {
        /// The identity build.
        pub build: i64,
        /// When the build ran.
        pub audited_at: DateTime<Utc>,
        /// The identifier's type.
        pub id_type: String,
        /// Its value.
        pub id_value: String,
        /// `excluded`, `cut`, `links_cut` or `lifted`.
        pub decision: String,
        /// The rule behind the decision.
        pub rule: String,
        /// People the identifier names.
        pub people: i32,
        /// Partners it links.
        pub partners: i32,
        /// Records that show it.
        pub evidence: i32,
        /// Why, in words.
        pub reason: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use quanyu_schemas::row::schema_shape;

    /// The identity logs keep the columns lakes of earlier releases hold,
    /// every one nullable.
    #[test]
    fn identity_logs_keep_their_released_schemas() {
        assert_eq!(
            schema_shape(&super::identity_changes_schema()),
            "build:i64? changed_at:ts? change:s? unified_id:s? other_id:s? members:i64? \
             a_type:s? a_value:s? b_type:s? b_value:s? rule:s? source_table:s? \
             record_key:s? observed_at:ts?"
        );
        assert_eq!(
            schema_shape(&super::identity_audit_schema()),
            "build:i64? audited_at:ts? id_type:s? id_value:s? decision:s? rule:s? \
             people:i32? partners:i32? evidence:i32? reason:s?"
        );
    }
}
