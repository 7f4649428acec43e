//! One identity build: bring `identity_edges` up to date with the source
//! tables, recompute the customers those changes touch (all of them in a
//! full build), carry ids forward, and write `identity_map`, the logs and
//! `customers`.
//!
//! Incremental builds read only the raw rows committed since the last
//! build (Delta versions, never clocks), rewrite the edges of the records
//! that changed, and recompute the clusters those edges touch; the rest of
//! `identity_map` is copied through. The result equals a full build's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use datafusion::datasource::MemTable;
use datafusion::prelude::{col, lit, Expr, SessionContext};
use futures::StreamExt;
use quanyu_schemas::PiiHasher;

use super::blocklist::Blocklist;
use super::config::IdentityConfig;
use super::edges::{edges_sql, identity_edges_schema, EdgeSources, SOURCES};
use super::graph::{NodeDict, NodeId, NONE};
use super::ids::{assign, uid_fingerprint, Assigned, Cause, OldIds};
use super::resolve::{resolve, Decision, Graph, Resolved};
use super::tables::{
    identity_audit_schema, identity_changes_schema, identity_map_schema, AuditEntry, IdentityChange,
};
use crate::lake::{strings, Commit, Lake};
use crate::refresh::RAW_VERSION_APP_ID;

const BUILD_APP: &str = "quanyu:identity";
const CONFIG_APP: &str = "quanyu:identity:config";
const EDGES_APP: &str = "quanyu:identity:edges";
const CUSTOMERS_APP: &str = "quanyu:identity:customers";
const ALIASES_APP: &str = "quanyu:identity:aliases";

fn raw_app(table: &str) -> String {
    format!("quanyu:identity:raw_{table}")
}

/// Where one build's time went, in seconds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BuildTimings {
    /// Source tables → `identity_edges` (full builds).
    pub extract_secs: f64,
    /// `identity_edges` → the in-memory graph.
    pub read_edges_secs: f64,
    /// The previous `identity_map` (ids to carry forward).
    pub read_previous_secs: f64,
    /// Guardrails, components and caps.
    pub resolve_secs: f64,
    /// Union-find and grouping alone (part of `resolve_secs`).
    pub components_secs: f64,
    /// Carrying ids forward.
    pub assign_secs: f64,
    /// Writing `identity_map` and the logs.
    pub write_secs: f64,
    /// `identity_aliases` and `customers` after the map (downstream of
    /// identity, timed apart).
    pub customers_secs: f64,
}

/// Seconds since `clock`; restarts it.
fn lap(clock: &mut std::time::Instant) -> f64 {
    let s = clock.elapsed().as_secs_f64();
    *clock = std::time::Instant::now();
    s
}

/// What one identity build did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct IdentitySummary {
    /// The build number (1 for the first build of a lake).
    pub build: i64,
    /// Whether every identifier was recomputed.
    pub full: bool,
    /// Source records whose edges were (re)read.
    pub changed_records: usize,
    /// Identifiers recomputed.
    pub recomputed: usize,
    /// Edges read into the graph.
    pub edges: usize,
    /// Recomputed identifiers kept out of stitching (blocklist, people limit).
    pub excluded: usize,
    /// Recomputed identifiers cut from oversize customers.
    pub cut: usize,
    /// Recomputed buyer ids whose links to receiver phones are not used
    /// (they ship to more people than allowed).
    pub links_cut: usize,
    /// Unified customers after the build (distinct unified ids).
    pub customers: usize,
    /// Recomputed customers that kept an id.
    pub carried_forward: usize,
    /// New ids.
    pub minted: usize,
    /// Ids retired as merged into another.
    pub merged: usize,
    /// Customers split off from an id (given new ids).
    pub split: usize,
    /// Ids retired as dissolved.
    pub dissolved: usize,
    /// Where the time went.
    pub timings: BuildTimings,
}

/// Source tables with rows the latest identity build has not read (a
/// crash or a failure between the import and identity leaves them; the next
/// build reads them).
pub async fn behind(lake: &Lake) -> Result<Vec<&'static str>> {
    let state = read_state(lake).await?;
    let mut out = Vec::new();
    for (t, _) in SOURCES {
        let refreshed = lake
            .txn_version(t, RAW_VERSION_APP_ID)
            .await?
            .map(|v| v as u64);
        let read = state.as_ref().and_then(|s| s.raw.get(t).copied().flatten());
        if refreshed.is_some() && refreshed != read {
            out.push(*t);
        }
    }
    Ok(out)
}

/// One line saying what a build did.
pub fn describe(s: &IdentitySummary) -> String {
    format!(
        "identity build {} ({}): {} records changed, {} identifiers recomputed over {} edges; {} excluded, {} cut, {} buyer ids without receiver links; {} customers ({} kept their id, {} new, {} merged away, {} split off, {} dissolved)",
        s.build,
        if s.full { "full" } else { "incremental" },
        s.changed_records,
        s.recomputed,
        s.edges,
        s.excluded,
        s.cut,
        s.links_cut,
        s.customers,
        s.carried_forward,
        s.minted,
        s.merged,
        s.split,
        s.dissolved
    )
}

/// The state the previous build left.
#[derive(Debug, Clone, Default)]
struct State {
    build: i64,
    config: Option<i64>,
    edges_version: Option<u64>,
    customers: i64,
    raw: BTreeMap<&'static str, Option<u64>>,
}

async fn read_state(lake: &Lake) -> Result<Option<State>> {
    let raw_apps: Vec<String> = SOURCES.iter().map(|(t, _)| raw_app(t)).collect();
    let mut apps = vec![BUILD_APP, CONFIG_APP, EDGES_APP, CUSTOMERS_APP];
    apps.extend(raw_apps.iter().map(String::as_str));
    let v = lake.txn_versions("identity_map", &apps).await?;
    let Some(build) = v[0] else {
        return Ok(None);
    };
    Ok(Some(State {
        build,
        config: v[1],
        edges_version: v[2].map(|x| x as u64),
        customers: v[3].unwrap_or(0),
        raw: SOURCES
            .iter()
            .zip(&v[4..])
            .map(|((t, _), x)| (*t, x.map(|x| x as u64)))
            .collect(),
    }))
}

/// Build identity: incrementally when the lake's identity state allows it,
/// else in full.
pub async fn build_identity(
    lake: &Lake,
    hasher: &PiiHasher,
    cfg: &IdentityConfig,
) -> Result<IdentitySummary> {
    build(lake, hasher, cfg, false).await
}

