//! `rep_attribution` (业绩归属): which revenue belongs to which WeCom
//! owner, under one configured rule, never an order for two reps, with the
//! unattributed rest so the month's totals reconcile with `orders`.

use quanyu_schemas::Channel;

use super::sql::{period_of, relationships_ctes, Reference, PRIVATE_CHANNELS, TS_NULL};
use super::{MartSql, MartsConfig, Present, RepRule};

/// The `rep_attribution` query over `customer_orders`, `identity_map` and,
/// when present, `contacts` and `touchpoints`.
pub fn rep_attribution_query(present: &Present, cfg: &MartsConfig) -> Option<MartSql> {
    present.all(&["customer_orders", "identity_map"]).then(|| {
        rep_attribution_sql(
            &Reference::of(cfg),
            cfg.rep_attribution.rule,
            present.has("contacts"),
            present.has("touchpoints"),
        )
    })
}

/// The channels orders come from (every channel but the contact ones).
fn order_channels() -> impl Iterator<Item = Channel> {
    Channel::ALL
        .iter()
        .copied()
        .filter(|c| !matches!(c, Channel::Wecom | Channel::Crm))
}

/// `attributed`: every paid order created by the reference day with the
/// rep it belongs to under `rule` (`owner_userid`, null when none).
fn attributed_cte(rule: RepRule, covers: &str) -> String {
    // The rep and when they added the customer, as one text: the add time
    // in 19 fixed-width digits, then the rep.
    let held =
        "lpad(CAST(greatest(CAST(added_at AS BIGINT), 0) AS VARCHAR), 19, '0') || owner_userid";
    let paid = format!(
        "paid AS (
           SELECT unified_id, channel, shop_id, order_id, created_at, net_fen
           FROM customer_orders WHERE is_paid AND {covers}
         )"
    );
    // One rep per customer (first, current): the rep keeps the orders
    // created from when they added the customer. The rep meets the orders
    // by a window over the customer's rows (the rep's row sorted first,
    // carried to each order), not a join: a sort spills, a join's build
    // side of every paid order might not fit.
    let per_customer = |filter: &str, order: &str| {
        format!(
            "{paid},
             chosen AS (
               SELECT unified_id, owner_userid, added_at FROM (
                 SELECT unified_id, owner_userid, added_at,
                        row_number() OVER (PARTITION BY unified_id ORDER BY {order}) AS k
                 FROM relationships WHERE {filter}
               ) WHERE k = 1
             ),
             tagged AS (
               SELECT unified_id, 0 AS kind, {held} AS held,
                      CAST(NULL AS VARCHAR) AS channel, CAST(NULL AS VARCHAR) AS shop_id,
                      CAST(NULL AS VARCHAR) AS order_id, {TS_NULL} AS created_at,
                      CAST(NULL AS BIGINT) AS net_fen
               FROM chosen
               UNION ALL
               SELECT unified_id, 1, CAST(NULL AS VARCHAR), channel, shop_id, order_id, created_at,
                      CAST(net_fen AS BIGINT)
               FROM paid
             ),
             carried AS (
               SELECT *, max(held) OVER (PARTITION BY unified_id ORDER BY kind
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS rep
               FROM tagged
             ),
             attributed AS (
               SELECT unified_id, channel, shop_id, order_id, created_at, net_fen,
                      CASE WHEN CAST(created_at AS BIGINT) >= CAST(substr(rep, 1, 19) AS BIGINT)
                           THEN substr(rep, 20) END AS owner_userid
               FROM carried WHERE kind = 1
             )"
        )
    };
    match rule {
        RepRule::First => per_customer("true", "added_at, owner_userid"),
        RepRule::Current => per_customer("deleted_at IS NULL", "added_at DESC, owner_userid"),
        RepRule::AtOrder => format!(
            "{paid},
             holders AS (
               SELECT p.channel, p.shop_id, p.order_id, r.owner_userid,
                      row_number() OVER (PARTITION BY p.channel, p.shop_id, p.order_id
                                         ORDER BY r.added_at DESC, r.owner_userid) AS k
               FROM relationships r JOIN paid p ON p.unified_id = r.unified_id
               WHERE r.added_at <= p.created_at AND (r.deleted_at IS NULL OR r.deleted_at > p.created_at)
             ),
             attributed AS (
               SELECT p.*, h.owner_userid
               FROM (SELECT * FROM holders WHERE k = 1) h
               RIGHT JOIN paid p ON p.channel = h.channel AND p.shop_id = h.shop_id AND p.order_id = h.order_id
             )"
        ),
    }
}

