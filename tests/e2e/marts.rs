//! The operators' marts on a small lake whose figures are worked out by
//! hand below (not by the marts' SQL): five buyers, two reps, a deleted
//! contact, a card scan and AI calls, a refund, an order after the
//! reference day.
//!
//! Times are Beijing wall time. The reference day is 2026-06-30.
//! - A: taobao a1 01-05 10:00 10,000; a2 01-20 15:00 1,000 (the day A
//!   joins WeCom, after the join); a3 02-04 10:00 6,000; youzan a4 03-15
//!   10:00 8,000. Scanned card `card-1` 01-20 10:00 naming WeCom contact
//!   wmA, added by rep1 01-20 10:03; rep1's contact deleted 03-01; AI call
//!   (`t1`, 30 fen) 03-09; added by rep2 03-10.
//! - B: jd b1 02-15 5,000, refunded whole.
//! - C: douyin c1 01-10 4,000; c2 06-20 3,000.
//! - D: pdd d1 02-01 2,000; AI call (`t1`, 50 fen) 06-25; a CRM member
//!   tagged 勿扰.
//! - E: kuaishou e1 07-05 9,000, after the reference day: in no mart.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use quanyu::identity::IdentityConfig;
use quanyu::lake::Lake;
use quanyu::marts::{MartsConfig, RepRule};
use quanyu_schemas::{
    Bridge, Channel, ContactRow, OrderRow, OrderStatus, Outcome, TableKind, TouchEvent,
    TouchpointRow,
};

use crate::column_text;
use crate::identity::{hasher, int, land, land_refund, paid_order, temp_lake};

