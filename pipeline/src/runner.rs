//! The run loop: for each stream, plan windows from its committed cursor,
//! pull page by page into bounded chunks, commit each chunk to the raw table
//! (the last one of a window with the new cursor), record the run, then
//! refresh the current tables.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use arrow::array::RecordBatch;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use quanyu_connector_sdk::source::SinkError;
use quanyu_connector_sdk::{
    plan_windows, CursorMode, NormalizedPage, PageSink, PullContext, PullError, PullReport,
    PullResult, Stream, Window,
};
use quanyu_schemas::tables::quarantine_schema;
use quanyu_schemas::{QuarantineRow, TableKind};

use crate::lake::Lake;
use crate::runs::{runs_batch, runs_schema, RunRecord};

/// How a run behaves.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Rows buffered before a chunk is committed (memory bound).
    pub chunk_rows: usize,
    /// Draw progress bars (only when stderr is a terminal).
    pub progress: bool,
    /// Streams pulled at once (each within its own rate limits).
    pub parallel_streams: usize,
    /// Windows of one stream pulled at once (within its rate limits); pages
    /// land as they come, the cursor moves past windows finished in order.
    pub windows_at_once: usize,
}

/// Pages per window pulled at once that may wait for the run loop.
const PAGES_AHEAD: usize = 4;

/// How far past the first unfinished window pulls may start: bounds what a
/// crash makes the next run pull again while one window is stuck retrying.
const MAX_WINDOW_SPREAD: usize = 512;

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            chunk_rows: 25_000,
            progress: true,
            parallel_streams: 4,
            windows_at_once: 32,
        }
    }
}

pub use crate::lake::raw_table;

/// The committed cursor of a stream, if any.
pub async fn stream_cursor(lake: &Lake, stream: &dyn Stream) -> Result<Option<DateTime<Utc>>> {
    let v = lake
        .txn_version(&raw_table(stream.table()), &stream.id().app_id())
        .await?;
    Ok(v.and_then(DateTime::from_timestamp_millis))
}

/// A background commit's result: the raw tables as it left them (the
/// stream's, then its companions'), and the rows it landed.
type Landed = (Option<DeltaTable>, CompanionTables, usize);

/// Per companion table (an order's lines), its raw table as the last
/// commit left it.
type CompanionTables = Vec<(TableKind, Option<DeltaTable>)>;

struct ChunkSink<'a> {
    lake: &'a Lake,
    table: TableKind,
    run_id: String,
    chunk_rows: usize,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// Rows landed or pending since the cursor was last committed.
    rows_since_cursor: usize,
    quarantine: Vec<QuarantineRow>,
    rows_in: u64,
    rows_out: u64,
    quarantined: u64,
    progress: ProgressBar,
    /// The commit being written while the next chunk is pulled: the raw
    /// table as it leaves it, and the rows it lands.
    writing: Option<tokio::task::JoinHandle<Result<Landed>>>,
    /// The raw table as the last commit left it (not reopened per commit).
    raw: Option<DeltaTable>,
    /// The companion tables' rows pending (an order's lines), by table.
    companions: Vec<(TableKind, Vec<RecordBatch>)>,
    /// The companion tables as the last commit left them; with the commit
    /// while it runs.
    companion_tables: CompanionTables,
}