/// The `rep_attribution` query: one row per Beijing month and WeCom owner
/// with any activity that month (an add, a deletion, an attributed order),
/// and one per month with `owner_userid` null for the paid orders no rep
/// holds (no unified customer, no WeCom contact, or created before the
/// add). An order is counted once, for one rep; the revenue of a month's
/// rows sums to the net GMV of the paid orders created that month.
///
/// Columns: `month` (its first day), `owner_userid`; `newly_added`
/// (customers the rep added that month), `lost` (customers whose contact
/// with the rep was deleted that month, by either side), `customers_held`
/// (added less lost, up to the month's end); `orders`, `buyers`,
/// `revenue_fen` (net of refunds) of the orders attributed to the rep,
/// `private_revenue_fen` (Youzan and Channels shop), `marketplace_revenue_fen`
/// and `revenue_<channel>_fen` per channel.
fn rep_attribution_sql(
    reference: &Reference,
    rule: RepRule,
    has_contacts: bool,
    has_touchpoints: bool,
) -> MartSql {
    let covers = reference.covers("created_at");
    // The relationships: a stage (one row per contact relationship), read
    // by the rep choice, the adds and the losses.
    let relationships = format!(
        "WITH {} SELECT * FROM relationships",
        relationships_ctes(reference, has_contacts, has_touchpoints)
    );
    let attributed = attributed_cte(rule, &covers);
    let month = period_of("month", "created_at");
    let per_channel: String = order_channels()
        .map(|c| {
            format!(
                ", CAST(COALESCE(sum(net_fen) FILTER (WHERE channel = '{c}'), 0) AS BIGINT) AS revenue_{c}_fen"
            )
        })
        .collect();
    let channel_columns: String = order_channels()
        .map(|c| format!(", COALESCE(s.revenue_{c}_fen, 0) AS revenue_{c}_fen"))
        .collect();
    // The attributed orders are read by two small stages, each a simple
    // plan (under a tight memory budget a plan's many sorts share it):
    // buyers per month and rep (grouped per buyer first, so no set per
    // month) and orders and net per month, rep and channel.
    let buyers = format!(
        "WITH relationships AS (SELECT * FROM stage_rep_relationships), {attributed},
         per_buyer AS (
           SELECT {month} AS month, owner_userid, unified_id
           FROM attributed GROUP BY {month}, owner_userid, unified_id
         )
         SELECT month, owner_userid, count(unified_id) AS buyers
         FROM per_buyer GROUP BY month, owner_userid"
    );
    let channels = format!(
        "WITH relationships AS (SELECT * FROM stage_rep_relationships), {attributed}
         SELECT {month} AS month, owner_userid, channel, count(*) AS orders, sum(net_fen) AS net_fen
         FROM attributed GROUP BY {month}, owner_userid, channel"
    );
    let query = format!(
        "WITH relationships AS (SELECT * FROM stage_rep_relationships),
         sales AS (
           SELECT s.month, s.owner_userid, sum(s.orders) AS orders, max(b.buyers) AS buyers,
                  CAST(sum(net_fen) AS BIGINT) AS revenue_fen,
                  CAST(COALESCE(sum(net_fen) FILTER (WHERE channel IN {PRIVATE_CHANNELS}), 0) AS BIGINT) AS private_revenue_fen,
                  CAST(COALESCE(sum(net_fen) FILTER (WHERE channel NOT IN {PRIVATE_CHANNELS}), 0) AS BIGINT) AS marketplace_revenue_fen
                  {per_channel}
           FROM stage_rep_channels s
           LEFT JOIN stage_rep_buyers b ON b.month = s.month AND b.owner_userid IS NOT DISTINCT FROM s.owner_userid
           GROUP BY s.month, s.owner_userid
         ),
         adds AS (
           SELECT {added_month} AS month, owner_userid, count(DISTINCT unified_id) AS added
           FROM relationships GROUP BY {added_month}, owner_userid
         ),
         losses AS (
           SELECT {deleted_month} AS month, owner_userid, count(DISTINCT unified_id) AS lost
           FROM relationships WHERE deleted_at IS NOT NULL GROUP BY {deleted_month}, owner_userid
         ),
         keys AS (
           SELECT month, owner_userid FROM sales
           UNION SELECT month, owner_userid FROM adds
           UNION SELECT month, owner_userid FROM losses
         )
         SELECT k.month, k.owner_userid,
                CAST(COALESCE(a.added, 0) AS BIGINT) AS newly_added,
                CAST(COALESCE(l.lost, 0) AS BIGINT) AS lost,
                CASE WHEN k.owner_userid IS NOT NULL THEN CAST(sum(COALESCE(a.added, 0) - COALESCE(l.lost, 0))
                     OVER (PARTITION BY k.owner_userid ORDER BY k.month) AS BIGINT) END AS customers_held,
                CAST(COALESCE(s.orders, 0) AS BIGINT) AS orders,
                CAST(COALESCE(s.buyers, 0) AS BIGINT) AS buyers,
                COALESCE(s.revenue_fen, 0) AS revenue_fen,
                COALESCE(s.private_revenue_fen, 0) AS private_revenue_fen,
                COALESCE(s.marketplace_revenue_fen, 0) AS marketplace_revenue_fen
                {channel_columns}
         FROM keys k
         LEFT JOIN sales s ON s.month = k.month AND s.owner_userid IS NOT DISTINCT FROM k.owner_userid
         LEFT JOIN adds a ON a.month = k.month AND a.owner_userid IS NOT DISTINCT FROM k.owner_userid
         LEFT JOIN losses l ON l.month = k.month AND l.owner_userid IS NOT DISTINCT FROM k.owner_userid",
        added_month = period_of("month", "added_at"),
        deleted_month = period_of("month", "deleted_at"),
    );
    MartSql {
        stages: vec![
            ("stage_rep_relationships", relationships),
            ("stage_rep_buyers", buyers),
            ("stage_rep_channels", channels),
        ],
        query,
    }
}