/// Rebuild identity from every source record (ids still carried forward).
pub async fn rebuild_identity(
    lake: &Lake,
    hasher: &PiiHasher,
    cfg: &IdentityConfig,
) -> Result<IdentitySummary> {
    build(lake, hasher, cfg, true).await
}

/// The source tables present and the raw version each was refreshed from.
struct Sources {
    tables: Vec<&'static str>,
    refreshed: BTreeMap<&'static str, Option<u64>>,
    orders_receiver: bool,
    orders_unionid: bool,
}

async fn sources(lake: &Lake, ctx: &SessionContext) -> Result<Sources> {
    let mut tables = Vec::new();
    let mut refreshed = BTreeMap::new();
    for (t, _) in SOURCES {
        if lake.register(ctx, t).await? {
            tables.push(*t);
            refreshed.insert(
                *t,
                lake.txn_version(t, RAW_VERSION_APP_ID)
                    .await?
                    .map(|v| v as u64),
            );
        }
    }
    let orders_schema = match tables.contains(&"orders") {
        true => Some(ctx.table_provider("orders").await?.schema()),
        false => None,
    };
    let has = |c: &str| {
        orders_schema
            .as_ref()
            .is_some_and(|s| s.field_with_name(c).is_ok())
    };
    Ok(Sources {
        orders_receiver: has("receiver_hash"),
        orders_unionid: has("buyer_unionid"),
        tables,
        refreshed,
    })
}

async fn build(
    lake: &Lake,
    hasher: &PiiHasher,
    cfg: &IdentityConfig,
    force_full: bool,
) -> Result<IdentitySummary> {
    cfg.validate()?;
    let ctx = crate::lake::new_context();
    let src = sources(lake, &ctx).await?;
    let state = read_state(lake).await?;
    let map_is_v2 = match lake.try_open("identity_map").await? {
        Some(_) => {
            lake.register(&ctx, "identity_map").await?;
            ctx.table_provider("identity_map")
                .await?
                .schema()
                .field_with_name("cluster")
                .is_ok()
        }
        None => false,
    };
    let blocklist = Blocklist::new(hasher, cfg)?;
    // Incremental needs the previous build's state under the same rules;
    // a source table first seen now is read whole (all its rows changed).
    let incremental = match &state {
        Some(s) if !force_full && map_is_v2 && s.config == Some(cfg.fingerprint()) => {
            s.edges_version.is_some() && lake.version("identity_edges").await?.is_some()
        }
        _ => false,
    };
    let build_no = state.as_ref().map_or(0, |s| s.build) + 1;
    let mut summary = IdentitySummary {
        build: build_no,
        full: !incremental,
        ..Default::default()
    };
    let outcome = if incremental {
        let s = state.clone().expect("incremental builds have a state");
        incremental_build(
            lake,
            &ctx,
            &src,
            &s,
            cfg,
            &blocklist,
            build_no,
            &mut summary,
        )
        .await?
    } else {
        full_build(
            lake,
            &ctx,
            &src,
            state.as_ref(),
            map_is_v2,
            cfg,
            &blocklist,
            build_no,
            &mut summary,
        )
        .await?
    };
    let Some(customers) = outcome else {
        // Nothing changed: the previous build stands (customers caught up).
        summary.build = build_no - 1;
        summary.customers = state.map_or(0, |s| s.customers as usize);
        catch_up(lake, summary.build).await?;
        return Ok(summary);
    };
    summary.customers = customers;
    let t = std::time::Instant::now();
    catch_up(lake, build_no).await?;
    summary.timings.customers_secs = t.elapsed().as_secs_f64();
    tracing::info!(?summary, "identity built");
    Ok(summary)
}

/// Bring `identity_aliases` up to build `build` (after a crash between the
/// map's commit and theirs, the next build does it). The marts follow in
/// the sync.
async fn catch_up(lake: &Lake, build: i64) -> Result<()> {
    if build <= 0 {
        return Ok(());
    }
    super::aliases::update_aliases(lake, build, ALIASES_APP).await
}

/// A session for reading whole tables into memory: larger batches, less
/// overhead per row.
async fn bulk_context() -> Result<SessionContext> {
    let ctx = crate::lake::new_context();
    ctx.sql("SET datafusion.execution.batch_size = 65536")
        .await?
        .collect()
        .await?;
    Ok(ctx)
}

/// Rows per batch when writing from memory.
const BATCH: usize = 64 * 1024;

#[allow(clippy::too_many_arguments)]
async fn full_build(
    lake: &Lake,
    ctx: &SessionContext,
    src: &Sources,
    state: Option<&State>,
    map_is_v2: bool,
    cfg: &IdentityConfig,
    blocklist: &Blocklist,
    build_no: i64,
    summary: &mut IdentitySummary,
) -> Result<Option<usize>> {
    // Edges of every record, streamed from the sources into the table.
    let started = std::time::Instant::now();
    let sql = edges_sql(&EdgeSources {
        rules: &cfg.state_rules,
        tables: src.tables.clone(),
        orders_receiver: src.orders_receiver,
        orders_unionid: src.orders_unionid,
        only_changed: false,
    });
    let df = ctx.sql(&sql).await.context("identity edges")?;
    let df = conform_frame(df, &identity_edges_schema())?;
    lake.write_plan(
        "identity_edges",
        &identity_edges_schema(),
        ctx,
        df,
        Commit {
            replace_schema: true,
            ..Default::default()
        },
    )
    .await?;
    summary.timings.extract_secs = started.elapsed().as_secs_f64();
    from_edges(
        lake, src, state, map_is_v2, cfg, blocklist, build_no, summary,
    )
    .await
}

