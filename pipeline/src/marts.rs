//! Marts: the tables derived from the lake after identity, listed in one
//! place. The sync builds them in this order after each identity build;
//! `quanyu sql` sees exactly the lake's own tables and these.

use anyhow::Result;
use futures::future::BoxFuture;

use crate::lake::Lake;

/// One mart: its table and how it is built.
pub struct Mart {
    /// Its table's name.
    pub name: &'static str,
    /// What it answers.
    pub about: &'static str,
    /// Rebuild it (marts listed before it are current), committing the
    /// cursor `(application id, identity build)` with it.
    pub build: for<'a> fn(&'a Lake, (&'a str, i64)) -> BoxFuture<'a, Result<()>>,
}

/// Every mart, in build order (a mart may read those before it).
pub static MARTS: &[Mart] = &[
    Mart {
        name: "customers",
        about: "one row per unified customer: orders, spend, channels, owner",
        build: |lake, built| Box::pin(crate::customers::build_customers(lake, built)),
    },
    Mart {
        name: "bridges",
        about: "per bridge: touchpoints, cost, customers touched, buyers now WeCom contacts",
        build: |lake, built| Box::pin(crate::customers::build_bridges(lake, built)),
    },
];

/// The application id under which a mart records the identity build it
/// reflects.
fn app_id(mart: &Mart) -> String {
    format!("quanyu:mart:{}", mart.name)
}

/// Bring every mart up to identity build `build`: a mart that already
/// reflects it is skipped, so a sync killed between identity and its marts
/// is completed by the next one.
pub async fn refresh_marts(lake: &Lake, build: i64) -> Result<usize> {
    if build <= 0 {
        return Ok(0);
    }
    let mut rebuilt = 0;
    for mart in MARTS {
        let app = app_id(mart);
        if lake.txn_version(mart.name, &app).await? == Some(build) {
            continue;
        }
        (mart.build)(lake, (&app, build)).await?;
        rebuilt += 1;
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
