//! Marts: the tables derived from the lake after identity, listed in one
//! place ([`MARTS`]). The sync brings them up to date in this order after
//! identity; `quanyu sql` sees exactly the lake's own tables and these.
//! What each column means is in the README ("Marts") and on each mart's
//! query.

use anyhow::{Context, Result};
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

use crate::lake::Lake;

mod bridge_roi;
mod config;
pub mod customer_orders;
pub mod customers;
mod recall;
mod reps;
mod retention;
mod rfm;
mod sql;

pub use config::{
    beijing, BridgeRoiConfig, CohortPeriod, MartsConfig, RecallConfig, RepAttributionConfig,
    RepRule, SuperUsersConfig,
};

/// The inputs a mart build found in the lake.
pub struct Present(std::collections::BTreeSet<&'static str>);

impl Present {
    /// Whether table `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    /// Whether every table of `names` exists.
    pub fn all(&self, names: &[&str]) -> bool {
        names.iter().all(|n| self.has(n))
    }
}

/// A mart's SQL: stages run first, each held in memory as a table of its
/// name for what follows, then the query written as the mart. A stage is a
/// working set several parts of the query read (DataFusion would compute a
/// common table expression once per use), at most one narrow row per
/// customer: the customers due for recall and their latest orders, the
/// WeCom relationships. Its
/// memory is outside the engine's pool.
#[derive(Debug, Clone)]
pub struct MartSql {
    /// (table name, query), in order.
    pub stages: Vec<(&'static str, String)>,
    /// The mart's query.
    pub query: String,
}

impl From<String> for MartSql {
    fn from(query: String) -> Self {
        MartSql {
            stages: Vec::new(),
            query,
        }
    }
}

impl MartSql {
    /// The whole as one statement, the stages as common table expressions
    /// (what a peer engine runs).
    pub fn single(&self) -> String {
        if self.stages.is_empty() {
            return self.query.clone();
        }
        let ctes: Vec<String> = self
            .stages
            .iter()
            .map(|(name, sql)| format!("{name} AS ({sql})"))
            .collect();
        format!("WITH {} SELECT * FROM ({})", ctes.join(",\n"), self.query)
    }
}

/// A mart's query given the inputs present and the `[marts]` settings;
/// `None` when an input it needs is missing (the mart writes nothing).
pub type MartQuery = fn(&Present, &MartsConfig) -> Option<MartSql>;

/// One mart: its table, what it reads, and how it is built.
pub struct Mart {
    /// Its table's name.
    pub name: &'static str,
    /// What it answers.
    pub about: &'static str,
    /// The tables it is derived from (a mart may read marts before it).
    pub inputs: &'static [&'static str],
    /// Whether it reads `[marts]` and the reference day: it is rebuilt when
    /// they change (each day, unless `as_of` is set).
    pub dated: bool,
    /// Its query.
    pub query: MartQuery,
}

/// Every mart, in build order.
pub static MARTS: &[Mart] = &[
    Mart {
        name: "customer_orders",
        about: "one row per order with its unified customer, net of refunds, and the customer's paid-order sequence",
        inputs: &["identity_map", "orders", "refunds"],
        dated: false,
        query: |p, _| customer_orders::query(p).map(MartSql::from),
    },
    Mart {
        name: "customers",
        about: "one row per unified customer: orders, spend net of refunds, channels, owner",
        inputs: &["identity_map", "orders", "refunds", "contacts"],
        dated: false,
        query: |p, _| customers::customers_query(p).map(MartSql::from),
    },
    Mart {
        name: "bridges",
        about: "per bridge: touchpoints, cost, customers touched, buyers now WeCom contacts",
        inputs: &["touchpoints", "identity_map", "customers"],
        dated: false,
        query: |p, _| customers::bridges_query(p).map(MartSql::from),
    },
    Mart {
        name: "customer_rfm",
        about: "per buyer: recency, frequency, monetary quintile scores, trailing-365-day net GMV, decile, super_user",
        inputs: &["customer_orders", "customers"],
        dated: true,
        query: |p, c| rfm::customer_rfm_query(p, c).map(MartSql::from),
    },
    Mart {
        name: "super_users",
        about: "the top share of buyers by trailing-365-day net GMV, with what they look like",
        inputs: &["customer_rfm", "customer_orders", "customers"],
        dated: true,
        query: |p, c| rfm::super_users_query(p, c).map(MartSql::from),
    },
    Mart {
        name: "retention",
        about: "per monthly cohort (first paid order) and first channel: size, repurchase within 30/90/180/365 days",
        inputs: &["customer_orders"],
        dated: true,
        query: |p, c| retention::retention_query(p, c).map(MartSql::from),
    },
    Mart {
        name: "retention_months",
        about: "per monthly cohort and first channel, per month after: customers who paid an order that month",
        inputs: &["customer_orders"],
        dated: true,
        query: |p, c| retention::retention_months_query(p, c).map(MartSql::from),
    },
    Mart {
        name: "repurchase_intervals",
        about: "the distribution of days between a customer's paid orders, per channel and category",
        inputs: &["customer_orders", "order_lines"],
        dated: true,
        query: |p, c| retention::repurchase_intervals_query(p, c).map(MartSql::from),
    },
    Mart {
        name: "recall_list",
        about: "buyers whose last purchase is min_days..max_days old: value, reachability, suppression",
        inputs: &["customer_orders", "customer_rfm", "identity_map", "contacts", "touchpoints"],
        dated: true,
        query: recall::recall_list_query,
    },
    Mart {
        name: "rep_attribution",
        about: "per month and WeCom owner: customers held and added, revenue after the add by channel, and the unattributed rest",
        inputs: &["customer_orders", "identity_map", "contacts", "touchpoints"],
        dated: true,
        query: reps::rep_attribution_query,
    },
    Mart {
        name: "bridge_roi",
        about: "per bridge, campaign and cohort: touchpoints, cost, customers added to WeCom, their revenue in the window after joining",
        inputs: &["touchpoints", "identity_map", "contacts", "customer_orders"],
        dated: true,
        query: bridge_roi::bridge_roi_query,
    },
];

/// A session with `mart`'s inputs registered, and which of them exist.
async fn session_for(lake: &Lake, mart: &Mart) -> Result<(SessionContext, Present)> {
    let ctx = crate::lake::new_context();
    // Their groupings have nearly as many groups as rows (a record, a
    // customer): pre-aggregating each partition only holds a second hash
    // table of them (a million orders: 590 MiB with it, 500 without).
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        let execution = &mut state.config_mut().options_mut().execution;
        execution.skip_partial_aggregation_probe_ratio_threshold = 0.1;
        execution.skip_partial_aggregation_probe_rows_threshold = 10_000;
    }
    let mut present = std::collections::BTreeSet::new();
    for input in mart.inputs {
        if lake.register(&ctx, input).await? {
            present.insert(*input);
        }
    }
    Ok((ctx, Present(present)))
}

