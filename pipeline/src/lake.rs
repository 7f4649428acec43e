//! The lake: Delta tables under one root, one folder per table.
//!
//! Sources land in append-only `raw_<table>` tables; each commit carries the
//! stream's new cursor as a Delta application transaction (`txn`), so rows
//! and cursor are committed together or not at all. After a run, the current
//! table (`orders`, `contacts`) is refreshed from the raw rows it has not
//! seen yet, keeping one row per business key, the latest by `updated_at`;
//! its own `txn` records how far it has read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::prelude::SessionContext;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructType, Transaction};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use quanyu_schemas::TableKind;
use url::Url;

/// The raw (append-only, all versions) table of a canonical table.
pub fn raw_table(kind: TableKind) -> String {
    format!("raw_{}", kind.name())
}

/// The lake's own tables (the marts come on top, see `marts::MARTS`).
pub const CORE_TABLES: &[&str] = &[
    "orders",
    "contacts",
    "touchpoints",
    "order_lines",
    "refunds",
    "identity_map",
    "identity_edges",
    "identity_aliases",
    "identity_changes",
    "identity_audit",
    "runs",
    "quarantine",
    "raw_orders",
    "raw_contacts",
    "raw_touchpoints",
    "raw_order_lines",
    "raw_refunds",
];

/// Memory the query engine may use before spilling: `QUANYU_MEMORY_MB`, else
/// a quarter of the machine's memory, at least 256 MiB and at most 16 GiB.
pub fn memory_limit_bytes() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        const MIB: usize = 1024 * 1024;
        if let Some(mb) = std::env::var("QUANYU_MEMORY_MB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            return mb.max(64) * MIB;
        }
        let total_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<usize>().ok())
            })
            .unwrap_or(1024 * 1024);
        (total_kib * 1024 / 4).clamp(256 * MIB, 16 * 1024 * MIB)
    })
}

/// The engine's memory pool: DataFusion's fair pool (spilling operators
/// share what the others leave), where one spilling operator, or one sort's
/// merge of its spill files, may hold at most a quarter of the budget's share per core.
/// Without that cap, a sort that runs first takes most of the budget for its
/// merge and keeps it while it streams its output, and the sort beside it
/// (the other side of a sort-merge join) finds nothing left, not even room
/// to spill. Errors name the five largest consumers.
///
/// Repartitions are the exception: they never spill (DataFusion 55 can
/// deadlock in a repartition's spill pool when two of its inputs spill at
/// once, apache/datafusion#24883: every thread parked, no error) and their
/// queues are not bounded (a queue grows while its consumer is busy, e.g.
/// spilling, as long as another queue is empty). They are charged to the
/// pool up to a quarter of the budget; what they hold beyond that is not
/// charged, so a backlog cannot starve the sorts and merges that drain it.
#[derive(Debug)]
pub struct CappedPool {
    inner: datafusion::execution::memory_pool::TrackConsumersPool<
        datafusion::execution::memory_pool::FairSpillPool,
    >,
    cap: usize,
    repartition_share: usize,
    repartitions: std::sync::Mutex<RepartitionLedger>,
}

/// What the repartitions hold: charged to the pool (all of them together)
/// and uncharged beyond their share (per consumer id).
#[derive(Debug, Default)]
struct RepartitionLedger {
    charged: usize,
    uncharged: HashMap<usize, usize>,
}

impl CappedPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
        CappedPool {
            inner: TrackConsumersPool::new(
                FairSpillPool::new(limit),
                std::num::NonZeroUsize::new(5).expect("five"),
            ),
            // Four per partition: the two sorts of a join, their merges.
            cap: limit / (4 * std::thread::available_parallelism().map_or(1, |n| n.get())),
            repartition_share: limit / 4,
            repartitions: Default::default(),
        }
    }

    fn is_repartition(consumer: &MemoryConsumer) -> bool {
        consumer.name().starts_with("RepartitionExec")
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, RepartitionLedger> {
        self.repartitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Grow a repartition's reservation (always succeeds): charged while the
    /// repartitions together stay inside their share, uncharged beyond it.
    fn grow_repartition(&self, reservation: &MemoryReservation, additional: usize) {
        let mut ledger = self.ledger();
        if ledger.charged + additional <= self.repartition_share
            && self.inner.try_grow(reservation, additional).is_ok()
        {
            ledger.charged += additional;
        } else {
            *ledger
                .uncharged
                .entry(reservation.consumer().id())
                .or_default() += additional;
        }
    }

    /// Shrink a repartition's reservation: its uncharged bytes first.
    fn shrink_repartition(&self, reservation: &MemoryReservation, shrink: usize) {
        let mut ledger = self.ledger();
        let id = reservation.consumer().id();
        let over = ledger.uncharged.get(&id).copied().unwrap_or(0);
        let from_over = over.min(shrink);
        if from_over == over {
            ledger.uncharged.remove(&id);
        } else {
            ledger.uncharged.insert(id, over - from_over);
        }
        let charged = shrink - from_over;
        if charged > 0 {
            ledger.charged = ledger.charged.saturating_sub(charged);
            self.inner.shrink(reservation, charged);
        }
    }
}

impl std::fmt::Display for CappedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "capped({})", self.inner)
    }
}

