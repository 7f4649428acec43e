//! The source side of the contract: streams, their cursors, and the sink
//! that receives normalized pages.

use std::fmt;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use quanyu_schemas::{PiiHasher, QuarantineRow, TableKind};

use crate::error::ConnectorError;
use crate::window::{Window, WindowPlan};

/// Names one stream of one connector for one shop / corp.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// Connector name (`taobao`).
    pub connector: String,
    /// Stream name (`orders`).
    pub stream: String,
    /// The shop, corp or other scope the stream reads (`shop-1`).
    pub scope: String,
}

impl StreamId {
    /// A stream id.
    pub fn new(connector: &str, stream: &str, scope: &str) -> Self {
        StreamId {
            connector: connector.into(),
            stream: stream.into(),
            scope: scope.into(),
        }
    }

    /// The Delta application-transaction id under which this stream's cursor
    /// is committed.
    pub fn app_id(&self) -> String {
        format!("quanyu:{}", self)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{}", self.connector, self.stream, self.scope)
    }
}

/// How a stream advances.
#[derive(Debug, Clone, Copy)]
pub enum CursorMode {
    /// By modification-time windows (orders on every marketplace).
    Windows(WindowPlan),
    /// A full snapshot each run, stamped with the run's time (WeCom contacts:
    /// the API has no modified-since filter). The window passed to `pull` is
    /// `[previous snapshot, now)`.
    Snapshot,
    /// Pulled once, ever (a file identified by its content hash): skipped
    /// when its cursor is committed.
    Once,
    /// By an increasing integer (an auto-increment id): the runner calls
    /// [`Stream::pull_after`] with the last committed value until no rows
    /// are left.
    Sequence,
}

/// The most of a rejected record quarantine keeps (a record with a 10 MB
/// cell keeps its first 16 KiB and says how long it was).
pub const QUARANTINE_RAW_BYTES: usize = 16 * 1024;

/// The most of a rejected record's key quarantine keeps.
pub const QUARANTINE_KEY_BYTES: usize = 256;

/// `text` cut to at most `max` bytes at a character boundary, saying how
/// long it was. Cut after scrubbing, so no phone is cut into a visible
/// part.
fn bounded(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes in all]", &text[..end], text.len())
}

/// Everything a stream needs to normalize records in one run.
#[derive(Debug, Clone)]
pub struct PullContext {
    /// The run these rows belong to.
    pub run_id: String,
    /// When the run started: stamped on every row.
    pub ingested_at: DateTime<Utc>,
    /// Hashes phones with the lake key.
    pub hasher: PiiHasher,
}

impl PullContext {
    /// A quarantine row for a record of `stream` that could not be mapped;
    /// phones in `raw`, the key and the reason are replaced by their hashes.
    pub fn reject(
        &self,
        stream: &StreamId,
        table: TableKind,
        key: Option<String>,
        raw: &str,
        reason: String,
    ) -> QuarantineRow {
        QuarantineRow {
            source: stream.to_string(),
            target_table: table.name().into(),
            record_key: key.map(|k| bounded(self.hasher.scrub(&k), QUARANTINE_KEY_BYTES)),
            raw: bounded(self.hasher.scrub(raw), QUARANTINE_RAW_BYTES),
            reason: bounded(self.hasher.scrub(&reason), QUARANTINE_RAW_BYTES),
            field: None,
        }
    }

    /// A quarantine row for one bad field of a record that landed without
    /// it: the value is kept only as its keyed hash.
    pub fn field_problem(
        &self,
        stream: &StreamId,
        table: TableKind,
        key: Option<String>,
        problem: &crate::declarative::FieldProblem,
    ) -> QuarantineRow {
        QuarantineRow {
            source: stream.to_string(),
            target_table: table.name().into(),
            record_key: key.map(|k| bounded(self.hasher.scrub(&k), QUARANTINE_KEY_BYTES)),
            raw: format!(
                "{}=hash:{}",
                problem.field,
                self.hasher.hash(&problem.value)
            ),
            reason: self.hasher.scrub(&format!(
                "{}: {}; the row landed without it",
                problem.field, problem.reason
            )),
            field: Some(problem.field.clone()),
        }
    }
}

/// One page after normalization.
#[derive(Debug, Default)]
pub struct NormalizedPage {
    /// Canonical rows (in the stream's table schema); `None` when the page had none.
    pub batch: Option<RecordBatch>,
    /// Rows of companion tables that land with the page (an order's lines,
    /// [`TableKind::companions`]): written before the page's own rows.
    pub extra: Vec<(TableKind, RecordBatch)>,
    /// Records rejected, with reasons.
    pub quarantine: Vec<QuarantineRow>,
    /// Records received on this page (landed + quarantined).
    pub records_in: usize,
}

