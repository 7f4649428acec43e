//! Refresh a current table (`orders`, `contacts`, `touchpoints`,
//! `order_lines`, `refunds`) from its raw table: one row per business key,
//! the latest by `updated_at` (then by ingestion time); for `order_lines`,
//! only the lines of each order's newest version (an order's record:
//! [`TableKind::record_columns`]).
//!
//! The change feed is the raw table's own Delta log, not a clock: the
//! current table records, in the commit that writes it, the raw version it
//! has read (`quanyu:refresh:raw_version`); the next refresh reads only the
//! data files added to the raw table since that version. A writer whose
//! clock is behind cannot hide its rows.
//!
//! Small changes are merged: the files of the current table that hold a
//! record among the new rows are rewritten with the new rows folded in, and new
//! keys are added, in one commit that removes the old files. When the new
//! rows are a large share of the table (a first pull, a backfill), the
//! whole table is rewritten in one streamed pass instead.

use std::collections::HashSet;

use anyhow::{Context, Result};
use arrow::array::{Array, AsArray};
use datafusion::prelude::ParquetReadOptions;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::Action;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use futures::StreamExt;
use quanyu_schemas::TableKind;

use crate::lake::{raw_table, Commit, Lake};

/// The application id of the clock watermark older versions of quanyu
/// committed (kept up to date for them; never read).
const REFRESH_APP_ID: &str = "quanyu:refresh";

/// The application id under which a current table records the version of
/// its raw table it has read up to.
pub const RAW_VERSION_APP_ID: &str = "quanyu:refresh:raw_version";

/// New rows above this share of the current table's rows rewrite the whole
/// table (one streamed pass) rather than merge file by file.
const MERGE_MAX_SHARE: f64 = 0.2;

/// Data files of the current tables: small enough that a merge rewrites
/// little, large enough to read fast.
const FILE_BYTES: u64 = 32 * 1024 * 1024;

/// The file-path column of the current table's scan when merging.
const FILE_COLUMN: &str = "__quanyu_file";

/// A typed NULL in SQL for a canonical column type.
fn null_of(t: &arrow::datatypes::DataType) -> String {
    use arrow::datatypes::DataType::*;
    match t {
        Int32 => "CAST(NULL AS INT)".into(),
        Int64 => "CAST(NULL AS BIGINT)".into(),
        Boolean => "CAST(NULL AS BOOLEAN)".into(),
        other => format!("arrow_cast(NULL, '{other}')"),
    }
}

/// How a refresh went: what `quanyu bench` and the tests read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshOutcome {
    /// Raw rows read (the new rows since the last refresh).
    pub raw_rows: u64,
    /// Files of the current table rewritten (all of them for a whole-table
    /// rewrite).
    pub files_rewritten: usize,
    /// Files of the current table before the refresh.
    pub files_before: usize,
    /// True when the whole table was rewritten.
    pub whole_table: bool,
}

/// Bring `kind`'s current table up to date with its raw table. Returns the
/// number of raw rows read.
pub async fn refresh_current(lake: &Lake, kind: TableKind) -> Result<u64> {
    Ok(refresh(lake, kind).await?.raw_rows)
}

/// [`refresh_current`], saying how it went.
pub async fn refresh(lake: &Lake, kind: TableKind) -> Result<RefreshOutcome> {
    refresh_with_file_size(lake, kind, FILE_BYTES).await
}

