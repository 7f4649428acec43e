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
    lake.register(&ctx, &raw).await?;
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
    let compact = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            arrow::datatypes::DataType::Utf8 => {
                format!("CAST(\"{n}\" AS VARCHAR) AS \"{n}\"", n = f.name())
            }
            _ => format!("\"{}\"", f.name()),
        })
        .collect::<Vec<_>>()
        .join(", ");
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
            FROM (SELECT {compact} FROM {current}
                  UNION ALL
                  SELECT {compact} FROM {raw} WHERE ingested_at > {since} AND ingested_at <= arrow_cast({hi}, 'Timestamp(Microsecond, Some(\"UTC\"))'))
        ) WHERE rn = 1"
    );
    // Streamed into the Delta writer: memory stays bounded by the engine's
    // pool (sorts spill to disk) rather than by the table's size.
    let df = ctx
        .sql(&sql)
        .await
        .with_context(|| format!("refreshing {current}"))?;
    lake.overwrite_plan(current, &schema, &ctx, df, Some((REFRESH_APP_ID, hi)))
        .await
        .with_context(|| format!("refreshing {current}"))?;
    tracing::info!(table = current, raw_rows = n, "current table refreshed");
    Ok(n)
}
