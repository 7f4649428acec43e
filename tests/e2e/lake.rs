//! The engine in-process: quarantine lands beside good rows, a crashed run
//! resumes without loss or duplicates, overlapping re-pulls keep one row per key.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use quanyu::lake::Lake;
use quanyu::runner::{run_stream, stream_cursor, RunOptions};
use quanyu::sandboxes::Sandboxes;
use quanyu_connector_sdk::sandbox::FaultConfig;
use quanyu_connector_sdk::{
    ConnectorSetup, CursorMode, NormalizedPage, PageSink, PullContext, PullError, PullResult,
    RetryPolicy, SinkError, Stream, StreamId, Window,
};
use quanyu_schemas::{LakeKey, OrderLineRow, PiiHasher, TableKind};

fn ctx() -> PullContext {
    PullContext {
        run_id: quanyu::sync::new_run_id(),
        ingested_at: Utc::now(),
        hasher: PiiHasher::new(&LakeKey::from_bytes([5; 32])),
    }
}

fn opts() -> RunOptions {
    RunOptions {
        chunk_rows: 300,
        progress: false,
        ..Default::default()
    }
}

/// Pull `streams` and refresh what they touched, as a sync does before
/// identity.
/// One stream's run, without a progress bar.
async fn run_hidden(
    lake: &Lake,
    stream: &Arc<dyn Stream>,
    opts: RunOptions,
) -> quanyu::runs::RunRecord {
    run_stream(lake, stream, &ctx(), opts, indicatif::ProgressBar::hidden()).await
}

async fn pull(lake: &Lake, streams: Vec<Arc<dyn Stream>>) -> Vec<quanyu::runs::RunRecord> {
    quanyu::sync::Sync::new(lake, &ctx().hasher)
        .streams(streams)
        .options(opts())
        .without_identity()
        .run()
        .await
        .unwrap()
        .records
}

async fn count(lake: &Lake, q: &str) -> i64 {
    let b = quanyu::sql::query(lake, q).await.unwrap();
    arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(b[0].column(0)).value(0)
}

/// The current table holds each trade the sandbox shows for `shop` once.
async fn assert_every_trade_once(lake: &Lake, sb: &Sandboxes, shop: &str) {
    let trades = sb.taobao().unwrap().visible_trades();
    let expected = trades.iter().filter(|t| t.shop == shop).count() as i64;
    assert_eq!(count(lake, "select count(*) from orders").await, expected);
    let distinct = count(lake, "select count(distinct order_id) from orders").await;
    assert_eq!(distinct, expected);
}

/// Refresh the current orders table.
async fn refresh_orders(lake: &Lake) -> quanyu::refresh::RefreshOutcome {
    quanyu::refresh::refresh(lake, TableKind::Orders)
        .await
        .unwrap()
}

/// Current orders whose `column` is `value`.
async fn orders_where(lake: &Lake, column: &str, value: &str) -> i64 {
    count(
        lake,
        &format!("select count(*) from orders where {column} = '{value}'"),
    )
    .await
}

async fn sandboxes(faults: FaultConfig, orders: usize) -> Sandboxes {
    let as_of = Utc::now() - Duration::minutes(5);
    let mut world = quanyu_connector_sdk::sandbox::world::WorldConfig::demo(as_of, orders);
    world.shops =
        quanyu_connector_sdk::sandbox::world::WorldShop::only(quanyu_schemas::Channel::Taobao);
    Sandboxes::start(world, as_of, faults).await.unwrap()
}

