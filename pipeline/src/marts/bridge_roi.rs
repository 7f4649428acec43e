//! `bridge_roi` (粉产覆盖加粉成本): did each bridge earn back, in the days
//! after a buyer joined WeCom, what it cost to bring them in?

use super::sql::{
    period_of, reached_cte, relationships_ctes, text_literal, timestamp_literal, Reference, DAY_US,
    PRIVATE_CHANNELS,
};
use super::{CohortPeriod, MartSql, MartsConfig, Present};

/// The touchpoint events that reach out to a buyer (a deletion or an edit
/// of a contact brings nobody in).
const OUTREACH: &str = "('scan', 'call', 'sms', 'friend_added', 'friend_half_added')";

/// The `bridge_roi` query over `touchpoints`, `identity_map`,
/// `customer_orders` and, when present, `contacts`.
pub fn bridge_roi_query(present: &Present, cfg: &MartsConfig) -> Option<MartSql> {
    present
        .all(&["touchpoints", "identity_map", "customer_orders"])
        .then(|| bridge_roi_sql(&Reference::of(cfg), cfg, present.has("contacts")))
}

/// The `bridge_roi` query: one row per bridge, campaign (empty when the
/// feed names none) and cohort (the Beijing month, or ISO week, of the
/// touchpoint), over the outreach touchpoints (scans, calls, SMS, contacts
/// added) by the reference day.
///
/// A customer is touched by the group when one of its touchpoints reached
/// them (phone, external_userid or order); they are added when a WeCom
/// contact of theirs was added at or after their first touch in the group,
/// or the group's touchpoint names that contact; they join at the earliest
/// such add. Their revenue is the net of refunds of their paid orders
/// created from the join to `window_days` later (an order on the join day
/// before the join does not count). A customer touched by two bridges
/// counts for each.
///
/// Columns: `bridge`, `campaign`, `cohort`; `touchpoints`; `cost_fen`
/// (the feed's cost, else `unit_cost_fen` of the bridge, else 0);
/// `customers_touched`; `customers_added`; `revenue_fen`,
/// `private_revenue_fen` (Youzan and Channels shop: the brand's own
/// shops), `marketplace_revenue_fen`; `coverage` (revenue ÷ cost; null at
/// no cost); `cost_per_added_fen` (null with nobody added);
/// `window_complete` (every added customer's window has ended by the
/// reference day: until then revenue can still grow).
fn bridge_roi_sql(reference: &Reference, cfg: &MartsConfig, has_contacts: bool) -> MartSql {
    let roi = &cfg.bridge_roi;
    let period = match roi.cohort {
        CohortPeriod::Month => "month",
        CohortPeriod::Week => "week",
    };
    let cohort = period_of(period, "occurred_at");
    let covers = reference.covers("occurred_at");
    let unit_cost = if roi.unit_cost_fen.is_empty() {
        "0".to_string()
    } else {
        let arms: String = roi
            .unit_cost_fen
            .iter()
            .map(|(bridge, fen)| format!(" WHEN {} THEN {fen}", text_literal(bridge)))
            .collect();
        format!("CASE channel{arms} ELSE 0 END")
    };
    let window_us = i64::from(roi.window_days) * DAY_US;
    let end = timestamp_literal(reference.end_us);
    let relationships = relationships_ctes(reference, has_contacts, true);
    let reached = reached_cte(
        true,
        &format!(
            "t.event_type IN {OUTREACH} AND {}",
            reference.covers("t.occurred_at")
        ),
    );
    // Stages (each a simple plan; all small): who each group touched,
    // and when each touched customer joined.
    let touched = format!(
        "WITH {reached}
         SELECT channel AS bridge, COALESCE(campaign, '') AS campaign, {cohort} AS cohort,
                unified_id, occurred_at, external_userid
         FROM reached WHERE unified_id IS NOT NULL"
    );
    let joined = format!(
        "WITH {relationships},
         touches AS (SELECT * FROM stage_roi_touches),
         touched AS (
           SELECT bridge, campaign, cohort, unified_id, min(occurred_at) AS first_touch_at
           FROM touches GROUP BY bridge, campaign, cohort, unified_id
         ),
         joins AS (
           SELECT t.bridge, t.campaign, t.cohort, t.unified_id, r.added_at
           FROM touched t JOIN relationships r ON r.unified_id = t.unified_id
           WHERE r.added_at >= t.first_touch_at
           UNION ALL
           SELECT t.bridge, t.campaign, t.cohort, t.unified_id, r.added_at
           FROM touches t JOIN relationships r ON r.unified_id = t.unified_id
                AND r.external_userid = t.external_userid
         )
         SELECT bridge, campaign, cohort, unified_id, min(added_at) AS joined_at
         FROM joins GROUP BY bridge, campaign, cohort, unified_id"
    );
    let query = format!(
        "WITH touched AS (
           SELECT bridge, campaign, cohort, unified_id FROM stage_roi_touches
           GROUP BY bridge, campaign, cohort, unified_id
         ),
         joined AS (SELECT * FROM stage_roi_joined),
         events AS (
           SELECT channel AS bridge, COALESCE(campaign, '') AS campaign, {cohort} AS cohort,
                  count(*) AS touchpoints,
                  sum(COALESCE(cost_fen, {unit_cost})) AS cost_fen
           FROM touchpoints WHERE event_type IN {OUTREACH} AND {covers}
           GROUP BY channel, COALESCE(campaign, ''), {cohort}
         ),
         earned AS (
           SELECT j.bridge, j.campaign, j.cohort, j.unified_id, j.joined_at,
                  COALESCE(sum(o.net_fen), 0) AS revenue_fen,
                  COALESCE(sum(o.net_fen) FILTER (WHERE o.channel IN {PRIVATE_CHANNELS}), 0) AS private_revenue_fen
           FROM joined j LEFT JOIN customer_orders o ON o.unified_id = j.unified_id AND o.is_paid
                AND o.created_at >= j.joined_at
                AND CAST(o.created_at AS BIGINT) < CAST(j.joined_at AS BIGINT) + {window_us}
                AND o.created_at < {end}
           GROUP BY j.bridge, j.campaign, j.cohort, j.unified_id, j.joined_at
         ),
         touched_counts AS (
           SELECT bridge, campaign, cohort, count(*) AS customers_touched
           FROM touched GROUP BY bridge, campaign, cohort
         ),
         added AS (
           SELECT bridge, campaign, cohort, count(*) AS customers_added,
                  sum(revenue_fen) AS revenue_fen, sum(private_revenue_fen) AS private_revenue_fen,
                  max(CAST(joined_at AS BIGINT)) + {window_us} <= {end_us} AS window_complete
           FROM earned GROUP BY bridge, campaign, cohort
         )
         SELECT e.bridge, e.campaign, e.cohort,
                CAST(e.touchpoints AS BIGINT) AS touchpoints,
                CAST(e.cost_fen AS BIGINT) AS cost_fen,
                CAST(COALESCE(t.customers_touched, 0) AS BIGINT) AS customers_touched,
                CAST(COALESCE(a.customers_added, 0) AS BIGINT) AS customers_added,
                CAST(COALESCE(a.revenue_fen, 0) AS BIGINT) AS revenue_fen,
                CAST(COALESCE(a.private_revenue_fen, 0) AS BIGINT) AS private_revenue_fen,
                CAST(COALESCE(a.revenue_fen, 0) - COALESCE(a.private_revenue_fen, 0) AS BIGINT) AS marketplace_revenue_fen,
                CASE WHEN e.cost_fen > 0 THEN CAST(COALESCE(a.revenue_fen, 0) AS DOUBLE) / e.cost_fen END AS coverage,
                CASE WHEN a.customers_added > 0 THEN CAST(e.cost_fen / a.customers_added AS BIGINT) END AS cost_per_added_fen,
                COALESCE(a.window_complete, true) AS window_complete
         FROM events e
         LEFT JOIN touched_counts t ON t.bridge = e.bridge AND t.campaign = e.campaign AND t.cohort = e.cohort
         LEFT JOIN added a ON a.bridge = e.bridge AND a.campaign = e.campaign AND a.cohort = e.cohort",
        end_us = reference.end_us,
    );
    MartSql {
        stages: vec![("stage_roi_touches", touched), ("stage_roi_joined", joined)],
        query,
    }
}
