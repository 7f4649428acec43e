//! The `customers` table: one row per unified customer.

/// The `customers` query over `identity_map` and, when present, `orders`,
/// `refunds` and `contacts`.
pub fn customers_query(present: &super::Present) -> Option<String> {
    present.has("identity_map").then(|| {
        customers_sql(
            present.has("orders"),
            present.has("refunds"),
            present.has("contacts"),
        )
    })
}

const TS: &str = "arrow_cast(NULL, 'Timestamp(Microsecond, Some(\"UTC\"))')";

/// Where the owner starts in an `owner_key` (1-based; see [`customers_sql`]).
const OWNER_AT: usize = 20;

/// The `customers` query. Records meet their unified id by grouping on
/// the record key (identity_map's rows and the orders and contacts they
/// name, side by side), not by joins: a grouped aggregation spills to disk
/// under memory pressure, so the build holds on any lake that fits on disk.
/// Every unified id gets a row, also one with neither orders nor contacts.
///
/// GMV is net of refunds: an order counts what was paid (paid, shipped,
/// delivered or completed) less the refunds paid back on it (`succeeded`),
/// never below zero; `refunded_fen` is what went back on the customer's
/// orders, whatever their status now.
fn customers_sql(has_orders: bool, has_refunds: bool, has_contacts: bool) -> String {
    let paid = crate::marts::customer_orders::PAID_STATUSES;
    let str_null = "CAST(NULL AS VARCHAR)";
    let zero = "CAST(0 AS BIGINT)";
    // One row per record: (type, key, unified id, channel, orders, paid
    // fen, refunded fen, order time, contacts, owner, contact time).
    let record = |cols: [&str; 11]| -> String {
        let names = [
            "k_type",
            "k",
            "unified_id",
            "channel",
            "orders",
            "gmv_fen",
            "refunded_fen",
            "order_at",
            "contacts",
            "owner_userid",
            "contact_at",
        ];
        cols.iter()
            .zip(names)
            .map(|(c, n)| format!("{c} AS {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut records = vec![format!(
        "SELECT {} FROM identity_map
         WHERE id_type = 'order' OR id_type = 'wecom_external_userid' OR ends_with(id_type, '_member')",
        record(["id_type", "id_value", "unified_id", str_null, zero, zero, zero, TS, zero, str_null, TS])
    )];
    if has_orders {
        let gmv =
            format!("CAST(CASE WHEN o.status IN {paid} THEN o.amount_fen ELSE 0 END AS BIGINT)");
        records.push(format!(
            "SELECT {} FROM orders o",
            record([
                "'order'",
                "o.channel || ':' || o.order_id",
                str_null,
                "o.channel",
                "CAST(1 AS BIGINT)",
                &gmv,
                zero,
                "o.created_at",
                zero,
                str_null,
                TS,
            ])
        ));
    }
    if has_refunds {
        // A refund meets its order under the order's key.
        records.push(format!(
            "SELECT {} FROM refunds r WHERE r.status = 'succeeded'",
            record([
                "'order'",
                "r.channel || ':' || r.order_id",
                str_null,
                str_null,
                zero,
                zero,
                "CAST(r.refund_fen AS BIGINT)",
                TS,
                zero,
                str_null,
                TS,
            ])
        ));
    }
    if has_contacts {
        records.push(format!(
            "SELECT {} FROM contacts c",
            record([
                "CASE WHEN c.channel = 'wecom' THEN 'wecom_external_userid' ELSE c.channel || '_member' END",
                "c.contact_id",
                str_null,
                "c.channel",
                zero,
                zero,
                zero,
                TS,
                "CAST(1 AS BIGINT)",
                "NULLIF(c.owner_userid, '')",
                "c.created_at",
            ])
        ));
    }
    let records = records.join(" UNION ALL ");
    // The owner of the latest contact, as the greatest of `owner_key`s
    // (contact time in 19 fixed-width digits, then the owner): string
    // max runs as a native grouped accumulator, while `last_value(owner
    // ORDER BY contact_at)` on strings keeps one boxed accumulator per
    // group (a million at a million orders). Equal times keep the greatest
    // owner; contacts without a time rank below every timed one.
    let owner_key = "CASE WHEN owner_userid IS NOT NULL THEN \
         COALESCE(lpad(CAST(greatest(CAST(contact_at AS BIGINT), 0) AS VARCHAR), 19, '0'), repeat(' ', 19)) || owner_userid END";
    format!(
        "WITH per_record AS (
           SELECT max(unified_id) AS unified_id, max(channel) AS channel,
                  sum(orders) AS orders,
                  CASE WHEN sum(gmv_fen) > 0 THEN greatest(sum(gmv_fen) - sum(refunded_fen), 0) ELSE 0 END AS gmv_fen,
                  sum(refunded_fen) AS refunded_fen,
                  min(order_at) AS first_at, max(order_at) AS last_at,
                  sum(contacts) AS contacts, max({owner_key}) AS owner_key
           FROM ({records})
           GROUP BY k_type, k
         ),
         facts AS (
           SELECT unified_id, channel, 1 AS is_order, sum(orders) AS orders, sum(gmv_fen) AS gmv_fen,
                  sum(refunded_fen) AS refunded_fen, min(first_at) AS first_at, max(last_at) AS last_at,
                  {str_null} AS owner_key
           FROM per_record WHERE unified_id IS NOT NULL AND orders > 0
           GROUP BY unified_id, channel
           UNION ALL
           SELECT unified_id, channel, 0 AS is_order, {zero} AS orders, {zero} AS gmv_fen,
                  {zero} AS refunded_fen, {TS} AS first_at,
                  {TS} AS last_at, owner_key
           FROM per_record WHERE unified_id IS NOT NULL AND contacts > 0
           UNION ALL
           SELECT unified_id, {str_null} AS channel, 0 AS is_order, {zero} AS orders, {zero} AS gmv_fen,
                  {zero} AS refunded_fen, {TS} AS first_at, {TS} AS last_at, {str_null} AS owner_key
           FROM identity_map WHERE unified_id IS NOT NULL
         )
         SELECT unified_id,
                array_sort(array_distinct(array_agg(channel) FILTER (WHERE channel IS NOT NULL))) AS channels,
                CAST(sum(is_order) AS BIGINT) AS marketplace_count,
                CAST(sum(orders) AS BIGINT) AS order_count,
                CAST(sum(gmv_fen) AS BIGINT) AS gmv_fen,
                CAST(sum(refunded_fen) AS BIGINT) AS refunded_fen,
                min(first_at) AS first_order_at,
                max(last_at) AS last_order_at,
                bool_or(channel = 'wecom') IS TRUE AS in_private,
                substr(max(owner_key), {OWNER_AT}) AS owner_userid
         FROM facts
         GROUP BY unified_id"
    )
}