fn taobao_streams(sb: &Sandboxes) -> Vec<Arc<dyn Stream>> {
    sb.streams_of(
        quanyu_schemas::Channel::Taobao,
        quanyu_connector_sdk::connector::SandboxPull::default(),
        &ConnectorSetup::new(RetryPolicy::default()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_are_quarantined_and_the_rest_lands() {
    let faults = FaultConfig {
        malformed_record: 0.3,
        seed: 11,
        ..FaultConfig::default()
    };
    let sb = sandboxes(faults, 1500).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let recs = pull(&lake, taobao_streams(&sb)).await;
    assert!(recs.iter().all(|r| r.status == "succeeded"));
    let quarantined = count(&lake, "select count(*) from quarantine").await;
    assert!(quarantined > 0);
    assert_eq!(
        count(&lake, "select sum(rows_quarantined) from runs").await,
        quarantined
    );
    assert_eq!(count(&lake, "select count(*) from quarantine where reason like 'created:%' and record_key is not null and raw like '%not-a-time%'").await, quarantined);
    assert_eq!(
        count(&lake, "select count(*) from orders").await + quarantined,
        sb.taobao().unwrap().visible_trades().len() as i64
    );
}

/// Under faults, with small chunks whose commits run while the next pages
/// arrive, every order lands with all its lines and every refund once (a
/// page's lines that came in during a commit were once dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_and_refunds_land_whole_under_faults() {
    let as_of = Utc::now() - Duration::minutes(5);
    let mut world = quanyu_connector_sdk::sandbox::world::WorldConfig::demo(as_of, 1500);
    world.shops =
        quanyu_connector_sdk::sandbox::world::WorldShop::only(quanyu_schemas::Channel::Pdd);
    let sb = Sandboxes::start(world, as_of, FaultConfig::chaos(0.1, 3))
        .await
        .unwrap();
    let pull_settings = quanyu_connector_sdk::connector::SandboxPull {
        refunds: true,
        ..Default::default()
    };
    let policy = RetryPolicy {
        base_delay: std::time::Duration::from_millis(5),
        max_delay: std::time::Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    let streams = sb
        .streams_of(
            quanyu_schemas::Channel::Pdd,
            pull_settings,
            &ConnectorSetup::new(policy),
        )
        .unwrap();
    assert!(streams.iter().any(|s| s.table() == TableKind::Refunds));
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let records = quanyu::sync::Sync::new(&lake, &ctx().hasher)
        .streams(streams)
        .options(RunOptions {
            chunk_rows: 20,
            progress: false,
            ..Default::default()
        })
        .without_identity()
        .run()
        .await
        .unwrap()
        .records;
    assert!(
        records.iter().all(|r| r.status == "succeeded"),
        "{records:?}"
    );
    let (m, _) = &sb.marketplaces[0];
    assert_eq!(
        count(&lake, "select count(*) from orders").await,
        m.visible_orders() as i64
    );
    assert_eq!(
        count(&lake, "select count(*) from order_lines").await,
        m.visible_lines() as i64
    );
    assert_eq!(
        count(
            &lake,
            "select count(*) from orders o left anti join order_lines l on o.order_id = l.order_id"
        )
        .await,
        0,
        "every order has its lines"
    );
    assert_eq!(
        count(&lake, "select count(*) from refunds").await,
        m.visible_refunds() as i64
    );
    assert!(m.visible_refunds() > 10);
}

/// Streams run side by side: the tables their pages' companions land in
/// (an order's lines) exist before any of them commits, so two streams
/// never race to create one (a second creation fails its commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn companion_tables_exist_before_streams_run() {
    let sb = sandboxes(FaultConfig::default(), 0).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    assert!(lake.try_open("raw_order_lines").await.unwrap().is_none());
    let records = quanyu::runner::run_streams(&lake, &taobao_streams(&sb), &ctx(), opts())
        .await
        .unwrap();
    assert!(records.iter().all(|r| r.rows_out == 0), "{records:?}");
    assert!(
        lake.try_open("raw_order_lines").await.unwrap().is_some(),
        "created before the streams ran, though none landed a line"
    );
}

/// A [`Stream`] wrapping `inner`: its pull is `body` (with the wrapper as
/// `this`); everything else is the inner stream's.
macro_rules! wrapping_stream {
    ($name:ident, |$this:ident, $w:ident, $ctx:ident, $sink:ident| $body:block) => {
        #[async_trait]
        impl Stream for $name {
            fn id(&self) -> &StreamId {
                self.inner.id()
            }
            fn table(&self) -> TableKind {
                self.inner.table()
            }
            fn cursor_mode(&self) -> CursorMode {
                self.inner.cursor_mode()
            }
            fn request_stats(&self) -> (u64, u64) {
                self.inner.request_stats()
            }
            async fn pull(
                &self,
                $w: Window,
                $ctx: &PullContext,
                $sink: &mut dyn PageSink,
            ) -> PullResult {
                let $this = self;
                $body
            }
        }
    };
}

/// Wraps a stream and fails after `fail_after` pages, as a crash would.
struct Crashing {
    inner: Arc<dyn Stream>,
    pages_left: std::sync::atomic::AtomicUsize,
}

struct CountingSink<'a> {
    inner: &'a mut dyn PageSink,
    left: &'a std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl PageSink for CountingSink<'_> {
    async fn page(&mut self, page: NormalizedPage) -> Result<(), SinkError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self
            .left
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Err("simulated crash".into());
        }
        self.inner.page(page).await
    }
}

