//! `quanyu bench lake`: a brand-sized lake generated straight into the raw
//! tables, then everything `quanyu run` does after a pull (refresh,
//! identity, customers) and the analysts' queries of `tests/bench/queries`,
//! each step timed with its peak memory; then a later pull's worth of 1 %
//! more rows (the last two days' orders moved on, and new orders) through
//! the same steps, incrementally.
//!
//! The population: N orders of about N / 5 people on five marketplaces over
//! the 400 days before [`AS_OF`]; three in ten people buy on a second
//! marketplace with the same phone; one in seven is a WeCom contact with
//! that phone. Rows are generated batch by batch and streamed into one
//! commit per table, so the generator's memory does not grow with N.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use chrono::{DateTime, Duration, Utc};
use quanyu_connector_sdk::sandbox::world::mix;
use quanyu_schemas::{
    Channel, ContactRow, ContactsBuilder, LakeKey, OrderRow, OrderStatus, OrdersBuilder, PiiHasher,
    TableKind,
};

use crate::bench_identity::{step, Step};
use crate::identity::IdentityConfig;
use crate::lake::{Commit, Lake};

/// The analysts' queries the benchmark runs, by name (the SQL files of
/// `tests/bench/queries`, which the DuckDB peer runs too).
pub const QUERIES: &[(&str, &str)] = &[
    (
        "recall_list",
        include_str!("../../tests/bench/queries/recall_list.sql"),
    ),
    (
        "top_decile",
        include_str!("../../tests/bench/queries/top_decile.sql"),
    ),
    (
        "channel_months",
        include_str!("../../tests/bench/queries/channel_months.sql"),
    ),
    (
        "cross_channel",
        include_str!("../../tests/bench/queries/cross_channel.sql"),
    ),
];

/// The generated lake's "today": orders fall in the 400 days before it (the
/// queries' date bounds are written against it).
pub fn as_of() -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_083_200, 0).expect("2026-12-01T00:00:00Z")
}

const MARKETS: [Channel; 5] = [
    Channel::Taobao,
    Channel::Jd,
    Channel::Pdd,
    Channel::Douyin,
    Channel::Kuaishou,
];

/// A person's marketplace: Taobao 40 %, JD and Pinduoduo 20 % each, Douyin
/// 15 %, Kuaishou 5 %.
fn market(r: u64) -> Channel {
    match r % 20 {
        0..=7 => MARKETS[0],
        8..=11 => MARKETS[1],
        12..=15 => MARKETS[2],
        16..=18 => MARKETS[3],
        _ => MARKETS[4],
    }
}

/// Lifecycle by age: recent orders are still moving, old ones are final.
fn status(r: u64, age_days: i64) -> OrderStatus {
    match (r % 100, age_days) {
        (0..=5, _) => OrderStatus::Cancelled,
        (6..=9, _) => OrderStatus::Refunded,
        (10..=13, 0..=1) => OrderStatus::PendingPayment,
        (_, 0..=2) => OrderStatus::Paid,
        (_, 3..=6) => OrderStatus::Shipped,
        (_, 7..=14) => OrderStatus::Delivered,
        _ => OrderStatus::Completed,
    }
}

/// What a [`People`] generator emits.
#[derive(Clone, Copy)]
enum Emit {
    /// Every order of each person.
    All,
    /// A later pull: the orders of the last two days, completed at this time.
    Updates(DateTime<Utc>),
    /// New people whose orders are all of the last two days.
    Recent,
}

/// The generator: people in order, each with 1–9 orders (5 on average).
struct People {
    hasher: PiiHasher,
    emit: Emit,
    orders_left: u64,
    person: u64,
    /// With [`Emit::Updates`], the person to stop at.
    person_end: u64,
    /// When the rows were landed.
    ingested_at: DateTime<Utc>,
}

/// Days of orders that a later pull sees again or anew.
const RECENT_DAYS: u64 = 2;

/// Person `p`'s phone, hashed: the same on every marketplace and in WeCom.
pub(crate) fn phone(hasher: &PiiHasher, p: u64) -> Option<String> {
    hasher.phone_text(&format!("13{:09}", mix(p ^ 0x9e37) % 1_000_000_000))
}

