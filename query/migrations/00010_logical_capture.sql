-- Logical decoding (CHANGE_CAPTURE=logical) needs the old values of an UPDATE's or a DELETE's
-- key columns, which PostgreSQL sends only for the columns of a table's replica identity: where
-- the identity lacks them, warmcache sets it to FULL, and records here what it was, so that
-- warmer uninstall puts it back.

-- +goose Up
CREATE TABLE IF NOT EXISTS warmcache_replica_identity (
    tablename text PRIMARY KEY,
    previous  "char" NOT NULL
);

-- +goose Down
DROP TABLE IF EXISTS warmcache_replica_identity;
