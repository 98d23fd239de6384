-- The transactional outbox. Every write to a table some job depends on, by the api or by any other
-- application, records in the same transaction which keys of the jobs it changed, so that no
-- invalidation is lost: not when the writer dies right after its commit, not when Redis is down.
-- The warmer's relay drains the rows into Redis events. (Until 0.2 this migration also installed
-- triggers on dellstore2's orders and customers, which migration 5 replaced.)

-- +goose Up
CREATE TABLE IF NOT EXISTS warmcache_outbox (
    id         bigserial   PRIMARY KEY,
    tablename  text        NOT NULL,
    customerid integer,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE IF EXISTS warmcache_outbox;
