//! `quanyu sql`: DataFusion SQL over every lake table.

use std::io::Write;

use anyhow::{Context, Result};
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

/// Run `query` against the lake. Hash joins are fastest while their build
/// side fits in the memory budget; when one does not, the query runs again
/// with sort-merge joins, which spill to disk, instead of failing.
pub async fn query(lake: &Lake, query: &str) -> Result<Vec<RecordBatch>> {
    let ctx = lake.session().await?;
    let df = ctx.sql(query).await.context("SQL error")?;
    match df.collect().await {
        Ok(b) => Ok(b),
        Err(e) if crate::lake::out_of_memory(&e) => {
            tracing::warn!(
                "the query's hash joins do not fit in the memory budget ({} MiB): running it again with joins that spill to disk",
                crate::lake::memory_limit_bytes() / (1024 * 1024)
            );
            let ctx = lake.session().await?;
            crate::lake::prefer_spilling_joins(&ctx).await?;
            let df = ctx.sql(query).await.context("SQL error")?;
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