/// A full build from `identity_edges` as it stands: every identifier
/// recomputed, previous ids carried forward, `identity_map` rewritten.
#[allow(clippy::too_many_arguments)]
async fn from_edges(
    lake: &Lake,
    src: &Sources,
    state: Option<&State>,
    map_is_v2: bool,
    cfg: &IdentityConfig,
    blocklist: &Blocklist,
    build_no: i64,
    summary: &mut IdentitySummary,
) -> Result<Option<usize>> {
    let ctx = &crate::lake::new_context();
    let t = std::time::Instant::now();
    let edges_version = lake.version("identity_edges").await?.unwrap_or(0);
    let rctx = bulk_context().await?;
    lake.register_at(&rctx, "identity_edges", edges_version, "identity_edges")
        .await?;
    let mut g = Graph::new();
    summary.edges = load_edges(
        &rctx,
        "SELECT a_type, a_value, b_type, b_value, rule, signal FROM identity_edges",
        &mut g,
        None,
    )
    .await?;
    summary.changed_records = 0;
    summary.timings.read_edges_secs = t.elapsed().as_secs_f64();
    // The previous ids of every identifier, and every id ever issued.
    let t = std::time::Instant::now();
    let mut old = OldIds::default();
    let mut old_rule: HashMap<NodeId, String> = HashMap::new();
    if state.is_some() || lake.try_open("identity_map").await?.is_some() {
        let octx = bulk_context().await?;
        if lake.register(&octx, "identity_map").await? {
            let cols = if map_is_v2 {
                "id_type, id_value, unified_id, COALESCE(unified_since, 0), rule"
            } else {
                "id_type, id_value, unified_id, CAST(0 AS BIGINT), CAST(NULL AS VARCHAR)"
            };
            read_old(
                &octx,
                &format!("SELECT {cols} FROM identity_map"),
                &g.dict,
                &mut old,
                &mut old_rule,
            )
            .await?;
        }
        read_issued(lake, &mut old, true).await?;
    }
    summary.timings.read_previous_secs = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let res = resolve(&g, cfg, blocklist);
    summary.timings.resolve_secs = t.elapsed().as_secs_f64();
    summary.timings.components_secs = res.components_secs;
    let t = std::time::Instant::now();
    let ids = assign(&g, &res, &mut old, build_no);
    drop(old);
    summary.timings.assign_secs = t.elapsed().as_secs_f64();
    summarize(&g, &res, &ids, summary);
    let customers = res.pieces();
    let t = std::time::Instant::now();
    let out = Arc::new(MapRows::new(g, res, ids, build_no));
    write_logs(lake, &out, &old_rule, build_no).await?;
    // identity_map, streamed from memory.
    let n = out.g.dict.len();
    let rows = {
        let out = out.clone();
        futures::stream::iter((0..n).step_by(BATCH))
            .map(move |start| out.batch(start, (start + BATCH).min(n)))
    };
    let df = crate::lake::stream_frame(ctx, identity_map_schema(), rows)?;
    lake.write_plan(
        "identity_map",
        &identity_map_schema(),
        ctx,
        df,
        Commit {
            replace_schema: true,
            txns: state_txns(src, cfg, build_no, edges_version, customers),
            ..Default::default()
        },
    )
    .await?;
    summary.timings.write_secs = t.elapsed().as_secs_f64();
    Ok(Some(customers))
}

/// A full build from `identity_edges` as it stands, without reading the
/// source tables (benchmarks on a synthetic graph).
pub async fn build_from_edges(
    lake: &Lake,
    hasher: &PiiHasher,
    cfg: &IdentityConfig,
) -> Result<IdentitySummary> {
    cfg.validate()?;
    let blocklist = Blocklist::new(hasher, cfg)?;
    let state = read_state(lake).await?;
    let map_is_v2 = state.is_some();
    let build_no = state.as_ref().map_or(0, |s| s.build) + 1;
    let mut summary = IdentitySummary {
        build: build_no,
        full: true,
        ..Default::default()
    };
    let src = Sources {
        tables: vec![],
        refreshed: BTreeMap::new(),
        orders_receiver: false,
        orders_unionid: false,
    };
    let customers = from_edges(
        lake,
        &src,
        state.as_ref(),
        map_is_v2,
        cfg,
        &blocklist,
        build_no,
        &mut summary,
    )
    .await?
    .unwrap_or(0);
    summary.customers = customers;
    Ok(summary)
}

fn state_txns(
    src: &Sources,
    cfg: &IdentityConfig,
    build_no: i64,
    edges_version: u64,
    customers: usize,
) -> Vec<(String, i64)> {
    let mut t = vec![
        (BUILD_APP.to_string(), build_no),
        (CONFIG_APP.to_string(), cfg.fingerprint()),
        (EDGES_APP.to_string(), edges_version as i64),
        (CUSTOMERS_APP.to_string(), customers as i64),
    ];
    for (table, v) in &src.refreshed {
        if let Some(v) = v {
            t.push((raw_app(table), *v as i64));
        }
    }
    t
}

fn summarize(g: &Graph, res: &Resolved, ids: &Assigned, summary: &mut IdentitySummary) {
    summary.recomputed = g.in_scope.iter().filter(|&&s| s).count();
    summary.excluded = res.decision.iter().filter(|d| d.is_guarded()).count();
    summary.links_cut = res
        .decision
        .iter()
        .filter(|&&d| d == Decision::LinksCut)
        .count();
    summary.cut = res
        .decision
        .iter()
        .filter(|&&d| d == Decision::ComponentCap)
        .count();
    summary.carried_forward = ids.carried;
    summary.minted = ids.minted;
    summary.merged = ids.changes.iter().filter(|c| c.kind == "merge").count();
    summary.split = ids.changes.iter().filter(|c| c.kind == "split").count();
    summary.dissolved = ids.changes.iter().filter(|c| c.kind == "retire").count();
}

/// Cast a frame's columns to `schema` (same order), by name.
fn conform_frame(
    df: datafusion::dataframe::DataFrame,
    schema: &SchemaRef,
) -> Result<datafusion::dataframe::DataFrame> {
    let names: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let exprs: Vec<Expr> = schema
        .fields()
        .iter()
        .zip(&names)
        .map(|(f, n)| {
            datafusion::logical_expr::cast(
                Expr::Column(datafusion::common::Column::from_name(n)),
                f.data_type().clone(),
            )
            .alias(f.name())
        })
        .collect();
    Ok(df.select(exprs)?)
}