impl ChunkSink<'_> {
    /// Commit what is pending; with `cursor`, in the same commit as the rows.
    /// Quarantine rows are committed first, so a crash can repeat them but
    /// never lose them (and a repeated rejection is not added twice). The commit runs in the background while the pull
    /// goes on; commits stay in order (each waits for the one before), so a
    /// cursor is never committed before the rows that precede it.
    async fn flush(&mut self, cursor: Option<(&str, i64)>) -> Result<()> {
        if !self.quarantine.is_empty() {
            let rows = std::mem::take(&mut self.quarantine);
            crate::quarantine::append_new(self.lake, &self.run_id, rows).await?;
        }
        if self.pending.is_empty() && cursor.is_none() {
            return Ok(());
        }
        self.settle().await?;
        let batches = std::mem::take(&mut self.pending);
        let rows = std::mem::take(&mut self.pending_rows);
        let lake = self.lake.clone();
        let name = raw_table(self.table);
        let schema = self.table.schema();
        let mut cache = self.raw.take();
        let companions = std::mem::take(&mut self.companions);
        let mut tables = std::mem::take(&mut self.companion_tables);
        let cursor = cursor.map(|(app, v)| (app.to_string(), v));
        if cursor.is_some() {
            self.rows_since_cursor = 0;
        }
        self.writing = Some(tokio::spawn(async move {
            // Companion rows (an order's lines) first: a crash before the
            // stream's own commit re-pulls them, and the key collapses them.
            for (kind, pending) in companions.into_iter().filter(|c| !c.1.is_empty()) {
                let at = match tables.iter().position(|t| t.0 == kind) {
                    Some(at) => at,
                    None => {
                        tables.push((kind, None));
                        tables.len() - 1
                    }
                };
                let raw = &mut tables[at].1;
                lake.append_cached(raw, &raw_table(kind), &kind.schema(), pending, None)
                    .await?;
            }
            let txn = cursor.as_ref().map(|(a, v)| (a.as_str(), *v));
            lake.append_cached(&mut cache, &name, &schema, batches, txn)
                .await?;
            Ok((cache, tables, rows))
        }));
        Ok(())
    }

    /// Wait for the commit in the background, if any.
    async fn settle(&mut self) -> Result<()> {
        if let Some(w) = self.writing.take() {
            let (cache, tables, rows) = w
                .await
                .map_err(|e| anyhow::anyhow!("lake write task: {e}"))??;
            self.raw = cache;
            self.companion_tables = tables;
            self.rows_out += rows as u64;
        }
        Ok(())
    }
}

#[async_trait]
impl PageSink for ChunkSink<'_> {
    async fn page(&mut self, page: NormalizedPage) -> Result<(), SinkError> {
        self.rows_in += page.records_in as u64;
        // Field-level problems (the row landed without one value) are
        // quarantined but do not count as rejected rows.
        self.quarantined += page.quarantine.iter().filter(|q| q.field.is_none()).count() as u64;
        self.quarantine.extend(page.quarantine);
        for (kind, b) in page.extra {
            match self.companions.iter_mut().find(|c| c.0 == kind) {
                Some(c) => c.1.push(b),
                None => self.companions.push((kind, vec![b])),
            }
        }
        if let Some(b) = page.batch {
            self.pending_rows += b.num_rows();
            self.rows_since_cursor += b.num_rows();
            self.pending.push(b);
        }
        self.progress.set_position(self.rows_in);
        if self.pending_rows >= self.chunk_rows {
            self.flush(None)
                .await
                .map_err(|e| -> SinkError { e.into() })?;
        }
        Ok(())
    }
}

/// Pull one stream from its cursor to now.
pub async fn run_stream(
    lake: &Lake,
    stream: &Arc<dyn Stream>,
    ctx: &PullContext,
    opts: RunOptions,
    bar: ProgressBar,
) -> RunRecord {
    let started_at = Utc::now();
    let id = stream.id().clone();
    let mut record = RunRecord::new(&ctx.run_id, &id, started_at);
    let (req0, retry0) = stream.request_stats();
    let result = pull_windows(lake, stream, ctx, opts, &bar, &mut record).await;
    let (req1, retry1) = stream.request_stats();
    record.requests = (req1 - req0) as i64;
    record.retries = (retry1 - retry0) as i64;
    record.finished_at = Utc::now();
    if let Err(e) = result {
        record.status = "failed".into();
        record.completeness = "incomplete".into();
        record.error = Some(format!("{e:#}"));
        bar.abandon_with_message(format!("failed: {e}"));
    } else {
        bar.finish_with_message(format!(
            "{} rows, {} quarantined",
            record.rows_out, record.rows_quarantined
        ));
    }
    record
}