impl MemoryPool for CappedPool {
    fn name(&self) -> &str {
        "capped-fair"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        if Self::is_repartition(reservation.consumer()) {
            return self.grow_repartition(reservation, additional);
        }
        self.inner.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        if Self::is_repartition(reservation.consumer()) {
            return self.shrink_repartition(reservation, shrink);
        }
        self.inner.shrink(reservation, shrink)
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        let consumer = reservation.consumer();
        if Self::is_repartition(consumer) {
            // Never refused: see the type's documentation.
            self.grow_repartition(reservation, additional);
            return Ok(());
        }
        // A sort's merge of its spill files takes what memory it can get, and
        // cannot give it back while it streams: it is capped too (it merges
        // fewer files per pass instead).
        let capped = consumer.can_spill() || consumer.name().starts_with("ExternalSorterMerge");
        if capped && reservation.size() + additional > self.cap {
            return Err(datafusion::error::DataFusionError::ResourcesExhausted(
                format!(
                    "{} may hold at most {} bytes of the memory budget: spill",
                    reservation.consumer().name(),
                    self.cap
                ),
            ));
        }
        self.inner.try_grow(reservation, additional)
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

/// A DataFusion session whose strings are plain `Utf8` (the canonical
/// schemas' type) rather than `Utf8View`.
pub fn new_context() -> SessionContext {
    let mut cfg = datafusion::prelude::SessionConfig::new();
    cfg.options_mut().execution.parquet.schema_force_view_types = false;
    cfg.options_mut().sql_parser.map_string_types_to_utf8view = false;
    // Smaller merge reservations let big sorts spill instead of failing.
    cfg.options_mut().execution.sort_spill_reservation_bytes = 2 * 1024 * 1024;
    // Bound the engine's memory; sorts and joins spill to the temp folder.
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(CappedPool::new(memory_limit_bytes())))
        .build_arc()
        .expect("a memory-limited runtime builds");
    // Delta's planner lets the same session drive Delta writes.
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_default_features()
        .with_config(cfg)
        .with_runtime_env(runtime)
        .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
        .build();
    SessionContext::new_with_state(state)
}

/// True when `e` is the engine running out of its memory budget (an
/// operator that cannot spill, such as a hash join's build side).
pub fn out_of_memory(e: &datafusion::error::DataFusionError) -> bool {
    use datafusion::error::DataFusionError as E;
    match e {
        E::ResourcesExhausted(_) => true,
        E::Context(_, inner) => out_of_memory(inner),
        E::Shared(inner) => out_of_memory(inner),
        E::External(inner) => inner.downcast_ref::<E>().is_some_and(out_of_memory),
        E::Collection(v) => v.iter().any(out_of_memory),
        _ => false,
    }
}

/// True when `e`, or an error it was caused by, is the engine running out
/// of its memory budget (also when a Delta write carried it as text).
pub fn ran_out_of_memory(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<datafusion::error::DataFusionError>()
            .is_some_and(out_of_memory)
            || c.to_string().contains("Resources exhausted")
    })
}

/// Plan equi-joins in `ctx` as sort-merge joins, which spill to disk, rather
/// than hash joins, which must hold their build side in memory; with small
/// batches, so that the many sorts such a plan runs at once (and their
/// merges of spill files) each need little memory to make progress.
pub async fn prefer_spilling_joins(ctx: &SessionContext) -> Result<()> {
    for set in [
        "SET datafusion.optimizer.prefer_hash_join = false",
        "SET datafusion.execution.batch_size = 1024",
    ] {
        ctx.sql(set).await?.collect().await?;
    }
    Ok(())
}