/// An error from the sink (the lake), carried through the stream.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// What a pull gives: its report (and what else the pull hands back), or
/// why it stopped.
pub type PullResult<T = PullReport> = Result<T, PullError>;

/// Why a pull stopped.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The platform side failed.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The sink (lake) failed.
    #[error("sink: {0}")]
    Sink(SinkError),
}

/// Receives normalized pages, in order.
#[async_trait]
pub trait PageSink: Send {
    /// Take one page. An error stops the pull.
    async fn page(&mut self, page: NormalizedPage) -> Result<(), SinkError>;
}

/// What one window's pull saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// Pages fetched.
    pub pages: u64,
    /// Records received.
    pub records: u64,
    /// The platform's own count for the window, when it reports one.
    pub reported_total: Option<u64>,
}

/// One stream of a connector for one scope.
#[async_trait]
pub trait Stream: Send + Sync {
    /// Which stream this is.
    fn id(&self) -> &StreamId;

    /// The canonical table it lands in.
    fn table(&self) -> TableKind;

    /// How it advances.
    fn cursor_mode(&self) -> CursorMode;

    /// Pull every record modified in `window`, page by page, into `sink`.
    /// Must deliver every record of the window at least once (the lake
    /// deduplicates by key) and end when the platform says the window is done.
    async fn pull(&self, window: Window, ctx: &PullContext, sink: &mut dyn PageSink) -> PullResult;

    /// (requests, retries) made so far by this stream's client.
    fn request_stats(&self) -> (u64, u64);

    /// For [`CursorMode::Sequence`] streams: pull one batch of records whose
    /// cursor value is greater than `after` (all when `None`); returns the
    /// report and the greatest cursor value delivered (`None` when the
    /// batch was empty: the stream is caught up).
    async fn pull_after(
        &self,
        after: Option<i64>,
        ctx: &PullContext,
        sink: &mut dyn PageSink,
    ) -> PullResult<(PullReport, Option<i64>)> {
        let _ = (after, ctx, sink);
        Err(PullError::Sink(
            format!("{} does not advance by sequence", self.id()).into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::LakeKey;

    /// A pull context keyed by `[key; 32]`, and an import stream.
    fn context(key: u8) -> (PullContext, StreamId) {
        let ctx = PullContext {
            run_id: "r".into(),
            ingested_at: Utc::now(),
            hasher: PiiHasher::new(&LakeKey::from_bytes([key; 32])),
        };
        (ctx, StreamId::new("import", "calls", "f"))
    }

    /// A phone in any written form leaves neither the raw record nor the
    /// key nor the reason of a quarantine row; each names its hash.
    #[test]
    fn a_rejection_keeps_no_phone_in_raw_key_or_reason() {
        let (ctx, stream) = context(9);
        let hasher = &ctx.hasher;
        let tagged = format!("phone:{}", hasher.phone_text("13912340101").unwrap());
        let q = ctx.reject(
            &stream,
            TableKind::Touchpoints,
            Some("139-1234-0101".into()),
            r#"{"tel":"＋86 139 1234 0101"}"#,
            "no call id for (+86) 139.1234.0101".into(),
        );
        for (what, text) in [
            ("key", q.record_key.as_deref().unwrap()),
            ("raw", &q.raw),
            ("reason", &q.reason),
        ] {
            assert!(!text.contains("1234"), "{what}: {text}");
            assert!(text.contains(&tagged), "{what}: {text}");
        }
    }

    /// A record with a 10 MB cell: quarantine keeps 16 KiB of it (cut after
    /// scrubbing: a phone at the cut is hashed whole) and its length.
    #[test]
    fn a_huge_rejected_record_is_kept_in_part() {
        let (ctx, stream) = context(3);
        let hasher = &ctx.hasher;
        let mut raw = "x".repeat(QUARANTINE_RAW_BYTES - 5);
        raw.push_str("139 1234 0101");
        raw.push_str(&"y".repeat(10 << 20));
        let q = ctx.reject(
            &stream,
            TableKind::Touchpoints,
            Some("k".repeat(1000)),
            &raw,
            "too long".into(),
        );
        assert!(q.raw.len() < QUARANTINE_RAW_BYTES + 64, "{}", q.raw.len());
        assert!(q
            .raw
            .ends_with(&format!("[{} bytes in all]", hasher.scrub(&raw).len())));
        assert!(!q.raw.contains("139 12") && !q.raw.contains("1391"));
        assert!(q.record_key.unwrap().len() < QUARANTINE_KEY_BYTES + 32);
    }
}