wrapping_stream!(Crashing, |this, w, ctx, sink| {
    // One page budget across all windows.
    let mut s = CountingSink {
        inner: sink,
        left: &this.pages_left,
    };
    this.inner.pull(w, ctx, &mut s).await
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_run_resumes_without_loss_or_duplicates() {
    let sb = sandboxes(FaultConfig::default(), 2000).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let stream = taobao_streams(&sb).remove(0);
    let crashing: Arc<dyn Stream> = Arc::new(Crashing {
        inner: stream.clone(),
        pages_left: 25.into(),
    });
    let bar = indicatif::ProgressBar::hidden();
    // One-day windows of one page each, pulled one after another (side by
    // side, the crash could come before the oldest window finished and no
    // cursor would move); chunks of 100 rows commit a cursor every few
    // windows; the crash comes at page 26.
    let small = RunOptions {
        chunk_rows: 100,
        progress: false,
        windows_at_once: 1,
        ..Default::default()
    };
    let rec = run_stream(&lake, &crashing, &ctx(), small, bar.clone()).await;
    assert!(rec.rows_out > 0, "{rec:?}");
    assert_eq!(rec.status, "failed");
    assert!(rec.error.as_deref().unwrap().contains("simulated crash"));
    let cursor_after_crash = stream_cursor(&lake, stream.as_ref()).await.unwrap();
    assert!(
        cursor_after_crash.is_some(),
        "windows before the crash were committed with their cursor"
    );
    // Resume: the straight pull from the committed cursor completes the set.
    let rec = run_stream(&lake, &stream, &ctx(), opts(), bar).await;
    assert_eq!(rec.status, "succeeded", "{:?}", rec.error);
    assert!(stream_cursor(&lake, stream.as_ref()).await.unwrap() > cursor_after_crash);
    quanyu::refresh::refresh_current(&lake, TableKind::Orders)
        .await
        .unwrap();
    assert_every_trade_once(&lake, &sb, &stream.id().scope).await;
}

/// Wraps a stream: the first window is slow, the fourth fails, and the
/// pulls under way at once are counted.
struct Uneven {
    inner: Arc<dyn Stream>,
    failing_start: chrono::DateTime<Utc>,
    first_start: chrono::DateTime<Utc>,
    in_flight: std::sync::atomic::AtomicUsize,
    most_at_once: std::sync::atomic::AtomicUsize,
}

wrapping_stream!(Uneven, |this, w, ctx, sink| {
    use std::sync::atomic::Ordering::SeqCst;
    let now = this.in_flight.fetch_add(1, SeqCst) + 1;
    this.most_at_once.fetch_max(now, SeqCst);
    if w.start == this.first_start {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let out = if w.start == this.failing_start {
        Err(PullError::Sink("the fourth window fails".into()))
    } else {
        this.inner.pull(w, ctx, sink).await
    };
    this.in_flight.fetch_sub(1, SeqCst);
    out
});

/// Windows are pulled side by side and land as they finish, but the cursor
/// only moves past windows finished in order: a slow first window does not
/// hold the others back, a failed fourth window leaves the cursor at the
/// end of the third (the windows before it still finish), and the next run
/// completes the set exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_pulled_side_by_side_move_the_cursor_in_order() {
    let sb = sandboxes(FaultConfig::default(), 1500).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let stream = taobao_streams(&sb).remove(0);
    let CursorMode::Windows(plan) = stream.cursor_mode() else {
        panic!("Taobao pulls windows")
    };
    let failing_start = plan.initial_start + plan.max_window * 3;
    let uneven = Arc::new(Uneven {
        inner: stream.clone(),
        failing_start,
        first_start: plan.initial_start,
        in_flight: 0.into(),
        most_at_once: 0.into(),
    });
    let as_stream: Arc<dyn Stream> = uneven.clone();
    let opts = RunOptions {
        windows_at_once: 6,
        ..opts()
    };
    let rec = run_hidden(&lake, &as_stream, opts).await;
    assert_eq!(rec.status, "failed");
    assert!(rec.error.as_deref().unwrap().contains("fourth window"));
    let most = uneven
        .most_at_once
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=6).contains(&most), "{most} windows at once");
    assert_eq!(
        stream_cursor(&lake, stream.as_ref())
            .await
            .unwrap()
            .map(|c| c.timestamp_millis()),
        Some(failing_start.timestamp_millis()),
        "the cursor stops at the failed window"
    );
    let rec = run_hidden(&lake, &stream, opts).await;
    assert_eq!(rec.status, "succeeded", "{:?}", rec.error);
    quanyu::refresh::refresh_current(&lake, TableKind::Orders)
        .await
        .unwrap();
    assert_every_trade_once(&lake, &sb, &stream.id().scope).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_repull_keeps_one_current_row_with_the_latest_status() {
    let sb = sandboxes(FaultConfig::default(), 1500).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let streams = taobao_streams(&sb);
    pull(&lake, streams.clone()).await;
    let raw_first = count(&lake, "select count(*) from raw_orders").await;
    // Re-pull everything again (a backfill over the same windows).
    let fresh = Lake::open(dir.path()).unwrap();
    for s in &streams {
        let app = s.id().app_id();
        fresh
            .append(
                "raw_orders",
                &TableKind::Orders.schema(),
                vec![],
                Some((&app, 0)),
            )
            .await
            .unwrap();
    }
    pull(&fresh, streams.clone()).await;
    assert!(
        count(&fresh, "select count(*) from raw_orders").await >= 2 * raw_first,
        "raw keeps every version"
    );
    assert_eq!(
        count(&fresh, "select count(*) from orders").await,
        sb.taobao().unwrap().visible_trades().len() as i64
    );
    let finished = sb
        .taobao()
        .unwrap()
        .visible_trades()
        .iter()
        .filter(|t| t.status == "TRADE_FINISHED")
        .count() as i64;
    assert_eq!(
        orders_where(&fresh, "platform_status", "TRADE_FINISHED").await,
        finished
    );
}

/// Many small commits (a long run with faults commits every few seconds)
/// leave many small raw files: the refresh still fits the engine's memory
/// pool and keeps one row per order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_over_many_small_raw_files_fits_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let schema = TableKind::Orders.schema();
    let t0 = chrono::DateTime::from_timestamp(1_735_000_000, 0).unwrap();
    // 60 commits of 8 pages of 100 rows, as a run with faults commits.
    for file in 0..60i64 {
        let pages = (0..8i64)
            .map(|page| {
                let mut b = quanyu_schemas::OrdersBuilder::new("r", t0 + Duration::seconds(file));
                for k in 0..100i64 {
                    let n = (file * 800 + page * 100 + k) % 12_000;
                    b.append(&quanyu_schemas::OrderRow {
                        channel: quanyu_schemas::Channel::Pdd,
                        shop_id: "pdd-store".into(),
                        buyer_id: None,
                        // Each order four times across the commits: one row after the refresh.
                        order_id: format!("241125-{n:015}"),
                        phone_hash: Some(format!("{n:064x}")),
                        phone_masked: Some("1*********5".into()),
                        status: quanyu_schemas::OrderStatus::Paid,
                        platform_status: "order_status=1;refund_status=1".into(),
                        amount_fen: 18830,
                        item_count: 1,
                        province: Some("浙江省".into()),
                        city: Some("杭州市".into()),
                        created_at: t0,
                        paid_at: Some(t0),
                        updated_at: t0 + Duration::seconds(file),
                        buyer_unionid: None,
                        receiver_hash: None,
                    });
                }
                b.finish()
            })
            .collect();
        lake.append("raw_orders", &schema, pages, None)
            .await
            .unwrap();
    }
    let n = quanyu::refresh::refresh_current(&lake, TableKind::Orders)
        .await
        .expect("the refresh fits the memory pool");
    assert_eq!(n, 60 * 800);
    assert_eq!(count(&lake, "select count(*) from orders").await, 12_000);
}