/// A lake rooted at a local folder.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

impl Lake {
    /// Open (and create, if needed) the lake at `root`.
    pub fn open(root: &Path) -> Result<Lake> {
        let s = root.to_string_lossy();
        if s.contains("://") && !s.starts_with("file://") {
            bail!("lake root {s}: only local folders are supported by this build (object-store URLs are planned)");
        }
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create lake folder {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("cannot resolve lake folder {}", root.display()))?;
        Ok(Lake { root })
    }

    /// Take the lake's writer lock (`<lake>/_quanyu.lock`) for this process;
    /// a second `quanyu run` on the same lake fails fast instead of racing.
    pub fn lock_writer(&self) -> Result<std::fs::File> {
        let path = self.root.join("_quanyu.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!(
                    "another quanyu process is writing to {}",
                    self.root.display()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// True while a process holds the lake's writer lock (a run or an
    /// import is under way).
    pub fn writer_active(&self) -> bool {
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .open(self.root.join("_quanyu.lock"))
        else {
            return false;
        };
        matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// The lake's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn url(&self, table: &str) -> Result<Url> {
        let dir = self.root.join(table);
        std::fs::create_dir_all(&dir)?;
        Url::from_directory_path(&dir)
            .map_err(|_| anyhow::anyhow!("bad table path {}", dir.display()))
    }

    /// The table if it exists.
    pub async fn try_open(&self, name: &str) -> Result<Option<DeltaTable>> {
        if !self.root.join(name).join("_delta_log").exists() {
            return Ok(None);
        }
        let url = self.url(name)?;
        match deltalake::open_table(url).await {
            Ok(t) => Ok(Some(t)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot open table {name}")),
        }
    }

    /// Open `name`, creating it with `schema` when missing.
    pub async fn table(&self, name: &str, schema: &SchemaRef) -> Result<DeltaTable> {
        if let Some(t) = self.try_open(name).await? {
            return Ok(t);
        }
        let st: StructType = schema
            .as_ref()
            .try_into_kernel()
            .context("schema conversion")?;
        let t = deltalake::DeltaTableBuilder::from_url(self.url(name)?)?.build()?;
        let created = t
            .create()
            .with_table_name(name)
            .with_columns(st.fields().cloned())
            .with_save_mode(SaveMode::Ignore)
            .await
            .with_context(|| format!("cannot create table {name}"))?;
        Ok(created)
    }

    /// The cursor committed under `app_id` in table `name`, if any.
    pub async fn txn_version(&self, name: &str, app_id: &str) -> Result<Option<i64>> {
        let Some(t) = self.try_open(name).await? else {
            return Ok(None);
        };
        let snapshot = t.snapshot()?;
        Ok(snapshot
            .transaction_version(t.log_store().as_ref(), app_id)
            .await?)
    }

    /// The cursors committed under `app_ids` in table `name`, in order.
    pub async fn txn_versions(&self, name: &str, app_ids: &[&str]) -> Result<Vec<Option<i64>>> {
        let Some(t) = self.try_open(name).await? else {
            return Ok(vec![None; app_ids.len()]);
        };
        let snapshot = t.snapshot()?;
        let mut out = Vec::with_capacity(app_ids.len());
        for app in app_ids {
            out.push(
                snapshot
                    .transaction_version(t.log_store().as_ref(), app)
                    .await?,
            );
        }
        Ok(out)
    }

    /// The latest version of table `name`, if it exists.
    pub async fn version(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.try_open(name).await?.and_then(|t| t.version()))
    }

    /// The data files of `name` at version `upto` that were not there at
    /// version `since` (every file when `None`), as URIs. Append-only tables
    /// add every new row in a new file, so this is a clock-free change feed;
    /// a compaction only makes rows show again.
    pub async fn files_between(
        &self,
        name: &str,
        since: Option<u64>,
        upto: u64,
    ) -> Result<Vec<String>> {
        let now: Vec<String> = self.open_at(name, upto).await?.get_file_uris()?.collect();
        let before: std::collections::HashSet<String> = match since {
            Some(v) => self.open_at(name, v).await?.get_file_uris()?.collect(),
            None => Default::default(),
        };
        Ok(now.into_iter().filter(|f| !before.contains(f)).collect())
    }

    /// Table `name` as of `version`.
    pub async fn open_at(&self, name: &str, version: u64) -> Result<DeltaTable> {
        deltalake::open_table_with_version(self.url(name)?, version)
            .await
            .with_context(|| format!("cannot open table {name} at version {version}"))
    }

    /// Register table `name` as of `version` in `ctx` under `alias`.
    pub async fn register_at(
        &self,
        ctx: &SessionContext,
        name: &str,
        version: u64,
        alias: &str,
    ) -> Result<()> {
        let t = self.open_at(name, version).await?;
        t.update_datafusion_session(&ctx.state())?;
        let _ = ctx.deregister_table(alias);
        ctx.register_table(alias, t.table_provider().await?)?;
        Ok(())
    }

    /// Write `df` (planned in `ctx`) into `name` in one commit, as `commit`
    /// says: replace the table (or only the rows matching its predicate),
    /// or append; cursors committed with the data.
    pub async fn write_plan(
        &self,
        name: &str,
        schema: &SchemaRef,
        ctx: &SessionContext,
        df: datafusion::dataframe::DataFrame,
        commit: Commit,
    ) -> Result<()> {
        let table = self.table(name, schema).await?;
        let mut op = table
            .write(vec![])
            .with_input_plan(df.into_unoptimized_plan())
            .with_session_state(Arc::new(ctx.state()))
            .with_save_mode(if commit.append {
                SaveMode::Append
            } else {
                SaveMode::Overwrite
            })
            .with_writer_properties(writer_properties())
            .with_commit_properties(commit.properties());
        if commit.replace_schema {
            op = op.with_schema_mode(SchemaMode::Overwrite);
        }
        if let Some(p) = commit.replace_where {
            op = op.with_replace_where(p);
        }
        if let Some(size) = commit.target_file_size {
            op = op.with_target_file_size(std::num::NonZeroU64::new(size));
        }
        op.await
            .with_context(|| format!("cannot write table {name}"))?;
        Ok(())
    }

    /// Append `batches` to `name` in one commit, with an optional cursor
    /// (`app_id`, version) committed in the same commit.
    pub async fn append(
        &self,
        name: &str,
        schema: &SchemaRef,
        batches: Vec<RecordBatch>,
        txn: Option<(&str, i64)>,
    ) -> Result<()> {
        self.write(name, schema, batches, SaveMode::Append, txn)
            .await
    }

    /// Append `batches` to the raw table of `kind`, outside any stream's
    /// cursor (fixtures, benchmarks, tests); the next refresh takes them
    /// into the current table.
    pub async fn append_raw(&self, kind: TableKind, batches: Vec<RecordBatch>) -> Result<()> {
        self.append(&raw_table(kind), &kind.schema(), batches, None)
            .await
    }

    /// Write `batches` to `name` in one commit (`mode` appends or replaces
    /// its contents), with an optional cursor (`app_id`, version)
    /// committed in the same commit.
    pub async fn write(
        &self,
        name: &str,
        schema: &SchemaRef,
        batches: Vec<RecordBatch>,
        mode: SaveMode,
        txn: Option<(&str, i64)>,
    ) -> Result<()> {
        let table = self.table(name, schema).await?;
        write_to(table, name, schema, batches, mode, txn).await?;
        Ok(())
    }

    /// [`Lake::append`] through `cache`, the table as the previous append
    /// left it: a run's many commits to one raw table do not reopen it
    /// (and replay its log) each time.
    pub async fn append_cached(
        &self,
        cache: &mut Option<DeltaTable>,
        name: &str,
        schema: &SchemaRef,
        batches: Vec<RecordBatch>,
        txn: Option<(&str, i64)>,
    ) -> Result<()> {
        let table = match cache.take() {
            Some(t) => t,
            None => self.table(name, schema).await?,
        };
        *cache = Some(write_to(table, name, schema, batches, SaveMode::Append, txn).await?);
        Ok(())
    }

    /// A DataFusion session with the tables `names` registered (those that
    /// exist).
    pub async fn session_of(&self, names: &[&str]) -> Result<SessionContext> {
        let ctx = new_context();
        // `SHOW TABLES`, `SHOW COLUMNS FROM orders`, information_schema.
        ctx.state_ref()
            .write()
            .config_mut()
            .options_mut()
            .catalog
            .information_schema = true;
        for name in names {
            self.register(&ctx, name).await?;
        }
        Ok(ctx)
    }

    /// Register table `name` in `ctx` (no-op when it does not exist yet).
    pub async fn register(&self, ctx: &SessionContext, name: &str) -> Result<bool> {
        let Some(t) = self.try_open(name).await? else {
            return Ok(false);
        };
        t.update_datafusion_session(&ctx.state())?;
        let provider = t.table_provider().await?;
        let _ = ctx.deregister_table(name);
        ctx.register_table(name, provider)?;
        Ok(true)
    }
}

/// How [`Lake::write_plan`] commits.
#[derive(Default)]
pub struct Commit {
    /// Append instead of replacing.
    pub append: bool,
    /// Replace only the rows matching this predicate (with `append` off).
    pub replace_where: Option<datafusion::prelude::Expr>,
    /// Let the data's schema replace the table's (a table written by an
    /// older version of quanyu).
    pub replace_schema: bool,
    /// Cursors committed with the data: (application id, version).
    pub txns: Vec<(String, i64)>,
    /// Data files of about this many bytes (the writer's default if `None`).
    pub target_file_size: Option<u64>,
}

impl Commit {
    /// The commit properties carrying the cursors.
    pub fn properties(&self) -> CommitProperties {
        CommitProperties::default().with_application_transactions(
            self.txns
                .iter()
                .map(|(app, v)| Transaction::new(app, *v))
                .collect(),
        )
    }
}

/// Write `batches` to `table` in one commit; returns the table as of it.
async fn write_to(
    table: DeltaTable,
    name: &str,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    mode: SaveMode,
    txn: Option<(&str, i64)>,
) -> Result<DeltaTable> {
    let props = commit_properties(txn);
    let batches = if batches.is_empty() {
        vec![RecordBatch::new_empty(schema.clone())]
    } else {
        batches
    };
    let mut op = table
        .write(batches)
        .with_save_mode(mode)
        .with_writer_properties(writer_properties())
        .with_commit_properties(props);
    if mode == SaveMode::Append {
        // Tables gain nullable columns over time (`runs`): merge them in.
        op = op.with_schema_mode(SchemaMode::Merge);
    }
    op.await
        .with_context(|| format!("cannot write table {name}"))
}

/// Rows per Parquet row group in every file quanyu writes (DuckDB's
/// default). A reader holds a whole row group's column chunks at once:
/// with the Parquet writer's default of 1,048,576 rows, only scanning
/// `identity_map` at a million orders took 120 MiB.
pub const ROW_GROUP_ROWS: usize = 122_880;

/// How quanyu writes Parquet: Snappy, as Delta writers do, in row groups of
/// [`ROW_GROUP_ROWS`].
pub fn writer_properties() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// Commit properties carrying an optional cursor as a Delta application
/// transaction.
fn commit_properties(txn: Option<(&str, i64)>) -> CommitProperties {
    let props = CommitProperties::default();
    match txn {
        Some((app_id, version)) => {
            props.with_application_transaction(Transaction::new(app_id, version))
        }
        None => props,
    }
}

/// A stream of batches as a DataFusion table that can be read once: lets
/// [`Lake::write_plan`] write rows produced in memory without holding them
/// all at once.
struct OneShot {
    schema: SchemaRef,
    stream: std::sync::Mutex<Option<datafusion::execution::SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneShot")
    }
}

impl datafusion::physical_plan::streaming::PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(
        &self,
        _ctx: Arc<datafusion::execution::TaskContext>,
    ) -> datafusion::execution::SendableRecordBatchStream {
        use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
        match self.stream.lock().expect("not poisoned").take() {
            Some(s) => s,
            None => Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async {
                    Err(datafusion::error::DataFusionError::Internal(
                        "a one-shot stream was read twice".into(),
                    ))
                }),
            )),
        }
    }
}

