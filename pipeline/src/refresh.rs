//! Refresh a current table (`orders`, `contacts`) from its raw table: one row
//! per business key, the latest by `updated_at` (then by ingestion time).
//! Only raw rows ingested since the last refresh are read; the refresh's own
//! watermark is committed with its data as a Delta application transaction.

use anyhow::{Context, Result};
use arrow::array::AsArray;
use arrow::datatypes::TimestampMicrosecondType;
use quanyu_schemas::TableKind;

use crate::lake::Lake;
use crate::runner::raw_table;

const REFRESH_APP_ID: &str = "quanyu:refresh";

/// The application id under which a current table records the version of
/// its raw table it has read up to.
pub const RAW_VERSION_APP_ID: &str = "quanyu:refresh:raw_version";

/// A typed NULL in SQL for a canonical column type.
fn null_of(t: &arrow::datatypes::DataType) -> String {
    use arrow::datatypes::DataType::*;
    match t {
        Int32 => "CAST(NULL AS INT)".into(),
        Int64 => "CAST(NULL AS BIGINT)".into(),
        Boolean => "CAST(NULL AS BOOLEAN)".into(),
        other => format!("arrow_cast(NULL, '{other}')"),
    }
}

/// Bring `kind`'s current table up to date with its raw table. Returns the
/// number of raw rows read.
pub async fn refresh_current(lake: &Lake, kind: TableKind) -> Result<u64> {
    let schema = kind.schema();
    let current = kind.name();
    let raw = raw_table(kind);
    lake.table(current, &schema).await?;
    lake.table(&raw, &schema).await?;
    let watermark = lake
        .txn_version(current, REFRESH_APP_ID)
        .await?
        .unwrap_or(i64::MIN);
    let ctx = crate::lake::new_context();
    lake.register(&ctx, current).await?;
    // The raw version read is recorded with the refresh: identity takes the
    // rows of later versions as changed.
    let raw_version = lake.version(&raw).await?.unwrap_or(0);
    lake.register_at(&ctx, &raw, raw_version, &raw).await?;
    let since = format!("arrow_cast({watermark}, 'Timestamp(Microsecond, Some(\"UTC\"))')");
    let stats = ctx
        .sql(&format!(
            "SELECT count(*) AS n, max(ingested_at) AS hi FROM {raw} WHERE ingested_at > {since}"
        ))
        .await?
        .collect()
        .await?;
    let n = stats[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0) as u64;
    if n == 0 {
        return Ok(0);
    }
    let hi = stats[0]
        .column(1)
        .as_primitive::<TimestampMicrosecondType>()
        .value(0);
    let cols = schema
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    // The Delta scan yields string views that point into whole decoded
    // pages; sorted and repartitioned as they are, each small batch is
    // charged for every page it points into, and a lake of many small
    // files exhausts the memory pool. Plain strings are compact copies.
    // Columns a table written by an older quanyu lacks read as NULL.
    let current_schema = ctx.table_provider(current).await?.schema();
    let raw_schema = ctx.table_provider(&raw).await?.schema();
    let compact = |have: &arrow::datatypes::SchemaRef| -> String {
        schema
            .fields()
            .iter()
            .map(|f| {
                let n = f.name();
                match (have.field_with_name(n).is_ok(), f.data_type()) {
                    (false, t) => format!("{} AS \"{n}\"", null_of(t)),
                    (true, arrow::datatypes::DataType::Utf8) => {
                        format!("CAST(\"{n}\" AS VARCHAR) AS \"{n}\"")
                    }
                    _ => format!("\"{n}\""),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (compact_current, compact_raw) = (compact(&current_schema), compact(&raw_schema));
    let stale_schema = current_schema.fields().len() != schema.fields().len();
    let keys = kind
        .key_columns()
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let version = kind.version_column();
    let sql = format!(
        "SELECT {cols} FROM (
            SELECT {cols}, row_number() OVER (PARTITION BY {keys} ORDER BY \"{version}\" DESC, ingested_at DESC) AS rn
            FROM (SELECT {compact_current} FROM {current}
                  UNION ALL
                  SELECT {compact_raw} FROM {raw} WHERE ingested_at > {since} AND ingested_at <= arrow_cast({hi}, 'Timestamp(Microsecond, Some(\"UTC\"))'))
        ) WHERE rn = 1"
    );
    // Streamed into the Delta writer: memory stays bounded by the engine's
    // pool (sorts spill to disk) rather than by the table's size.
    let df = ctx
        .sql(&sql)
        .await
        .with_context(|| format!("refreshing {current}"))?;
    let commit = crate::lake::Commit {
        replace_schema: stale_schema,
        txns: vec![
            (REFRESH_APP_ID.to_string(), hi),
            (RAW_VERSION_APP_ID.to_string(), raw_version as i64),
        ],
        ..Default::default()
    };
    lake.write_plan(current, &schema, &ctx, df, commit)
        .await
        .with_context(|| format!("refreshing {current}"))?;
    tracing::info!(table = current, raw_rows = n, "current table refreshed");
    Ok(n)
}