/// Stream `sql` (a_type, a_value, b_type, b_value, rule, signal) into `g`.
/// With `scope`, keep only edges touching an identifier of `scope` and mark
/// those identifiers recomputed; without, every identifier is.
async fn load_edges(
    ctx: &SessionContext,
    sql: &str,
    g: &mut Graph,
    scope: Option<&NodeDict>,
) -> Result<usize> {
    // The whole table: size the graph once (its edge count comes from the
    // files' statistics).
    if scope.is_none() {
        let rows = ctx
            .sql("SELECT count(*) FROM identity_edges")
            .await?
            .collect()
            .await?;
        let n = crate::lake::first_count(&rows).max(0) as usize;
        g.edges.reserve(n);
        g.dict.reserve(n * 2 / 3, 36);
        g.in_scope.reserve(n * 2 / 3);
    }
    let mut stream = ctx.sql(sql).await?.execute_stream().await?;
    let mut n = 0;
    while let Some(b) = stream.next().await {
        let b = b?;
        let c: Vec<arrow::array::StringArray> = (0..6)
            .map(|i| strings(b.column(i)))
            .collect::<Result<_>>()?;
        for r in 0..b.num_rows() {
            if c[0].is_null(r) || c[1].is_null(r) || c[2].is_null(r) || c[3].is_null(r) {
                continue;
            }
            let (at, av, bt, bv) = (c[0].value(r), c[1].value(r), c[2].value(r), c[3].value(r));
            let (sa, sb) = match scope {
                None => (true, true),
                Some(s) => (s.get(at, av).is_some(), s.get(bt, bv).is_some()),
            };
            if !sa && !sb {
                continue;
            }
            let a = g.node(at, av, sa);
            let bn = g.node(bt, bv, sb);
            let signal = if c[5].is_null(r) {
                0
            } else {
                g.dict.fingerprint(c[5].value(r).as_bytes())
            };
            let rule = if c[4].is_null(r) { "" } else { c[4].value(r) };
            g.edges.push(a, bn, rule, signal);
            n += 1;
        }
    }
    Ok(n)
}

/// Read previous ids (id_type, id_value, unified_id, since, rule) for the
/// identifiers of `dict`.
async fn read_old(
    ctx: &SessionContext,
    sql: &str,
    dict: &NodeDict,
    old: &mut OldIds,
    old_rule: &mut HashMap<NodeId, String>,
) -> Result<()> {
    let mut stream = ctx.sql(sql).await?.execute_stream().await?;
    while let Some(b) = stream.next().await {
        let b = b?;
        let (t, v, u) = (
            strings(b.column(0))?,
            strings(b.column(1))?,
            strings(b.column(2))?,
        );
        let since = arrow::compute::cast(b.column(3), &DataType::Int64)?;
        let since = since.as_primitive::<arrow::datatypes::Int64Type>();
        let rule = strings(b.column(4))?;
        for r in 0..b.num_rows() {
            if t.is_null(r) || v.is_null(r) {
                continue;
            }
            let s = if since.is_null(r) { 0 } else { since.value(r) };
            let Some(x) = dict.get(t.value(r), v.value(r)) else {
                // Gone (its records no longer name it): its id is retired
                // unless another identifier carries it on.
                if !u.is_null(r) {
                    old.seen(u.value(r), s);
                }
                continue;
            };
            if !u.is_null(r) {
                old.set(x, u.value(r), s);
            }
            if !rule.is_null(r) {
                old_rule.insert(x, rule.value(r).to_string());
            }
        }
    }
    Ok(())
}

/// Every id ever issued: current ids (all of them, unless `map_read`
/// says the caller read the whole map already) and retired ones.
async fn read_issued(lake: &Lake, old: &mut OldIds, map_read: bool) -> Result<()> {
    let ctx = crate::lake::new_context();
    let mut queries = Vec::new();
    if !map_read && lake.register(&ctx, "identity_map").await? {
        queries.push("SELECT DISTINCT unified_id FROM identity_map WHERE unified_id IS NOT NULL");
    }
    if lake.register(&ctx, "identity_aliases").await? {
        queries.push("SELECT retired_id FROM identity_aliases");
    }
    for q in queries {
        let mut s = ctx.sql(q).await?.execute_stream().await?;
        while let Some(b) = s.next().await {
            let c = strings(b?.column(0))?;
            for i in 0..c.len() {
                if !c.is_null(i) {
                    old.issued.insert(uid_fingerprint(c.value(i)));
                }
            }
        }
    }
    Ok(())
}

/// What `identity_map` rows are made of: the resolved graph and its ids.
struct MapRows {
    g: Graph,
    res: Resolved,
    ids: Assigned,
    build: i64,
    /// Per cluster: a fingerprint of its smallest identifier (unique within
    /// a build; it only groups rows for incremental builds).
    labels: Vec<u64>,
}

impl MapRows {
    fn new(g: Graph, res: Resolved, ids: Assigned, build: i64) -> Self {
        let mut key = Vec::new();
        let labels = res
            .cluster_min
            .iter()
            .map(|&m| {
                key.clear();
                key.extend_from_slice(g.dict.type_name(m).as_bytes());
                key.push(0x1f);
                key.extend_from_slice(g.dict.value(m).as_bytes());
                g.dict.fingerprint(&key)
            })
            .collect();
        MapRows {
            g,
            res,
            ids,
            build,
            labels,
        }
    }

    /// Rows of the recomputed identifiers among `start..end` that still
    /// have evidence.
    fn batch(&self, start: usize, end: usize) -> Result<RecordBatch> {
        let (g, res) = (&self.g, &self.res);
        let mut ty = StringBuilder::new();
        let mut val = StringBuilder::new();
        let mut uid = StringBuilder::new();
        let mut why = StringBuilder::new();
        let mut rule = StringBuilder::new();
        let mut people = Int32Builder::new();
        let mut partners = Int32Builder::new();
        let mut evidence = Int32Builder::new();
        let mut cluster = StringBuilder::new();
        let mut since = Int64Builder::new();
        let mut build = Int64Builder::new();
        for x in start as u32..end as u32 {
            let d = res.decision[x as usize];
            if !g.in_scope[x as usize] || res.evidence[x as usize] == 0 {
                continue;
            }
            ty.append_value(g.dict.type_name(x));
            val.append_value(g.dict.value(x));
            let p = res.piece_of[x as usize];
            if p == NONE {
                uid.append_null();
                since.append_null();
            } else {
                uid.append_value(self.ids.id(p));
                since.append_value(self.ids.since[p as usize]);
            }
            why.append_option(res.reasons.get(&x));
            rule.append_option(d.rule());
            people.append_value(res.people[x as usize].min(i32::MAX as u32) as i32);
            partners.append_value(res.partners[x as usize].min(i32::MAX as u32) as i32);
            evidence.append_value(res.evidence[x as usize].min(i32::MAX as u32) as i32);
            let c = res.cluster_of[x as usize];
            cluster
                .append_option((c != NONE).then(|| format!("K{:016x}", self.labels[c as usize])));
            build.append_value(self.build);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(ty.finish()),
            Arc::new(val.finish()),
            Arc::new(uid.finish()),
            Arc::new(why.finish()),
            Arc::new(rule.finish()),
            Arc::new(people.finish()),
            Arc::new(partners.finish()),
            Arc::new(evidence.finish()),
            Arc::new(cluster.finish()),
            Arc::new(since.finish()),
            Arc::new(build.finish()),
        ];
        Ok(RecordBatch::try_new(identity_map_schema(), cols)?)
    }
}