/// An order row of shop `shop` created at `t0 + n` minutes, last updated at `updated`.
fn order(
    n: i64,
    status: quanyu_schemas::OrderStatus,
    updated: chrono::DateTime<Utc>,
) -> quanyu_schemas::OrderRow {
    let t0 = chrono::DateTime::from_timestamp(1_735_000_000, 0).unwrap();
    let created = t0 + Duration::minutes(n);
    quanyu_schemas::OrderRow {
        channel: quanyu_schemas::Channel::Taobao,
        shop_id: format!("shop{}", n % 3),
        buyer_id: Some(format!("b{n}")),
        order_id: format!("{}{n:08}", created.timestamp()),
        phone_hash: None,
        phone_masked: None,
        status,
        platform_status: status.as_str().into(),
        amount_fen: 100 + n,
        item_count: 1,
        province: None,
        city: None,
        created_at: created,
        paid_at: Some(created),
        updated_at: updated,
        buyer_unionid: None,
        receiver_hash: None,
    }
}

/// Land `n` paid orders at `now` and refresh them into `orders`.
async fn land_paid_orders(lake: &Lake, n: usize, now: chrono::DateTime<Utc>) {
    let rows: Vec<_> = (0..n)
        .map(|i| order(i as _, quanyu_schemas::OrderStatus::Paid, now))
        .collect();
    land(lake, &rows, now).await;
    refresh_orders(lake).await;
}

