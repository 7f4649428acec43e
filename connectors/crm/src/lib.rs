//! The CRM database connector: incremental pulls from PostgreSQL or
//! MySQL / MariaDB by an update-time column (windows with a look-back, like
//! the marketplaces) or an auto-increment column (batches after the last id
//! committed), from a table or any query, mapped by config into `contacts`
//! (members) or `orders` (store POS orders).
//!
//! Every selected column is cast to text in SQL and goes through the same
//! declarative mapping as file imports. Sessions run in Beijing time, so
//! `timestamp` columns without a zone mean Beijing time, as CRMs in China
//! store them.
#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use futures::TryStreamExt;
use quanyu_connector_sdk::declarative::{ColumnSpec, Mapped, RowMapper};
use quanyu_connector_sdk::{
    ConfigError, ConnectorError, CursorMode, ErrorKind, NormalizedPage, PageSink, PullContext,
    PullError, PullReport, PullResult, RequestContext, Secret, SecretRef, Stream, StreamId, Window,
    WindowPlan,
};
use quanyu_schemas::time::format_beijing;
use quanyu_schemas::{QuarantineRow, TableKind};
use serde::Deserialize;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use tokio::sync::OnceCell;

/// How the source advances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CursorKind {
    /// A last-modified time column: windows with a look-back.
    #[default]
    UpdatedAt,
    /// An auto-increment integer column: rows after the last one seen.
    Increment,
}

/// The table a CRM source lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmTarget {
    /// Members.
    Contacts,
    /// Store POS orders.
    Orders,
}

/// `[[crm]]`: one source table or query.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmConfig {
    /// The source's name (the stream scope), e.g. `members`.
    pub name: String,
    /// `postgres://user:pass@host/db` or `mysql://user:pass@host/db`:
    /// `{ env = "CRM_DATABASE_URL" }` or `{ file = ".." }`.
    pub url: SecretRef,
    /// Target table.
    pub table: CrmTarget,
    /// A table (or `schema.table`) to read...
    #[serde(default)]
    pub source_table: Option<String>,
    /// ...or a query (its columns are what `columns` names).
    #[serde(default)]
    pub query: Option<String>,
    /// The cursor column.
    pub cursor_column: String,
    /// `updated_at` (a time) or `increment` (an auto-increment id).
    #[serde(default)]
    pub cursor: CursorKind,
    /// Window length for time cursors, minutes.
    #[serde(default = "default_window_minutes")]
    pub window_minutes: i64,
    /// Look-back for time cursors, minutes (rows committed late).
    #[serde(default = "default_lookback_minutes")]
    pub lookback_minutes: i64,
    /// How far back the first time-cursor pull starts, days.
    #[serde(default = "default_initial_days")]
    pub initial_days: i64,
    /// Rows per batch (increment cursors) and per page.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Fixed field values (`channel = "crm"`).
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Canonical field → source column.
    pub columns: BTreeMap<String, ColumnSpec>,
}

fn default_window_minutes() -> i64 {
    24 * 60
}
fn default_lookback_minutes() -> i64 {
    10
}
fn default_initial_days() -> i64 {
    3650
}
fn default_batch_rows() -> usize {
    5_000
}

/// The database flavour, from the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Dialect {
    fn of(url: &str) -> Option<Dialect> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Some(Dialect::MySql)
        } else {
            None
        }
    }

    fn quote(self, ident: &str) -> String {
        match self {
            Dialect::Postgres => format!("\"{ident}\""),
            Dialect::MySql => format!("`{ident}`"),
        }
    }

    fn as_text(self, col: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST(q.{c} AS TEXT) AS {c}", c = self.quote(col)),
            Dialect::MySql => format!("CAST(q.{c} AS CHAR) AS {c}", c = self.quote(col)),
        }
    }

    fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::MySql => "?".into(),
        }
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !p.starts_with(|c: char| c.is_ascii_digit())
        })
}

fn column_of(spec: &ColumnSpec) -> &str {
    match spec {
        ColumnSpec::Name(c) | ColumnSpec::Full { column: c, .. } => c,
    }
}

