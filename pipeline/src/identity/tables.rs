//! The identity tables' schemas.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

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

/// `identity_changes`: each mint, merge, split and retirement, with the
/// edge and source record that caused it.
pub fn identity_changes_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    schema(&S, || {
        vec![
            Field::new("build", DataType::Int64, true),
            Field::new("changed_at", ts(), true),
            Field::new("change", DataType::Utf8, true),
            Field::new("unified_id", DataType::Utf8, true),
            Field::new("other_id", DataType::Utf8, true),
            Field::new("members", DataType::Int64, true),
            Field::new("a_type", DataType::Utf8, true),
            Field::new("a_value", DataType::Utf8, true),
            Field::new("b_type", DataType::Utf8, true),
            Field::new("b_value", DataType::Utf8, true),
            Field::new("rule", DataType::Utf8, true),
            Field::new("source_table", DataType::Utf8, true),
            Field::new("record_key", DataType::Utf8, true),
            Field::new("observed_at", ts(), true),
        ]
    })
}

/// `identity_audit`: every exclusion and cut decided (and every one
/// lifted), per build.
pub fn identity_audit_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    schema(&S, || {
        vec![
            Field::new("build", DataType::Int64, true),
            Field::new("audited_at", ts(), true),
            Field::new("id_type", DataType::Utf8, true),
            Field::new("id_value", DataType::Utf8, true),
            Field::new("decision", DataType::Utf8, true),
            Field::new("rule", DataType::Utf8, true),
            Field::new("people", DataType::Int32, true),
            Field::new("partners", DataType::Int32, true),
            Field::new("evidence", DataType::Int32, true),
            Field::new("reason", DataType::Utf8, true),
        ]
    })
}
