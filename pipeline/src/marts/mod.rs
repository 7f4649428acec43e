//! Marts: the tables derived from the lake after identity, listed in one
//! place ([`MARTS`]). The sync brings them up to date in this order after
//! identity; `quanyu sql` sees exactly the lake's own tables and these.
//! What each column means is in the README ("Marts") and on each mart's
//! query.

use anyhow::{Context, Result};
use futures::future::BoxFuture;
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

/// How a mart is built: from the lake, the `[marts]` settings, and the
/// cursor `(application id, state)` to commit with it; a mart with no
/// input to read writes nothing.
pub type BuildMart =
    for<'a> fn(&'a Lake, &'a MartsConfig, (&'a str, i64)) -> BoxFuture<'a, Result<()>>;

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
    /// Rebuild it.
    pub build: BuildMart,
}

/// Every mart, in build order.
pub static MARTS: &[Mart] = &[
    Mart {
        name: "customer_orders",
        about: "one row per order with its unified customer, net of refunds, and the customer's paid-order sequence",
        inputs: &["identity_map", "orders", "refunds"],
        dated: false,
        build: |lake, _, built| Box::pin(customer_orders::build_customer_orders(lake, built)),
    },
    Mart {
        name: "customers",
        about: "one row per unified customer: orders, spend net of refunds, channels, owner",
        inputs: &["identity_map", "orders", "refunds", "contacts"],
        dated: false,
        build: |lake, _, built| Box::pin(customers::build_customers(lake, built)),
    },
    Mart {
        name: "bridges",
        about: "per bridge: touchpoints, cost, customers touched, buyers now WeCom contacts",
        inputs: &["touchpoints", "identity_map", "customers"],
        dated: false,
        build: |lake, _, built| Box::pin(customers::build_bridges(lake, built)),
    },
    Mart {
        name: "customer_rfm",
        about: "per buyer: recency, frequency, monetary quintile scores, trailing-365-day net GMV, decile, super_user",
        inputs: &["customer_orders", "customers"],
        dated: true,
        build: |lake, cfg, built| Box::pin(rfm::build_customer_rfm(lake, cfg, built)),
    },
    Mart {
        name: "super_users",
        about: "the top share of buyers by trailing-365-day net GMV, with what they look like",
        inputs: &["customer_rfm", "customer_orders"],
        dated: true,
        build: |lake, cfg, built| Box::pin(rfm::build_super_users(lake, cfg, built)),
    },
    Mart {
        name: "retention",
        about: "per monthly cohort (first paid order) and first channel: size, repurchase within 30/90/180/365 days",
        inputs: &["customer_orders"],
        dated: true,
        build: |lake, cfg, built| Box::pin(retention::build_retention(lake, cfg, built)),
    },
    Mart {
        name: "retention_months",
        about: "per monthly cohort and first channel, per month after: customers who paid an order that month",
        inputs: &["customer_orders"],
        dated: true,
        build: |lake, cfg, built| Box::pin(retention::build_retention_months(lake, cfg, built)),
    },
    Mart {
        name: "repurchase_intervals",
        about: "the distribution of days between a customer's paid orders, per channel and category",
        inputs: &["customer_orders", "order_lines"],
        dated: true,
        build: |lake, cfg, built| Box::pin(retention::build_repurchase_intervals(lake, cfg, built)),
    },
    Mart {
        name: "recall_list",
        about: "buyers whose last purchase is min_days..max_days old: value, reachability, suppression",
        inputs: &["customer_orders", "customer_rfm", "identity_map", "contacts", "touchpoints"],
        dated: true,
        build: |lake, cfg, built| Box::pin(recall::build_recall_list(lake, cfg, built)),
    },
    Mart {
        name: "rep_attribution",
        about: "per month and WeCom owner: customers held and added, revenue after the add by channel, and the unattributed rest",
        inputs: &["customer_orders", "identity_map", "contacts", "touchpoints"],
        dated: true,
        build: |lake, cfg, built| Box::pin(reps::build_rep_attribution(lake, cfg, built)),
    },
    Mart {
        name: "bridge_roi",
        about: "per bridge, campaign and cohort: touchpoints, cost, customers added to WeCom, their revenue in the window after joining",
        inputs: &["touchpoints", "identity_map", "contacts", "customer_orders"],
        dated: true,
        build: |lake, cfg, built| Box::pin(bridge_roi::build_bridge_roi(lake, cfg, built)),
    },
];

/// Write the result of `sql` (run in `ctx`, where its inputs are
/// registered) as mart `name`, replacing its contents and schema, with the
/// cursor `built` (application id, state) in the same commit. Columns are
/// written in plain Arrow types (`Utf8`, not views).
pub(crate) async fn write_mart(
    lake: &Lake,
    name: &str,
    ctx: &datafusion::prelude::SessionContext,
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
        (mart.build)(lake, cfg, (&app, state))
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