/// Land `rows` in raw_orders in one commit, stamped as ingested at `at`.
async fn land(lake: &Lake, rows: &[quanyu_schemas::OrderRow], at: chrono::DateTime<Utc>) {
    for chunk in rows.chunks(50_000) {
        let mut b = quanyu_schemas::OrdersBuilder::new("r", at);
        chunk.iter().for_each(|o| b.append(o));
        lake.append_raw(TableKind::Orders, vec![b.finish()])
            .await
            .unwrap();
    }
}

/// Every current row as text, in key order.
async fn current_rows(lake: &Lake) -> Vec<String> {
    let b = quanyu::sql::query(
        lake,
        "SELECT channel, shop_id, order_id, status, amount_fen, updated_at FROM orders ORDER BY channel, shop_id, order_id",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    quanyu::sql::write(&b, quanyu::sql::Format::Csv, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A refresh after a few new rows merges them: it rewrites only the files
/// holding their keys, adds the new keys, and leaves the table exactly as
/// a whole rewrite of the same raw rows would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_refresh_merges_into_few_files_and_equals_a_rewrite() {
    use quanyu_schemas::OrderStatus::*;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().join("merge")).unwrap();
    let t = chrono::DateTime::from_timestamp(1_736_000_000, 0).unwrap();
    // 300,000 orders over 208 days, one refresh: several files.
    let base: Vec<_> = (0..300_000).map(|n| order(n, Paid, t)).collect();
    land(&lake, &base, t).await;
    // Small files, so that the table has many.
    const FILE: u64 = 512 * 1024;
    let first = quanyu::refresh::refresh_with_file_size(&lake, TableKind::Orders, FILE)
        .await
        .unwrap();
    assert!(first.whole_table);
    assert_eq!(first.raw_rows, 300_000);
    // A later pull: the newest 500 orders completed, an old one refunded,
    // 500 new orders, and one order seen again unchanged.
    let later = t + Duration::hours(1);
    let mut more: Vec<_> = (299_500..300_000)
        .map(|n| order(n, Completed, later))
        .collect();
    more.push(order(7, Refunded, later));
    more.extend((300_000..300_500).map(|n| order(n, Paid, later)));
    more.push(order(100_000, Paid, t));
    land(&lake, &more, later).await;
    let merged = quanyu::refresh::refresh_with_file_size(&lake, TableKind::Orders, FILE)
        .await
        .unwrap();
    assert!(!merged.whole_table, "{merged:?}");
    assert_eq!(merged.raw_rows, more.len() as u64);
    assert!(merged.files_before >= 3, "{merged:?}");
    assert!(
        merged.files_rewritten < merged.files_before,
        "only the files holding changed keys: {merged:?}"
    );
    assert_eq!(count(&lake, "select count(*) from orders").await, 300_500);
    assert_eq!(orders_where(&lake, "status", "completed").await, 500);
    assert_eq!(orders_where(&lake, "status", "refunded").await, 1);
    // The same raw rows into a fresh lake, refreshed once as a whole.
    let whole = Lake::open(&dir.path().join("whole")).unwrap();
    land(&whole, &base, t).await;
    land(&whole, &more, later).await;
    assert!(
        quanyu::refresh::refresh(&whole, TableKind::Orders)
            .await
            .unwrap()
            .whole_table
    );
    assert_eq!(current_rows(&lake).await, current_rows(&whole).await);
    // Nothing new: nothing read, nothing written.
    let again = quanyu::refresh::refresh(&lake, TableKind::Orders)
        .await
        .unwrap();
    assert_eq!(again.raw_rows, 0);
}

/// Rows landed by a writer whose clock is two hours behind (an NTP step, a
/// second host) still reach the current table: the refresh follows the raw
/// table's versions, not timestamps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_with_a_clock_behind_still_reaches_the_current_table() {
    use quanyu_schemas::OrderStatus::*;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let now = Utc::now();
    land_paid_orders(&lake, 100, now).await;
    let behind = now - Duration::hours(2);
    let late: Vec<_> = (100..200).map(|n| order(n, Paid, behind)).collect();
    land(&lake, &late, behind).await;
    let r = quanyu::refresh::refresh(&lake, TableKind::Orders)
        .await
        .unwrap();
    assert_eq!(r.raw_rows, 100);
    assert_eq!(count(&lake, "select count(*) from orders").await, 200);
    // And a status change stamped by the slow clock still wins over an
    // older update of the same order.
    land(
        &lake,
        &[order(5, Completed, now + Duration::minutes(1))],
        behind,
    )
    .await;
    refresh_orders(&lake).await;
    assert_eq!(orders_where(&lake, "status", "completed").await, 1);
}

