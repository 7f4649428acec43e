//! Marts: the tables derived from the lake after identity, listed in one
//! place. The sync brings them up to date in this order after identity;
//! `quanyu sql` sees exactly the lake's own tables and these.

use anyhow::Result;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::lake::Lake;

/// One mart: its table, what it reads, and how it is built.
pub struct Mart {
    /// Its table's name.
    pub name: &'static str,
    /// What it answers.
    pub about: &'static str,
    /// The tables it is derived from (a mart may read marts before it).
    pub inputs: &'static [&'static str],
    /// Rebuild it, committing the cursor `(application id, state)` with it;
    /// a mart with no input to read writes nothing.
    pub build: for<'a> fn(&'a Lake, (&'a str, i64)) -> BoxFuture<'a, Result<()>>,
}

/// Every mart, in build order.
pub static MARTS: &[Mart] = &[
    Mart {
        name: "customer_orders",
        about: "one row per order with its unified customer, net of refunds, and the customer's paid-order sequence",
        inputs: &["identity_map", "orders", "refunds"],
        build: |lake, built| Box::pin(crate::customer_orders::build_customer_orders(lake, built)),
    },
    Mart {
        name: "customers",
        about: "one row per unified customer: orders, spend net of refunds, channels, owner",
        inputs: &["identity_map", "orders", "refunds", "contacts"],
        build: |lake, built| Box::pin(crate::customers::build_customers(lake, built)),
    },
    Mart {
        name: "bridges",
        about: "per bridge: touchpoints, cost, customers touched, buyers now WeCom contacts",
        inputs: &["touchpoints", "identity_map", "customers"],
        build: |lake, built| Box::pin(crate::customers::build_bridges(lake, built)),
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

/// The state a mart reflects: the identity build and its inputs' table
/// versions, as one number.
async fn state_of(lake: &Lake, mart: &Mart, build: i64) -> Result<i64> {
    let mut h = Sha256::new();
    h.update(build.to_be_bytes());
    for input in mart.inputs {
        let v = lake.version(input).await?.map_or(-1, |v| v as i64);
        h.update(input.as_bytes());
        h.update(v.to_be_bytes());
    }
    let d = h.finalize();
    Ok(i64::from_be_bytes(d[..8].try_into().expect("8 bytes")) & i64::MAX)
}

/// Whether `mart` reflects identity build `build` and its inputs as they
/// stand.
pub async fn is_current(lake: &Lake, mart: &Mart, build: i64) -> Result<bool> {
    let state = state_of(lake, mart, build).await?;
    Ok(lake.txn_version(mart.name, &app_id(mart)).await? == Some(state))
}

/// Bring every mart up to identity build `build` and its inputs as they
/// stand: a mart that reflects them is skipped, so a sync killed between
/// identity and its marts is completed by the next one, and a mart does
/// not depend on identity noticing every change of its inputs. Returns
/// how many marts were rebuilt.
pub async fn refresh_marts(lake: &Lake, build: i64) -> Result<usize> {
    if build <= 0 {
        return Ok(0);
    }
    let mut rebuilt = 0;
    for mart in MARTS {
        let app = app_id(mart);
        let state = state_of(lake, mart, build).await?;
        if lake.txn_version(mart.name, &app).await? == Some(state) {
            continue;
        }
        (mart.build)(lake, (&app, state)).await?;
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
