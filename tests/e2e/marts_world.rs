//! The operators' marts against a seeded world's own ground truth: 14
//! months of a generated world (people, their orders with each order's
//! seeded life — paid, shipped, cancelled, refunded, after-sales —, WeCom
//! contacts, card scans, AI calls), landed in a lake; every expected figure
//! is computed here from the world, person by person, never by the marts'
//! SQL. The world adds what the marts must get right: customers who move
//! between reps (a deleted contact, a second rep), a customer in two
//! bridges, refunds, opt-out tags, recent calls.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use quanyu::lake::Lake;
use quanyu::marts::MartsConfig;
use quanyu_connector_sdk::sandbox::lifecycle::{Lifecycle, Stage};
use quanyu_connector_sdk::sandbox::world::{ContactOrigin, Hazards, World, WorldConfig, WorldShop};
use quanyu_schemas::{
    Bridge, Channel, ContactRow, OrderRow, OrderStatus, RefundRow, RefundStatus, TableKind,
    TouchEvent, TouchpointRow,
};

use crate::column_text;
use crate::identity::{hasher, land, temp_lake};

const REPS: [&str; 3] = ["rep-a", "rep-b", "rep-c"];
const DAY: i64 = 86_400;

/// The reference day's number (Beijing days since 1970-01-01).
fn reference() -> (NaiveDate, i64) {
    let d = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    (
        d,
        (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days(),
    )
}

/// The Beijing day number of a time.
fn day_of(t: DateTime<Utc>) -> i64 {
    (t.timestamp() + 8 * 3600).div_euclid(DAY)
}

/// The first day of a time's Beijing month.
fn month_of(t: DateTime<Utc>) -> NaiveDate {
    let local = t.with_timezone(&quanyu::marts::beijing()).date_naive();
    local.with_day0(0).unwrap()
}

/// One order as the world lived it, by the reference day.
#[derive(Debug, Clone)]
struct Sale {
    person: u32,
    channel: Channel,
    order_id: String,
    created: DateTime<Utc>,
    status: OrderStatus,
    /// Net of succeeded refunds for a paid order; 0 otherwise.
    net: i64,
}

impl Sale {
    fn paid(&self) -> bool {
        self.status.counts_in_gmv()
    }
}

/// A WeCom relationship: (person, rep, added, deleted).
type Held = (u32, &'static str, DateTime<Utc>, Option<DateTime<Utc>>);

/// A touchpoint as the test lands it, with the person it reaches.
struct Touch {
    row: TouchpointRow,
    person: u32,
}

pub(crate) struct Story {
    sales: Vec<Sale>,
    held: Vec<Held>,
    touches: Vec<Touch>,
    opted_out: BTreeSet<u32>,
}

/// The status of an order's life at `t`.
fn status_at(lc: &Lifecycle, t: i64) -> OrderStatus {
    match lc.events.iter().rev().find(|e| e.0 <= t).map(|e| e.1) {
        Some(Stage::Paid) => OrderStatus::Paid,
        Some(Stage::Shipped) => OrderStatus::Shipped,
        Some(Stage::Finished) => OrderStatus::Completed,
        Some(Stage::Cancelled) => OrderStatus::Cancelled,
        Some(Stage::Refunded) => OrderStatus::Refunded,
        _ => OrderStatus::PendingPayment,
    }
}

/// Generate the world, land it, build identity and the marts; return
/// the lake and what the world knows.
pub(crate) async fn world_lake(cfg: &MartsConfig) -> (tempfile::TempDir, Lake, Story) {
    let h = hasher();
    let (dir, lake) = temp_lake();
    // The end of the reference day, Beijing: 2026-06-30 23:59:59.
    let as_of = quanyu::marts::beijing()
        .with_ymd_and_hms(2026, 6, 30, 23, 59, 59)
        .unwrap()
        .with_timezone(&Utc);
    let world = World::generate(WorldConfig {
        seed: 1303,
        persons: 500,
        orders: 2_000,
        shops: WorldShop::demo_shops(),
        start: as_of - Duration::days(420),
        days: 420,
        plain_phone_share: 1.0,
        buyer_contact_share: 0.45,
        private_only_share: 0.0,
        reps: REPS.iter().map(|r| r.to_string()).collect(),
        hazards: Hazards::none(),
    });
    let phone = |person: u32| h.phone_text(&world.persons[person as usize].phone);
    let mut orders = Vec::new();
    let mut refunds = Vec::new();
    let mut sales = Vec::new();
    for p in &world.purchases {
        let lc = Lifecycle::generate(p.created.timestamp(), p.detail_seed);
        let status = status_at(&lc, as_of.timestamp());
        let shop = &world.config.shops[p.shop];
        let order_id = format!("{}{}", p.channel, p.order_no);
        let mut refunded = 0;
        for (k, plan) in lc.refunds().iter().enumerate() {
            if plan.settled > as_of.timestamp() || !plan.granted {
                continue;
            }
            refunded += plan.amount;
            let at = DateTime::from_timestamp(plan.settled, 0).unwrap();
            refunds.push(RefundRow {
                channel: p.channel,
                shop_id: shop.id.clone(),
                refund_id: format!("{order_id}-{k}"),
                order_id: order_id.clone(),
                line_id: None,
                status: RefundStatus::Succeeded,
                platform_status: "done".into(),
                refund_fen: plan.amount,
                created_at: at,
                updated_at: at,
            });
        }
        let amount = lc.payment();
        let paid_at = lc
            .time_of(Stage::Paid, lc.events.len())
            .filter(|t| *t <= as_of.timestamp())
            .and_then(|t| DateTime::from_timestamp(t, 0));
        orders.push(OrderRow {
            channel: p.channel,
            shop_id: shop.id.clone(),
            order_id: order_id.clone(),
            buyer_id: None,
            phone_hash: phone(p.person),
            phone_masked: None,
            status,
            platform_status: status.to_string(),
            amount_fen: amount,
            item_count: lc.pieces() as i32,
            province: None,
            city: None,
            created_at: p.created,
            paid_at,
            updated_at: p.created,
            receiver_hash: None,
            buyer_unionid: None,
        });
        sales.push(Sale {
            person: p.person,
            channel: p.channel,
            order_id,
            created: p.created,
            status,
            net: if status.counts_in_gmv() {
                (amount - refunded).max(0)
            } else {
                0
            },
        });
    }
    // Contacts: each world contact, plus moves between reps: every fifth
    // person's contact is deleted 20 days after the add, and a next rep
    // adds them 40 days after it. Every eleventh is tagged 勿扰.
    let mut contacts = Vec::new();
    let mut held: Vec<Held> = Vec::new();
    let mut touches = Vec::new();
    let mut opted_out = BTreeSet::new();
    let at_or_before = |t: DateTime<Utc>| (t <= as_of).then_some(t);
    let touch = |bridge, id: String, event, at, person: u32| Touch {
        row: TouchpointRow::event(bridge, id, event, at, "test"),
        person,
    };
    // A call or SMS to a person's phone, in a campaign, at a cost.
    let dial = |bridge, id: String, event, at, person: u32, campaign: &str, cost: Option<i64>| {
        let mut t = touch(bridge, id, event, at, person);
        t.row.phone_hash = phone(person);
        t.row.campaign = Some(campaign.into());
        t.row.cost_fen = cost;
        t
    };
    for c in world.contacts.iter().filter(|c| c.added <= as_of) {
        let external = format!("wm{}", c.person);
        let tags = if c.person % 11 == 0 {
            opted_out.insert(c.person);
            vec!["勿扰".to_string()]
        } else {
            Vec::new()
        };
        let contact = |owner: &str, at: DateTime<Utc>| ContactRow {
            channel: Channel::Wecom,
            contact_id: external.clone(),
            unionid: None,
            phone_hash: phone(c.person),
            owner_userid: owner.into(),
            add_way: None,
            state: None,
            tags: tags.clone(),
            created_at: Some(at),
            updated_at: at,
        };
        let rep = REPS[c.rep % REPS.len()];
        contacts.push(contact(rep, c.added));
        let moved = c.person % 5 == 0;
        let deleted = at_or_before(c.added + Duration::days(20)).filter(|_| moved);
        held.push((c.person, rep, c.added, deleted));
        if let Some(at) = deleted {
            let mut t = touch(
                Bridge::Wecom,
                format!("del-{}", c.person),
                TouchEvent::FriendDeleted,
                at,
                c.person,
            );
            t.row.external_userid = Some(external.clone());
            t.row.owner_userid = Some(rep.into());
            touches.push(t);
        }
        if let Some(at) = at_or_before(c.added + Duration::days(40)).filter(|_| moved) {
            let next = REPS[(c.rep + 1) % REPS.len()];
            contacts.push(contact(next, at));
            held.push((c.person, next, at, None));
        }
        // How they were brought in: a card scan three minutes before the
        // add (naming the contact), or an AI call two hours before.
        if let ContactOrigin::Card(_) | ContactOrigin::CardAndPhone(_) = c.origin {
            let mut t = touch(
                Bridge::PackageCard,
                format!("scan-{}", c.person),
                TouchEvent::Scan,
                c.added - Duration::minutes(3),
                c.person,
            );
            t.row.external_userid = Some(external.clone());
            t.row.campaign = Some(
                if c.person % 2 == 0 {
                    "card-even"
                } else {
                    "card-odd"
                }
                .into(),
            );
            touches.push(t);
            // A card buyer the AI-call vendor had called the day before:
            // in two bridges.
            if c.person % 4 == 1 {
                touches.push(dial(
                    Bridge::AiCall,
                    format!("pre-{}", c.person),
                    TouchEvent::Call,
                    c.added - Duration::days(1),
                    c.person,
                    "t3",
                    Some(45),
                ));
            }
        } else {
            touches.push(dial(
                Bridge::AiCall,
                format!("call-{}", c.person),
                TouchEvent::Call,
                c.added - Duration::hours(2),
                c.person,
                "t1",
                Some(40),
            ));
        }
    }
    // Orders at the edges of a bridge's window: for every seventh person
    // with a contact, one an hour before the add (the join day, before the
    // join: not counted), one a minute before the window ends (counted) and
    // one as it ends (not counted).
    for c in world.contacts.iter().filter(|c| c.person % 7 == 3) {
        let edges = [
            c.added - Duration::hours(1),
            c.added + Duration::days(30) - Duration::minutes(1),
            c.added + Duration::days(30),
        ];
        for (k, at) in edges.into_iter().enumerate().filter(|e| e.1 <= as_of) {
            let order_id = format!("edge{}-{k}", c.person);
            let amount = 1_000 + i64::from(c.person);
            orders.push(OrderRow {
                channel: Channel::Youzan,
                shop_id: "youzan-edge".into(),
                order_id: order_id.clone(),
                buyer_id: None,
                phone_hash: phone(c.person),
                phone_masked: None,
                status: OrderStatus::Paid,
                platform_status: "paid".into(),
                amount_fen: amount,
                item_count: 1,
                province: None,
                city: None,
                created_at: at,
                paid_at: Some(at),
                updated_at: at,
                receiver_hash: None,
                buyer_unionid: None,
            });
            sales.push(Sale {
                person: c.person,
                channel: Channel::Youzan,
                order_id,
                created: at,
                status: OrderStatus::Paid,
                net: amount,
            });
        }
    }
    // Reminder SMS to every buyer without a contact who is due for recall
    // (last purchase 90 to 180 days ago), 0 to 19 days before the reference
    // day: the 14-day suppression window's edges fall among them.
    let with_contact: BTreeSet<u32> = held.iter().map(|h| h.0).collect();
    let buyers: BTreeSet<u32> = sales.iter().map(|s| s.person).collect();
    let mut last_purchase: HashMap<u32, DateTime<Utc>> = HashMap::new();
    for s in sales
        .iter()
        .filter(|s| s.paid() || s.status == OrderStatus::Refunded)
    {
        let last = last_purchase.entry(s.person).or_insert(s.created);
        *last = (*last).max(s.created);
    }
    let due = |p: &u32| {
        last_purchase
            .get(p)
            .is_some_and(|t| (90..=180).contains(&(day_of(as_of) - day_of(*t))))
    };
    for &person in buyers
        .iter()
        .filter(|p| due(p) && !with_contact.contains(p))
    {
        let at = as_of - Duration::days(i64::from(person % 20)) - Duration::hours(3);
        touches.push(dial(
            Bridge::AiSms,
            format!("sms-{person}"),
            TouchEvent::Sms,
            at,
            person,
            "remind",
            None,
        ));
    }
    land(&lake, &orders, &contacts).await;
    lake.append_raw(
        TableKind::Refunds,
        vec![RefundRow::batch(&refunds, "test", Utc::now())],
    )
    .await
    .unwrap();
    let rows: Vec<TouchpointRow> = touches.iter().map(|t| t.row.clone()).collect();
    crate::marts::derive_with(&lake, &rows, cfg).await;
    let story = Story {
        sales,
        held,
        touches,
        opted_out,
    };
    (dir, lake, story)
}

pub(crate) fn config() -> MartsConfig {
    let mut cfg = MartsConfig {
        as_of: Some(reference().0),
        ..MartsConfig::default()
    };
    cfg.recall.opt_out_tags = vec!["勿扰".into()];
    cfg.bridge_roi
        .unit_cost_fen
        .insert("package_card".into(), 25);
    cfg
}

/// Person → unified id, through each person's orders and contacts (and
/// a check that identity gave each person exactly one id).
async fn person_ids(lake: &Lake, story: &Story) -> HashMap<u32, String> {
    let by_order: HashMap<String, String> = column_text(
        lake,
        "SELECT order_id || '|' || unified_id FROM customer_orders WHERE unified_id IS NOT NULL",
    )
    .await
    .into_iter()
    .map(|r| {
        let (o, u) = r.split_once('|').unwrap();
        (o.to_string(), u.to_string())
    })
    .collect();
    let mut ids: HashMap<u32, String> = HashMap::new();
    for s in &story.sales {
        let uid = by_order
            .get(&s.order_id)
            .expect("every order placed")
            .clone();
        let known = ids.entry(s.person).or_insert_with(|| uid.clone());
        assert_eq!(*known, uid, "person {} has one unified id", s.person);
    }
    let distinct: BTreeSet<&String> = ids.values().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "no two people share a unified id"
    );
    ids
}

/// `query`'s rows (one text column) split on `|`.
async fn table(lake: &Lake, query: &str) -> Vec<Vec<String>> {
    column_text(lake, query)
        .await
        .into_iter()
        .map(|r| r.split('|').map(str::to_string).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marts_match_the_world_person_by_person() {
    let cfg = config();
    let (_dir, lake, story) = world_lake(&cfg).await;
    let ids = person_ids(&lake, &story).await;
    let person_of: HashMap<&String, u32> = ids.iter().map(|(p, u)| (u, *p)).collect();
    let (_, d) = reference();
    let mut by_person: BTreeMap<u32, Vec<&Sale>> = BTreeMap::new();
    for s in &story.sales {
        by_person.entry(s.person).or_default().push(s);
    }
    for sales in by_person.values_mut() {
        sales.sort_by(|a, b| {
            (a.created, a.channel.as_str(), &a.order_id).cmp(&(
                b.created,
                b.channel.as_str(),
                &b.order_id,
            ))
        });
    }

    // customer_rfm: recency, frequency, monetary, trailing-year spend.
    let mut expected_rfm = BTreeMap::new();
    for (&person, sales) in &by_person {
        let paid: Vec<&&Sale> = sales.iter().filter(|s| s.paid()).collect();
        let Some(last) = paid.last() else { continue };
        let year: Vec<&&&Sale> = paid
            .iter()
            .filter(|s| day_of(s.created) > d - 365)
            .collect();
        expected_rfm.insert(
            person,
            (
                d - day_of(last.created),
                paid.len() as i64,
                paid.iter().map(|s| s.net).sum::<i64>(),
                year.iter().map(|s| s.net).sum::<i64>(),
            ),
        );
    }
    let rfm: BTreeMap<u32, (i64, i64, i64, i64, bool)> = table(
        &lake,
        "SELECT concat_ws('|', unified_id, recency_days, frequency, monetary_fen, gmv_365d_fen, super_user) FROM customer_rfm",
    )
    .await
    .into_iter()
    .map(|r| {
        let n = |i: usize| r[i].parse::<i64>().unwrap();
        (person_of[&r[0]], (n(1), n(2), n(3), n(4), r[5] == "true"))
    })
    .collect();
    assert!(expected_rfm.len() > 300, "{} buyers", expected_rfm.len());
    assert_eq!(
        rfm.iter()
            .map(|(p, r)| (*p, (r.0, r.1, r.2, r.3)))
            .collect::<BTreeMap<_, _>>(),
        expected_rfm
    );
    // Super users: the top tenth of the buyers with spend in the last year
    // (rounded up), by that spend, ties by unified id.
    let mut spenders: Vec<(i64, &String, u32)> = expected_rfm
        .iter()
        .filter(|(_, r)| r.3 > 0)
        .map(|(p, r)| (r.3, &ids[p], *p))
        .collect();
    spenders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let top = (spenders.len() as f64 * 0.10).ceil() as usize;
    let expected_super: BTreeSet<u32> = spenders[..top].iter().map(|s| s.2).collect();
    let super_users: BTreeSet<u32> = rfm.iter().filter(|r| r.1 .4).map(|r| *r.0).collect();
    assert_eq!(super_users, expected_super);

    // retention: cohort sizes and repurchases within 30/90/180/365 days.
    let mut cohorts: BTreeMap<(NaiveDate, String), (i64, [i64; 4], i64)> = BTreeMap::new();
    for sales in by_person.values() {
        let paid: Vec<&&Sale> = sales.iter().filter(|s| s.paid()).collect();
        let Some(first) = paid.first() else { continue };
        let gap = paid
            .get(1)
            .map(|s| (s.created - first.created).num_seconds().div_euclid(DAY));
        for key in [first.channel.to_string(), "all".to_string()] {
            let e = cohorts.entry((month_of(first.created), key)).or_default();
            e.0 += 1;
            for (k, n) in [30, 90, 180, 365].into_iter().enumerate() {
                if gap.is_some_and(|g| g <= n) {
                    e.1[k] += 1;
                }
            }
            e.2 = e.2.max(day_of(first.created));
        }
    }
    let expected_cohorts: Vec<String> = cohorts
        .iter()
        .map(|((month, channel), (size, r, last))| {
            let cells: Vec<String> = [30, 90, 180, 365]
                .iter()
                .zip(r)
                .map(|(n, r)| {
                    if last + n <= d {
                        r.to_string()
                    } else {
                        "-".into()
                    }
                })
                .collect();
            format!("{month}|{channel}|{size}|{}", cells.join("|"))
        })
        .collect();
    let retention = column_text(
        &lake,
        "SELECT concat_ws('|', CAST(cohort_month AS VARCHAR), first_channel, cohort_size,
                          coalesce(CAST(repurchased_30d AS VARCHAR), '-'), coalesce(CAST(repurchased_90d AS VARCHAR), '-'),
                          coalesce(CAST(repurchased_180d AS VARCHAR), '-'), coalesce(CAST(repurchased_365d AS VARCHAR), '-'))
         FROM retention ORDER BY cohort_month, first_channel",
    )
    .await;
    assert_eq!(retention, expected_cohorts);

    // repurchase_intervals: every paid order after a customer's first, in
    // 30-day bands (360+ one band).
    let mut bands: BTreeMap<i64, i64> = BTreeMap::new();
    for sales in by_person.values() {
        let paid: Vec<&&Sale> = sales.iter().filter(|s| s.paid()).collect();
        for w in paid.windows(2) {
            let days = (w[1].created - w[0].created).num_seconds().div_euclid(DAY);
            *bands.entry((days / 30).min(12) * 30).or_default() += 1;
        }
    }
    let intervals: BTreeMap<i64, i64> = table(
        &lake,
        "SELECT concat_ws('|', band_start_days, intervals) FROM repurchase_intervals
         WHERE channel = 'all' AND category = 'all'",
    )
    .await
    .into_iter()
    .map(|r| (r[0].parse().unwrap(), r[1].parse().unwrap()))
    .collect();
    assert_eq!(intervals, bands);

    // recall_list: due buyers and their suppression.
    let active_rep = |person: u32| {
        story
            .held
            .iter()
            .filter(|h| h.0 == person && h.3.is_none())
            .max_by_key(|h| (h.2, h.1))
            .map(|h| h.1.to_string())
    };
    let recent_sms: BTreeSet<u32> = story
        .touches
        .iter()
        .filter(|t| matches!(t.row.channel, Bridge::AiCall | Bridge::AiSms))
        .filter(|t| day_of(t.row.occurred_at) > d - 14 && day_of(t.row.occurred_at) <= d)
        .map(|t| t.person)
        .collect();
    let sms_days: BTreeSet<i64> = story
        .touches
        .iter()
        .filter(|t| t.row.channel == Bridge::AiSms)
        .map(|t| d - day_of(t.row.occurred_at))
        .collect();
    assert!(
        sms_days.contains(&13) && sms_days.contains(&14),
        "SMS on both sides of the 14-day edge: {sms_days:?}"
    );
    let mut expected_recall = BTreeMap::new();
    for (&person, sales) in &by_person {
        let bought: Vec<&&Sale> = sales
            .iter()
            .filter(|s| s.paid() || s.status == OrderStatus::Refunded)
            .collect();
        let Some(last) = bought.iter().max_by_key(|s| s.created) else {
            continue;
        };
        let days = d - day_of(last.created);
        if !(90..=180).contains(&days) {
            continue;
        }
        let net: i64 = bought.iter().map(|s| s.net).sum();
        let reordered = sales
            .iter()
            .any(|s| s.status == OrderStatus::PendingPayment && s.created > last.created);
        let reason = if story.opted_out.contains(&person) {
            "opted_out"
        } else if net <= 0 {
            "refunded_only"
        } else if reordered {
            "already_repurchased"
        } else if recent_sms.contains(&person) {
            "contacted_recently"
        } else {
            "-"
        };
        expected_recall.insert(
            person,
            format!(
                "{days}|{net}|{}|{reason}",
                active_rep(person).unwrap_or("-".into())
            ),
        );
    }
    let recall: BTreeMap<u32, String> = table(
        &lake,
        "SELECT concat_ws('|', unified_id, days_since_last, gmv_fen, coalesce(owner_userid, '-'),
                          coalesce(suppress_reason, '-')) FROM recall_list",
    )
    .await
    .into_iter()
    .map(|r| (person_of[&r[0]], r[1..].join("|")))
    .collect();
    assert!(expected_recall.len() > 30, "{} due", expected_recall.len());
    let reasons: BTreeSet<&str> = expected_recall
        .values()
        .map(|v| v.rsplit('|').next().unwrap())
        .collect();
    assert!(
        reasons.len() >= 3,
        "the world exercises suppression: {reasons:?}"
    );
    assert_eq!(recall, expected_recall);

    // rep_attribution (first owner): each paid order once; to the first
    // rep who added its buyer, from the add on.
    let mut expected_reps: BTreeMap<(NaiveDate, String), i64> = BTreeMap::new();
    for s in story.sales.iter().filter(|s| s.paid()) {
        let first = story
            .held
            .iter()
            .filter(|h| h.0 == s.person)
            .min_by_key(|h| (h.2, h.1));
        let owner = match first {
            Some(h) if s.created >= h.2 => h.1.to_string(),
            _ => "-".to_string(),
        };
        *expected_reps
            .entry((month_of(s.created), owner))
            .or_default() += s.net;
    }
    let reps: BTreeMap<(NaiveDate, String), i64> = table(
        &lake,
        "SELECT concat_ws('|', CAST(month AS VARCHAR), coalesce(owner_userid, '-'), revenue_fen)
         FROM rep_attribution WHERE orders > 0",
    )
    .await
    .into_iter()
    .map(|r| ((r[0].parse().unwrap(), r[1].clone()), r[2].parse().unwrap()))
    .collect();
    assert_eq!(reps, expected_reps);

    // bridge_roi: per bridge, campaign and touch month: the customers
    // touched, those added (a contact added at or after the first touch, or
    // named by it) and their net in the 30 days from joining.
    type Group = (String, String, NaiveDate);
    let outreach = |t: &&Touch| t.row.event_type != TouchEvent::FriendDeleted;
    let mut first_touch: BTreeMap<(Group, u32), (DateTime<Utc>, bool)> = BTreeMap::new();
    let mut events: BTreeMap<Group, (i64, i64)> = BTreeMap::new();
    for t in story.touches.iter().filter(outreach) {
        let g = (
            t.row.channel.to_string(),
            t.row.campaign.clone().unwrap_or_default(),
            month_of(t.row.occurred_at),
        );
        let e = events.entry(g.clone()).or_default();
        e.0 += 1;
        e.1 += t
            .row
            .cost_fen
            .unwrap_or(if t.row.channel == Bridge::PackageCard {
                25
            } else {
                0
            });
        let f = first_touch
            .entry((g, t.person))
            .or_insert((t.row.occurred_at, false));
        f.0 = f.0.min(t.row.occurred_at);
        f.1 |= t.row.external_userid.is_some();
    }
    let mut expected_roi: BTreeMap<Group, (i64, i64, i64, i64)> = events
        .iter()
        .map(|(g, e)| (g.clone(), (e.0, e.1, 0, 0)))
        .collect();
    let mut touched: BTreeMap<Group, i64> = BTreeMap::new();
    for ((g, person), (at, named)) in &first_touch {
        *touched.entry(g.clone()).or_default() += 1;
        let joined = story
            .held
            .iter()
            .filter(|h| h.0 == *person && (h.2 >= *at || *named))
            .map(|h| h.2)
            .min();
        let Some(joined) = joined else { continue };
        let revenue: i64 = story
            .sales
            .iter()
            .filter(|s| s.person == *person && s.paid())
            .filter(|s| s.created >= joined && s.created < joined + Duration::days(30))
            .map(|s| s.net)
            .sum();
        let e = expected_roi.get_mut(g).unwrap();
        e.2 += 1;
        e.3 += revenue;
    }
    let roi: BTreeMap<Group, (i64, i64, i64, i64, i64)> = table(
        &lake,
        "SELECT concat_ws('|', bridge, campaign, CAST(cohort AS VARCHAR), touchpoints, cost_fen,
                          customers_touched, customers_added, revenue_fen) FROM bridge_roi",
    )
    .await
    .into_iter()
    .map(|r| {
        let n = |i: usize| r[i].parse::<i64>().unwrap();
        (
            (r[0].clone(), r[1].clone(), r[2].parse().unwrap()),
            (n(3), n(4), n(5), n(6), n(7)),
        )
    })
    .collect();
    let expected_roi: BTreeMap<Group, (i64, i64, i64, i64, i64)> = expected_roi
        .into_iter()
        .map(|(g, e)| {
            let t = touched.get(&g).copied().unwrap_or(0);
            (g, (e.0, e.1, t, e.2, e.3))
        })
        .collect();
    assert!(
        expected_roi.keys().any(|g| g.0 == "ai_call" && g.1 == "t3"),
        "the world has customers in two bridges"
    );
    assert_eq!(roi, expected_roi);
}