/// [`refresh`] writing data files of about `file_bytes`.
pub async fn refresh_with_file_size(
    lake: &Lake,
    kind: TableKind,
    file_bytes: u64,
) -> Result<RefreshOutcome> {
    let schema = kind.schema();
    let current = kind.name();
    let raw = raw_table(kind);
    let current_table = lake.table(current, &schema).await?;
    let raw_table = lake.table(&raw, &schema).await?;
    let raw_version = raw_table.version().unwrap_or(0);
    let read_upto = lake
        .txn_version(current, RAW_VERSION_APP_ID)
        .await?
        .map(|v| v as u64);
    let mut outcome = RefreshOutcome::default();
    if read_upto == Some(raw_version) {
        return Ok(outcome);
    }
    // A lake refreshed by an older quanyu (clock watermark only) reads all
    // raw rows once; the dedup makes that safe.
    let fresh_files = lake.files_between(&raw, read_upto, raw_version).await?;
    if fresh_files.is_empty() {
        return Ok(outcome);
    }
    let ctx = crate::lake::new_context();
    let fresh = ctx
        .read_parquet(
            fresh_files,
            ParquetReadOptions::default().schema(schema.as_ref()),
        )
        .await
        .with_context(|| format!("reading new rows of {raw}"))?;
    ctx.register_table("fresh", fresh.into_view())?;
    let stats = ctx
        .sql("SELECT count(*), max(ingested_at) FROM fresh")
        .await?
        .collect()
        .await?;
    let n = stats[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0) as u64;
    if n == 0 {
        return Ok(outcome);
    }
    outcome.raw_rows = n;
    let hi = stats[0]
        .column(1)
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
        .value(0);
    let txns = vec![
        (REFRESH_APP_ID.to_string(), hi),
        (RAW_VERSION_APP_ID.to_string(), raw_version as i64),
    ];
    lake.register(&ctx, current).await?;
    let current_schema = ctx.table_provider(current).await?.schema();
    let stale_schema = current_schema.fields().len() != schema.fields().len();
    let files: Vec<_> = current_table
        .snapshot()?
        .log_data()
        .into_iter()
        .map(|f| (f.path().to_string(), f.num_records().unwrap_or(0) as u64))
        .collect();
    outcome.files_before = files.len();
    let current_rows: u64 = files.iter().map(|f| f.1).sum();
    // A record's rows are rewritten together: every file holding one of
    // its rows (an order's lines, also those its newest version dropped).
    let keys = quoted(kind.record_columns());
    let merge = current_rows > 0 && (n as f64) <= MERGE_MAX_SHARE * current_rows as f64;
    if stale_schema {
        // A table written by an older quanyu: rewritten whole with the
        // canonical schema.
        let inputs = [(current, &current_schema), ("fresh", &schema)];
        for plan in [Dedup::DuplicatesOnly, Dedup::SortAll] {
            if plan == Dedup::SortAll {
                crate::lake::prefer_spilling_joins(&ctx).await?;
            }
            let df = ctx
                .sql(&latest_per_key(kind, &inputs, plan))
                .await
                .with_context(|| format!("refreshing {current}"))?;
            let commit = Commit {
                replace_schema: stale_schema,
                txns: txns.clone(),
                target_file_size: Some(file_bytes),
                ..Default::default()
            };
            match lake.write_plan(current, &schema, &ctx, df, commit).await {
                Ok(()) => break,
                Err(e) if plan == Dedup::DuplicatesOnly && crate::lake::ran_out_of_memory(&e) => {
                    tracing::warn!(table = current, "repeated keys do not fit in the memory budget: ranking every row instead (slower, spills to disk)");
                }
                Err(e) => return Err(e.context(format!("refreshing {current}"))),
            }
        }
        outcome.whole_table = true;
        outcome.files_rewritten = files.len();
        tracing::info!(
            table = current,
            raw_rows = n,
            "current table rewritten (schema updated)"
        );
        return Ok(outcome);
    }
    let rewritten: Vec<String> = if merge {
        touched_files(&ctx, &current_table, &keys, &files).await?
    } else {
        // The whole table, laid out anew.
        files.iter().map(|f| f.0.clone()).collect()
    };
    // Those files' rows and the new rows, the latest per key.
    let mut inputs = vec![("fresh", &schema)];
    if !rewritten.is_empty() {
        let affected = current_table
            .table_provider()
            .with_file_paths(rewritten.clone())
            .await?;
        let _ = ctx.deregister_table("affected");
        ctx.register_table("affected", affected)?;
        inputs.push(("affected", &current_schema));
    }
    let mut actions = Vec::new();
    for plan in [Dedup::DuplicatesOnly, Dedup::SortAll] {
        if plan == Dedup::SortAll {
            crate::lake::prefer_spilling_joins(&ctx).await?;
        }
        let sql = latest_per_key(kind, &inputs, plan);
        match write_rows(&ctx, &sql, &current_table, &schema, file_bytes).await {
            Ok(adds) => {
                actions.extend(adds.into_iter().map(Action::Add));
                break;
            }
            Err(e) if plan == Dedup::DuplicatesOnly && crate::lake::ran_out_of_memory(&e) => {
                tracing::warn!(table = current, "repeated keys do not fit in the memory budget: ranking every row instead (slower, spills to disk)");
            }
            Err(e) => return Err(e.context(format!("refreshing {current}"))),
        }
    }
    let snapshot = current_table.snapshot()?;
    let gone: HashSet<&str> = rewritten.iter().map(String::as_str).collect();
    actions.extend(
        snapshot
            .log_data()
            .into_iter()
            .filter(|f| gone.contains(f.path().as_ref()))
            .map(|f| Action::Remove(f.remove_action(true))),
    );
    let props = Commit {
        txns,
        ..Default::default()
    }
    .properties();
    CommitBuilder::from(props)
        .with_actions(actions)
        .build(
            Some(snapshot),
            current_table.log_store(),
            DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: Some(format!("merge of {n} new rows")),
            },
        )
        .await
        .with_context(|| format!("committing the refresh of {current}"))?;
    outcome.files_rewritten = rewritten.len();
    outcome.whole_table = !merge;
    tracing::info!(
        table = current,
        raw_rows = n,
        files_rewritten = rewritten.len(),
        files = files.len(),
        "current table merged"
    );
    Ok(outcome)
}

