//! `quanyu bench identity`: identity at scale on synthetic, identity-shaped
//! data, with wall time and peak memory per step.
//!
//! Part 1 writes an `identity_edges` table of N identifiers and M edges:
//! buyers with a phone and a handful of orders each (most customers hold
//! at most ten identifiers), one phone on 150,000 orders of different
//! receivers, a chain of 300 people each linked to the next. It then builds
//! identity from it twice: a first build, and a full rebuild that carries
//! every id forward. Part 2 lands orders through the lake, builds identity,
//! adds 1 % more orders and builds again incrementally, beside a full
//! rebuild of the same state.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use arrow::array::{
    ArrayBuilder, ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use chrono::{DateTime, Utc};
use quanyu_connector_sdk::sandbox::world::mix;
use quanyu_schemas::{
    Channel, LakeKey, OrderRow, OrderStatus, OrdersBuilder, PiiHasher, TableKind,
};

use crate::identity::{IdentityConfig, IdentitySummary};
use crate::lake::{Commit, Lake};

/// Resident memory: the high-water mark (`VmHWM`) and the current
/// (`VmRSS`), MiB.
pub(crate) fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Reset the high-water mark to the current resident size, so the next
/// reading is one step's peak.
pub(crate) fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// One step's figures.
#[derive(Debug, Clone)]
pub struct Step {
    /// What was measured.
    pub name: String,
    /// Wall time, seconds.
    pub secs: f64,
    /// Peak resident memory of the process during the step, MiB.
    pub peak_mib: f64,
}

/// The benchmark's figures, in order.
#[derive(Debug, Clone, Default)]
pub struct IdentityBench {
    /// Identifiers and edges of the synthetic graph.
    pub nodes: usize,
    /// Edges written.
    pub edges: usize,
    /// Steps measured.
    pub steps: Vec<Step>,
    /// The full rebuild's summary (with carry-forward).
    pub rebuild: IdentitySummary,
    /// Orders in part 2 and the incremental build's summary.
    pub orders: usize,
    /// Part 2's incremental summary.
    pub incremental: IdentitySummary,
    /// Part 2's full rebuild of the same state.
    pub full: IdentitySummary,
}

/// Run one step, print and record its wall time and peak memory.
pub(crate) async fn step<T>(
    steps: &mut Vec<Step>,
    name: &str,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    reset_peak();
    let t = Instant::now();
    let v = f.await?;
    let secs = t.elapsed().as_secs_f64();
    let peak_mib = rss().0;
    eprintln!("  {name}: {secs:.2} s, peak {peak_mib:.0} MiB");
    steps.push(Step {
        name: name.to_string(),
        secs,
        peak_mib,
    });
    Ok(v)
}

fn hex64(a: u64) -> String {
    format!(
        "{:016x}{:016x}{:016x}{:016x}",
        mix(a),
        mix(a ^ 1),
        mix(a ^ 2),
        mix(a ^ 3)
    )
}

/// The synthetic graph, generated batch by batch.
struct Gen {
    persons: u64,
    next_person: u64,
    hub_left: u64,
    chain_left: u64,
    order_no: u64,
    edges: u64,
    limit: u64,
}

const CHAIN: u64 = 300;
const HUB_ORDERS: u64 = 150_000;

