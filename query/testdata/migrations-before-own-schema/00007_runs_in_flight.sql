-- A run in flight is marked on its job's claim row, from the moment a warmer claims or takes it
-- (holding the job's advisory lock) until it ends. A warmer that dies mid-run leaves the mark,
-- and its lock goes with its connection: a mark whose lock is free is a run that never ended, and
-- any warmer takes it over at once instead of leaving the job's keys half old, half new until its
-- next scheduled run.

-- +goose Up
ALTER TABLE warmcache_job_claims ADD COLUMN IF NOT EXISTS running_by text;
ALTER TABLE warmcache_job_claims ADD COLUMN IF NOT EXISTS running_since timestamptz;

-- +goose Down
ALTER TABLE warmcache_job_claims DROP COLUMN IF EXISTS running_since;
ALTER TABLE warmcache_job_claims DROP COLUMN IF EXISTS running_by;