/// The files of the current table holding a row of a record among the new
/// rows (`fresh`; `keys` are the record's columns): the scan reads those
/// columns only.
async fn touched_files(
    ctx: &datafusion::prelude::SessionContext,
    current_table: &deltalake::DeltaTable,
    keys: &[String],
    files: &[(String, u64)],
) -> Result<Vec<String>> {
    let provider = current_table
        .table_provider()
        .with_file_column(FILE_COLUMN)
        .await?;
    let _ = ctx.deregister_table("current_files");
    ctx.register_table("current_files", provider)?;
    let on = keys
        .iter()
        .map(|k| format!("(c.{k} IS NOT DISTINCT FROM f.{k})"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let touched_sql = format!(
        "SELECT DISTINCT CAST(c.\"{FILE_COLUMN}\" AS VARCHAR) FROM current_files c
         JOIN (SELECT DISTINCT {} FROM fresh) f ON {on}",
        keys.join(", ")
    );
    let mut touched = HashSet::new();
    let mut s = ctx.sql(&touched_sql).await?.execute_stream().await?;
    while let Some(b) = s.next().await {
        let c = crate::lake::strings(b?.column(0))?;
        touched.extend(
            (0..c.len())
                .filter(|&i| !c.is_null(i))
                .map(|i| c.value(i).to_string()),
        );
    }
    Ok(files
        .iter()
        .map(|f| f.0.clone())
        .filter(|p| touched.iter().any(|t| same_file(t, p)))
        .collect())
}

/// Stream the rows of `sql` into new data files of `table` (not committed):
/// their add actions.
async fn write_rows(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
    table: &deltalake::DeltaTable,
    schema: &arrow::datatypes::SchemaRef,
    file_bytes: u64,
) -> Result<Vec<deltalake::kernel::Add>> {
    let mut rows = ctx.sql(sql).await?.execute_stream().await?;
    let mut writer = RecordBatchWriter::for_table(table)?
        .with_target_file_size(file_bytes)
        .with_writer_properties(crate::lake::writer_properties());
    while let Some(b) = rows.next().await {
        writer.write(crate::lake::conform(&b?, schema)?).await?;
    }
    Ok(writer.flush().await?)
}

/// True when the scan's file column value `seen` names the table file
/// `path` (the scan gives a URL, the log a relative, encoded path).
fn same_file(seen: &str, path: &str) -> bool {
    let decoded = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    seen == path || decoded(seen).ends_with(&format!("/{}", decoded(path)))
}

/// The rows of `inputs` (table name and its schema), the latest per key of
/// `kind` (for `order_lines`, only those of each order's newest version).
/// Strings are read as compact plain strings (the scans yield views
/// into whole decoded pages, which a sort would hold on to); columns an
/// input lacks (a table written by an older quanyu) read as NULL.
fn latest_per_key(
    kind: TableKind,
    inputs: &[(&str, &arrow::datatypes::SchemaRef)],
    plan: Dedup,
) -> String {
    let schema = kind.schema();
    // The table's columns, each as `{prefix}"name"`.
    let columns = |prefix: &str| {
        schema
            .fields()
            .iter()
            .map(|f| format!("{prefix}\"{}\"", f.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cols = columns("");
    let select = |table: &str, have: &arrow::datatypes::SchemaRef| -> String {
        let cols = schema
            .fields()
            .iter()
            .map(|f| {
                let n = f.name();
                match (have.field_with_name(n).is_ok(), f.data_type()) {
                    (false, t) => format!("{} AS \"{n}\"", null_of(t)),
                    (true, arrow::datatypes::DataType::Utf8) => {
                        format!("CAST(\"{n}\" AS VARCHAR) AS \"{n}\"")
                    }
                    _ => format!("\"{n}\""),
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("SELECT {cols} FROM {table}")
    };
    let union = inputs
        .iter()
        .map(|(t, s)| select(t, s))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let keys = quoted(kind.key_columns()).join(", ");
    let version = kind.version_column();
    let latest = |from: &str| {
        format!(
            "SELECT {cols} FROM (
                SELECT {cols}, row_number() OVER (PARTITION BY {keys} ORDER BY \"{version}\" DESC, ingested_at DESC) AS rn
                FROM {from}
            ) WHERE rn = 1"
        )
    };
    let order = format!("ORDER BY \"{}\"", locality_column(kind));
    let mut ctes: Vec<(&str, String)> = vec![("input", union)];
    let mut body = if plan == Dedup::SortAll {
        latest("input")
    } else {
        // Most keys occur once: only the rows of keys that occur more than
        // once are ranked (a sort of a few rows, not of the table).
        let on = join_on(kind.key_columns(), "d", "i");
        let icols = columns("i.");
        ctes.push((
            "dup",
            format!("SELECT {keys} FROM input GROUP BY {keys} HAVING count(*) > 1"),
        ));
        format!(
            "SELECT {cols} FROM (
               SELECT {icols} FROM dup d RIGHT ANTI JOIN input i ON {on}
               UNION ALL
               {}
             )",
            latest(&format!(
                "(SELECT {icols} FROM dup d RIGHT SEMI JOIN input i ON {on})"
            ))
        )
    };
    let record = kind.record_columns();
    if record != kind.key_columns() {
        // Rows of an older version of their record than its newest are
        // gone from the record (the newest version lists all it holds).
        // The newest version of each record seen in more than one is read
        // from the input (the latest row of a key is its newest), so the
        // ranking above runs once.
        let group = quoted(record).join(", ");
        let on = join_on(record, "r", "n");
        let rcols = columns("r.");
        ctes.push((
            "newest",
            format!(
                "SELECT {group}, max(\"{version}\") AS newest FROM input GROUP BY {group}
                 HAVING min(\"{version}\") < max(\"{version}\")"
            ),
        ));
        body = format!(
            "SELECT {rcols} FROM ({body}) r LEFT ANTI JOIN newest n
             ON {on} AND r.\"{version}\" < n.newest"
        );
    }
    let with = ctes
        .iter()
        .map(|(name, sql)| format!("{name} AS ({sql})"))
        .collect::<Vec<_>>()
        .join(",\n");
    format!("WITH {with}\n{body} {order}")
}

/// The columns, quoted for SQL.
fn quoted(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| format!("\"{c}\"")).collect()
}

/// `a.c = b.c AND ...` over `columns`.
fn join_on(columns: &[&str], a: &str, b: &str) -> String {
    columns
        .iter()
        .map(|c| format!("{a}.\"{c}\" = {b}.\"{c}\""))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// How [`latest_per_key`] finds the latest row of each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dedup {
    /// Rank only the rows of keys seen more than once (hash joins against
    /// the set of such keys).
    DuplicatesOnly,
    /// Rank every row (sorts, which spill; `order_lines` also groups its
    /// rows by order, an aggregation that spills too): when the set of
    /// repeated keys does not fit in memory.
    SortAll,
}

/// The column the current table's rows are laid out by: the records a
/// later pull changes (new orders, orders still moving) sit together in the
/// newest files, so a merge rewrites few files.
fn locality_column(kind: TableKind) -> &'static str {
    match kind {
        TableKind::Orders | TableKind::OrderLines | TableKind::Refunds => "created_at",
        TableKind::Contacts => "updated_at",
        TableKind::Touchpoints => "occurred_at",
    }
}