impl People {
    /// The next batch of about `rows` orders, `None` when all are out.
    fn orders(&mut self, rows: usize) -> Option<RecordBatch> {
        let mut b = OrdersBuilder::new("bench-lake", self.ingested_at);
        let mut n = 0;
        while n < rows && self.orders_left > 0 {
            if let Emit::Updates(_) = self.emit {
                if self.person >= self.person_end {
                    break;
                }
            }
            let p = self.person;
            self.person += 1;
            let phone = phone(&self.hasher, p);
            let home = market(mix(p));
            let second = (mix(p ^ 5) % 10 < 3).then(|| market(mix(p ^ 6)));
            let count = 1 + mix(p ^ 7) % 9;
            for k in 0..count.min(self.orders_left) {
                let r = mix(p.wrapping_mul(31) ^ k);
                let channel = match second {
                    Some(c) if k % 2 == 1 => c,
                    _ => home,
                };
                let span = match self.emit {
                    Emit::Recent => RECENT_DAYS * 86_400,
                    _ => 400 * 86_400,
                };
                let age = Duration::seconds((r % span) as i64);
                if matches!(self.emit, Emit::Updates(_)) && age.num_days() >= RECENT_DAYS as i64 {
                    continue;
                }
                let created = as_of() - age;
                let (st, updated) = match self.emit {
                    Emit::Updates(at) => (OrderStatus::Completed, at),
                    _ => (
                        status(r >> 8, age.num_days()),
                        created + Duration::days(age.num_days().min(15)),
                    ),
                };
                let paid = (st != OrderStatus::PendingPayment && st != OrderStatus::Cancelled)
                    .then_some(created + Duration::minutes(3));
                let shop = format!("{}-shop{}", channel.as_str(), p % 3);
                b.append(&OrderRow {
                    channel,
                    // Platforms number orders in time: the creation second first.
                    order_id: format!("{}{:09}{k}", created.timestamp(), p % 1_000_000_000),
                    buyer_id: Some(format!("{:014x}@{shop}", mix(p ^ channel as u64))),
                    shop_id: shop,
                    phone_hash: phone.clone(),
                    phone_masked: None,
                    status: st,
                    platform_status: st.as_str().to_string(),
                    amount_fen: 990 + ((r >> 20) % 200_000) as i64,
                    item_count: 1 + ((r >> 40) % 3) as i32,
                    province: None,
                    city: None,
                    created_at: created,
                    paid_at: paid,
                    updated_at: updated,
                    buyer_unionid: None,
                    receiver_hash: None,
                });
                n += 1;
                if !matches!(self.emit, Emit::Updates(_)) {
                    self.orders_left -= 1;
                }
            }
        }
        (n > 0).then(|| b.finish())
    }
}

/// WeCom contacts of one person in seven among the first `people`.
struct Contacts {
    hasher: PiiHasher,
    people: u64,
    person: u64,
}

/// A generated person's WeCom contact.
pub(crate) struct BenchContact {
    /// When it was added.
    pub added: DateTime<Utc>,
    /// Its external_userid.
    pub external_userid: String,
    /// The staff member holding it.
    pub owner: String,
}

/// Person `p`'s WeCom contact: one person in seven has one, added in the
/// 300 days before [`as_of`], held by one of 40 staff.
pub(crate) fn contact_of(p: u64) -> Option<BenchContact> {
    mix(p ^ 11).is_multiple_of(7).then(|| BenchContact {
        added: as_of() - Duration::seconds((mix(p ^ 12) % (300 * 86_400)) as i64),
        external_userid: format!("wm{:028x}", mix(p ^ 13) as u128 * 0x1_0000_0001),
        owner: format!("staff{}", p % 40),
    })
}

impl Contacts {
    fn batch(&mut self, rows: usize) -> Option<RecordBatch> {
        let mut b = ContactsBuilder::new("bench-lake", as_of());
        let mut n = 0;
        while n < rows && self.person < self.people {
            let p = self.person;
            self.person += 1;
            let Some(c) = contact_of(p) else {
                continue;
            };
            let added = c.added;
            b.append(&ContactRow {
                channel: Channel::Wecom,
                contact_id: c.external_userid,
                unionid: None,
                phone_hash: phone(&self.hasher, p),
                owner_userid: c.owner,
                add_way: Some(1),
                state: None,
                tags: vec![],
                created_at: Some(added),
                updated_at: added,
            });
            n += 1;
        }
        (n > 0).then(|| b.finish())
    }
}

/// Stream `next` batches into table `name` in one commit.
pub(crate) async fn land<F>(lake: &Lake, kind: TableKind, next: F) -> Result<()>
where
    F: FnMut(usize) -> Option<RecordBatch> + Send + 'static,
{
    let next = Mutex::new(next);
    let stream = futures::stream::unfold(next, |g| async move {
        let b = (g.lock().expect("not poisoned"))(64 * 1024);
        b.map(|b| (Ok(b), g))
    });
    let ctx = crate::lake::new_context();
    let schema = kind.schema();
    let df = crate::lake::stream_frame(&ctx, schema.clone(), stream)?;
    lake.write_plan(
        &crate::runner::raw_table(kind),
        &schema,
        &ctx,
        df,
        Commit {
            append: true,
            ..Default::default()
        },
    )
    .await
}

/// One query's figures.
#[derive(Debug, Clone)]
pub struct QueryRun {
    /// The query's name.
    pub name: String,
    /// Wall time, seconds.
    pub secs: f64,
    /// Peak resident memory during the query, MiB.
    pub peak_mib: f64,
    /// The answer as CSV (small by design: compared with the peer's).
    pub answer: String,
}