/// The query `mart` would run on `lake` as it stands under `cfg` (`None`:
/// an input it needs is missing). What `quanyu bench marts` gives its
/// DuckDB peer.
pub async fn query_of(lake: &Lake, mart: &Mart, cfg: &MartsConfig) -> Result<Option<String>> {
    let mut present = std::collections::BTreeSet::new();
    for input in mart.inputs {
        if lake.version(input).await?.is_some() {
            present.insert(*input);
        }
    }
    Ok((mart.query)(&Present(present), cfg).map(|sql| sql.single()))
}

/// Rebuild `mart` under `cfg`, committing the cursor `built` (application
/// id, state) with it; nothing is written when an input it needs is
/// missing. A build whose hash joins do not fit in the memory budget runs
/// again with joins that spill to disk (slower, but it completes).
pub async fn build_mart(
    lake: &Lake,
    mart: &Mart,
    cfg: &MartsConfig,
    built: (&str, i64),
) -> Result<()> {
    match build_with(lake, mart, cfg, built, false).await {
        Err(e) if crate::lake::ran_out_of_memory(&e) => {
            tracing::warn!(
                mart = mart.name,
                "its hash joins do not fit in the memory budget: building it again with joins that spill to disk"
            );
            build_with(lake, mart, cfg, built, true).await
        }
        other => other,
    }
}