/// Build the stream of one CRM source.
pub fn build_streams(cfg: &CrmConfig) -> Result<Vec<Arc<dyn Stream>>, ConfigError> {
    let bad = |m: String| ConfigError::new("crm", &cfg.name, m);
    let url = ConfigError::secret("crm", &cfg.name, &cfg.url)?;
    let dialect = Dialect::of(url.expose())
        .ok_or_else(|| bad("url must start with postgres:// or mysql:// (or mariadb://)".into()))?;
    let source = match (&cfg.source_table, &cfg.query) {
        (Some(t), None) if is_identifier(t) => {
            let quoted: Vec<String> = t.split('.').map(|p| dialect.quote(p)).collect();
            format!("SELECT * FROM {}", quoted.join("."))
        }
        (Some(t), None) => {
            return Err(bad(format!("source_table {t:?} is not a plain table name")))
        }
        (None, Some(q)) => q.trim().trim_end_matches(';').to_string(),
        _ => return Err(bad("give exactly one of source_table or query".into())),
    };
    let mut columns: BTreeSet<String> = cfg
        .columns
        .values()
        .map(|c| column_of(c).to_string())
        .collect();
    columns.insert(cfg.cursor_column.clone());
    if let Some(c) = columns
        .iter()
        .find(|c| !is_identifier(c) || c.contains('.'))
    {
        return Err(bad(format!("column {c:?} must be a plain column name")));
    }
    if cfg.batch_rows == 0 {
        return Err(bad("batch_rows must be at least 1".into()));
    }
    ConfigError::check_range(
        "crm",
        &cfg.name,
        "window_minutes",
        cfg.window_minutes,
        1..=31 * 24 * 60,
        "",
    )?;
    let columns: Vec<String> = columns.into_iter().collect();
    let list = columns
        .iter()
        .map(|c| dialect.as_text(c))
        .collect::<Vec<_>>()
        .join(", ");
    let cur = format!("q.{}", dialect.quote(&cfg.cursor_column));
    let select = match cfg.cursor {
        CursorKind::UpdatedAt => {
            let (p1, p2) = match dialect {
                Dialect::Postgres => (
                    "CAST($1 AS TIMESTAMPTZ)".to_string(),
                    "CAST($2 AS TIMESTAMPTZ)".to_string(),
                ),
                Dialect::MySql => (dialect.param(1), dialect.param(2)),
            };
            format!("SELECT {list} FROM ({source}) q WHERE {cur} >= {p1} AND {cur} < {p2} ORDER BY {cur}")
        }
        CursorKind::Increment => format!(
            "SELECT {list} FROM ({source}) q WHERE {cur} > {} ORDER BY {cur} LIMIT {}",
            dialect.param(1),
            cfg.batch_rows
        ),
    };
    let table = match cfg.table {
        CrmTarget::Contacts => TableKind::Contacts,
        CrmTarget::Orders => TableKind::Orders,
    };
    Ok(vec![Arc::new(CrmSource {
        id: StreamId::new("crm", table.name(), &cfg.name),
        cfg: cfg.clone(),
        url,
        dialect,
        table,
        select,
        pool: OnceCell::new(),
        plan: WindowPlan {
            max_window: Duration::minutes(cfg.window_minutes),
            lookback: Duration::minutes(cfg.lookback_minutes.max(0)),
            initial_start: Utc::now() - Duration::days(cfg.initial_days.max(1)),
            end_lag: Duration::seconds(5),
        },
    })])
}

enum Pool {
    Pg(PgPool),
    My(MySqlPool),
}

/// One CRM source.
pub struct CrmSource {
    id: StreamId,
    cfg: CrmConfig,
    url: Secret,
    dialect: Dialect,
    table: TableKind,
    select: String,
    pool: OnceCell<Pool>,
    plan: WindowPlan,
}

/// A database error as a connector error, without the URL or password.
fn db_error(ctx: &RequestContext, e: &sqlx::Error) -> ConnectorError {
    let (kind, msg) = match e {
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            let kind = match code.as_str() {
                // PostgreSQL: invalid password / authorization; MySQL: access denied.
                "28P01" | "28000" | "1045" | "1044" => ErrorKind::Auth,
                "40001" | "40P01" | "1213" | "1205" | "57P01" => ErrorKind::Transient,
                _ => ErrorKind::InvalidRequest,
            };
            (kind, format!("database error {code}: {}", d.message()))
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => (
            ErrorKind::Transient,
            "cannot reach the database".to_string(),
        ),
        sqlx::Error::Tls(_) => (
            ErrorKind::Transient,
            "TLS to the database failed".to_string(),
        ),
        sqlx::Error::Configuration(_) => {
            (ErrorKind::Config, "the database URL is invalid".to_string())
        }
        sqlx::Error::ColumnNotFound(c) => (ErrorKind::InvalidRequest, format!("no column {c}")),
        other => (
            ErrorKind::Protocol,
            format!(
                "database: {}",
                other.to_string().lines().next().unwrap_or("")
            ),
        ),
    };
    ConnectorError::new(ctx, kind, msg)
}

