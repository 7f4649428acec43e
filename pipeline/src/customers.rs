//! The `customers` table: one row per unified customer.

use anyhow::Result;
use arrow::array::RecordBatch;

use crate::lake::Lake;

/// Rebuild `customers` from `identity_map`, `orders` and `contacts`; the
/// cursor `built` (application id, identity build) is committed with it.
pub async fn build_customers(lake: &Lake, built: (&str, i64)) -> Result<()> {
    let ctx = crate::lake::new_context();
    // Joins of whole tables: sort-merge joins spill where hash joins cannot.
    ctx.sql("SET datafusion.optimizer.prefer_hash_join = false")
        .await?
        .collect()
        .await?;
    lake.register(&ctx, "identity_map").await?;
    let has_orders = lake.register(&ctx, "orders").await?;
    let has_contacts = lake.register(&ctx, "contacts").await?;
    let paid = "('paid','shipped','delivered','completed')";
    let orders = if has_orders {
        format!(
            "SELECT m.unified_id, o.channel, 1 AS is_order, CASE WHEN o.status IN {paid} THEN o.amount_fen ELSE 0 END AS gmv_fen,
                    o.created_at AS order_at, CAST(NULL AS VARCHAR) AS owner_userid, CAST(NULL AS TIMESTAMP) AS contact_at
             FROM orders o JOIN identity_map m ON m.id_type = 'order' AND m.id_value = o.channel || ':' || o.order_id"
        )
    } else {
        String::new()
    };
    let contacts = if has_contacts {
        "SELECT m.unified_id, c.channel, 0, 0, CAST(NULL AS TIMESTAMP), c.owner_userid, c.created_at
         FROM contacts c JOIN identity_map m
           ON m.id_type = CASE WHEN c.channel = 'wecom' THEN 'wecom_external_userid' ELSE c.channel || '_member' END
          AND m.id_value = c.contact_id"
            .to_string()
    } else {
        String::new()
    };
    let mut facts = [orders, contacts]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    if facts.is_empty() {
        // Only touchpoints so far: customers without orders or contacts.
        facts = "SELECT CAST(NULL AS VARCHAR) AS unified_id, CAST(NULL AS VARCHAR) AS channel, 0 AS is_order, 0 AS gmv_fen,
                        CAST(NULL AS TIMESTAMP) AS order_at, CAST(NULL AS VARCHAR) AS owner_userid, CAST(NULL AS TIMESTAMP) AS contact_at
                 WHERE false"
            .into();
    }
    let sql = format!(
        "WITH facts AS ({facts}),
         ids AS (SELECT DISTINCT unified_id FROM identity_map WHERE unified_id IS NOT NULL)
         SELECT ids.unified_id,
                array_sort(array_agg(DISTINCT f.channel) FILTER (WHERE f.channel IS NOT NULL)) AS channels,
                CAST(count(DISTINCT f.channel) FILTER (WHERE f.is_order = 1) AS BIGINT) AS marketplace_count,
                CAST(COALESCE(sum(f.is_order), 0) AS BIGINT) AS order_count,
                CAST(COALESCE(sum(f.gmv_fen), 0) AS BIGINT) AS gmv_fen,
                min(f.order_at) AS first_order_at,
                max(f.order_at) AS last_order_at,
                bool_or(f.channel = 'wecom') IS TRUE AS in_private,
                last_value(f.owner_userid ORDER BY f.contact_at NULLS FIRST) FILTER (WHERE f.owner_userid IS NOT NULL) AS owner_userid
         FROM ids LEFT JOIN facts f ON f.unified_id = ids.unified_id
         GROUP BY ids.unified_id"
    );
    let df = ctx.sql(&sql).await?;
    let schema = crate::lake::plain_types(df.schema().as_arrow());
    let exprs: Vec<datafusion::prelude::Expr> = schema
        .fields()
        .iter()
        .map(|f| {
            datafusion::logical_expr::cast(
                datafusion::prelude::Expr::Column(datafusion::common::Column::from_name(f.name())),
                f.data_type().clone(),
            )
            .alias(f.name())
        })
        .collect();
    let df = df.select(exprs)?;
    lake.write_plan(
        "customers",
        &schema,
        &ctx,
        df,
        crate::lake::Commit {
            replace_schema: true,
            txns: vec![(built.0.to_string(), built.1)],
            ..Default::default()
        },
    )
    .await?;
    build_bridges(lake).await
}

/// Rebuild `bridges`: per bridge (card, AI call, ...), its touchpoints and
/// cost, the unified customers it touched, how many of them are marketplace
/// buyers, and how many of those are WeCom contacts now. A touchpoint
/// reaches a customer through its phone, its external_userid or its order.
pub async fn build_bridges(lake: &Lake) -> Result<()> {
    let ctx = crate::lake::new_context();
    if !lake.register(&ctx, "touchpoints").await? {
        return Ok(());
    }
    lake.register(&ctx, "identity_map").await?;
    lake.register(&ctx, "customers").await?;
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
    let df = ctx.sql(sql).await?;
    let schema = crate::lake::plain_types(df.schema().as_arrow());
    let batches = df
        .collect()
        .await?
        .iter()
        .map(|b| crate::lake::conform(b, &schema))
        .collect::<Result<Vec<RecordBatch>>>()?;
    lake.overwrite("bridges", &schema, batches, None).await?;
    Ok(())
}