/// Analysts' SQL is read-only: writes, files and settings are refused with
/// a clear error (also inside `EXPLAIN ANALYZE`, which would run them), the
/// lake is unchanged and no file appears; queries, `EXPLAIN` and `DESCRIBE`
/// answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysts_sql_cannot_write_the_lake_or_read_files() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().join("lake")).unwrap();
    let now = Utc::now();
    land_paid_orders(&lake, 10, now).await;
    let version = lake.version("orders").await.unwrap();
    let copied = dir.path().join("copied.csv");
    let inside = dir.path().join("lake").join("orders").join("x.parquet");
    let refused = [
        "INSERT INTO orders SELECT * FROM orders".to_string(),
        format!("COPY orders TO '{}'", copied.display()),
        format!(
            "COPY (SELECT * FROM orders) TO '{}' STORED AS PARQUET",
            inside.display()
        ),
        "CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'".into(),
        "CREATE TABLE t AS SELECT 1".into(),
        "CREATE VIEW v AS SELECT * FROM orders".into(),
        "DROP TABLE orders".into(),
        "DELETE FROM orders".into(),
        "UPDATE orders SET amount_fen = 0".into(),
        "SET datafusion.execution.batch_size = 1".into(),
        "EXPLAIN ANALYZE INSERT INTO orders SELECT * FROM orders".into(),
    ];
    for q in &refused {
        let err = quanyu::sql::query(&lake, q).await.expect_err(q).to_string();
        assert!(err.contains("read-only"), "{q}: {err}");
    }
    for q in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('/etc/passwd')",
    ] {
        assert!(quanyu::sql::query(&lake, q).await.is_err(), "{q}");
    }
    assert_eq!(lake.version("orders").await.unwrap(), version);
    assert_eq!(count(&lake, "select count(*) from orders").await, 10);
    assert!(!copied.exists() && !inside.exists());
    for q in [
        "SELECT count(*) FROM orders",
        "EXPLAIN SELECT count(*) FROM orders",
        "DESCRIBE orders",
        "SHOW TABLES",
    ] {
        assert!(
            !quanyu::sql::query(&lake, q).await.unwrap().is_empty(),
            "{q}"
        );
    }
}

