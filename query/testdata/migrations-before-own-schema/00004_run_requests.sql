-- A run asked for outside the schedule (POST /v1/jobs/{job}/run) is a mark on the job's claim
-- row: requests made before a warmer takes the mark coalesce into one run, and a request outlives
-- a warmer that is down or busy. The warmers hear of it through pg_notify and take it in turn.

-- +goose Up
ALTER TABLE warmcache_job_claims ADD COLUMN IF NOT EXISTS requested_at timestamptz;

-- +goose Down
ALTER TABLE warmcache_job_claims DROP COLUMN IF EXISTS requested_at;
