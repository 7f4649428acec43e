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

/// Run `query` against the lake.
pub async fn query(lake: &Lake, query: &str) -> Result<Vec<RecordBatch>> {
    let ctx = lake.session().await?;
    let df = ctx.sql(query).await.context("SQL error")?;
    Ok(df.collect().await?)
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