/// The edge endpoints and rule a change names as its cause.
type CauseKey = (String, String, String, String, String);

/// Where each cause edge came from: the first record (by key) that gives
/// it: (source table, record key, observed at).
async fn cause_records(
    lake: &Lake,
    keys: &[CauseKey],
) -> Result<HashMap<CauseKey, (String, String, Option<i64>)>> {
    let mut out = HashMap::new();
    let ctx = crate::lake::new_context();
    if keys.is_empty() || !lake.register(&ctx, "identity_edges").await? {
        return Ok(out);
    }
    // Many causes (a rebuild after a config change): a join that spills.
    crate::lake::prefer_spilling_joins(&ctx).await?;
    let schema = Arc::new(Schema::new(
        ["a_type", "a_value", "b_type", "b_value", "rule"]
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let cols: Vec<ArrayRef> = (0..5)
        .map(|i| {
            let a: arrow::array::StringArray = keys
                .iter()
                .map(|k| Some([&k.0, &k.1, &k.2, &k.3, &k.4][i].as_str()))
                .collect();
            Arc::new(a) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    ctx.register_table(
        "causes",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    let mut s = ctx
        .sql(
            "SELECT e.a_type, e.a_value, e.b_type, e.b_value, e.rule, min(e.source_table), min(e.record_key), min(e.observed_at)
             FROM identity_edges e JOIN causes c
               ON c.a_type = e.a_type AND c.a_value = e.a_value AND c.b_type = e.b_type AND c.b_value = e.b_value AND c.rule = e.rule
             GROUP BY 1, 2, 3, 4, 5",
        )
        .await?
        .execute_stream()
        .await?;
    while let Some(b) = s.next().await {
        let b = b?;
        let c: Vec<arrow::array::StringArray> = (0..7)
            .map(|i| strings(b.column(i)))
            .collect::<Result<_>>()?;
        let at = arrow::compute::cast(
            b.column(7),
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        )?;
        let at = at.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for r in 0..b.num_rows() {
            let v = |i: usize| c[i].value(r).to_string();
            out.insert(
                (v(0), v(1), v(2), v(3), v(4)),
                (v(5), v(6), (!at.is_null(r)).then(|| at.value(r))),
            );
        }
    }
    Ok(out)
}

/// The cause of change `c`: (a, b, rule).
fn cause_of(
    out: &MapRows,
    c: &super::ids::Change,
) -> (Option<NodeId>, Option<NodeId>, Option<String>) {
    let (g, res) = (&out.g, &out.res);
    match c.cause {
        Cause::Edge(e) => (
            Some(g.edges.a[e as usize]),
            Some(g.edges.b[e as usize]),
            Some(
                g.edges
                    .rules
                    .name(u32::from(g.edges.rule[e as usize]))
                    .to_string(),
            ),
        ),
        Cause::Node(x) => (
            Some(x),
            None,
            res.decision[x as usize].rule().map(str::to_string),
        ),
        Cause::Unknown => (None, None, None),
    }
}

/// Write this build's `identity_changes` and `identity_audit` rows (a redo
/// of the same build replaces them).
async fn write_logs(
    lake: &Lake,
    out: &Arc<MapRows>,
    old_rule: &HashMap<NodeId, String>,
    build_no: i64,
) -> Result<()> {
    let now = Utc::now();
    let (g, res, ids) = (&out.g, &out.res, &out.ids);
    let keys: Vec<CauseKey> = ids
        .changes
        .iter()
        .filter_map(|c| match cause_of(out, c) {
            (Some(a), Some(b), Some(rule)) => Some((
                g.dict.type_name(a).to_string(),
                g.dict.value(a).into_owned(),
                g.dict.type_name(b).to_string(),
                g.dict.value(b).into_owned(),
                rule,
            )),
            _ => None,
        })
        .collect();
    let records = Arc::new(cause_records(lake, &keys).await?);
    let n = ids.changes.len();
    let rows = {
        let out = out.clone();
        futures::stream::iter((0..n).step_by(BATCH)).map(move |start| {
            let mut rows = Vec::with_capacity(BATCH.min(n - start));
            for c in &out.ids.changes[start..(start + BATCH).min(n)] {
                let (a, bn, rule) = cause_of(&out, c);
                let key = match (a, bn, &rule) {
                    (Some(a), Some(bn), Some(rule)) => Some((
                        out.g.dict.type_name(a).to_string(),
                        out.g.dict.value(a).into_owned(),
                        out.g.dict.type_name(bn).to_string(),
                        out.g.dict.value(bn).into_owned(),
                        rule.clone(),
                    )),
                    _ => None,
                };
                let record = key.and_then(|k| records.get(&k));
                rows.push(change_row(&out.g, build_no, now, c, a, bn, rule, record));
            }
            Ok(IdentityChange::batch(&rows))
        })
    };
    let cctx = crate::lake::new_context();
    let df = crate::lake::stream_frame(&cctx, identity_changes_schema(), rows)?;
    replace_build_rows(
        lake,
        "identity_changes",
        &identity_changes_schema(),
        &cctx,
        df,
        build_no,
    )
    .await?;

    // Audit: new exclusions and cuts, and lifted ones. Identifiers that
    // vanished are not audited: they are simply gone.
    let mut audit = Vec::new();
    for x in 0..g.dict.len() as u32 {
        if !g.in_scope[x as usize] || res.evidence[x as usize] == 0 {
            continue;
        }
        let d = res.decision[x as usize];
        let before = old_rule.get(&x).map(String::as_str);
        match (d.rule(), before) {
            (Some(now_rule), b) if b != Some(now_rule) => audit.push(audit_row(
                g,
                res,
                x,
                (build_no, now),
                match d {
                    Decision::ComponentCap => "cut",
                    Decision::LinksCut => "links_cut",
                    _ => "excluded",
                },
                now_rule,
            )),
            (None, Some(b)) => audit.push(audit_row(g, res, x, (build_no, now), "lifted", b)),
            _ => {}
        }
    }
    let audit = AuditEntry::batch(&audit);
    let actx = crate::lake::new_context();
    let df = actx.read_batch(audit)?;
    replace_build_rows(
        lake,
        "identity_audit",
        &identity_audit_schema(),
        &actx,
        df,
        build_no,
    )
    .await?;
    Ok(())
}

/// Append `df` as build `build_no`'s rows of `table`, replacing any rows a
/// crashed attempt at the same build left.
async fn replace_build_rows(
    lake: &Lake,
    table: &str,
    schema: &SchemaRef,
    ctx: &SessionContext,
    df: datafusion::dataframe::DataFrame,
    build_no: i64,
) -> Result<()> {
    lake.table(table, schema).await?;
    lake.write_plan(
        table,
        schema,
        ctx,
        df,
        Commit {
            replace_where: Some(col("build").eq(lit(build_no))),
            ..Default::default()
        },
    )
    .await
}

/// The `identity_changes` row of change `c`, caused by edge `a`–`b` drawn
/// by `rule` from `record` (table, key, seen at).
#[allow(clippy::too_many_arguments)]
fn change_row(
    g: &Graph,
    build: i64,
    at: DateTime<Utc>,
    c: &super::ids::Change,
    a: Option<NodeId>,
    b: Option<NodeId>,
    rule: Option<String>,
    record: Option<&(String, String, Option<i64>)>,
) -> IdentityChange {
    let text = |x: Option<NodeId>, f: fn(&Graph, NodeId) -> String| x.map(|x| f(g, x));
    IdentityChange {
        build,
        changed_at: at,
        change: c.kind.to_string(),
        unified_id: c.unified_id.clone(),
        other_id: c.other_id.clone(),
        members: c.members as i64,
        a_type: text(a, |g, x| g.dict.type_name(x).to_string()),
        a_value: text(a, |g, x| g.dict.value(x).into_owned()),
        b_type: text(b, |g, x| g.dict.type_name(x).to_string()),
        b_value: text(b, |g, x| g.dict.value(x).into_owned()),
        rule,
        source_table: record.map(|r| r.0.clone()),
        record_key: record.map(|r| r.1.clone()),
        observed_at: record
            .and_then(|r| r.2)
            .and_then(DateTime::from_timestamp_micros),
    }
}

/// The `identity_audit` row of identifier `x`'s `decision` by `rule`.
fn audit_row(
    g: &Graph,
    res: &Resolved,
    x: NodeId,
    (build, at): (i64, DateTime<Utc>),
    decision: &str,
    rule: &str,
) -> AuditEntry {
    let count = |v: &[u32]| v[x as usize].min(i32::MAX as u32) as i32;
    AuditEntry {
        build,
        audited_at: at,
        id_type: g.dict.type_name(x).to_string(),
        id_value: g.dict.value(x).into_owned(),
        decision: decision.to_string(),
        rule: rule.to_string(),
        people: count(&res.people),
        partners: count(&res.partners),
        evidence: count(&res.evidence),
        reason: if decision == "lifted" {
            Some("now within its limits".to_string())
        } else {
            res.reasons.get(&x).cloned()
        },
    }
}

/// A one-column string table.
fn key_table(name: &str, keys: impl IntoIterator<Item = String>) -> Result<Arc<MemTable>> {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
    let arr: arrow::array::StringArray = keys.into_iter().map(Some).collect();
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(arr)])?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// A two-column (t, v) identifier table.
fn node_table(nodes: &[(String, String)]) -> Result<Arc<MemTable>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("t", DataType::Utf8, true),
        Field::new("v", DataType::Utf8, true),
    ]));
    let t: arrow::array::StringArray = nodes.iter().map(|(t, _)| Some(t.as_str())).collect();
    let v: arrow::array::StringArray = nodes.iter().map(|(_, v)| Some(v.as_str())).collect();
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(t), Arc::new(v)])?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// One edge as compared between builds.
type EdgeKey = (String, String, String, String, String, Option<String>);