/// `batches` (produced lazily) as a DataFrame of `ctx`, readable once.
pub fn stream_frame(
    ctx: &SessionContext,
    schema: SchemaRef,
    batches: impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static,
) -> Result<datafusion::dataframe::DataFrame> {
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::StreamExt;
    let stream = RecordBatchStreamAdapter::new(
        schema.clone(),
        batches.map(|r| r.map_err(|e| datafusion::error::DataFusionError::External(e.into()))),
    );
    let part = OneShot {
        schema: schema.clone(),
        stream: std::sync::Mutex::new(Some(Box::pin(stream))),
    };
    let table =
        datafusion::catalog::streaming::StreamingTable::try_new(schema, vec![Arc::new(part)])?;
    Ok(ctx.read_table(Arc::new(table))?)
}

/// `schema` with string views replaced by plain strings (also inside lists),
/// the types Delta tables and the canonical schemas use.
pub fn plain_types(schema: &arrow::datatypes::Schema) -> SchemaRef {
    use arrow::datatypes::{DataType, Field};
    fn plain(dt: &DataType) -> DataType {
        match dt {
            DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => DataType::List(
                Arc::new(Field::new(f.name(), plain(f.data_type()), f.is_nullable())),
            ),
            other => other.clone(),
        }
    }
    Arc::new(arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), plain(f.data_type()), f.is_nullable()))
            .collect::<Vec<_>>(),
    ))
}

