-- Indexes the aggregates rely on. The covering index lets the per-customer aggregates read
-- orders in customerid order from the index alone (an index-only scan), so their GROUP BY
-- streams rows as it goes instead of sorting or hashing 10M orders first, and the single-key
-- lookups touch only one customer's index entries.

-- +goose Up
CREATE INDEX IF NOT EXISTS ix_orders_customer_totals
    ON orders (customerid) INCLUDE (totalamount, orderdate);

-- +goose Down
DROP INDEX IF EXISTS ix_orders_customer_totals;
