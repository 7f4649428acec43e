//! The `quarantine` table: each rejection once. A record pulled again (a
//! look-back window, pages repeated after a crash, a re-imported file) is
//! rejected again with the same fingerprint and is not added twice.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::Utc;
use quanyu_schemas::tables::{quarantine_schema, QuarantineBuilder, QuarantineRow};

use crate::lake::Lake;

/// Append the rows of `rows` not yet in `quarantine` (by fingerprint, also
/// within `rows`), stamped with `run_id`; returns how many were added.
pub async fn append_new(lake: &Lake, run_id: &str, rows: Vec<QuarantineRow>) -> Result<usize> {
    let mut seen = HashSet::new();
    let mut fresh: Vec<(String, QuarantineRow)> = rows
        .into_iter()
        .map(|r| (r.fingerprint(), r))
        .filter(|(f, _)| seen.insert(f.clone()))
        .collect();
    let known = known(lake, fresh.iter().map(|(f, _)| f.as_str())).await?;
    fresh.retain(|(f, _)| !known.contains(f));
    if fresh.is_empty() {
        return Ok(0);
    }
    let mut b = QuarantineBuilder::new(run_id, Utc::now());
    for (_, r) in &fresh {
        b.append(r);
    }
    lake.append("quarantine", &quarantine_schema(), vec![b.finish()], None)
        .await?;
    Ok(fresh.len())
}

/// Which of `fingerprints` the table holds already.
async fn known<'a>(
    lake: &Lake,
    fingerprints: impl Iterator<Item = &'a str>,
) -> Result<HashSet<String>> {
    let ctx = crate::lake::new_context();
    if !lake.register(&ctx, "quarantine").await? {
        return Ok(HashSet::new());
    }
    // A table written before fingerprints existed has nothing to match.
    let table = ctx.table("quarantine").await?;
    if table
        .schema()
        .field_with_unqualified_name("fingerprint")
        .is_err()
    {
        return Ok(HashSet::new());
    }
    let probe = StringArray::from_iter_values(fingerprints);
    let schema = Arc::new(Schema::new(vec![Field::new("fp", DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(probe)])?;
    ctx.register_table(
        "probe",
        Arc::new(datafusion::datasource::MemTable::try_new(
            schema,
            vec![vec![batch]],
        )?),
    )?;
    let mut out = HashSet::new();
    for b in ctx
        .sql("SELECT DISTINCT q.fingerprint FROM quarantine q JOIN probe p ON q.fingerprint = p.fp")
        .await?
        .collect()
        .await?
    {
        let col = crate::lake::strings(b.column(0))?;
        out.extend(col.iter().flatten().map(str::to_string));
    }
    Ok(out)
}