async fn pull_windows(
    lake: &Lake,
    stream: &Arc<dyn Stream>,
    ctx: &PullContext,
    opts: RunOptions,
    bar: &ProgressBar,
    record: &mut RunRecord,
) -> Result<()> {
    let cursor = stream_cursor(lake, stream.as_ref()).await?;
    let now = Utc::now();
    let windows = match stream.cursor_mode() {
        CursorMode::Windows(plan) => plan_windows(&plan, cursor, now),
        CursorMode::Snapshot => vec![Window {
            start: cursor.unwrap_or(DateTime::UNIX_EPOCH),
            end: now,
        }],
        // Imported already: nothing to do.
        CursorMode::Once if cursor.is_some() => vec![],
        CursorMode::Once => vec![Window {
            start: DateTime::UNIX_EPOCH,
            end: now,
        }],
        CursorMode::Sequence => vec![],
    };
    let sequence = matches!(stream.cursor_mode(), CursorMode::Sequence);
    record.window_start = windows.first().map(|w| w.start);
    let app_id = stream.id().app_id();
    let mut sink = ChunkSink {
        lake,
        table: stream.table(),
        run_id: ctx.run_id.clone(),
        chunk_rows: opts.chunk_rows.max(1),
        pending: vec![],
        pending_rows: 0,
        rows_since_cursor: 0,
        quarantine: vec![],
        rows_in: 0,
        rows_out: 0,
        quarantined: 0,
        progress: bar.clone(),
        writing: None,
        raw: None,
        companions: Vec::new(),
        companion_tables: Vec::new(),
    };
    let n = windows.len();
    let mut completeness = Completeness::default();
    let mut last_commit = Instant::now();
    let mut outcome = Ok(());
    // Windows are pulled side by side (a platform that allows only
    // 30-minute windows makes a month 1,488 of them, each a round trip and,
    // under faults, its retries), and their pages land as they come. The
    // cursor moves only to the end of the windows finished without a gap,
    // so a crash re-pulls every window after it (the lake collapses what
    // lands twice).
    let at_once = opts.windows_at_once.max(1);
    let (events, mut inbox) = tokio::sync::mpsc::channel::<WindowEvent>(PAGES_AHEAD * at_once);
    let mut tasks = Vec::new();
    let mut started = 0;
    let mut running = 0;
    let mut finished = std::collections::BTreeSet::new();
    let mut prefix = 0;
    let mut cursor_moved = false;
    // The earliest window that failed: later ones stop, earlier ones finish.
    let mut failed_at: Option<(usize, PullError)> = None;
    loop {
        while failed_at.is_none()
            && running < at_once
            && started < n
            && started < prefix + MAX_WINDOW_SPREAD
        {
            tasks.push(start_window(
                stream,
                ctx,
                started,
                windows[started],
                events.clone(),
            ));
            started += 1;
            running += 1;
        }
        let settled = match &failed_at {
            Some((f, _)) => prefix >= *f,
            None => running == 0,
        };
        if settled {
            break;
        }
        let Some(event) = inbox.recv().await else {
            break;
        };
        match event {
            WindowEvent::Page(page) => {
                if let Err(e) = sink.page(page).await {
                    failed_at = Some((0, PullError::Sink(e)));
                    break;
                }
            }
            WindowEvent::Done(i, result) => {
                running -= 1;
                match result {
                    Ok(report) => {
                        record.pages += report.pages as i64;
                        completeness.add(windows[i], &report);
                        finished.insert(i);
                        while finished.remove(&prefix) {
                            prefix += 1;
                            cursor_moved = true;
                        }
                        bar.set_message(format!("window {prefix}/{n}"));
                    }
                    Err(e) if failed_at.as_ref().is_none_or(|(f, _)| i < *f) => {
                        for t in tasks.iter().skip(i + 1) {
                            t.abort();
                        }
                        failed_at = Some((i, e));
                    }
                    Err(_) => {}
                }
            }
        }
        // Commit the cursor with the rows when a chunk is full, every few
        // seconds, and at the end; a crash re-pulls at most those windows.
        if cursor_moved
            && failed_at.is_none()
            && (prefix == n
                || sink.rows_since_cursor >= sink.chunk_rows
                || last_commit.elapsed().as_secs() >= 5)
        {
            let end = windows[prefix - 1].end;
            sink.flush(Some((&app_id, end.timestamp_millis()))).await?;
            record.window_end = Some(end);
            last_commit = Instant::now();
            cursor_moved = false;
        }
    }
    if let Some((_, e)) = failed_at {
        outcome = Err(pull_failure(e));
    }
    // After a failure, the pulls still running stop; what they landed
    // stays (the cursor does not cover it). A sink failure stops at once.
    for t in tasks {
        t.abort();
    }
    if sequence {
        // Batches after the last committed value; each batch's rows and its
        // highest value are committed together.
        let mut after = lake
            .txn_version(&raw_table(stream.table()), &app_id)
            .await?;
        loop {
            match stream.pull_after(after, ctx, &mut sink).await {
                Ok((report, next)) => {
                    record.pages += report.pages as i64;
                    let Some(next) = next else { break };
                    sink.flush(Some((&app_id, next))).await?;
                    after = Some(next);
                }
                Err(e) => {
                    outcome = Err(pull_failure(e));
                    break;
                }
            }
        }
        sink.flush(None).await?;
        record.window_end = Some(Utc::now());
    }
    if outcome.is_err() {
        // Land what was pulled so far, with the cursor at the end of the
        // windows finished in order (their rows are all in the sink); the
        // rest is pulled again next time and the lake collapses repeats.
        if cursor_moved {
            let end = windows[prefix - 1].end;
            sink.flush(Some((&app_id, end.timestamp_millis()))).await?;
            record.window_end = Some(end);
        } else {
            sink.flush(None).await?;
        }
    }
    sink.settle().await?;
    record.rows_in = sink.rows_in as i64;
    record.rows_out = sink.rows_out as i64;
    record.rows_quarantined = sink.quarantined as i64;
    completeness.apply(stream.id(), record);
    outcome
}

