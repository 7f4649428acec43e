-- Paid orders and spend per marketplace and month.
SELECT channel,
       CAST(date_trunc('month', paid_at) AS DATE) AS month,
       count(*) AS paid_orders,
       sum(amount_fen) AS gmv_fen
FROM orders
WHERE status IN ('paid', 'shipped', 'delivered', 'completed')
GROUP BY channel, CAST(date_trunc('month', paid_at) AS DATE)
ORDER BY channel, month