impl Gen {
    fn batch(&mut self, rows: usize) -> Option<RecordBatch> {
        let mut c: Vec<StringBuilder> = (0..8).map(|_| StringBuilder::new()).collect();
        let push = |c: &mut Vec<StringBuilder>, v: [&str; 8]| {
            for (b, x) in c.iter_mut().zip(v) {
                if x.is_empty() {
                    b.append_null();
                } else {
                    b.append_value(x);
                }
            }
        };
        while c[0].len() < rows && self.edges < self.limit {
            if self.hub_left > 0 {
                // One phone on 150,000 Pinduoduo orders of different people.
                self.hub_left -= 1;
                self.order_no += 1;
                let order = format!("pdd:240601-{:015}", self.order_no);
                let signal = format!("{:016x}", mix(self.hub_left));
                let key = format!("pdd:s:{}", self.order_no);
                push(
                    &mut c,
                    [
                        "order",
                        &order,
                        "phone_hash",
                        &hex64(u64::MAX),
                        "order_phone",
                        &signal,
                        "orders",
                        &key,
                    ],
                );
                self.edges += 1;
                continue;
            }
            if self.next_person >= self.persons {
                break;
            }
            let p = self.next_person;
            self.next_person += 1;
            let shop = p % 7;
            let buyer = format!("{:012x}@shop{shop}", mix(p) & 0xffff_ffff_ffff);
            let phone = hex64(p);
            for _ in 0..(1 + mix(p ^ 77) % 11) {
                self.order_no += 1;
                let order = format!("taobao:{}", 3_100_000_000_000_000 + self.order_no);
                let key = format!("taobao:shop{shop}:{}", self.order_no);
                push(
                    &mut c,
                    [
                        "order",
                        &order,
                        "taobao_buyer",
                        &buyer,
                        "order_buyer",
                        "",
                        "orders",
                        &key,
                    ],
                );
                push(
                    &mut c,
                    [
                        "taobao_buyer",
                        &buyer,
                        "phone_hash",
                        &phone,
                        "buyer_phone",
                        "",
                        "orders",
                        &key,
                    ],
                );
                self.edges += 2;
            }
            if self.chain_left > 0 {
                // The chain: this person's buyer id also ships to the next
                // person's phone.
                self.chain_left -= 1;
                let key = format!("taobao:chain:{p}");
                push(
                    &mut c,
                    [
                        "taobao_buyer",
                        &buyer,
                        "phone_hash",
                        &hex64(p + 1),
                        "buyer_phone",
                        "",
                        "orders",
                        &key,
                    ],
                );
                self.edges += 1;
            }
        }
        let n = c[0].len();
        if n == 0 {
            return None;
        }
        let mut at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        (0..n).for_each(|_| at.append_value(1_700_000_000_000_000));
        let mut cols: Vec<ArrayRef> = c
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        cols.push(Arc::new(at.finish()));
        Some(
            RecordBatch::try_new(crate::identity::identity_edges_schema(), cols)
                .expect("columns match"),
        )
    }
}

/// Write the synthetic graph of about `nodes` identifiers and `edges`
/// edges; returns the edges written.
async fn write_graph(lake: &Lake, nodes: usize, edges: usize) -> Result<usize> {
    // Each person: a buyer id, a phone and 1–11 orders (6 on average):
    // about 8 identifiers and 12 edges.
    let persons = (nodes as u64 / 8).max(1);
    let limit = edges as u64;
    let generator = std::sync::Mutex::new(Gen {
        persons,
        next_person: 0,
        hub_left: HUB_ORDERS.min(limit / 10),
        chain_left: CHAIN,
        order_no: 0,
        edges: 0,
        limit,
    });
    let stream = futures::stream::unfold(generator, |g| async move {
        let b = g.lock().expect("not poisoned").batch(64 * 1024);
        b.map(|b| (Ok(b), g))
    });
    let ctx = crate::lake::new_context();
    let df = crate::lake::stream_frame(&ctx, crate::identity::identity_edges_schema(), stream)?;
    lake.write_plan(
        "identity_edges",
        &crate::identity::identity_edges_schema(),
        &ctx,
        df,
        Commit {
            replace_schema: true,
            ..Default::default()
        },
    )
    .await?;
    let n = crate::lake::first_count(
        &crate::sql::query(lake, "SELECT count(*) FROM identity_edges").await?,
    );
    Ok(n as usize)
}