/// A killed `quanyu import` whose raw commit landed but whose refresh did
/// not: importing the same file again says it is already imported and
/// brings its rows into the current table (before, they stayed hidden).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_before_its_refresh_is_caught_up_by_the_next() {
    use quanyu_files::ImportConfig;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().join("lake")).unwrap();
    let file = dir.path().join("calls.csv");
    let mut csv = String::from("通话ID,被叫号码,呼叫时间\n");
    for i in 0..60 {
        csv.push_str(&format!(
            "C{i:03},139{:08},2026-06-01 10:{:02}:00\n",
            10_000 + i * 7,
            i
        ));
    }
    std::fs::write(&file, csv).unwrap();
    let import: ImportConfig = toml::from_str(
        r#"
        name = "calls"
        table = "touchpoints"
        values = { channel = "ai_call", event_type = "call" }
        columns = { event_id = "通话ID", phone = "被叫号码", occurred_at = "呼叫时间" }
        "#,
    )
    .unwrap();
    // The killed import: its stream committed rows and cursor, no refresh.
    let stream = quanyu_files::file_stream(&import, &file).unwrap();
    let rec = run_stream(
        &lake,
        &stream,
        &ctx(),
        opts(),
        indicatif::ProgressBar::hidden(),
    )
    .await;
    assert_eq!((rec.status.as_str(), rec.rows_out), ("succeeded", 60));
    assert_eq!(
        count(&lake, "select count(*) from raw_touchpoints").await,
        60
    );
    assert_eq!(lake.version("touchpoints").await.unwrap(), None);
    let cfg = quanyu::config::Config::parse("").unwrap();
    let hasher = PiiHasher::new(&LakeKey::from_bytes([5; 32]));
    let files = [file];
    let job = quanyu::imports::FileImport {
        cfg: &cfg,
        import: &import,
        paths: &files,
        hasher: &hasher,
        progress: false,
    };
    let lines = job.run_locked(&lake).await.unwrap();
    assert!(lines[0].contains("already imported"), "{lines:?}");
    assert!(lines[1].contains("60 rows"), "{lines:?}");
    assert_eq!(count(&lake, "select count(*) from touchpoints").await, 60);
    // Once caught up, a third import has nothing to bring in.
    let lines = job.run_locked(&lake).await.unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        count(&lake, "select count(*) from raw_touchpoints").await,
        60
    );
}

/// A rejection is quarantined once: the same records rejected again (a
/// look-back window, pages repeated after a crash) add nothing; a record
/// rejected twice in one chunk lands once; a different reason is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_repeated_is_quarantined_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let row = |key: &str, reason: &str| quanyu_schemas::QuarantineRow {
        source: "taobao.orders@s1".into(),
        target_table: "orders".into(),
        record_key: Some(key.into()),
        raw: format!("{{\"tid\":\"{key}\"}}"),
        reason: reason.into(),
        field: None,
    };
    let first = vec![
        row("1", "bad time"),
        row("2", "bad time"),
        row("1", "bad time"),
    ];
    assert_eq!(
        quanyu::quarantine::append_new(&lake, "r1", first.clone())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        quanyu::quarantine::append_new(&lake, "r2", first)
            .await
            .unwrap(),
        0
    );
    let later = vec![
        row("2", "bad time"),
        row("2", "bad amount"),
        row("3", "bad time"),
    ];
    assert_eq!(
        quanyu::quarantine::append_new(&lake, "r3", later)
            .await
            .unwrap(),
        2
    );
    assert_eq!(count(&lake, "select count(*) from quarantine").await, 4);
    assert_eq!(
        count(&lake, "select count(distinct fingerprint) from quarantine").await,
        4
    );
    assert_eq!(
        count(&lake, "select count(*) from quarantine where run_id = 'r1'").await,
        2
    );
}

