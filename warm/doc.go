// Package warm is the runtime that keeps the jobs' values in Redis: the scheduler that fires each
// job on its schedule on one warmer replica at a time (claims and advisory locks), the runner
// that streams a job's rows from PostgreSQL into Redis, the computation of single values and
// batches of keys (Compute, ComputeMany) that read-through and refreshes share, run requests,
// and recovery from what Redis does not say (a lost or rolled-back data set). What a job is
// belongs to package jobs; the SQL to query; the keys and bytes in Redis to cache.
package warm