/// [`build_mart`], with sort-merge joins when `spill`.
async fn build_with(
    lake: &Lake,
    mart: &Mart,
    cfg: &MartsConfig,
    built: (&str, i64),
    spill: bool,
) -> Result<()> {
    let (ctx, present) = session_for(lake, mart).await?;
    if spill {
        crate::lake::prefer_spilling_joins(&ctx).await?;
    }
    let Some(sql) = (mart.query)(&present, cfg) else {
        return Ok(());
    };
    for (name, stage) in &sql.stages {
        let df = ctx.sql(stage).await?;
        let planned = std::sync::Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        // The batches' own schema (nullability can differ from the plan's).
        let schema = batches.first().map_or(planned, |b| b.schema());
        let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
        ctx.register_table(*name, std::sync::Arc::new(table))?;
    }
    write_mart(lake, mart.name, &ctx, &sql.query, built).await
}

/// Write the result of `sql` (run in `ctx`, where its inputs are
/// registered) as mart `name`, replacing its contents and schema, with the
/// cursor `built` (application id, state) in the same commit. Columns are
/// written in plain Arrow types (`Utf8`, not views).
async fn write_mart(
    lake: &Lake,
    name: &str,
    ctx: &SessionContext,
    sql: &str,
    built: (&str, i64),
) -> Result<()> {
    use datafusion::common::Column;
    use datafusion::prelude::Expr;
    let df = ctx.sql(sql).await?;
    let schema = crate::lake::plain_types(df.schema().as_arrow());
    let exprs: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| {
            let column = Expr::Column(Column::from_name(f.name()));
            datafusion::logical_expr::cast(column, f.data_type().clone()).alias(f.name())
        })
        .collect();
    let commit = crate::lake::Commit {
        replace_schema: true,
        txns: vec![(built.0.to_string(), built.1)],
        ..Default::default()
    };
    lake.write_plan(name, &schema, ctx, df.select(exprs)?, commit)
        .await
}

/// The application id under which a mart records the state it reflects.
fn app_id(mart: &Mart) -> String {
    format!("quanyu:mart:{}", mart.name)
}

/// The state a mart reflects: the identity build, its inputs' table
/// versions and, for a dated mart, the `[marts]` settings and the reference
/// day, as one number.
async fn state_of(lake: &Lake, mart: &Mart, build: i64, cfg: &MartsConfig) -> Result<i64> {
    let mut h = Sha256::new();
    h.update(build.to_be_bytes());
    if mart.dated {
        h.update(serde_json::to_vec(cfg)?);
        h.update(cfg.reference_day().to_string().as_bytes());
    }
    for input in mart.inputs {
        let v = lake.version(input).await?.map_or(-1, |v| v as i64);
        h.update(input.as_bytes());
        h.update(v.to_be_bytes());
    }
    let d = h.finalize();
    Ok(i64::from_be_bytes(d[..8].try_into().expect("8 bytes")) & i64::MAX)
}

/// Whether `mart` reflects identity build `build`, its inputs as they
/// stand and `cfg`.
pub async fn is_current(lake: &Lake, mart: &Mart, build: i64, cfg: &MartsConfig) -> Result<bool> {
    let state = state_of(lake, mart, build, cfg).await?;
    Ok(lake.txn_version(mart.name, &app_id(mart)).await? == Some(state))
}

/// Bring every mart up to identity build `build`, its inputs as they
/// stand and `cfg`: a mart that reflects them is skipped, so a sync killed between
/// identity and its marts is completed by the next one, and a mart does
/// not depend on identity noticing every change of its inputs. Returns
/// how many marts were rebuilt.
pub async fn refresh_marts(lake: &Lake, build: i64, cfg: &MartsConfig) -> Result<usize> {
    if build <= 0 {
        return Ok(0);
    }
    let mut rebuilt = 0;
    for mart in MARTS {
        let app = app_id(mart);
        let state = state_of(lake, mart, build, cfg).await?;
        if lake.txn_version(mart.name, &app).await? == Some(state) {
            continue;
        }
        build_mart(lake, mart, cfg, (&app, state))
            .await
            .with_context(|| format!("building the {} mart", mart.name))?;
        if lake.txn_version(mart.name, &app).await? == Some(state) {
            rebuilt += 1;
        }
    }
    Ok(rebuilt)
}

/// Every table analysts' SQL sees: the lake's own and the marts.
pub fn sql_tables() -> Vec<&'static str> {
    crate::lake::CORE_TABLES
        .iter()
        .copied()
        .chain(MARTS.iter().map(|m| m.name))
        .collect()
}
