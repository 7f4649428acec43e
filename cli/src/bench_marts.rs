//! `quanyu bench marts`: every mart over a generated lake of N orders, each
//! built alone and timed with its peak memory, beside DuckDB running the
//! same queries on the same Parquet files (`tests/bench/duckdb_marts.py`),
//! with the answers compared.
//!
//! The population is `quanyu bench lake`'s (N orders of about N / 5
//! people on five marketplaces over 400 days, one person in seven a WeCom
//! contact), plus what the operators' marts read: a succeeded refund for
//! every refunded order, a package-card scan for every other contact, a
//! deletion for every tenth contact 20 days after the add, and an AI call
//! to every fifth person in the 200 days before the reference day.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::DataType;
use chrono::{DateTime, Duration, Utc};
use quanyu_connector_sdk::sandbox::world::mix;
use quanyu_schemas::{
    Bridge, Outcome, PiiHasher, RefundRow, RefundStatus, RefundsBuilder, TableKind, TouchEvent,
    TouchpointRow, TouchpointsBuilder,
};

use crate::bench_identity::{reset_peak, rss, step, Step};
use crate::bench_lake::{as_of, contact_of, land, phone};
use crate::lake::Lake;
use crate::marts::{MartsConfig, MARTS};

/// One mart as built by the benchmark.
#[derive(Debug, Clone)]
pub struct MartRun {
    /// The mart.
    pub name: String,
    /// Wall time of its build (query and Delta write), seconds.
    pub secs: f64,
    /// Peak resident memory during the build, MiB.
    pub peak_mib: f64,
    /// Its rows, and the sum of each integer column and the trues of each
    /// boolean column, by column name: what the peer's answer is compared
    /// on.
    pub digest: std::collections::BTreeMap<String, i128>,
}

/// The benchmark's figures.
#[derive(Debug, Clone, Default)]
pub struct MartsBench {
    /// Orders generated.
    pub orders: u64,
    /// Generation, refresh and identity steps.
    pub steps: Vec<Step>,
    /// Each mart.
    pub marts: Vec<MartRun>,
    /// Where each mart's query was written for the peer (`NN_name.sql`).
    pub sql_dir: PathBuf,
}

/// The `[marts]` settings of the benchmark: the generated lake's day.
pub fn config() -> MartsConfig {
    let mut cfg = MartsConfig {
        as_of: Some(
            (as_of() - Duration::seconds(1))
                .with_timezone(&crate::marts::beijing())
                .date_naive(),
        ),
        ..MartsConfig::default()
    };
    cfg.bridge_roi
        .unit_cost_fen
        .insert("package_card".into(), 30);
    cfg
}

/// The touchpoints of people `0..people`, in batches of about `rows`.
struct Touches {
    hasher: PiiHasher,
    people: u64,
    person: u64,
}

impl Touches {
    fn touch(bridge: Bridge, id: String, event: TouchEvent, at: DateTime<Utc>) -> TouchpointRow {
        TouchpointRow::event(bridge, id, event, at, "bench")
    }

    fn batch(&mut self, rows: usize) -> Option<RecordBatch> {
        let mut b = TouchpointsBuilder::new("bench-marts", as_of());
        let mut n = 0;
        while n < rows && self.person < self.people {
            let p = self.person;
            self.person += 1;
            if let Some(c) = contact_of(p) {
                if p.is_multiple_of(2) {
                    let mut t = Self::touch(
                        Bridge::PackageCard,
                        format!("scan-{p}"),
                        TouchEvent::Scan,
                        c.added - Duration::minutes(3),
                    );
                    t.external_userid = Some(c.external_userid.clone());
                    t.campaign = Some(format!("card-{}", p % 3));
                    b.append(&t);
                    n += 1;
                }
                let deleted = c.added + Duration::days(20);
                if p.is_multiple_of(10) && deleted < as_of() {
                    let mut t = Self::touch(
                        Bridge::Wecom,
                        format!("del-{p}"),
                        TouchEvent::FriendDeleted,
                        deleted,
                    );
                    t.external_userid = Some(c.external_userid);
                    t.owner_userid = Some(c.owner);
                    b.append(&t);
                    n += 1;
                }
            }
            if p.is_multiple_of(5) {
                let at = as_of() - Duration::seconds((mix(p ^ 21) % (200 * 86_400)) as i64);
                let mut t = Self::touch(Bridge::AiCall, format!("call-{p}"), TouchEvent::Call, at);
                t.phone_hash = phone(&self.hasher, p);
                t.campaign = Some(format!("t{}", p % 4));
                t.outcome = Some(if p.is_multiple_of(3) {
                    Outcome::Connected
                } else {
                    Outcome::NoAnswer
                });
                t.cost_fen = Some(40);
                b.append(&t);
                n += 1;
            }
        }
        (n > 0).then(|| b.finish())
    }
}

