package query

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Claim claims the run of job (in namespace) scheduled for about now: it succeeds unless another
// replica already claimed a run due later than now + tolerance, and moves the job's next due time
// to next. Replicas fire the same schedule within milliseconds of each other; the first claims,
// the others skip.
func (db *DB) Claim(ctx context.Context, namespace, job, owner string, now, next time.Time, tolerance time.Duration) (bool, error) {
	var runs int64
	err := db.pool.QueryRow(ctx, `
		INSERT INTO warmcache_job_claims AS c (namespace, job, next_due, runs, claimed_by, claimed_at)
		VALUES ($1, $2, $4, 1, $3, $5)
		ON CONFLICT (namespace, job) DO UPDATE
		   SET next_due = $4, runs = c.runs + 1, claimed_by = $3, claimed_at = $5
		 WHERE c.next_due <= $5::timestamptz + $6::interval
		RETURNING runs`, namespace, job, owner, next, now, tolerance).Scan(&runs)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, translate(err)
}

// Lock takes the advisory lock of job in namespace, which the holder keeps while it runs the job,
// so a job never runs twice at once across replicas. With wait unset it returns at once, ok false
// when another session holds the lock. unlock releases it; the lock also goes when the connection
// does, so a crashed replica never keeps it.
func (db *DB) Lock(ctx context.Context, namespace, job string, wait bool) (unlock func(), ok bool, err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, false, translate(err)
	}
	name := "warmcache:" + namespace + ":" + job
	if wait {
		_, err = conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", name)
		ok = err == nil
	} else {
		err = conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", name).Scan(&ok)
	}
	if err != nil || !ok {
		conn.Release()
		return nil, false, translate(err)
	}
	return func() {
		// A failed unlock means a broken connection; destroying it releases the lock.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1))", name); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck // already failing
		}
		conn.Release()
	}, true, nil
}

// RequestRun asks the warmers of namespace to run job as soon as they can. Requests coalesce:
// a job has at most one pending request, however many are made before a warmer takes it.
func (db *DB) RequestRun(ctx context.Context, namespace, job string) error {
	return translate(pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// A job that never ran has no claim row yet: one due at once is as good as none.
		if _, err := tx.Exec(ctx, `
			INSERT INTO warmcache_job_claims AS c (namespace, job, next_due, runs, claimed_by, claimed_at, requested_at)
			VALUES ($1, $2, '-infinity', 0, '', now(), now())
			ON CONFLICT (namespace, job) DO UPDATE SET requested_at = COALESCE(c.requested_at, now())`,
			namespace, job); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", runRequestChannel, namespace)
		return err
	}))
}

// RequestedRuns returns the jobs of namespace with a run requested, oldest request first.
func (db *DB) RequestedRuns(ctx context.Context, namespace string) ([]string, error) {
	rows, _ := db.pool.Query(ctx, `SELECT job FROM warmcache_job_claims
		WHERE namespace = $1 AND requested_at IS NOT NULL ORDER BY requested_at`, namespace)
	jobs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return jobs, translate(err)
}

// TakeRunRequest takes the pending run request of job, reporting whether there was one: of
// several warmers asking at once, one gets it.
func (db *DB) TakeRunRequest(ctx context.Context, namespace, job string) (bool, error) {
	tag, err := db.pool.Exec(ctx, `UPDATE warmcache_job_claims SET requested_at = NULL
		WHERE namespace = $1 AND job = $2 AND requested_at IS NOT NULL`, namespace, job)
	return tag.RowsAffected() == 1, translate(err)
}