/// Cast `batch` column by column to `schema` (same column order).
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let cols = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// A column as plain strings, whatever string encoding the engine chose.
pub fn strings(col: &arrow::array::ArrayRef) -> Result<arrow::array::StringArray> {
    use arrow::array::AsArray;
    let c = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8)?;
    Ok(c.as_string::<i32>().clone())
}

/// Total rows of a one-column count query.
pub fn first_count(batches: &[RecordBatch]) -> i64 {
    batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b: &RecordBatch| {
            arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(b.column(0)).value(0)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_schemas::tables::orders_schema;

    #[test]
    fn a_repartition_backlog_cannot_starve_the_sorts_that_drain_it() {
        const MIB: usize = 1024 * 1024;
        let pool: Arc<dyn MemoryPool> = Arc::new(CappedPool::new(64 * MIB));
        let queue = MemoryConsumer::new("RepartitionExec[1]")
            .with_can_spill(true)
            .register(&pool);
        // A backlog of four budgets: never refused, charged up to a quarter.
        for _ in 0..256 {
            queue.try_grow(MIB).expect("a repartition is never refused");
        }
        assert_eq!(queue.size(), 256 * MIB);
        assert_eq!(pool.reserved(), 16 * MIB);
        // A sort still gets memory to sort and to merge its spill files.
        let sort = MemoryConsumer::new("ExternalSorter[0]")
            .with_can_spill(true)
            .register(&pool);
        sort.try_grow(4 * MIB).expect("room beside the backlog");
        let merge = MemoryConsumer::new("ExternalSorterMerge[0]").register(&pool);
        merge.try_grow(4 * MIB).expect("room for a merge");
        // Draining gives back the uncharged part first, then the charged.
        queue.shrink(250 * MIB);
        assert_eq!(pool.reserved(), 14 * MIB);
        queue.free();
        sort.free();
        merge.free();
        assert_eq!(pool.reserved(), 0);
        // The share is there again for the next backlog.
        queue.try_grow(16 * MIB).expect("never refused");
        assert_eq!(pool.reserved(), 16 * MIB);
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let held = lake.lock_writer().unwrap();
        let err = lake.lock_writer().unwrap_err().to_string();
        assert!(err.contains("another quanyu process"), "{err}");
        drop(held);
        lake.lock_writer().unwrap();
    }

    #[tokio::test]
    async fn append_with_cursor_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let schema = orders_schema();
        assert_eq!(
            lake.txn_version("raw_orders", "quanyu:x").await.unwrap(),
            None
        );
        lake.append("raw_orders", &schema, vec![], Some(("quanyu:x", 5)))
            .await
            .unwrap();
        assert_eq!(
            lake.txn_version("raw_orders", "quanyu:x").await.unwrap(),
            Some(5)
        );
        lake.append("raw_orders", &schema, vec![], Some(("quanyu:x", 9)))
            .await
            .unwrap();
        assert_eq!(
            lake.txn_version("raw_orders", "quanyu:x").await.unwrap(),
            Some(9)
        );
        assert_eq!(
            lake.txn_version("raw_orders", "quanyu:other")
                .await
                .unwrap(),
            None
        );
        let ctx = lake.session_of(CORE_TABLES).await.unwrap();
        let n = ctx
            .sql("select count(*) from raw_orders")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(n[0].num_rows(), 1);
    }
}