impl CrmSource {
    fn ctx(&self) -> RequestContext {
        RequestContext::new("crm", Some(&self.cfg.name), "select")
    }

    async fn pool(&self) -> Result<&Pool, ConnectorError> {
        let ctx = self.ctx();
        self.pool
            .get_or_try_init(|| async {
                let url = self.url.expose();
                Ok(match self.dialect {
                    Dialect::Postgres => Pool::Pg(
                        PgPoolOptions::new()
                            .max_connections(2)
                            .acquire_timeout(std::time::Duration::from_secs(10))
                            .after_connect(|conn, _| {
                                Box::pin(async move {
                                    sqlx::query("SET TIME ZONE 'Asia/Shanghai'")
                                        .execute(conn)
                                        .await?;
                                    Ok(())
                                })
                            })
                            .connect(url)
                            .await
                            .map_err(|e| db_error(&ctx, &e))?,
                    ),
                    Dialect::MySql => Pool::My(
                        MySqlPoolOptions::new()
                            .max_connections(2)
                            .acquire_timeout(std::time::Duration::from_secs(10))
                            .after_connect(|conn, _| {
                                Box::pin(async move {
                                    sqlx::query("SET time_zone = '+08:00'")
                                        .execute(conn)
                                        .await?;
                                    Ok(())
                                })
                            })
                            .connect(&url.replacen("mariadb://", "mysql://", 1))
                            .await
                            .map_err(|e| db_error(&ctx, &e))?,
                    ),
                })
            })
            .await
    }

    /// Stream the rows of the query with `binds` through the mapping into
    /// `sink`; returns the report and the greatest cursor value (integer
    /// cursors).
    async fn run(
        &self,
        binds: Bind,
        ctx: &PullContext,
        sink: &mut dyn PageSink,
    ) -> PullResult<(PullReport, Option<i64>)> {
        let rctx = self.ctx();
        let pool = self.pool().await?;
        let mut report = PullReport::default();
        let mut mapper: Option<(RowMapper, usize)> = None;
        let mut page: Vec<Mapped> = Vec::new();
        let mut quarantine: Vec<QuarantineRow> = Vec::new();
        let mut max_cursor: Option<i64> = None;
        let mut rows = match pool {
            Pool::Pg(p) => bind(sqlx::query(&self.select), &binds)
                .fetch(p)
                .map_ok(text_row)
                .boxed(),
            Pool::My(p) => bind(sqlx::query(&self.select), &binds)
                .fetch(p)
                .map_ok(text_row)
                .boxed(),
        };
        while let Some((names, cells)) = rows.try_next().await.map_err(|e| db_error(&rctx, &e))? {
            let cells = cells.map_err(|e| db_error(&rctx, &e))?;
            if mapper.is_none() {
                let m = RowMapper::new(
                    self.table,
                    &self.cfg.columns,
                    &self.cfg.values,
                    None,
                    &names,
                    ctx.hasher.clone(),
                )
                .map_err(|e| ConnectorError::new(&rctx, ErrorKind::Config, e.0))?;
                let cur = names
                    .iter()
                    .position(|n| *n == self.cfg.cursor_column)
                    .expect("the cursor column is selected");
                mapper = Some((m, cur));
            }
            let (m, cur) = mapper.as_ref().expect("set above");
            if self.cfg.cursor == CursorKind::Increment {
                let v: i64 = cells[*cur].parse().map_err(|_| {
                    ConnectorError::new(
                        &rctx,
                        ErrorKind::Config,
                        format!(
                            "cursor column {} is not an integer: {:?}",
                            self.cfg.cursor_column, cells[*cur]
                        ),
                    )
                })?;
                max_cursor = Some(max_cursor.map_or(v, |c| c.max(v)));
            }
            match m.map(&cells) {
                Ok((row, problems)) => {
                    page.push(row);
                    for p in &problems {
                        quarantine.push(ctx.field_problem(
                            &self.id,
                            self.table,
                            m.key_of(&cells),
                            p,
                        ));
                    }
                }
                Err(reason) => quarantine.push(ctx.reject(
                    &self.id,
                    self.table,
                    m.key_of(&cells),
                    &cells.join(","),
                    reason,
                )),
            }
            if page.len() + quarantine.len() >= self.cfg.batch_rows {
                self.emit(&mut page, &mut quarantine, ctx, sink, &mut report)
                    .await?;
            }
        }
        self.emit(&mut page, &mut quarantine, ctx, sink, &mut report)
            .await?;
        Ok((report, max_cursor))
    }

