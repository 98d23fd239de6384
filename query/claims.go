package query

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// A job's row in warmcache_job_claims says when its next scheduled run is due (claims), whether a
// run was requested (POST /v1/jobs/{job}/run), and which warmer runs it now, if one does. Each
// of these is changed only by a warmer holding the job's advisory lock (DB.Lock), but for
// requests, which the api makes.

// Claim claims the run of job (in namespace) scheduled for about now, for owner, who holds the
// job's lock: it succeeds unless another warmer already claimed a run due later than now +
// tolerance, and then moves the job's next due time to next and marks the run owner's, in flight
// until Finished. A pending request is met by this run, and so is a run left in flight by a
// warmer that died (the lock being owner's, no live warmer runs the job): that warmer's name is
// returned as tookOver. Replicas fire the same schedule within milliseconds of each other; the
// first to lock and claim runs it, the others skip.
func (v Runs) Claim(ctx context.Context, namespace, job, owner string, now, next time.Time, tolerance time.Duration) (claimed bool, tookOver string, err error) {
	db := v.db
	err = db.pool.QueryRow(ctx, `
		WITH prev AS (SELECT running_by FROM warmcache_job_claims WHERE namespace = $1 AND job = $2)
		INSERT INTO warmcache_job_claims AS c (namespace, job, next_due, runs, claimed_by, claimed_at, running_by, running_since)
		VALUES ($1, $2, $4, 1, $3, $5, $3, $5)
		ON CONFLICT (namespace, job) DO UPDATE
		   SET next_due = $4, runs = c.runs + 1, claimed_by = $3, claimed_at = $5,
		       running_by = $3, running_since = $5, requested_at = NULL
		 WHERE c.next_due <= $5::timestamptz + $6::interval
		RETURNING COALESCE((SELECT running_by FROM prev), '')`, namespace, job, owner, next, now, tolerance).Scan(&tookOver)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, "", nil
	}
	return err == nil, tookOver, translate(err)
}

// Running marks a run of job by owner, who holds the job's lock, in flight outside the schedule
// (warmer --once): should owner die before Finished, a warmer takes the run over.
func (v Runs) Running(ctx context.Context, namespace, job, owner string) error {
	db := v.db
	_, err := db.pool.Exec(ctx, `
		INSERT INTO warmcache_job_claims AS c (namespace, job, next_due, runs, claimed_by, claimed_at, running_by, running_since)
		VALUES ($1, $2, '-infinity', 0, '', now(), $3, now())
		ON CONFLICT (namespace, job) DO UPDATE SET running_by = $3, running_since = now()`, namespace, job, owner)
	return translate(err)
}

// Finished ends the mark of owner's run of job: the run ended, well or not, and nobody need take
// it over.
func (v Runs) Finished(ctx context.Context, namespace, job, owner string) error {
	db := v.db
	_, err := db.pool.Exec(ctx, `UPDATE warmcache_job_claims SET running_by = NULL, running_since = NULL
		WHERE namespace = $1 AND job = $2 AND running_by = $3`, namespace, job, owner)
	return translate(err)
}

// RequestRun asks the warmers of namespace to run job as soon as they can. Requests coalesce:
// a job has at most one pending request, however many are made before a warmer takes it.
func (v Runs) RequestRun(ctx context.Context, namespace, job string) error {
	db := v.db
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
func (v Runs) RequestedRuns(ctx context.Context, namespace string) ([]string, error) {
	db := v.db
	rows, _ := db.pool.Query(ctx, `SELECT job FROM warmcache_job_claims
		WHERE namespace = $1 AND requested_at IS NOT NULL ORDER BY requested_at`, namespace)
	jobs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return jobs, translate(err)
}

// OwedRun is a run a job is owed: one requested, or one a warmer marked in flight. The latter is
// owed only if its lock is free: then the warmer died, or was stopped, before the run ended.
type OwedRun struct {
	Job       string
	Requested bool
	// RunningBy is the warmer that marked a run in flight, empty for none.
	RunningBy string
	// Since is when the run was requested, or marked in flight.
	Since time.Time
}

// OwedRuns returns the runs the jobs of namespace are owed, oldest first.
func (v Runs) OwedRuns(ctx context.Context, namespace string) ([]OwedRun, error) {
	db := v.db
	rows, _ := db.pool.Query(ctx, `
		SELECT job, requested_at IS NOT NULL, COALESCE(running_by, ''), COALESCE(running_since, requested_at)
		FROM warmcache_job_claims
		WHERE namespace = $1 AND (requested_at IS NOT NULL OR running_by IS NOT NULL)
		ORDER BY COALESCE(running_since, requested_at)`, namespace)
	runs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OwedRun, error) {
		var o OwedRun
		err := r.Scan(&o.Job, &o.Requested, &o.RunningBy, &o.Since)
		return o, err
	})
	return runs, translate(err)
}

// TakeRun takes the run job is owed for owner, who holds the job's lock, and marks it owner's,
// in flight until Finished: a request, or a run another warmer marked and, its lock being free,
// never finished. Of several warmers asking at once, one gets it: ok is false for the others, and
// when nothing is owed any more. It returns what it took.
func (v Runs) TakeRun(ctx context.Context, namespace, job, owner string) (took OwedRun, ok bool, err error) {
	db := v.db
	took.Job = job
	err = db.pool.QueryRow(ctx, `
		WITH owed AS (
			SELECT requested_at, running_by, running_since FROM warmcache_job_claims
			WHERE namespace = $1 AND job = $2 AND (requested_at IS NOT NULL OR running_by IS NOT NULL)
			FOR UPDATE)
		UPDATE warmcache_job_claims c SET requested_at = NULL, running_by = $3, running_since = now()
		FROM owed WHERE c.namespace = $1 AND c.job = $2
		RETURNING owed.requested_at IS NOT NULL, COALESCE(owed.running_by, ''),
		          COALESCE(owed.running_since, owed.requested_at)`,
		namespace, job, owner).Scan(&took.Requested, &took.RunningBy, &took.Since)
	if errors.Is(err, pgx.ErrNoRows) {
		return took, false, nil
	}
	return took, err == nil, translate(err)
}