/// A Beijing wall time in 2026.
fn bj(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    quanyu::marts::beijing()
        .with_ymd_and_hms(2026, month, day, hour, minute, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn phone(person: char) -> String {
    format!("1390000000{}", (person as u8 - b'A') + 1)
}

fn touch(bridge: Bridge, id: &str, event: TouchEvent, at: DateTime<Utc>) -> TouchpointRow {
    TouchpointRow::event(bridge, id, event, at, "test")
}

/// The lake of the module's story, with identity and every mart built
/// under `cfg` (reference day 2026-06-30).
async fn story(cfg: &MartsConfig) -> (tempfile::TempDir, Lake) {
    let h = hasher();
    let (dir, lake) = temp_lake();
    let order = |channel, id: &str, who: char, at, fen, status| OrderRow {
        phone_hash: h.phone_text(&phone(who)),
        amount_fen: fen,
        status,
        ..paid_order(channel, id.into(), at)
    };
    use OrderStatus::*;
    let orders = [
        order(Channel::Taobao, "a1", 'A', bj(1, 5, 10, 0), 10_000, Paid),
        order(Channel::Taobao, "a2", 'A', bj(1, 20, 15, 0), 1_000, Paid),
        order(
            Channel::Taobao,
            "a3",
            'A',
            bj(2, 4, 10, 0),
            6_000,
            Completed,
        ),
        order(Channel::Youzan, "a4", 'A', bj(3, 15, 10, 0), 8_000, Paid),
        order(Channel::Jd, "b1", 'B', bj(2, 15, 10, 0), 5_000, Refunded),
        order(Channel::Douyin, "c1", 'C', bj(1, 10, 10, 0), 4_000, Paid),
        order(Channel::Douyin, "c2", 'C', bj(6, 20, 10, 0), 3_000, Paid),
        order(Channel::Pdd, "d1", 'D', bj(2, 1, 10, 0), 2_000, Paid),
        order(Channel::Kuaishou, "e1", 'E', bj(7, 5, 10, 0), 9_000, Paid),
    ];
    let contact =
        |channel, id: &str, who: char, owner: &str, at: DateTime<Utc>, tags: &[&str]| ContactRow {
            channel,
            contact_id: id.into(),
            unionid: None,
            phone_hash: h.phone_text(&phone(who)),
            owner_userid: owner.into(),
            add_way: None,
            state: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            created_at: Some(at),
            updated_at: at,
        };
    let contacts = [
        contact(Channel::Wecom, "wmA", 'A', "rep1", bj(1, 20, 10, 3), &[]),
        contact(Channel::Wecom, "wmA", 'A', "rep2", bj(3, 10, 10, 0), &[]),
        contact(
            Channel::Crm,
            "VIP1",
            'D',
            "SH01",
            bj(1, 1, 10, 0),
            &["勿扰"],
        ),
    ];
    land(&lake, &orders, &contacts).await;
    land_refund(&lake, "b1", 5_000, bj(2, 17, 10, 0)).await;
    let touchpoints = [
        TouchpointRow {
            external_userid: Some("wmA".into()),
            owner_userid: Some("rep1".into()),
            campaign: Some("card-1".into()),
            ..touch(
                Bridge::PackageCard,
                "s1",
                TouchEvent::Scan,
                bj(1, 20, 10, 0),
            )
        },
        TouchpointRow {
            external_userid: Some("wmA".into()),
            owner_userid: Some("rep1".into()),
            ..touch(
                Bridge::Wecom,
                "del1",
                TouchEvent::FriendDeleted,
                bj(3, 1, 9, 0),
            )
        },
        TouchpointRow {
            phone_hash: h.phone_text(&phone('A')),
            campaign: Some("t1".into()),
            outcome: Some(Outcome::Connected),
            cost_fen: Some(30),
            ..touch(Bridge::AiCall, "call-a", TouchEvent::Call, bj(3, 9, 10, 0))
        },
        TouchpointRow {
            phone_hash: h.phone_text(&phone('D')),
            campaign: Some("t1".into()),
            outcome: Some(Outcome::NoAnswer),
            cost_fen: Some(50),
            ..touch(Bridge::AiCall, "call-d", TouchEvent::Call, bj(6, 25, 10, 0))
        },
    ];
    derive_with(&lake, &touchpoints, cfg).await;
    (dir, lake)
}

/// Land `touchpoints`, refresh them and the refunds landed before, then
/// build identity and every mart under `cfg`.
pub(crate) async fn derive_with(lake: &Lake, touchpoints: &[TouchpointRow], cfg: &MartsConfig) {
    let batch = TouchpointRow::batch(touchpoints, "test", Utc::now());
    lake.append_raw(TableKind::Touchpoints, vec![batch])
        .await
        .unwrap();
    for kind in [TableKind::Refunds, TableKind::Touchpoints] {
        quanyu::refresh::refresh_current(lake, kind).await.unwrap();
    }
    quanyu::sync::derive(lake, &hasher(), (&IdentityConfig::default(), cfg), false)
        .await
        .unwrap();
}

/// `[marts]` of the story: its reference day, the card's unit cost and
/// the opt-out tag.
fn story_config() -> MartsConfig {
    let mut cfg = MartsConfig {
        as_of: NaiveDate::from_ymd_opt(2026, 6, 30),
        ..MartsConfig::default()
    };
    cfg.bridge_roi
        .unit_cost_fen
        .insert("package_card".into(), 30);
    cfg.recall.opt_out_tags = vec!["勿扰".into()];
    cfg
}

/// The unified id of the customer who placed `order_id`.
async fn uid_of(lake: &Lake, order_id: &str) -> String {
    column_text(
        lake,
        &format!("SELECT unified_id FROM customer_orders WHERE order_id = '{order_id}'"),
    )
    .await
    .remove(0)
}

/// Rows of `query` (one text column) with each customer's unified id
/// replaced by its letter (the customer of `<letter>1`'s order).
async fn rows(lake: &Lake, query: &str) -> Vec<String> {
    let mut names = Vec::new();
    for who in ["a1", "b1", "c1", "d1"] {
        names.push((uid_of(lake, who).await, who[..1].to_uppercase()));
    }
    column_text(lake, query)
        .await
        .into_iter()
        .map(|mut r| {
            for (uid, name) in &names {
                r = r.replace(uid.as_str(), name);
            }
            r
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfm_scores_buyers_and_picks_the_super_users() {
    let (_dir, lake) = story(&story_config()).await;
    // Three buyers by the reference day (B's only order was refunded, E's
    // comes later). Recency: A 107 days (03-15), C 10, D 149. Quintiles of
    // three: percent ranks 0, ½, 1 → scores 1, 3, 5.
    assert_eq!(
        rows(
            &lake,
            "SELECT concat_ws(' ', unified_id, recency_days, frequency, monetary_fen, orders_365d,
                              gmv_365d_fen, rfm, gmv_rank, decile, super_user)
             FROM customer_rfm ORDER BY gmv_rank"
        )
        .await,
        [
            "A 107 4 25000 4 25000 355 1 1 true",
            "C 10 2 7000 2 7000 533 2 4 false",
            "D 149 1 2000 1 2000 111 3 7 false",
        ]
    );
    // The top 10 % of three, rounded up: one.
    assert_eq!(
        rows(
            &lake,
            "SELECT concat_ws(' ', unified_id, avg_order_fen, first_channel, in_private)
             FROM super_users"
        )
        .await,
        ["A 6250 taobao true"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohorts_repurchase_and_intervals_follow_the_orders() {
    let (_dir, lake) = story(&story_config()).await;
    // January: A (taobao, back after 15 days) and C (douyin, back after
    // 161); February: D (pdd, never back). A 180-day window is not over for
    // January's last member (01-10 + 180 > 06-30): null.
    let cohorts = rows(
        &lake,
        "SELECT concat_ws(' ', CAST(cohort_month AS VARCHAR), first_channel, cohort_size,
                          coalesce(CAST(repurchased_30d AS VARCHAR), '-'),
                          coalesce(CAST(repurchased_90d AS VARCHAR), '-'),
                          coalesce(CAST(repurchased_180d AS VARCHAR), '-'),
                          coalesce(CAST(repurchase_rate_30d AS VARCHAR), '-'))
         FROM retention ORDER BY cohort_month, first_channel",
    )
    .await;
    assert_eq!(
        cohorts,
        [
            "2026-01-01 all 2 1 1 - 0.5",
            "2026-01-01 douyin 1 0 0 - 0.0",
            "2026-01-01 taobao 1 1 1 - 1.0",
            "2026-02-01 all 1 0 0 - 0.0",
            "2026-02-01 pdd 1 0 0 - 0.0",
        ]
    );
    // Month N of January's cohort: both in January, A in February and
    // March, nobody in April and May, C in June.
    assert_eq!(
        rows(
            &lake,
            "SELECT concat_ws(' ', months_after, active_customers) FROM retention_months
             WHERE cohort_month = DATE '2026-01-01' AND first_channel = 'all' ORDER BY months_after"
        )
        .await,
        ["0 2", "1 1", "2 1", "3 0", "4 0", "5 1"]
    );
    // Intervals: a2 15 days, a3 14 (taobao), a4 39 (youzan), c2 161
    // (douyin).
    assert_eq!(
        rows(
            &lake,
            "SELECT concat_ws(' ', band_start_days, intervals, cumulative_share)
             FROM repurchase_intervals WHERE channel = 'all' AND category = 'all' ORDER BY band_start_days"
        )
        .await,
        ["0 2 0.5", "30 1 0.75", "150 1 1.0"]
    );
    assert_eq!(
        rows(
            &lake,
            "SELECT concat_ws(' ', channel, band_start_days, intervals) FROM repurchase_intervals
             WHERE category = 'all' AND channel <> 'all' ORDER BY channel"
        )
        .await,
        ["douyin 150 1", "taobao 0 2", "youzan 30 1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recall_list_holds_the_due_buyers_with_reach_and_suppression() {
    let (_dir, lake) = story(&story_config()).await;
    // Due (90–180 days since the last purchase): A (107), B (135, refunded
    // whole), D (149). C bought 10 days ago.
    // A: mean interval (15 + 14 + 39) / 3 → 23 days: due 04-07, 84 days
    // overdue; held by rep2 (rep1's contact was deleted).
    assert_eq!(
        rows(
            &lake,
            "SELECT concat_ws(' ', unified_id, days_since_last, orders, gmv_fen,
                              coalesce(CAST(avg_order_fen AS VARCHAR), '-'),
                              coalesce(CAST(predicted_next_day AS VARCHAR), '-'),
                              coalesce(CAST(overdue_days AS VARCHAR), '-'), value_band,
                              coalesce(owner_userid, '-'), route,
                              call_channel || ':' || call_order_id, array_to_string(platform_orders, ','),
                              suppressed, coalesce(suppress_reason, '-'))
             FROM recall_list ORDER BY days_since_last"
        )
        .await,
        [
            "A 107 4 25000 6250 2026-04-07 84 high rep2 rep youzan:a4 youzan:s1:a4,taobao:s1:a3 false -",
            "B 135 0 0 - - - low - ai_call jd:b1 jd:s1:b1 true refunded_only",
            "D 149 1 2000 2000 - - low - ai_call pdd:d1 pdd:s1:d1 true opted_out",
        ]
    );
    // D was also called 5 days ago: both flags stand, the opt-out first.
    assert_eq!(
        rows(
            &lake,
            "SELECT concat_ws(' ', unified_id, contacted_recently, opted_out) FROM recall_list
             WHERE contacted_recently"
        )
        .await,
        ["D true true"]
    );
}

/// Revenue per (month, owner or `-`) under `rule`, and that the months'
/// revenue sums to every paid order's net by the reference day.
async fn attributed(rule: RepRule) -> Vec<String> {
    let mut cfg = story_config();
    cfg.rep_attribution.rule = rule;
    let (_dir, lake) = story(&cfg).await;
    assert_eq!(
        int(&lake, "SELECT sum(revenue_fen) FROM rep_attribution").await,
        10_000 + 1_000 + 6_000 + 8_000 + 4_000 + 3_000 + 2_000,
        "every paid order by the reference day, once"
    );
    rows(
        &lake,
        "SELECT concat_ws(' ', CAST(month AS VARCHAR), coalesce(owner_userid, '-'), orders, revenue_fen,
                          private_revenue_fen, newly_added, lost, coalesce(CAST(customers_held AS VARCHAR), '-'))
         FROM rep_attribution ORDER BY month, owner_userid NULLS FIRST",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rep_attribution_gives_each_order_to_one_rep_under_each_rule() {
    // First owner: rep1 added A on 01-20 10:03 and keeps a2, a3 and a4;
    // a1 came before. rep2 adds A in March but is credited nothing.
    assert_eq!(
        attributed(RepRule::First).await,
        [
            "2026-01-01 - 2 14000 0 0 0 -",
            "2026-01-01 rep1 1 1000 0 1 0 1",
            "2026-02-01 - 1 2000 0 0 0 -",
            "2026-02-01 rep1 1 6000 0 0 0 1",
            "2026-03-01 rep1 1 8000 8000 0 1 0",
            "2026-03-01 rep2 0 0 0 1 0 1",
            "2026-06-01 - 1 3000 0 0 0 -",
        ]
    );
    // Current owner: rep2 holds A now, from 03-10: only a4.
    assert_eq!(
        attributed(RepRule::Current).await,
        [
            "2026-01-01 - 3 15000 0 0 0 -",
            "2026-01-01 rep1 0 0 0 1 0 1",
            "2026-02-01 - 2 8000 0 0 0 -",
            "2026-03-01 rep1 0 0 0 0 1 0",
            "2026-03-01 rep2 1 8000 8000 1 0 1",
            "2026-06-01 - 1 3000 0 0 0 -",
        ]
    );
    // Owner at order time: rep1 until the deletion on 03-01, then rep2.
    assert_eq!(
        attributed(RepRule::AtOrder).await,
        [
            "2026-01-01 - 2 14000 0 0 0 -",
            "2026-01-01 rep1 1 1000 0 1 0 1",
            "2026-02-01 - 1 2000 0 0 0 -",
            "2026-02-01 rep1 1 6000 0 0 0 1",
            "2026-03-01 rep1 0 0 0 0 1 0",
            "2026-03-01 rep2 1 8000 8000 1 0 1",
            "2026-06-01 - 1 3000 0 0 0 -",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_roi_credits_each_bridge_with_what_its_joiners_bought() {
    let (_dir, lake) = story(&story_config()).await;
    // The card: A joined 01-20 10:03; in the 30 days after, a2 (the join
    // day, after the join) and a3: 7,000 for a configured 30 fen.
    // The March call: A joined again (rep2) 03-10; a4 (youzan) 8,000.
    // The June call: D, never added. A counts for both bridges.
    assert_eq!(
        rows(
            &lake,
            "SELECT concat_ws(' ', bridge, campaign, CAST(cohort AS VARCHAR), touchpoints, cost_fen,
                              customers_touched, customers_added, revenue_fen, private_revenue_fen,
                              marketplace_revenue_fen, coalesce(CAST(round(coverage, 2) AS VARCHAR), '-'),
                              coalesce(CAST(cost_per_added_fen AS VARCHAR), '-'), window_complete)
             FROM bridge_roi ORDER BY bridge, cohort"
        )
        .await,
        [
            "ai_call t1 2026-03-01 1 30 1 1 8000 8000 0 266.67 30 true",
            "ai_call t1 2026-06-01 1 50 1 0 0 0 0 0.0 - true",
            "package_card card-1 2026-01-01 1 30 1 1 7000 0 7000 233.33 30 true",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_reference_day_moves_the_marts_and_an_unchanged_one_does_not() {
    let cfg = story_config();
    let (_dir, lake) = story(&cfg).await;
    let h = hasher();
    let again = quanyu::sync::derive(&lake, &h, (&IdentityConfig::default(), &cfg), false)
        .await
        .unwrap();
    assert_eq!(again.1, 0, "nothing changed: no mart rebuilt");
    let later = MartsConfig {
        as_of: cfg.as_of.map(|d| d + Duration::days(10)),
        ..cfg.clone()
    };
    let moved = quanyu::sync::derive(&lake, &h, (&IdentityConfig::default(), &later), false)
        .await
        .unwrap();
    let dated = quanyu::marts::MARTS.iter().filter(|m| m.dated).count();
    assert_eq!(moved.1, dated, "every dated mart, none of the others");
    // Ten days on, E's 07-05 order counts and the due buyers are ten days
    // further out.
    assert_eq!(
        rows(
            &lake,
            "SELECT concat_ws(' ', unified_id, days_since_last) FROM recall_list ORDER BY days_since_last"
        )
        .await,
        ["A 117", "B 145", "D 159"]
    );
    assert_eq!(int(&lake, "SELECT count(*) FROM customer_rfm").await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_recall_writes_the_vendor_file_without_phones() {
    let (dir, lake) = story(&story_config()).await;
    let a = uid_of(&lake, "a1").await;
    let lake_arg = lake.root().to_str().unwrap().to_string();
    let csv = dir.path().join("recall.csv");
    let out = crate::quanyu(
        &[
            "export",
            "recall",
            "--lake",
            &lake_arg,
            "--format",
            "csv",
            "--encoding",
            "gbk",
            "--out",
            csv.to_str().unwrap(),
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 customers written"));
    let bytes = std::fs::read(&csv).unwrap();
    let (text, _, bad) = encoding_rs::GBK.decode(&bytes);
    assert!(!bad, "GBK");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("客户ID,呼叫平台,店铺ID,订单号,"),
        "{}",
        lines[0]
    );
    // Only A is due and not suppressed: 25,000 fen over 4 orders.
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].starts_with(&format!("{a},youzan,s1,a4,youzan:s1:a4;taobao:s1:a3,2026-03-15 10:00:00,107,4,250.00,62.50,2026-04-07,high,rep2,rep,")),
        "{}",
        lines[1]
    );
    // With the suppressed, for the AI-call vendor only: B and D, with why.
    let xlsx = dir.path().join("vendor.xlsx");
    crate::quanyu(
        &[
            "export",
            "recall",
            "--lake",
            &lake_arg,
            "--format",
            "xlsx",
            "--route",
            "ai-call",
            "--include-suppressed",
            "--out",
            xlsx.to_str().unwrap(),
        ],
        &[],
    );
    use calamine::Reader;
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook(&xlsx).unwrap();
    let sheet = wb.worksheet_range("召回名单").unwrap();
    let rows: Vec<String> = sheet
        .rows()
        .skip(1)
        .map(|r| format!("{} {} {}", r[1], r[7], r[14]))
        .collect();
    assert_eq!(rows, ["pdd 1 opted_out", "jd 0 refunded_only"]);
    for file in [&csv, &xlsx] {
        let bytes = std::fs::read(file).unwrap();
        for who in ['A', 'B', 'C', 'D'] {
            let p = phone(who);
            assert!(
                !bytes.windows(p.len()).any(|w| w == p.as_bytes()),
                "{} holds a phone",
                file.display()
            );
        }
    }
    // GBK refuses XLSX (always Unicode) with why.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_quanyu"))
        .args([
            "export",
            "recall",
            "--lake",
            &lake_arg,
            "--format",
            "xlsx",
            "--encoding",
            "gbk",
            "--out",
        ])
        .arg(dir.path().join("x.xlsx"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--encoding applies to CSV"));
}