async fn collect_edges(
    ctx: &SessionContext,
    sql: &str,
) -> Result<HashMap<(String, String), Vec<EdgeKey>>> {
    let mut out: HashMap<(String, String), Vec<EdgeKey>> = HashMap::new();
    let mut s = ctx.sql(sql).await?.execute_stream().await?;
    while let Some(b) = s.next().await {
        let b = b?;
        let c: Vec<arrow::array::StringArray> = (0..8)
            .map(|i| strings(b.column(i)))
            .collect::<Result<_>>()?;
        for r in 0..b.num_rows() {
            let v = |i: usize| {
                if c[i].is_null(r) {
                    String::new()
                } else {
                    c[i].value(r).to_string()
                }
            };
            let key = (v(6), v(7));
            let e = (
                v(0),
                v(1),
                v(2),
                v(3),
                v(4),
                (!c[5].is_null(r)).then(|| v(5)),
            );
            out.entry(key).or_default().push(e);
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

/// Most records whose edges one `replace_where` commit replaces; above
/// it, the table is rewritten in one pass (a long key list would nest a
/// predicate thousands deep).
const REPLACE_WHERE_KEYS: usize = 256;

/// Bring `identity_edges` to the new edges of the `rewrite` records.
/// Idempotent: after a crash mid-way, the next build compares with the
/// table as it is now and writes only what is missing.
#[allow(clippy::too_many_arguments)]
async fn write_changed_edges(
    lake: &Lake,
    ctx: &SessionContext,
    edges_version: u64,
    rewrite: &[(String, String)],
    new: &HashMap<(String, String), Vec<EdgeKey>>,
    old: &HashMap<(String, String), Vec<EdgeKey>>,
    cols: &str,
    filter: &str,
) -> Result<()> {
    let latest = lake.version("identity_edges").await?;
    let current = if latest == Some(edges_version) {
        std::borrow::Cow::Borrowed(old)
    } else {
        lake.register(ctx, "identity_edges").await?;
        std::borrow::Cow::Owned(
            collect_edges(
                ctx,
                &format!("SELECT {cols} FROM identity_edges WHERE {filter}"),
            )
            .await?,
        )
    };
    let empty = Vec::new();
    let (mut append, mut replace) = (Vec::new(), Vec::new());
    for k in rewrite {
        let (want, have) = (
            new.get(k).unwrap_or(&empty),
            current.get(k).unwrap_or(&empty),
        );
        if want == have {
            continue;
        }
        if have.is_empty() {
            append.push(k.clone());
        } else {
            replace.push(k.clone());
        }
    }
    let select = |keys: &[(String, String)]| -> Result<()> {
        let _ = ctx.deregister_table("keys");
        ctx.register_table("keys", node_table(keys)?)?;
        Ok(())
    };
    let new_of_keys = "SELECT * FROM new_edges e WHERE EXISTS (SELECT 1 FROM keys r WHERE r.t = e.source_table AND r.v = e.record_key)";
    if !append.is_empty() {
        // New records: their edges are appended.
        select(&append)?;
        let df = conform_frame(ctx.sql(new_of_keys).await?, &identity_edges_schema())?;
        lake.write_plan(
            "identity_edges",
            &identity_edges_schema(),
            ctx,
            df,
            Commit {
                append: true,
                ..Default::default()
            },
        )
        .await?;
    }
    if replace.is_empty() {
        return Ok(());
    }
    select(&replace)?;
    if replace.len() <= REPLACE_WHERE_KEYS {
        // Records whose identifiers changed: one commit replaces their edges.
        let by_table: BTreeMap<&str, Vec<&str>> =
            replace.iter().fold(BTreeMap::new(), |mut m, (t, k)| {
                m.entry(t.as_str()).or_default().push(k.as_str());
                m
            });
        let predicate = by_table
            .iter()
            .map(|(t, keys)| {
                col("source_table")
                    .eq(lit(*t))
                    .and(col("record_key").in_list(keys.iter().map(|k| lit(*k)).collect(), false))
            })
            .reduce(Expr::or)
            .expect("some records");
        let df = conform_frame(ctx.sql(new_of_keys).await?, &identity_edges_schema())?;
        lake.write_plan(
            "identity_edges",
            &identity_edges_schema(),
            ctx,
            df,
            Commit {
                replace_where: Some(predicate),
                ..Default::default()
            },
        )
        .await
    } else {
        // Many: the table without their old edges, plus their new ones.
        lake.register(ctx, "identity_edges").await?;
        let df = ctx
            .sql(&format!(
                "SELECT * FROM identity_edges e WHERE NOT EXISTS (SELECT 1 FROM keys r WHERE r.t = e.source_table AND r.v = e.record_key)
                 UNION ALL {new_of_keys}"
            ))
            .await?;
        let df = conform_frame(df, &identity_edges_schema())?;
        lake.write_plan(
            "identity_edges",
            &identity_edges_schema(),
            ctx,
            df,
            Commit::default(),
        )
        .await
    }
}

#[allow(clippy::too_many_arguments)]
async fn incremental_build(
    lake: &Lake,
    ctx: &SessionContext,
    src: &Sources,
    state: &State,
    cfg: &IdentityConfig,
    blocklist: &Blocklist,
    build_no: i64,
    summary: &mut IdentitySummary,
) -> Result<Option<usize>> {
    // 1. Records changed since the last build: keys of raw rows committed in
    //    the raw versions the refresh has read since.
    let mut clock = std::time::Instant::now();
    let mut changed_any = false;
    for (table, key_sql) in SOURCES {
        let mut keys: Vec<String> = Vec::new();
        if let (true, Some(upto)) = (
            src.tables.contains(table),
            src.refreshed.get(table).copied().flatten(),
        ) {
            let since = state.raw.get(table).copied().flatten();
            if since != Some(upto) {
                let files = lake
                    .files_between(&format!("raw_{table}"), since, upto)
                    .await?;
                if !files.is_empty() {
                    let fctx = crate::lake::new_context();
                    let df = fctx
                        .read_parquet(files, datafusion::prelude::ParquetReadOptions::default())
                        .await?;
                    fctx.register_table("raw", df.into_view())?;
                    let mut s = fctx
                        .sql(&format!("SELECT DISTINCT {key_sql} FROM raw"))
                        .await?
                        .execute_stream()
                        .await?;
                    while let Some(b) = s.next().await {
                        let c = strings(b?.column(0))?;
                        keys.extend(
                            (0..c.len())
                                .filter(|&i| !c.is_null(i))
                                .map(|i| c.value(i).to_string()),
                        );
                    }
                }
            }
        }
        changed_any |= !keys.is_empty();
        summary.changed_records += keys.len();
        ctx.register_table(
            format!("changed_{table}").as_str(),
            key_table("record_key", keys)?,
        )?;
    }
    let edges_version = state.edges_version.expect("checked");
    if !changed_any {
        return Ok(None);
    }
    // 2. Their edges now and at the last build; the records whose edges
    //    differ are rewritten, and the identifiers at either end are touched.
    let new_sql = edges_sql(&EdgeSources {
        rules: &cfg.state_rules,
        tables: src.tables.clone(),
        orders_receiver: src.orders_receiver,
        orders_unionid: src.orders_unionid,
        only_changed: true,
    });
    ctx.register_table("new_edges", ctx.sql(&new_sql).await?.into_view())?;
    let cols = "a_type, a_value, b_type, b_value, rule, signal, source_table, record_key";
    let new = collect_edges(ctx, &format!("SELECT {cols} FROM new_edges")).await?;
    lake.register_at(ctx, "identity_edges", edges_version, "old_edges")
        .await?;
    let filter = SOURCES
        .iter()
        .map(|(t, _)| {
            format!("(source_table = '{t}' AND record_key IN (SELECT record_key FROM changed_{t}))")
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    let old = collect_edges(ctx, &format!("SELECT {cols} FROM old_edges WHERE {filter}")).await?;
    let mut rewrite: Vec<(String, String)> = Vec::new();
    let mut touched: Vec<(String, String)> = Vec::new();
    let empty = Vec::new();
    let mut all_keys: HashSet<&(String, String)> = new.keys().collect();
    all_keys.extend(old.keys());
    for k in all_keys {
        let (n, o) = (new.get(k).unwrap_or(&empty), old.get(k).unwrap_or(&empty));
        if n != o {
            rewrite.push(k.clone());
            for e in n.iter().chain(o) {
                touched.push((e.0.clone(), e.1.clone()));
                touched.push((e.2.clone(), e.3.clone()));
            }
        }
    }
    touched.sort();
    touched.dedup();
    if !rewrite.is_empty() {
        write_changed_edges(
            lake,
            ctx,
            edges_version,
            &rewrite,
            &new,
            &old,
            cols,
            &filter,
        )
        .await?;
    }
    let edges_version = lake
        .version("identity_edges")
        .await?
        .unwrap_or(edges_version);
    summary.timings.extract_secs = lap(&mut clock);
    let map_ctx = crate::lake::new_context();
    lake.register(&map_ctx, "identity_map").await?;
    if touched.is_empty() {
        // Records changed, their identifiers did not: ids stand; the state
        // moves on.
        let df = map_ctx.table("identity_map").await?;
        lake.write_plan(
            "identity_map",
            &identity_map_schema(),
            &map_ctx,
            df.limit(0, Some(0))?,
            Commit {
                append: true,
                txns: state_txns(src, cfg, build_no, edges_version, state.customers as usize),
                ..Default::default()
            },
        )
        .await?;
        return Ok(Some(state.customers as usize));
    }
    // 3. The clusters the touched identifiers were in, closed under
    //    identifiers that become linkable again.
    let mut scope_nodes: Vec<(String, String)> = touched.clone();
    let mut clusters: HashSet<String> = HashSet::new();
    let mut frontier: Vec<(String, String)> = touched;
    let (g, res) = loop {
        map_ctx.register_table("probe", node_table(&frontier)?)?;
        let mut s = map_ctx
            .sql("SELECT m.cluster FROM identity_map m JOIN probe p ON m.id_type = p.t AND m.id_value = p.v WHERE m.cluster IS NOT NULL")
            .await?
            .execute_stream()
            .await?;
        let mut fresh = Vec::new();
        while let Some(b) = s.next().await {
            let c = strings(b?.column(0))?;
            for i in 0..c.len() {
                if clusters.insert(c.value(i).to_string()) {
                    fresh.push(c.value(i).to_string());
                }
            }
        }
        let _ = map_ctx.deregister_table("probe");
        if !fresh.is_empty() {
            map_ctx.register_table("fresh", key_table("cluster", fresh)?)?;
            let mut s = map_ctx
                .sql("SELECT id_type, id_value FROM identity_map WHERE cluster IN (SELECT cluster FROM fresh)")
                .await?
                .execute_stream()
                .await?;
            while let Some(b) = s.next().await {
                let b = b?;
                let (t, v) = (strings(b.column(0))?, strings(b.column(1))?);
                for i in 0..b.num_rows() {
                    scope_nodes.push((t.value(i).to_string(), v.value(i).to_string()));
                }
            }
            let _ = map_ctx.deregister_table("fresh");
        }
        let mut scope = NodeDict::default();
        for (t, v) in &scope_nodes {
            scope.intern(t, v);
        }
        let ectx = bulk_context().await?;
        lake.register_at(&ectx, "identity_edges", edges_version, "identity_edges")
            .await?;
        let mut g = Graph::new();
        summary.timings.read_previous_secs += lap(&mut clock);
        summary.edges = load_edges(
            &ectx,
            "SELECT a_type, a_value, b_type, b_value, rule, signal FROM identity_edges",
            &mut g,
            Some(&scope),
        )
        .await?;
        summary.timings.read_edges_secs += lap(&mut clock);
        // Touched identifiers with no edge left are gone: their rows are
        // dropped below and their ids carried on or retired.
        let res = resolve(&g, cfg, blocklist);
        summary.timings.resolve_secs += lap(&mut clock);
        summary.timings.components_secs += res.components_secs;
        // Identifiers linkable now whose neighbours lie outside: those
        // neighbours' clusters join (an exclusion lifted).
        let mut outside: Vec<(String, String)> = Vec::new();
        for x in 0..g.dict.len() as u32 {
            // Linkable identifiers, cut ones too (clusters are formed before
            // cuts): their neighbours outside join.
            let d = res.decision[x as usize];
            if !d.links() && d != Decision::ComponentCap {
                continue;
            }
            for &e in res.adjacency.of(x) {
                let y = super::graph::other(&g.edges, e, x);
                let cut_phone = d == Decision::LinksCut && g.dict.type_name(y) == "phone_hash";
                if !g.in_scope[y as usize] && !res.decision[y as usize].is_guarded() && !cut_phone {
                    outside.push((
                        g.dict.type_name(y).to_string(),
                        g.dict.value(y).into_owned(),
                    ));
                }
            }
        }
        outside.sort();
        outside.dedup();
        if outside.is_empty() {
            break (g, res);
        }
        scope_nodes.extend(outside.iter().cloned());
        frontier = outside;
    };
    scope_nodes.sort();
    scope_nodes.dedup();
    // 4. Previous ids of the recomputed identifiers; every id ever issued.
    map_ctx.register_table("scope", node_table(&scope_nodes)?)?;
    let mut old = OldIds::default();
    let mut old_rule = HashMap::new();
    read_old(
        &map_ctx,
        "SELECT m.id_type, m.id_value, m.unified_id, COALESCE(m.unified_since, 0), m.rule FROM identity_map m JOIN scope s ON m.id_type = s.t AND m.id_value = s.v",
        &g.dict,
        &mut old,
        &mut old_rule,
    )
    .await?;
    read_issued(lake, &mut old, false).await?;
    summary.timings.read_previous_secs += lap(&mut clock);
    let ids = assign(&g, &res, &mut old, build_no);
    summary.timings.assign_secs = lap(&mut clock);
    summarize(&g, &res, &ids, summary);
    let retired = ids.retired.len() as i64;
    let customers = (state.customers + ids.minted as i64 - retired).max(0) as usize;
    let out = Arc::new(MapRows::new(g, res, ids, build_no));
    write_logs(lake, &out, &old_rule, build_no).await?;
    // 5. identity_map: the rows of untouched identifiers as they were, and
    //    the recomputed ones.
    let n = out.g.dict.len();
    let mut batches = Vec::new();
    for start in (0..n).step_by(BATCH) {
        batches.push(out.batch(start, (start + BATCH).min(n))?);
    }
    map_ctx.register_table(
        "recomputed",
        Arc::new(MemTable::try_new(identity_map_schema(), vec![batches])?),
    )?;
    let df = map_ctx
        .sql("SELECT * FROM identity_map m WHERE NOT EXISTS (SELECT 1 FROM scope s WHERE s.t = m.id_type AND s.v = m.id_value)
              UNION ALL SELECT * FROM recomputed")
        .await?;
    let df = conform_frame(df, &identity_map_schema())?;
    lake.write_plan(
        "identity_map",
        &identity_map_schema(),
        &map_ctx,
        df,
        Commit {
            txns: state_txns(src, cfg, build_no, edges_version, customers),
            ..Default::default()
        },
    )
    .await?;
    summary.timings.write_secs = lap(&mut clock);
    Ok(Some(customers))
}
