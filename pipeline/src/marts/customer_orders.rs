//! The `customer_orders` mart: one row per order with the unified customer
//! it belongs to, what it is worth net of refunds, and where it stands in
//! that customer's paid orders. It is the fact table the operators' marts
//! (recall, retention, repurchase, attribution) read.

/// The statuses of an order that was paid and not (wholly) taken back.
pub const PAID_STATUSES: &str = "('paid','shipped','delivered','completed')";

/// The `customer_orders` query over `identity_map`, `orders` and, when
/// present, `refunds`; none while the lake has no orders or no identity.
pub fn query(present: &super::Present) -> Option<String> {
    present
        .all(&["orders", "identity_map"])
        .then(|| customer_orders_sql(present.has("refunds")))
}

/// The `customer_orders` query. An order meets its unified id and its
/// refunds by grouping on the order key (`channel:order_id`, as identity
/// names orders), not by joins, so the build spills to disk under memory
/// pressure instead of failing.
///
/// Columns: `unified_id` (null for an order identity did not place),
/// `channel`, `shop_id`, `order_id`, `status`, `created_at`, `paid_at`,
/// `amount_fen` (what the order shows as paid), `refunded_fen` (refunds
/// paid back on it, `succeeded`), `net_fen` (for a paid, shipped, delivered
/// or completed order: amount less refunds, never below zero; 0 otherwise),
/// `is_paid`, `paid_seq` (1 for the customer's first paid order by
/// creation time, 2 for the next…; null for an order not paid or without
/// a customer) and `days_since_previous` (whole days since the customer's
/// previous paid order; null for the first).
pub fn customer_orders_sql(has_refunds: bool) -> String {
    let text = "CAST(NULL AS VARCHAR)";
    let zero = "CAST(0 AS BIGINT)";
    let ts = "arrow_cast(NULL, 'Timestamp(Microsecond, Some(\"UTC\"))')";
    let mut records = vec![
        format!(
            "SELECT id_value AS k, unified_id, {text} AS channel, {text} AS shop_id,
                    {text} AS order_id, {text} AS status, {zero} AS amount_fen,
                    {zero} AS refunded_fen, {ts} AS created_at, {ts} AS paid_at, {zero} AS n
             FROM identity_map WHERE id_type = 'order'"
        ),
        format!(
            "SELECT o.channel || ':' || o.order_id, {text}, o.channel, o.shop_id, o.order_id,
                    o.status, CAST(o.amount_fen AS BIGINT), {zero}, o.created_at, o.paid_at,
                    CAST(1 AS BIGINT)
             FROM orders o"
        ),
    ];
    if has_refunds {
        records.push(format!(
            "SELECT r.channel || ':' || r.order_id, {text}, {text}, {text}, {text}, {text},
                    {zero}, CAST(r.refund_fen AS BIGINT), {ts}, {ts}, {zero}
             FROM refunds r WHERE r.status = 'succeeded'"
        ));
    }
    let records = records.join(" UNION ALL ");
    let customer = "PARTITION BY unified_id, is_paid ORDER BY created_at, channel, order_id";
    format!(
        "WITH per_order AS (
           SELECT max(unified_id) AS unified_id, max(channel) AS channel, max(shop_id) AS shop_id,
                  max(order_id) AS order_id, max(status) AS status,
                  sum(amount_fen) AS amount_fen, sum(refunded_fen) AS refunded_fen,
                  max(created_at) AS created_at, max(paid_at) AS paid_at
           FROM ({records}) GROUP BY k HAVING sum(n) > 0
         ),
         facts AS (
           SELECT *, status IN {PAID_STATUSES} AS is_paid FROM per_order
         )
         SELECT unified_id, channel, shop_id, order_id, status, created_at, paid_at,
                amount_fen, refunded_fen,
                CASE WHEN is_paid THEN greatest(amount_fen - refunded_fen, 0) ELSE {zero} END AS net_fen,
                is_paid,
                CASE WHEN is_paid AND unified_id IS NOT NULL
                     THEN CAST(row_number() OVER ({customer}) AS BIGINT) END AS paid_seq,
                CASE WHEN is_paid AND unified_id IS NOT NULL
                     THEN (CAST(created_at AS BIGINT) - CAST(lag(created_at) OVER ({customer}) AS BIGINT))
                          / 86400000000 END AS days_since_previous
         FROM facts"
    )
}