/// A succeeded refund of the whole amount for every refunded order.
async fn refunds(lake: &Lake) -> Result<Vec<RecordBatch>> {
    let batches = crate::sql::query(
        lake,
        "SELECT channel, shop_id, order_id, amount_fen, updated_at FROM orders WHERE status = 'refunded'",
    )
    .await?;
    let mut out = Vec::new();
    for batch in &batches {
        let mut b = RefundsBuilder::new("bench-marts", as_of());
        let text = |i: usize| crate::lake::strings(batch.column(i));
        let (channel, shop, order) = (text(0)?, text(1)?, text(2)?);
        let amount = arrow::compute::cast(batch.column(3), &DataType::Int64)?;
        let amount = amount.as_primitive::<arrow::datatypes::Int64Type>();
        let at = batch
            .column(4)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for r in 0..batch.num_rows() {
            let when = DateTime::from_timestamp_micros(at.value(r)).context("a time")?;
            b.append(&RefundRow {
                channel: channel.value(r).parse().map_err(anyhow::Error::msg)?,
                shop_id: shop.value(r).into(),
                refund_id: format!("rf{}", order.value(r)),
                order_id: order.value(r).into(),
                line_id: None,
                status: RefundStatus::Succeeded,
                platform_status: "SUCCESS".into(),
                refund_fen: amount.value(r),
                created_at: when,
                updated_at: when,
            });
        }
        out.push(b.finish());
    }
    Ok(out)
}

/// Rows, integer sums and boolean trues of table `name`, by column.
async fn digest(lake: &Lake, name: &str) -> Result<std::collections::BTreeMap<String, i128>> {
    let batches = crate::sql::query(lake, &format!("SELECT * FROM {name}")).await?;
    let mut d = std::collections::BTreeMap::new();
    let mut rows = 0i128;
    for b in &batches {
        rows += b.num_rows() as i128;
        for (field, col) in b.schema().fields().iter().zip(b.columns()) {
            let sum: i128 = match field.data_type() {
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                    let c = arrow::compute::cast(col, &DataType::Int64)?;
                    let c = c.as_primitive::<arrow::datatypes::Int64Type>();
                    c.iter().flatten().map(i128::from).sum()
                }
                DataType::Boolean => col.as_boolean().true_count() as i128,
                _ => continue,
            };
            *d.entry(field.name().clone()).or_insert(0) += sum;
        }
    }
    d.insert("rows".into(), rows);
    Ok(d)
}

/// Generate the lake of `orders` orders in `dir` (unless `skip_build`: it
/// exists), then build and time every mart.
pub async fn run(dir: &Path, orders: u64, skip_build: bool) -> Result<MartsBench> {
    let lake = Lake::open(dir)?;
    let mut out = MartsBench {
        orders,
        sql_dir: dir.join("_bench_marts_sql"),
        ..Default::default()
    };
    if !skip_build {
        let (hasher, persons) = crate::bench_lake::generate(&lake, orders, &mut out.steps).await?;
        let refunded = refunds(&lake).await?;
        let mut refunded = refunded.into_iter();
        step(
            &mut out.steps,
            "generate raw_refunds",
            land(&lake, TableKind::Refunds, move |_| refunded.next()),
        )
        .await?;
        let mut touches = Touches {
            hasher: hasher.clone(),
            people: persons,
            person: 0,
        };
        step(
            &mut out.steps,
            "generate raw_touchpoints",
            land(&lake, TableKind::Touchpoints, move |n| touches.batch(n)),
        )
        .await?;
        for kind in [TableKind::Refunds, TableKind::Touchpoints] {
            step(
                &mut out.steps,
                &format!("refresh {}", kind.name()),
                crate::refresh::refresh(&lake, kind),
            )
            .await?;
        }
        step(
            &mut out.steps,
            "identity",
            crate::identity::build_identity(&lake, &hasher, &Default::default()),
        )
        .await?;
    }
    let cfg = config();
    std::fs::create_dir_all(&out.sql_dir)?;
    for (i, mart) in MARTS.iter().enumerate() {
        let sql = crate::marts::query_of(&lake, mart, &cfg)
            .await?
            .with_context(|| format!("{}: an input is missing", mart.name))?;
        std::fs::write(out.sql_dir.join(format!("{i:02}_{}.sql", mart.name)), &sql)?;
        reset_peak();
        let t = Instant::now();
        crate::marts::build_mart(&lake, mart, &cfg, ("quanyu:bench", 1))
            .await
            .with_context(|| format!("building {}", mart.name))?;
        let secs = t.elapsed().as_secs_f64();
        let peak_mib = rss().0;
        eprintln!("  mart {}: {secs:.2} s, peak {peak_mib:.0} MiB", mart.name);
        out.marts.push(MartRun {
            name: mart.name.to_string(),
            secs,
            peak_mib,
            digest: digest(&lake, mart.name).await?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small lake through the whole benchmark: every mart is built, none
    /// is empty, and the queries handed to the peer are written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_mart_builds_on_the_generated_lake() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(dir.path(), 20_000, false).await.unwrap();
        assert_eq!(r.marts.len(), MARTS.len());
        for m in &r.marts {
            assert!(m.digest["rows"] > 0, "{} is empty", m.name);
        }
        let files = std::fs::read_dir(&r.sql_dir).unwrap().count();
        assert_eq!(files, MARTS.len());
        let recall = r.marts.iter().find(|m| m.name == "recall_list").unwrap();
        assert!(
            recall.digest["contacted_recently"] > 0,
            "calls suppress some"
        );
        let roi = r.marts.iter().find(|m| m.name == "bridge_roi").unwrap();
        assert!(roi.digest["customers_added"] > 0, "cards add contacts");
    }
}
