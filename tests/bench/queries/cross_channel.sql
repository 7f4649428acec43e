-- Customers by how many marketplaces they bought on, with their spend
-- (the customers table against the orders it summarizes).
SELECT c.marketplace_count,
       count(*) AS customers,
       sum(c.gmv_fen) AS gmv_fen,
       sum(c.order_count) AS orders
FROM customers c
GROUP BY c.marketplace_count
ORDER BY c.marketplace_count