/// A run killed before it recorded its results: `status` shows it did not
/// finish, and the next run records its streams in `runs` as
/// `interrupted` (streams that had recorded theirs keep only that row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_shows_in_status_and_then_in_runs() {
    use quanyu_connector_sdk::StreamId;
    let sb = sandboxes(FaultConfig::default(), 300).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let streams = taobao_streams(&sb);
    let ids: Vec<StreamId> = streams.iter().map(|s| s.id().clone()).collect();
    // The killed run: marked, one stream recorded, then nothing.
    let marker = quanyu::runs::RunMarker::start(&lake, "killed-run", &ids).unwrap();
    drop(marker);
    let done = quanyu::runs::RunRecord {
        rows_in: 1,
        rows_out: 1,
        pages: 1,
        requests: 1,
        ..quanyu::runs::RunRecord::new("killed-run", &ids[0], Utc::now())
    };
    lake.append(
        "runs",
        &quanyu::runs::runs_schema(),
        vec![quanyu::runs::runs_batch(&[done])],
        None,
    )
    .await
    .unwrap();
    let s = quanyu::status::status(&lake, 5).await.unwrap();
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("killed-run") && w.contains("did not finish")),
        "{:?}",
        s.warnings
    );
    // While a writer holds the lock, the same marker is a run under way.
    let lock = lake.lock_writer().unwrap();
    let s = quanyu::status::status(&lake, 5).await.unwrap();
    assert!(
        s.warnings.iter().any(|w| w.contains("under way")),
        "{:?}",
        s.warnings
    );
    drop(lock);
    // The next run records the streams that had no result.
    pull(&lake, streams.clone()).await;
    assert_eq!(
        count(
            &lake,
            "select count(*) from runs where run_id = 'killed-run' and status = 'interrupted'"
        )
        .await,
        ids.len() as i64 - 1
    );
    assert!(quanyu::runs::unfinished_runs(&lake).unwrap().is_empty());
    let s = quanyu::status::status(&lake, 5).await.unwrap();
    assert!(
        s.warnings.iter().all(|w| !w.contains("killed-run")),
        "{:?}",
        s.warnings
    );
}

/// The lines `ids` of each of `orders` orders, all at version `at`.
fn lines(
    orders: std::ops::Range<u32>,
    ids: &[&str],
    at: chrono::DateTime<Utc>,
) -> Vec<OrderLineRow> {
    orders
        .flat_map(|o| {
            ids.iter().map(move |l| OrderLineRow {
                channel: quanyu_schemas::Channel::Taobao,
                shop_id: "s".into(),
                order_id: format!("o{o}"),
                line_id: l.to_string(),
                item_id: None,
                sku_id: None,
                title: None,
                quantity: 1,
                unit_price_fen: None,
                amount_fen: 100,
                created_at: at,
                updated_at: at,
            })
        })
        .collect()
}

/// The current lines of order `order`, sorted.
async fn current_lines(lake: &Lake, order: &str) -> Vec<String> {
    let sql =
        format!("select line_id from order_lines where order_id = '{order}' order by line_id");
    crate::column_text(lake, &sql).await
}

/// An order's newest version replaces all its lines: lines its item list
/// no longer has leave `order_lines` (also where the new version shares no
/// line id with the old one, so only the order names the file to rewrite),
/// whether the refresh merges a few files or rewrites the table; other
/// orders and an older version arriving late change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_item_list_shrank_keeps_only_its_newest_lines() {
    let t1 = Utc::now() - Duration::hours(1);
    let t2 = t1 + Duration::minutes(10);
    let append = |lake: &Lake, rows: Vec<OrderLineRow>| {
        let batch = quanyu_schemas::OrderLineRow::batch(&rows, "r", Utc::now());
        let lake = lake.clone();
        async move {
            lake.append_raw(TableKind::OrderLines, vec![batch])
                .await
                .unwrap()
        }
    };
    let old = ["l1", "l2", "l3"];
    // (orders at first, the new version's lines, whether the second
    // refresh rewrites the table)
    for (first, newest, whole) in [
        (0..200, &["l1", "l2"][..], false),
        (0..200, &["l9"][..], false),
        (0..2, &["l1", "l2"][..], true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        append(&lake, lines(first.clone(), &old, t1)).await;
        quanyu::refresh::refresh(&lake, TableKind::OrderLines)
            .await
            .unwrap();
        append(&lake, lines(1..2, newest, t2)).await;
        let r = quanyu::refresh::refresh(&lake, TableKind::OrderLines)
            .await
            .unwrap();
        assert_eq!(r.whole_table, whole, "{r:?}");
        assert_eq!(current_lines(&lake, "o1").await, newest);
        assert_eq!(current_lines(&lake, "o0").await, old);
        let all = count(&lake, "select count(*) from order_lines").await;
        assert_eq!(all, (first.len() as i64 - 1) * 3 + newest.len() as i64);
        // The old version again (a late re-pull of a stale page): no change.
        append(&lake, lines(1..2, &old, t1)).await;
        quanyu::refresh::refresh(&lake, TableKind::OrderLines)
            .await
            .unwrap();
        assert_eq!(current_lines(&lake, "o1").await, newest);
    }
}