/// What a window pulled in the background reports: a page, or its end
/// (its index and report).
enum WindowEvent {
    Page(NormalizedPage),
    Done(usize, PullResult),
}

/// Hands a window's pages to the run loop (waits while the loop is
/// PAGES_AHEAD pages per window behind).
struct ChannelSink(tokio::sync::mpsc::Sender<WindowEvent>);

#[async_trait]
impl PageSink for ChannelSink {
    async fn page(&mut self, page: NormalizedPage) -> Result<(), SinkError> {
        self.0
            .send(WindowEvent::Page(page))
            .await
            .map_err(|_| "the run stopped taking pages".into())
    }
}

/// Start pulling window `i` (`w`) of `stream` in the background; it ends
/// with a `Done` event, also when the pull panics.
fn start_window(
    stream: &Arc<dyn Stream>,
    ctx: &PullContext,
    i: usize,
    w: Window,
    events: tokio::sync::mpsc::Sender<WindowEvent>,
) -> tokio::task::JoinHandle<()> {
    use futures::FutureExt;
    let stream = stream.clone();
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let mut sink = ChannelSink(events.clone());
        let pulled = std::panic::AssertUnwindSafe(stream.pull(w, &ctx, &mut sink))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(PullError::Sink("the pull of a window panicked".into())));
        let _ = events.send(WindowEvent::Done(i, pulled)).await;
    })
}

/// A failed pull as the run's error.
fn pull_failure(e: PullError) -> anyhow::Error {
    match e {
        PullError::Connector(e) => anyhow::Error::new(e),
        PullError::Sink(e) => anyhow::anyhow!("lake write failed: {e}"),
    }
}

/// Fetched versus reported counts over a run's windows.
#[derive(Default)]
struct Completeness {
    reported: Option<i64>,
    windows: usize,
    short: Vec<String>,
}

