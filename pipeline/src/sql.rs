//! `quanyu sql`: DataFusion SQL over every lake table.

use std::io::Write;

use anyhow::Result;
use arrow::array::RecordBatch;
use clap::ValueEnum;

use crate::lake::Lake;

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum Format {
    /// An aligned text table.
    #[default]
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Json,
}

/// What analysts' SQL may run: queries, `EXPLAIN`, `DESCRIBE` and `SHOW`.
/// No DDL (`CREATE EXTERNAL TABLE ... LOCATION '/etc/passwd'`, `DROP`), no
/// DML (`INSERT INTO orders`, `COPY ... TO '<path>'`), no statements (`SET`,
/// transactions); also not inside `EXPLAIN [ANALYZE]`, which would run them.
/// The session reads no paths as tables (DataFusion's URL tables are off)
/// and has no file-reading table functions.
pub fn read_only() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Plan `query` in `ctx` as analysts' SQL: read-only, or a clear error.
async fn plan(
    ctx: &datafusion::prelude::SessionContext,
    query: &str,
) -> Result<datafusion::prelude::DataFrame> {
    ctx.sql_with_options(query, read_only())
        .await
        .map_err(|e| match e {
            datafusion::error::DataFusionError::Plan(m)
                if ["DDL", "DML", "Statement"]
                    .iter()
                    .any(|kind| m.starts_with(&format!("{kind} not supported"))) =>
            {
                anyhow::anyhow!(
                    "quanyu sql is read-only: {m} (queries, EXPLAIN, DESCRIBE and SHOW only; the lake is written by quanyu run, import and identity)"
                )
            }
            e => anyhow::Error::new(e).context("SQL error"),
        })
}

/// Run `query` against the lake, read-only (see [`read_only`]). Hash joins
/// are fastest while their build side fits in the memory budget; when one
/// does not, the query runs again with sort-merge joins, which spill to
/// disk, instead of failing.
pub async fn query(lake: &Lake, query: &str) -> Result<Vec<RecordBatch>> {
    let ctx = lake.session_of(&crate::marts::sql_tables()).await?;
    let df = plan(&ctx, query).await?;
    match df.collect().await {
        Ok(b) => Ok(b),
        Err(e) if crate::lake::out_of_memory(&e) => {
            tracing::warn!(
                "the query's hash joins do not fit in the memory budget ({} MiB): running it again with joins that spill to disk",
                crate::lake::memory_limit_bytes() / (1024 * 1024)
            );
            let ctx = lake.session_of(&crate::marts::sql_tables()).await?;
            crate::lake::prefer_spilling_joins(&ctx).await?;
            let df = plan(&ctx, query).await?;
            Ok(df.collect().await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Write `batches` in `format`.
pub fn write(batches: &[RecordBatch], format: Format, out: &mut dyn Write) -> Result<()> {
    match format {
        Format::Table => writeln!(
            out,
            "{}",
            arrow::util::pretty::pretty_format_batches(batches)?
        )?,
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(())
}
