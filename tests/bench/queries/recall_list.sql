-- Recall list: customers whose last paid order was 90 to 180 days before
-- the as-of date, with their paid orders and spend (counted, so that two
-- engines' answers can be compared row for row).
WITH last_paid AS (
  SELECT m.unified_id,
         max(o.paid_at) AS last_paid_at,
         count(*) AS paid_orders,
         sum(o.amount_fen) AS gmv_fen
  FROM orders o
  JOIN identity_map m
    ON m.id_type = 'order' AND m.id_value = o.channel || ':' || o.order_id
  WHERE o.status IN ('paid', 'shipped', 'delivered', 'completed')
  GROUP BY m.unified_id
)
SELECT count(*) AS customers,
       sum(paid_orders) AS paid_orders,
       sum(gmv_fen) AS gmv_fen
FROM last_paid
WHERE last_paid_at >= TIMESTAMP '2026-06-04 00:00:00'
  AND last_paid_at < TIMESTAMP '2026-09-02 00:00:00'