/// The benchmark's figures.
#[derive(Debug, Clone, Default)]
pub struct LakeBench {
    /// Orders generated.
    pub orders: u64,
    /// Pipeline steps.
    pub steps: Vec<Step>,
    /// Customers identity found.
    pub customers: usize,
    /// Analyst queries.
    pub queries: Vec<QueryRun>,
    /// How the refresh after 1 % more orders went.
    pub merge: Option<crate::refresh::RefreshOutcome>,
}

/// Generate the population of `orders` orders into `lake`'s raw orders
/// and contacts and refresh both, each step timed into `steps`; returns
/// the hasher its phones were keyed with and how many people it made.
pub async fn generate(lake: &Lake, orders: u64, steps: &mut Vec<Step>) -> Result<(PiiHasher, u64)> {
    let key = LakeKey::from_bytes([7; 32]);
    let hasher = PiiHasher::new(&key);
    let people = Arc::new(Mutex::new(People {
        hasher: hasher.clone(),
        emit: Emit::All,
        orders_left: orders,
        person: 0,
        person_end: u64::MAX,
        ingested_at: as_of(),
    }));
    let gen = people.clone();
    step(
        steps,
        "generate raw_orders",
        land(lake, TableKind::Orders, move |n| {
            gen.lock().expect("not poisoned").orders(n)
        }),
    )
    .await?;
    let persons = people.lock().expect("not poisoned").person;
    let mut contacts = Contacts {
        hasher: hasher.clone(),
        people: persons,
        person: 0,
    };
    step(
        steps,
        "generate raw_contacts",
        land(lake, TableKind::Contacts, move |n| contacts.batch(n)),
    )
    .await?;
    for kind in [TableKind::Orders, TableKind::Contacts] {
        step(
            steps,
            &format!("refresh {}", kind.name()),
            crate::refresh::refresh(lake, kind),
        )
        .await?;
    }
    Ok((hasher, persons))
}

/// Generate a lake of `orders` orders in `dir` and run the pipeline and the
/// queries on it (`skip_build`: the lake exists, run the queries only).
pub async fn run(dir: &std::path::Path, orders: u64, skip_build: bool) -> Result<LakeBench> {
    let lake = Lake::open(dir)?;
    let mut out = LakeBench {
        orders,
        ..Default::default()
    };
    if !skip_build {
        let (hasher, persons) = generate(&lake, orders, &mut out.steps).await?;
        let summary = step(
            &mut out.steps,
            "identity and customers",
            crate::sync::derive(
                &lake,
                &hasher,
                (&IdentityConfig::default(), &Default::default()),
                false,
            ),
        )
        .await?;
        out.customers = summary.0.customers;
        // A later pull: the last two days' orders moved on (about 0.5 %),
        // and as many new orders of new people.
        let later = as_of() + Duration::hours(1);
        let mut updates = People {
            hasher: hasher.clone(),
            emit: Emit::Updates(later),
            orders_left: u64::MAX,
            person: 0,
            person_end: persons,
            ingested_at: later,
        };
        let mut recent = People {
            hasher: hasher.clone(),
            emit: Emit::Recent,
            orders_left: orders / 200,
            person: persons,
            person_end: u64::MAX,
            ingested_at: later,
        };
        step(
            &mut out.steps,
            "land 1 % more (updates and new orders)",
            land(&lake, TableKind::Orders, move |n| {
                updates.orders(n).or_else(|| recent.orders(n))
            }),
        )
        .await?;
        let merged = step(
            &mut out.steps,
            "refresh orders after 1 % more",
            crate::refresh::refresh(&lake, TableKind::Orders),
        )
        .await?;
        out.merge = Some(merged);
        step(
            &mut out.steps,
            "identity and customers after 1 % more",
            crate::sync::derive(
                &lake,
                &hasher,
                (&IdentityConfig::default(), &Default::default()),
                false,
            ),
        )
        .await?;
    }
    for (name, sql) in QUERIES {
        crate::bench_identity::reset_peak();
        let t = Instant::now();
        let batches = crate::sql::query(&lake, sql)
            .await
            .with_context(|| format!("query {name}"))?;
        let secs = t.elapsed().as_secs_f64();
        let peak_mib = crate::bench_identity::rss().0;
        let mut csv = Vec::new();
        crate::sql::write(&batches, crate::sql::Format::Csv, &mut csv)?;
        eprintln!("  query {name}: {secs:.2} s, peak {peak_mib:.0} MiB");
        out.queries.push(QueryRun {
            name: name.to_string(),
            secs,
            peak_mib,
            answer: String::from_utf8_lossy(&csv).into_owned(),
        });
    }
    Ok(out)
}
