-- Spend deciles: customers ranked by paid spend, ten equal groups, each
-- group's size and spend (the top decile first).
WITH spend AS (
  SELECT m.unified_id, sum(o.amount_fen) AS gmv_fen
  FROM orders o
  JOIN identity_map m
    ON m.id_type = 'order' AND m.id_value = o.channel || ':' || o.order_id
  WHERE o.status IN ('paid', 'shipped', 'delivered', 'completed')
  GROUP BY m.unified_id
),
ranked AS (
  SELECT gmv_fen, ntile(10) OVER (ORDER BY gmv_fen DESC, unified_id) AS decile
  FROM spend
)
SELECT decile, count(*) AS customers, sum(gmv_fen) AS gmv_fen
FROM ranked
GROUP BY decile
ORDER BY decile
