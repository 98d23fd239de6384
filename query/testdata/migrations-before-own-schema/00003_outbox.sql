-- The transactional outbox. Every write to orders or customers, by the api or by any other
-- application, records in the same transaction which customers' aggregates changed, so that no
-- invalidation is lost: not when the writer dies right after its commit, not when Redis is down.
-- The warmer's relay drains the rows into Redis events. Statement-level triggers with transition
-- tables write one row per customer per statement, so a bulk load does not write one per order;
-- a customerid of NULL (an order without a customer) still changes the totals.

-- +goose Up
CREATE TABLE IF NOT EXISTS warmcache_outbox (
    id         bigserial   PRIMARY KEY,
    tablename  text        NOT NULL,
    customerid integer,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION warmcache_record_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO warmcache_outbox (tablename, customerid)
        SELECT DISTINCT TG_TABLE_NAME, customerid FROM new_rows;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO warmcache_outbox (tablename, customerid)
        SELECT DISTINCT TG_TABLE_NAME, customerid FROM old_rows;
    END IF;
    PERFORM pg_notify('warmcache_outbox', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE OR REPLACE TRIGGER warmcache_orders_inserted AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION warmcache_record_change();
CREATE OR REPLACE TRIGGER warmcache_orders_updated AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION warmcache_record_change();
CREATE OR REPLACE TRIGGER warmcache_orders_deleted AFTER DELETE ON orders
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION warmcache_record_change();
CREATE OR REPLACE TRIGGER warmcache_customers_inserted AFTER INSERT ON customers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION warmcache_record_change();
CREATE OR REPLACE TRIGGER warmcache_customers_updated AFTER UPDATE ON customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION warmcache_record_change();
CREATE OR REPLACE TRIGGER warmcache_customers_deleted AFTER DELETE ON customers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION warmcache_record_change();

-- +goose Down
DROP TRIGGER IF EXISTS warmcache_orders_inserted ON orders;
DROP TRIGGER IF EXISTS warmcache_orders_updated ON orders;
DROP TRIGGER IF EXISTS warmcache_orders_deleted ON orders;
DROP TRIGGER IF EXISTS warmcache_customers_inserted ON customers;
DROP TRIGGER IF EXISTS warmcache_customers_updated ON customers;
DROP TRIGGER IF EXISTS warmcache_customers_deleted ON customers;
DROP FUNCTION IF EXISTS warmcache_record_change();
DROP TABLE IF EXISTS warmcache_outbox;
