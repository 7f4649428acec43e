//! `quanyu status`: each stream's cursor and last outcome, the recent stream
//! runs, and the warnings an operator must see (failed streams, windows that
//! fetched fewer records than the platform reported).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use quanyu_connector_sdk::StreamId;
use quanyu_schemas::time::format_beijing;

use crate::lake::Lake;

/// One stream's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStatus {
    /// The stream.
    pub stream: String,
    /// Its committed cursor (the end of the last committed window).
    pub cursor: Option<DateTime<Utc>>,
    /// Outcome of its latest run.
    pub last_status: String,
    /// Completeness of its latest run.
    pub last_completeness: String,
    /// When its latest run started.
    pub last_run_at: Option<DateTime<Utc>>,
}

/// What `quanyu status` shows.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Every stream that ever ran, by name.
    pub streams: Vec<StreamStatus>,
    /// The most recent stream runs, newest first, as a table.
    pub recent: Vec<RecordBatch>,
    /// Warnings about the latest run of each stream.
    pub warnings: Vec<String>,
}

/// Read the status of the lake at `lake`, with the `recent` latest stream runs.
pub async fn status(lake: &Lake, recent: usize) -> Result<Status> {
    let mut unfinished = Vec::new();
    let active = lake.writer_active();
    for (_, run) in crate::runs::unfinished_runs(lake)? {
        let streams: Vec<String> = run
            .streams
            .iter()
            .map(|(c, s, sc)| format!("{c}.{s}@{sc}"))
            .collect();
        unfinished.push(if active {
            format!(
                "run {} is under way (started {}): {}",
                run.run_id,
                format_beijing(run.started_at),
                streams.join(", ")
            )
        } else {
            format!(
                "run {} started {} did not finish (killed or crashed): {}; its streams resume from their committed cursors at the next run",
                run.run_id,
                format_beijing(run.started_at),
                streams.join(", ")
            )
        });
    }
    if lake.try_open("runs").await?.is_none() {
        return Ok(Status {
            warnings: unfinished,
            ..Status::default()
        });
    }
    // The latest run of every stream.
    let latest = crate::sql::query(
        lake,
        "SELECT connector, stream, scope, status, coalesce(completeness, 'unreported') AS completeness, \
                completeness_note, error, started_at \
         FROM (SELECT *, row_number() OVER (PARTITION BY connector, stream, scope ORDER BY started_at DESC) AS rn FROM runs) \
         WHERE rn = 1 ORDER BY connector, stream, scope",
    )
    .await?;
    let mut out = Status {
        warnings: unfinished,
        ..Status::default()
    };
    for b in &latest {
        let col = |n: &str| text_column(b, n);
        let (conn, stream, scope) = (col("connector")?, col("stream")?, col("scope")?);
        let (st, comp, note, err) = (
            col("status")?,
            col("completeness")?,
            col("completeness_note")?,
            col("error")?,
        );
        let started = arrow::compute::cast(
            b.column_by_name("started_at").context("no started_at")?,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let started = started.as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let id = StreamId::new(conn.value(i), stream.value(i), scope.value(i));
            let mut cursor = None;
            for raw in [
                "raw_orders",
                "raw_contacts",
                "raw_touchpoints",
                "raw_refunds",
            ] {
                if let Some(v) = lake.txn_version(raw, &id.app_id()).await? {
                    cursor = DateTime::from_timestamp_millis(v);
                }
            }
            if st.value(i) != "succeeded" {
                out.warnings.push(format!(
                    "{id}: last run {}: {}",
                    if st.value(i) == "interrupted" {
                        "was interrupted"
                    } else {
                        "failed"
                    },
                    if err.is_valid(i) { err.value(i) } else { "" }
                ));
            }
            if comp.value(i) == "short" {
                out.warnings.push(format!(
                    "{id}: completeness check: {}",
                    if note.is_valid(i) { note.value(i) } else { "" }
                ));
            }
            out.streams.push(StreamStatus {
                stream: id.to_string(),
                cursor,
                last_status: st.value(i).to_string(),
                last_completeness: comp.value(i).to_string(),
                last_run_at: DateTime::from_timestamp_micros(started.value(i)),
            });
        }
    }
    let behind = crate::identity::build::behind(lake).await?;
    if !behind.is_empty() {
        out.warnings.push(format!(
            "identity has not read the latest rows of {} (the last build failed or was interrupted): run `quanyu run` or `quanyu identity rebuild`",
            behind.join(", ")
        ));
    }
    out.recent = crate::sql::query(
        lake,
        &format!(
            "SELECT run_id, connector || '.' || stream || '@' || scope AS stream, status, rows_in, rows_out, \
                    rows_quarantined AS quarantined, reported_total AS reported, coalesce(completeness, 'unreported') AS completeness, \
                    requests, retries, started_at \
             FROM runs ORDER BY started_at DESC LIMIT {recent}"
        ),
    )
    .await?;
    Ok(out)
}

/// A column as UTF-8 text, whatever string type the engine produced.
fn text_column(b: &RecordBatch, name: &str) -> Result<StringArray> {
    let col = b
        .column_by_name(name)
        .with_context(|| format!("runs query returned no {name}"))?;
    Ok(arrow::compute::cast(col, &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

/// Render the status for a terminal.
pub fn render(s: &Status) -> Result<String> {
    let mut out = String::new();
    if s.streams.is_empty() {
        writeln!(out, "no runs yet: run `quanyu run` or `quanyu demo`")?;
        for w in &s.warnings {
            writeln!(out, "  WARNING {w}")?;
        }
        return Ok(out);
    }
    writeln!(out, "Streams (cursor in Beijing time):")?;
    for st in &s.streams {
        writeln!(
            out,
            "  {:<40} cursor {:<19}  last run {:<9} {:<10} at {}",
            st.stream,
            st.cursor.map(format_beijing).unwrap_or_else(|| "-".into()),
            st.last_status,
            st.last_completeness,
            st.last_run_at.map(format_beijing).unwrap_or_default(),
        )?;
    }
    writeln!(out, "\nRecent stream runs:")?;
    let mut table = Vec::new();
    crate::sql::write(&s.recent, crate::sql::Format::Table, &mut table)?;
    out.push_str(&String::from_utf8_lossy(&table));
    if s.warnings.is_empty() {
        writeln!(out, "\nNo warnings.")?;
    } else {
        writeln!(out, "\nWarnings:")?;
        for w in &s.warnings {
            writeln!(out, "  WARNING {w}")?;
        }
    }
    Ok(out)
}