/// The `bridges` query: per bridge (card, AI call, ...), its touchpoints
/// and cost, the unified customers it touched, how many of them are
/// marketplace buyers, and how many of those are WeCom contacts now. A
/// touchpoint reaches a customer through its phone, its external_userid or
/// its order. None without touchpoints.
pub fn bridges_query(present: &super::Present) -> Option<String> {
    if !present.all(&["touchpoints", "identity_map", "customers"]) {
        return None;
    }
    let sql = "WITH reach AS (
            SELECT t.channel AS bridge, m.unified_id FROM touchpoints t
              JOIN identity_map m ON m.id_type = 'phone_hash' AND m.id_value = t.phone_hash
            UNION
            SELECT t.channel, m.unified_id FROM touchpoints t
              JOIN identity_map m ON m.id_type = 'wecom_external_userid' AND m.id_value = t.external_userid
            UNION
            SELECT t.channel, m.unified_id FROM touchpoints t
              JOIN identity_map m ON m.id_type = 'order' AND m.id_value = t.order_channel || ':' || t.order_id
         ),
         touched AS (
            SELECT r.bridge,
                   count(DISTINCT r.unified_id) AS customers_touched,
                   count(DISTINCT r.unified_id) FILTER (WHERE c.order_count > 0) AS buyers_touched,
                   count(DISTINCT r.unified_id) FILTER (WHERE c.order_count > 0 AND c.in_private) AS buyers_now_wecom_contacts
            FROM reach r JOIN customers c ON c.unified_id = r.unified_id
            WHERE r.unified_id IS NOT NULL
            GROUP BY r.bridge
         ),
         events AS (
            SELECT channel AS bridge, count(*) AS touchpoints,
                   CAST(COALESCE(sum(cost_fen), 0) AS BIGINT) AS cost_fen
            FROM touchpoints GROUP BY channel
         )
         SELECT e.bridge, e.touchpoints, e.cost_fen,
                CAST(COALESCE(t.customers_touched, 0) AS BIGINT) AS customers_touched,
                CAST(COALESCE(t.buyers_touched, 0) AS BIGINT) AS buyers_touched,
                CAST(COALESCE(t.buyers_now_wecom_contacts, 0) AS BIGINT) AS buyers_now_wecom_contacts
         FROM events e LEFT JOIN touched t ON t.bridge = e.bridge
         ORDER BY e.bridge";
    Some(sql.to_string())
}