    async fn emit(
        &self,
        page: &mut Vec<Mapped>,
        quarantine: &mut Vec<QuarantineRow>,
        ctx: &PullContext,
        sink: &mut dyn PageSink,
        report: &mut PullReport,
    ) -> Result<(), PullError> {
        let records_in = page.len() + quarantine.iter().filter(|q| q.field.is_none()).count();
        if records_in == 0 {
            return Ok(());
        }
        let batch = Mapped::batch(page.drain(..), ctx);
        report.pages += 1;
        report.records += records_in as u64;
        sink.page(NormalizedPage {
            batch,
            extra: Vec::new(),
            quarantine: std::mem::take(quarantine),
            records_in,
        })
        .await
        .map_err(PullError::Sink)
    }
}

enum Bind {
    Times(String, String),
    After(i64),
}

/// Bind the window bounds or the last id.
fn bind<'q, DB: sqlx::Database>(
    q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    binds: &Bind,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match binds {
        Bind::Times(a, b) => q.bind(a.clone()).bind(b.clone()),
        Bind::After(n) => q.bind(*n),
    }
}

/// A row's column names and its cells as text (every column is cast to
/// text in SQL; NULL is empty).
type TextRow = (Vec<String>, Result<Vec<String>, sqlx::Error>);

fn text_row<R: Row>(r: R) -> TextRow
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let names: Vec<String> = r
        .columns()
        .iter()
        .map(|c| sqlx::Column::name(c).to_string())
        .collect();
    let cells = (0..names.len())
        .map(|i| {
            r.try_get::<Option<String>, _>(i)
                .map(Option::unwrap_or_default)
        })
        .collect();
    (names, cells)
}

use futures::StreamExt as _;

#[async_trait]
impl Stream for CrmSource {
    fn id(&self) -> &StreamId {
        &self.id
    }

    fn table(&self) -> TableKind {
        self.table
    }

    fn cursor_mode(&self) -> CursorMode {
        match self.cfg.cursor {
            CursorKind::UpdatedAt => CursorMode::Windows(self.plan),
            CursorKind::Increment => CursorMode::Sequence,
        }
    }

    fn request_stats(&self) -> (u64, u64) {
        (0, 0)
    }

    async fn pull(&self, window: Window, ctx: &PullContext, sink: &mut dyn PageSink) -> PullResult {
        let bind = match self.dialect {
            Dialect::Postgres => Bind::Times(window.start.to_rfc3339(), window.end.to_rfc3339()),
            Dialect::MySql => Bind::Times(
                window
                    .start
                    .with_timezone(&beijing())
                    .format("%Y-%m-%d %H:%M:%S%.6f")
                    .to_string(),
                window
                    .end
                    .with_timezone(&beijing())
                    .format("%Y-%m-%d %H:%M:%S%.6f")
                    .to_string(),
            ),
        };
        tracing::debug!(source = %self.id, start = %format_beijing(window.start), "crm window");
        Ok(self.run(bind, ctx, sink).await?.0)
    }

    async fn pull_after(
        &self,
        after: Option<i64>,
        ctx: &PullContext,
        sink: &mut dyn PageSink,
    ) -> PullResult<(PullReport, Option<i64>)> {
        self.run(Bind::After(after.unwrap_or(i64::MIN)), ctx, sink)
            .await
    }
}

fn beijing() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// The connector as the engine registers it.
pub static CONNECTOR: quanyu_connector_sdk::connector::ConnectorSpec<CrmConfig> =
    quanyu_connector_sdk::connector::ConnectorSpec {
        name: "crm",
        about: "the brand's CRM database (members, POS orders)",
        channel: quanyu_schemas::Channel::Crm,
        build: |cfg, _setup| build_streams(cfg),
        decrypts: false,
        order_ids: None,
        sandbox: None,
    };