/// Orders of `persons` people from `first` on, about six each; with
/// `extra`, one more order for every `extra`-th existing person too.
fn orders(first: u64, persons: u64, extra: Option<u64>, h: &PiiHasher) -> Vec<OrderRow> {
    let t0 = DateTime::from_timestamp(1_760_000_000, 0).expect("valid");
    let mut out = Vec::new();
    let mut push = |p: u64, k: u64| {
        let shop = format!("shop{}", p % 7);
        let created = t0 + chrono::Duration::seconds((mix(p ^ k) % 86_400) as i64);
        out.push(OrderRow {
            channel: Channel::Taobao,
            shop_id: shop.clone(),
            order_id: format!("{}", 3_100_000_000_000_000 + p * 16 + k),
            buyer_id: Some(format!("{:012x}@{shop}", mix(p) & 0xffff_ffff_ffff)),
            phone_hash: h.phone_text(&format!("139{:08}", p % 100_000_000)),
            phone_masked: None,
            status: OrderStatus::Paid,
            platform_status: "paid".into(),
            amount_fen: 100,
            item_count: 1,
            province: None,
            city: None,
            created_at: created,
            paid_at: Some(created),
            updated_at: created,
            buyer_unionid: None,
            receiver_hash: None,
        });
    };
    for p in first..first + persons {
        for k in 0..(1 + mix(p ^ 77) % 11) {
            push(p, k);
        }
    }
    if let Some(every) = extra {
        for p in (0..first).step_by(every as usize) {
            push(p, 15);
        }
    }
    out
}

async fn land_orders(lake: &Lake, rows: &[OrderRow]) -> Result<()> {
    for chunk in rows.chunks(250_000) {
        let mut b = OrdersBuilder::new("bench", Utc::now());
        chunk.iter().for_each(|o| b.append(o));
        lake.append_raw(TableKind::Orders, vec![b.finish()]).await?;
    }
    crate::refresh::refresh_current(lake, TableKind::Orders).await?;
    Ok(())
}

/// Run the benchmark in `dir`: a graph of `nodes` identifiers and `edges`
/// edges, and `orders` orders for the incremental part (0 skips it).
pub async fn run(
    dir: &std::path::Path,
    nodes: usize,
    edges: usize,
    orders_n: usize,
) -> Result<IdentityBench> {
    let h = PiiHasher::new(&LakeKey::from_bytes([42; 32]));
    let cfg = IdentityConfig::default();
    let mut out = IdentityBench::default();
    let graph = Lake::open(&dir.join("graph"))?;
    eprintln!("part 1: synthetic identity graph");
    out.edges = step(
        &mut out.steps,
        "write the synthetic identity_edges",
        write_graph(&graph, nodes, edges),
    )
    .await?;
    let first = step(
        &mut out.steps,
        "first build (no previous ids)",
        crate::identity::build::build_from_edges(&graph, &h, &cfg),
    )
    .await?;
    out.nodes = first.recomputed;
    eprintln!("    {}", crate::identity::build::describe(&first));
    out.rebuild = step(
        &mut out.steps,
        "full rebuild (carrying every id forward)",
        crate::identity::build::build_from_edges(&graph, &h, &cfg),
    )
    .await?;
    eprintln!("    {}", crate::identity::build::describe(&out.rebuild));
    if orders_n > 0 {
        eprintln!("part 2: incremental build after 1 % new orders");
        let lake = Lake::open(&dir.join("orders"))?;
        let persons = (orders_n as u64 / 6).max(1);
        let base = orders(0, persons, None, &h);
        out.orders = base.len();
        step(&mut out.steps, "land orders", land_orders(&lake, &base)).await?;
        step(
            &mut out.steps,
            "first build from orders",
            crate::sync::derive(&lake, &h, (&cfg, &Default::default()), false),
        )
        .await?;
        // 1 %: half new people, half an extra order of existing buyers.
        let more = orders(persons, persons / 200, Some(200), &h);
        step(
            &mut out.steps,
            "land 1 % more orders",
            land_orders(&lake, &more),
        )
        .await?;
        let copy = dir.join("orders-copy");
        copy_dir(lake.root(), &copy)?;
        let full = Lake::open(&copy)?;
        let builds = [
            ("incremental build", &lake, false),
            ("full rebuild of the same state", &full, true),
        ];
        let marts = crate::marts::MartsConfig::default();
        for (name, lake, rebuild) in builds {
            let derived = crate::sync::derive(lake, &h, (&cfg, &marts), rebuild);
            let summary = step(&mut out.steps, name, derived).await?.0;
            eprintln!("    {}", crate::identity::build::describe(&summary));
            match rebuild {
                false => out.incremental = summary,
                true => out.full = summary,
            }
        }
    }
    Ok(out)
}

/// Copy a folder recursively (a lake, to rebuild a copy of one state).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}