impl Completeness {
    fn add(&mut self, w: Window, report: &PullReport) {
        let Some(total) = report.reported_total else {
            return;
        };
        self.windows += 1;
        *self.reported.get_or_insert(0) += total as i64;
        if report.records < total {
            self.short.push(format!(
                "[{} .. {}) fetched {} of {}",
                w.start.format("%Y-%m-%d %H:%M"),
                w.end.format("%Y-%m-%d %H:%M"),
                report.records,
                total
            ));
        }
    }

    fn apply(self, stream: &quanyu_connector_sdk::StreamId, record: &mut RunRecord) {
        record.reported_total = self.reported;
        if self.reported.is_none() {
            record.completeness = "unreported".into();
        } else if self.short.is_empty() {
            record.completeness = "complete".into();
        } else {
            record.completeness = "short".into();
            let note = format!(
                "{} of {} windows fetched fewer records than the platform reported: {}",
                self.short.len(),
                self.windows,
                self.short
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            tracing::warn!(stream = %stream, "completeness check: {note}");
            record.completeness_note = Some(note);
        }
    }
}

/// Run every stream and record each in `runs`; the caller (the sync)
/// refreshes the current tables they touched. Returns the run records.
pub async fn run_streams(
    lake: &Lake,
    streams: &[Arc<dyn Stream>],
    ctx: &PullContext,
    opts: RunOptions,
) -> Result<Vec<RunRecord>> {
    let multi = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style =
        ProgressStyle::with_template("{spinner} {prefix:<32} {pos:>9} records {per_sec:>12} {msg}")
            .expect("valid template");
    // Every table the streams write exists before they run side by side
    // (creating one is not a commit that can be retried).
    // Their companions (an order's lines) too.
    let mut created = Vec::new();
    for stream in streams {
        let kind = stream.table();
        for table in std::iter::once(&kind).chain(kind.companions()) {
            if !created.contains(table) {
                created.push(*table);
                lake.table(&raw_table(*table), &table.schema()).await?;
            }
        }
    }
    lake.table("runs", &runs_schema()).await?;
    lake.table("quarantine", &quarantine_schema()).await?;
    // Runs killed before they recorded their results get their row now;
    // this one is marked until its own results are in.
    crate::runs::record_interrupted(lake).await?;
    let ids: Vec<_> = streams.iter().map(|s| s.id().clone()).collect();
    let marker = crate::runs::RunMarker::start(lake, &ctx.run_id, &ids)?;
    // Boxed, collected futures: a lazy map of async closures makes the
    // run's future one a spawned task cannot prove Send for (a rustc
    // limitation with higher-ranked closures).
    let runs: Vec<futures::future::BoxFuture<'_, Result<RunRecord>>> = streams.iter().map(|stream| -> futures::future::BoxFuture<'_, Result<RunRecord>> {
        let bar = multi.add(
            ProgressBar::new_spinner()
                .with_style(style.clone())
                .with_prefix(stream.id().to_string()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Box::pin(async move {
            let rec = run_stream(lake, stream, ctx, opts, bar).await;
            tracing::info!(
                stream = %stream.id(), status = %rec.status, rows_in = rec.rows_in, rows_out = rec.rows_out,
                quarantined = rec.rows_quarantined, pages = rec.pages, requests = rec.requests, retries = rec.retries,
                error = rec.error.as_deref().unwrap_or(""), "stream finished"
            );
            lake.append(
                "runs",
                &runs_schema(),
                vec![runs_batch(std::slice::from_ref(&rec))],
                None,
            )
            .await?;
            Ok::<_, anyhow::Error>(rec)
        })
    }).collect();
    // Concurrent appends to one raw table commit one after another (Delta's
    // optimistic concurrency: appends never conflict).
    let records: Vec<RunRecord> = futures::stream::iter(runs)
        .buffered(opts.parallel_streams.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    marker.finish()?;
    Ok(records)
}
