//! The `runs` table: one row per stream run, with its window, counts,
//! completeness and outcome.

use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

/// What one stream run did.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The run.
    pub run_id: String,
    /// Connector name.
    pub connector: String,
    /// Stream name.
    pub stream: String,
    /// Shop / corp.
    pub scope: String,
    /// Start of the first window pulled.
    pub window_start: Option<DateTime<Utc>>,
    /// End of the last window committed.
    pub window_end: Option<DateTime<Utc>>,
    /// Records received from the platform.
    pub rows_in: i64,
    /// Rows landed.
    pub rows_out: i64,
    /// Records quarantined.
    pub rows_quarantined: i64,
    /// Pages fetched.
    pub pages: i64,
    /// HTTP attempts made.
    pub requests: i64,
    /// Attempts retried.
    pub retries: i64,
    /// `succeeded` or `failed`.
    pub status: String,
    /// The error, when failed (never contains secrets).
    pub error: Option<String>,
    /// Sum of the platform's reported totals over the windows that report one.
    pub reported_total: Option<i64>,
    /// `complete` (every reported total was fetched), `short` (some window
    /// fetched fewer records than the platform reported), `unreported` (the
    /// platform reports no totals) or `incomplete` (the run failed).
    pub completeness: String,
    /// For `short`: which windows, what was fetched and reported.
    pub completeness_note: Option<String>,
    /// When the stream run started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

/// Schema of `runs`.
pub fn runs_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        Arc::new(Schema::new(vec![
            Field::new("run_id", DataType::Utf8, false),
            Field::new("connector", DataType::Utf8, false),
            Field::new("stream", DataType::Utf8, false),
            Field::new("scope", DataType::Utf8, false),
            Field::new("window_start", ts(), true),
            Field::new("window_end", ts(), true),
            Field::new("rows_in", DataType::Int64, false),
            Field::new("rows_out", DataType::Int64, false),
            Field::new("rows_quarantined", DataType::Int64, false),
            Field::new("pages", DataType::Int64, false),
            Field::new("requests", DataType::Int64, false),
            Field::new("retries", DataType::Int64, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
            Field::new("started_at", ts(), false),
            Field::new("finished_at", ts(), false),
            // Added with the completeness check; nullable so older lakes merge.
            Field::new("reported_total", DataType::Int64, true),
            Field::new("completeness", DataType::Utf8, true),
            Field::new("completeness_note", DataType::Utf8, true),
        ]))
    })
    .clone()
}

/// Rows of `runs`.
pub fn runs_batch(records: &[RunRecord]) -> RecordBatch {
    let s = |f: fn(&RunRecord) -> &str| {
        let mut b = StringBuilder::new();
        records.iter().for_each(|r| b.append_value(f(r)));
        Arc::new(b.finish()) as ArrayRef
    };
    let i = |f: fn(&RunRecord) -> i64| {
        let mut b = Int64Builder::new();
        records.iter().for_each(|r| b.append_value(f(r)));
        Arc::new(b.finish()) as ArrayRef
    };
    let t = |f: fn(&RunRecord) -> Option<DateTime<Utc>>| {
        let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        records
            .iter()
            .for_each(|r| b.append_option(f(r).map(|t| t.timestamp_micros())));
        Arc::new(b.finish()) as ArrayRef
    };
    let opt_s = |f: fn(&RunRecord) -> Option<&str>| {
        let mut b = StringBuilder::new();
        records.iter().for_each(|r| b.append_option(f(r)));
        Arc::new(b.finish()) as ArrayRef
    };
    let mut reported = Int64Builder::new();
    records
        .iter()
        .for_each(|r| reported.append_option(r.reported_total));
    RecordBatch::try_new(
        runs_schema(),
        vec![
            s(|r| &r.run_id),
            s(|r| &r.connector),
            s(|r| &r.stream),
            s(|r| &r.scope),
            t(|r| r.window_start),
            t(|r| r.window_end),
            i(|r| r.rows_in),
            i(|r| r.rows_out),
            i(|r| r.rows_quarantined),
            i(|r| r.pages),
            i(|r| r.requests),
            i(|r| r.retries),
            s(|r| &r.status),
            opt_s(|r| r.error.as_deref()),
            t(|r| Some(r.started_at)),
            t(|r| Some(r.finished_at)),
            Arc::new(reported.finish()),
            opt_s(|r| Some(r.completeness.as_str())),
            opt_s(|r| r.completeness_note.as_deref()),
        ],
    )
    .expect("columns match the runs schema")
}
