//! `identity_aliases`: every retired id and the id it resolves to now,
//! folded from the merges and retirements `identity_changes` logs. A chain
//! (A merged into B, B later into C) always resolves in one step: A → C.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{
    Array, AsArray, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

use super::tables::identity_aliases_schema;
use crate::lake::{strings, Commit, Lake};

/// One alias row.
#[derive(Debug, Clone, PartialEq)]
struct Alias {
    current: Option<String>,
    reason: String,
    build: i64,
    at: Option<i64>,
}

/// Fold the merges and retirements of builds after the table's last one,
/// up to `build`, into `identity_aliases` (idempotent).
pub async fn update_aliases(lake: &Lake, build: i64, app: &str) -> Result<()> {
    let done = lake
        .txn_version("identity_aliases", app)
        .await?
        .unwrap_or(0);
    if done >= build {
        return Ok(());
    }
    let ctx = crate::lake::new_context();
    let mut aliases: BTreeMap<String, Alias> = BTreeMap::new();
    if lake.register(&ctx, "identity_aliases").await? {
        for b in ctx
            .sql("SELECT retired_id, current_id, reason, build, retired_at FROM identity_aliases")
            .await?
            .collect()
            .await?
        {
            let (r, c, why) = (
                strings(b.column(0))?,
                strings(b.column(1))?,
                strings(b.column(2))?,
            );
            let n = b.column(3).as_primitive::<Int64Type>();
            let at = b.column(4).as_primitive::<TimestampMicrosecondType>();
            for i in 0..b.num_rows() {
                aliases.insert(
                    r.value(i).to_string(),
                    Alias {
                        current: (!c.is_null(i)).then(|| c.value(i).to_string()),
                        reason: why.value(i).to_string(),
                        build: n.value(i),
                        at: (!at.is_null(i)).then(|| at.value(i)),
                    },
                );
            }
        }
    }
    if lake.register(&ctx, "identity_changes").await? {
        let sql = format!(
            "SELECT build, changed_at, change, unified_id, other_id FROM identity_changes
             WHERE build > {done} AND build <= {build} AND change IN ('merge', 'retire')
             ORDER BY build, changed_at, change, unified_id, other_id"
        );
        for b in ctx.sql(&sql).await?.collect().await? {
            let n = b.column(0).as_primitive::<Int64Type>();
            let at = b.column(1).as_primitive::<TimestampMicrosecondType>();
            let (kind, uid, other) = (
                strings(b.column(2))?,
                strings(b.column(3))?,
                strings(b.column(4))?,
            );
            for i in 0..b.num_rows() {
                let (retired, current, reason) = match kind.value(i) {
                    "merge" => (other.value(i), Some(uid.value(i).to_string()), "merged"),
                    _ => (uid.value(i), None, "dissolved"),
                };
                for a in aliases.values_mut() {
                    if a.current.as_deref() == Some(retired) {
                        a.current = current.clone();
                    }
                }
                aliases.insert(
                    retired.to_string(),
                    Alias {
                        current,
                        reason: reason.to_string(),
                        build: n.value(i),
                        at: (!at.is_null(i)).then(|| at.value(i)),
                    },
                );
            }
        }
    }
    let mut r = StringBuilder::new();
    let mut c = StringBuilder::new();
    let mut why = StringBuilder::new();
    let mut n = Int64Builder::new();
    let mut at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    for (id, a) in &aliases {
        r.append_value(id);
        c.append_option(a.current.as_deref());
        why.append_value(&a.reason);
        n.append_value(a.build);
        at.append_option(a.at);
    }
    let batch = RecordBatch::try_new(
        identity_aliases_schema(),
        vec![
            Arc::new(r.finish()),
            Arc::new(c.finish()),
            Arc::new(why.finish()),
            Arc::new(n.finish()),
            Arc::new(at.finish()),
        ],
    )?;
    let wctx = crate::lake::new_context();
    let df = wctx.read_batch(batch)?;
    lake.write_plan(
        "identity_aliases",
        &identity_aliases_schema(),
        &wctx,
        df,
        Commit {
            txns: vec![(app.to_string(), build)],
            ..Default::default()
        },
    )
    .await
}
