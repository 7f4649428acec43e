//! `customer_rfm` and `super_users`: how recently, how often and how much
//! each buyer bought, scored in quintiles, and the top share of buyers by
//! the last year's spend (超级用户).

use super::sql::{day_of, Reference};
use super::{MartsConfig, Present};

/// The `customer_rfm` query over `customer_orders` and `customers`.
pub fn customer_rfm_query(present: &Present, cfg: &MartsConfig) -> Option<String> {
    present
        .all(&["customer_orders", "customers"])
        .then(|| customer_rfm_sql(&Reference::of(cfg), cfg.super_users.share))
}

/// A quintile score 1–5 of `column`: `1 + ⌊5 × percent_rank⌋`, at most
/// 5, where the percent rank is the share of the other buyers ranked before
/// (`ASC`: a smaller value; `DESC`: a greater one). Equal values share a
/// score; the lowest get 1. Counted by a window whose frame ends before the
/// value (a sort that spills, then a running count), not `percent_rank`,
/// whose window holds every buyer in one batch.
fn quintile(column: &str, direction: &str) -> String {
    format!(
        "least(5, 1 + CAST(floor(5 * CAST(COALESCE(count(*) OVER (ORDER BY {column} {direction}
              RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS DOUBLE)
              / greatest(n.buyers - 1, 1)) AS BIGINT))"
    )
}

/// The `customer_rfm` query: one row per customer with a paid order
/// created by the reference day (the others have nothing to score).
///
/// Columns: `unified_id`; `first_paid_at`, `last_paid_at`; `recency_days`
/// (Beijing days from the last paid order to the reference day);
/// `frequency` (paid orders); `monetary_fen` (their net of refunds, all
/// time); `orders_365d` and `gmv_365d_fen` (paid orders, and their net, of
/// the 365 days ending on the reference day); `r_score`, `f_score`,
/// `m_score` (quintiles 1–5 of recency — 5 the most recent —, frequency
/// and monetary, equal values sharing a score) and `rfm` (the three
/// digits); `gmv_rank` (1 for the greatest trailing-year spend; null
/// without spend that year), `decile` (1–10 by `gmv_rank`, 1 the top
/// tenth) and `super_user` (among the top `share` of the customers with
/// spend that year, rounded up); `as_of` (the reference day); `channels`,
/// `owner_userid`, `in_private` from `customers`.
fn customer_rfm_sql(reference: &Reference, share: f64) -> String {
    let d = reference.day;
    let day = day_of("created_at");
    let covers = reference.covers("created_at");
    let r = quintile("recency_days", "DESC");
    let f = quintile("frequency", "ASC");
    let m = quintile("monetary_fen", "ASC");
    format!(
        "WITH paid AS (
           SELECT unified_id, net_fen, created_at, {day} AS day FROM customer_orders
           WHERE is_paid AND unified_id IS NOT NULL AND {covers}
         ),
         per AS (
           SELECT unified_id, min(created_at) AS first_paid_at, max(created_at) AS last_paid_at,
                  {d} - max(day) AS recency_days, count(*) AS frequency,
                  sum(net_fen) AS monetary_fen,
                  count(*) FILTER (WHERE day > {d} - 365) AS orders_365d,
                  COALESCE(sum(net_fen) FILTER (WHERE day > {d} - 365), 0) AS gmv_365d_fen
           FROM paid GROUP BY unified_id
         ),
         n AS (
           SELECT count(*) AS buyers, count(*) FILTER (WHERE gmv_365d_fen > 0) AS spenders FROM per
         ),
         scored AS (
           SELECT per.*, {r} AS r_score, {f} AS f_score, {m} AS m_score,
                  row_number() OVER (ORDER BY gmv_365d_fen DESC, unified_id) AS position,
                  n.spenders
           FROM n CROSS JOIN per
         )
         SELECT s.unified_id, s.first_paid_at, s.last_paid_at,
                CAST(s.recency_days AS BIGINT) AS recency_days,
                CAST(s.frequency AS BIGINT) AS frequency,
                CAST(s.monetary_fen AS BIGINT) AS monetary_fen,
                CAST(s.orders_365d AS BIGINT) AS orders_365d,
                CAST(s.gmv_365d_fen AS BIGINT) AS gmv_365d_fen,
                s.r_score, s.f_score, s.m_score,
                CAST(s.r_score AS VARCHAR) || CAST(s.f_score AS VARCHAR) || CAST(s.m_score AS VARCHAR) AS rfm,
                CASE WHEN s.gmv_365d_fen > 0 THEN CAST(s.position AS BIGINT) END AS gmv_rank,
                CASE WHEN s.gmv_365d_fen > 0
                     THEN CAST(1 + (s.position - 1) * 10 / s.spenders AS BIGINT) END AS decile,
                s.gmv_365d_fen > 0 AND s.position <= ceil({share} * s.spenders - 1e-9) AS super_user,
                arrow_cast(CAST({d} AS INT), 'Date32') AS as_of,
                c.channels, c.owner_userid, c.in_private
         FROM scored s LEFT JOIN customers c ON c.unified_id = s.unified_id"
    )
}

/// The `super_users` query over `customer_rfm`, `customer_orders` and
/// `customers`: one row per super user, what their spend is and what they
/// look like.
pub fn super_users_query(present: &Present, cfg: &MartsConfig) -> Option<String> {
    if !present.all(&["customer_rfm", "customer_orders", "customers"]) {
        return None;
    }
    let covers = Reference::of(cfg).covers("created_at");
    Some(format!(
        "WITH firsts AS (
           SELECT unified_id, channel AS first_channel FROM customer_orders
           WHERE paid_seq = 1 AND {covers}
         )
         SELECT r.unified_id, r.gmv_rank, r.gmv_365d_fen, r.orders_365d,
                r.frequency, r.monetary_fen,
                CAST(r.monetary_fen / r.frequency AS BIGINT) AS avg_order_fen,
                r.first_paid_at, r.last_paid_at, r.recency_days, r.rfm,
                f.first_channel, c.channels,
                CAST(COALESCE(cardinality(c.channels), 0) AS BIGINT) AS channel_count,
                c.owner_userid, c.in_private
         FROM (SELECT * FROM customer_rfm WHERE super_user) r
         LEFT JOIN firsts f ON f.unified_id = r.unified_id
         LEFT JOIN customers c ON c.unified_id = r.unified_id"
    ))
}
