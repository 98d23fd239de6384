-- A change whose event Redis cannot take, because it is full (maxmemory with noeviction), is not
-- lost: it stays in the outbox until Redis has room. Meanwhile the relay deletes the values it
-- touches (Redis deletes when full), so that readers compute them from PostgreSQL rather than
-- serve values known to be stale, and marks the change dropped so as to do it once.

-- +goose Up
ALTER TABLE warmcache_outbox ADD COLUMN IF NOT EXISTS dropped boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE warmcache_outbox DROP COLUMN IF EXISTS dropped;
