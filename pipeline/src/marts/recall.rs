//! `recall_list` (老客召回): the buyers past their repurchase cycle but not
//! yet lost, with what they are worth, how to reach them and whether to
//! leave them alone.

use super::sql::{day_of, reached_cte, relationships_ctes, text_literal, Reference};
use super::{MartSql, MartsConfig, Present};

/// The `recall_list` query over `customer_orders`, `customer_rfm`,
/// `identity_map` and, when present, `contacts` and `touchpoints`.
pub fn recall_list_query(present: &Present, cfg: &MartsConfig) -> Option<MartSql> {
    present
        .all(&["customer_orders", "customer_rfm", "identity_map"])
        .then(|| {
            recall_list_sql(
                &Reference::of(cfg),
                cfg,
                present.has("contacts"),
                present.has("touchpoints"),
            )
        })
}

/// The `recall_list` query. A purchase is an order paid (or paid and then
/// refunded) created by the reference day; a customer is due when their
/// last purchase is `min_days` to `max_days` Beijing days before the
/// reference day. One row per due customer.
///
/// Value: `last_order_at`, `days_since_last`, `orders` (paid orders),
/// `gmv_fen` (their net of refunds), `avg_order_fen`,
/// `avg_interval_days` (mean days between their paid orders; null with
/// one), `predicted_next_day` (the last paid order's day plus that mean)
/// and `overdue_days` (reference day − predicted day), `m_score` and
/// `value_band` (`high` for monetary quintile 4–5, `mid` for 3, `low`).
///
/// Reach: `owner_userid` (the rep of the latest added WeCom contact still
/// held), `is_contact` (a WeCom contact is still held), `route` (`rep`
/// when held, else `ai_call`), `call_channel`, `call_shop_id`,
/// `call_order_id` (the latest purchase: what an AI-call vendor dials
/// through the platform's privacy number, as the lake holds no phone) and
/// `platform_orders` (the latest purchase on each platform,
/// `channel:shop_id:order_id`, latest first; purchases created in the same
/// microsecond rank by channel, shop and order id, greatest first).
///
/// Suppression: `contacted_recently` (an AI call or SMS reached them in the
/// `contacted_within_days` days ending on the reference day),
/// `refunded_only` (every purchase refunded: nothing net), `already_repurchased`
/// (an order awaiting payment created after the last purchase),
/// `opted_out` (a contact carries one of `opt_out_tags`), `suppressed`
/// (any of these) and `suppress_reason` (the first of them in that order
/// of precedence: opted_out, refunded_only, already_repurchased,
/// contacted_recently).
fn recall_list_sql(
    reference: &Reference,
    cfg: &MartsConfig,
    has_contacts: bool,
    has_touchpoints: bool,
) -> MartSql {
    let r = &cfg.recall;
    let d = reference.day;
    let covers = reference.covers("created_at");
    let day = day_of("created_at");
    let relationships = relationships_ctes(reference, has_contacts, has_touchpoints);
    let within = r.contacted_within_days;
    // Only the AI calls and SMS of the suppression window.
    let reached = reached_cte(
        has_touchpoints,
        &format!(
            "t.channel IN ('ai_call', 'ai_sms') AND {} AND {} > {} - {within}",
            reference.covers("t.occurred_at"),
            day_of("t.occurred_at"),
            reference.day
        ),
    );
    let opted = if has_contacts && !r.opt_out_tags.is_empty() {
        let tags = r
            .opt_out_tags
            .iter()
            .map(|t| text_literal(t))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT DISTINCT m.unified_id FROM contacts c
             JOIN identity_map m ON m.id_value = c.contact_id
               AND m.id_type = CASE WHEN c.channel = 'wecom' THEN 'wecom_external_userid' ELSE c.channel || '_member' END
             WHERE array_has_any(c.tags, make_array({tags}))"
        )
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS unified_id WHERE false".to_string()
    };
    let held_key =
        "lpad(CAST(greatest(CAST(r.added_at AS BIGINT), 0) AS VARCHAR), 19, '0') || r.owner_userid";
    let purchases = format!(
        "purchases AS (
           SELECT unified_id, channel, shop_id, order_id, created_at, net_fen, is_paid,
                  days_since_previous, {day} AS day
           FROM customer_orders
           WHERE unified_id IS NOT NULL AND (is_paid OR status = 'refunded') AND {covers}
         )"
    );
    // The due customers: a stage (several parts of the query read them),
    // by grouping alone (a join of every purchase to them would hold every
    // purchase in memory). A purchase's key: its creation time in 19 fixed-width digits, then
    // channel, shop and order, so the greatest key is the latest purchase.
    let sep = "chr(31)";
    let key = format!(
        "lpad(CAST(greatest(CAST(created_at AS BIGINT), 0) AS VARCHAR), 19, '0') || channel || {sep} || shop_id || {sep} || order_id"
    );
    let due = format!(
        "WITH {purchases},
         per_customer AS (
           SELECT unified_id, max(created_at) AS last_at, max(day) AS last_day,
                  count(*) FILTER (WHERE is_paid) AS orders, sum(net_fen) AS gmv_fen,
                  sum(days_since_previous) AS interval_days, count(days_since_previous) AS intervals,
                  max(day) FILTER (WHERE is_paid) AS last_paid_day
           FROM purchases GROUP BY unified_id
         )
         SELECT unified_id, last_at AS last_order_at, {d} - last_day AS days_since_last,
                orders, gmv_fen,
                CASE WHEN intervals > 0 THEN CAST(interval_days AS DOUBLE) / intervals END AS avg_interval_days,
                last_paid_day
         FROM per_customer WHERE {d} - last_day BETWEEN {min} AND {max}",
        min = r.min_days,
        max = r.max_days,
    );
    // Their latest purchase per platform, by grouping their purchases alone.
    let platforms = format!(
        "WITH {purchases},
         latest AS (
           SELECT p.unified_id, max({key}) AS last_key
           FROM stage_recall_due d JOIN purchases p ON p.unified_id = d.unified_id
           GROUP BY p.unified_id, p.channel
         )
         SELECT unified_id,
                split_part(substr(max(last_key), 20), {sep}, 1) AS call_channel,
                split_part(substr(max(last_key), 20), {sep}, 2) AS call_shop_id,
                split_part(substr(max(last_key), 20), {sep}, 3) AS call_order_id,
                array_agg(replace(substr(last_key, 20), {sep}, ':') ORDER BY last_key DESC) AS platform_orders
         FROM latest GROUP BY unified_id"
    );
    let query = format!(
        "WITH {relationships}, {reached},
         due AS (SELECT d.*, c.call_channel, c.call_shop_id, c.call_order_id, c.platform_orders
                 FROM stage_recall_due d JOIN stage_recall_platforms c ON c.unified_id = d.unified_id),
         holder AS (
           SELECT r.unified_id, substr(max({held_key}), 20) AS owner_userid
           FROM due d JOIN relationships r ON r.unified_id = d.unified_id
           WHERE r.deleted_at IS NULL GROUP BY r.unified_id
         ),
         contacted AS (SELECT DISTINCT unified_id FROM reached),
         pending AS (
           SELECT unified_id, max(created_at) AS pending_at FROM customer_orders
           WHERE status = 'pending_payment' AND unified_id IS NOT NULL AND {o_covers}
           GROUP BY unified_id
         ),
         reordered AS (
           SELECT d.unified_id FROM due d JOIN pending o ON o.unified_id = d.unified_id
           WHERE o.pending_at > d.last_order_at
         ),
         opted AS ({opted}),
         flagged AS (
           SELECT due.*, rf.m_score, h.owner_userid,
                  ct.unified_id IS NOT NULL AS contacted_recently,
                  due.gmv_fen <= 0 AS refunded_only,
                  ro.unified_id IS NOT NULL AS already_repurchased,
                  op.unified_id IS NOT NULL AS opted_out
           FROM due
           LEFT JOIN customer_rfm rf ON rf.unified_id = due.unified_id
           LEFT JOIN holder h ON h.unified_id = due.unified_id
           LEFT JOIN contacted ct ON ct.unified_id = due.unified_id
           LEFT JOIN reordered ro ON ro.unified_id = due.unified_id
           LEFT JOIN opted op ON op.unified_id = due.unified_id
         )
         SELECT unified_id, last_order_at, CAST(days_since_last AS BIGINT) AS days_since_last,
                CAST(orders AS BIGINT) AS orders, CAST(gmv_fen AS BIGINT) AS gmv_fen,
                CASE WHEN orders > 0 THEN CAST(gmv_fen AS BIGINT) / CAST(orders AS BIGINT) END AS avg_order_fen,
                CAST(avg_interval_days AS DOUBLE) AS avg_interval_days,
                CASE WHEN avg_interval_days IS NOT NULL
                     THEN {predicted} END AS predicted_next_day,
                CASE WHEN avg_interval_days IS NOT NULL
                     THEN CAST({d} - (last_paid_day + round(avg_interval_days)) AS BIGINT) END AS overdue_days,
                m_score,
                CASE WHEN m_score >= 4 THEN 'high' WHEN m_score = 3 THEN 'mid' ELSE 'low' END AS value_band,
                owner_userid, owner_userid IS NOT NULL AS is_contact,
                CASE WHEN owner_userid IS NOT NULL THEN 'rep' ELSE 'ai_call' END AS route,
                call_channel, call_shop_id, call_order_id, platform_orders,
                contacted_recently, refunded_only, already_repurchased, opted_out,
                opted_out OR refunded_only OR already_repurchased OR contacted_recently AS suppressed,
                CASE WHEN opted_out THEN 'opted_out' WHEN refunded_only THEN 'refunded_only'
                     WHEN already_repurchased THEN 'already_repurchased'
                     WHEN contacted_recently THEN 'contacted_recently' END AS suppress_reason
         FROM flagged",
        o_covers = reference.covers("created_at"),
        predicted = "arrow_cast(CAST(last_paid_day + round(avg_interval_days) AS INT), 'Date32')",
    );
    MartSql {
        stages: vec![
            ("stage_recall_due", due),
            ("stage_recall_platforms", platforms),
        ],
        query,
    }
}
