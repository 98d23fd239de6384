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
