-- One row per (namespace, job): when the job is next due. A warmer replica claims a scheduled run
-- by moving next_due forward; the others, finding it in the future, skip that run. Together with
-- the per-job advisory lock held during a run, each scheduled run happens once across replicas.

-- +goose Up
CREATE TABLE IF NOT EXISTS warmcache_job_claims (
    namespace  text        NOT NULL,
    job        text        NOT NULL,
    next_due   timestamptz NOT NULL,
    runs       bigint      NOT NULL,
    claimed_by text        NOT NULL,
    claimed_at timestamptz NOT NULL,
    PRIMARY KEY (namespace, job)
);

-- +goose Down
DROP TABLE IF EXISTS warmcache_job_claims;
