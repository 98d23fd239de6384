package warm

import (
	"context"
	"errors"
	"fmt"

	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// Check checks the jobs against the database before anything runs: every user's SQL parses and
// plans, and every table and column a job depends on, counts or sums exists. Every problem is
// an error naming the job and the setting, joined, one a job; PostgreSQL being down is
// query.ErrUnavailable, and then nothing was checked.
func Check(ctx context.Context, db *query.DB, list []jobs.Job) error {
	var errs []error
	for _, job := range list {
		err := checkJob(ctx, db, job)
		if errors.Is(err, query.ErrUnavailable) {
			return err
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkJob checks one job against the database.
func checkJob(ctx context.Context, db *query.DB, job jobs.Job) error {
	if job.Incremental != nil {
		if err := db.Schema().CheckIncremental(ctx, *job.Incremental); err != nil {
			return checkError(job, "incremental", err)
		}
	}
	if err := db.Check(ctx, job.Aggregate); err != nil {
		return checkError(job, "sql", err)
	}
	for _, d := range job.DependsOn {
		cols, err := db.Schema().Columns(ctx, d.Table)
		switch {
		case errors.Is(err, query.ErrNotFound):
			return fmt.Errorf("job %s: depends_on: no table %s", job.Name, d.Table)
		case err != nil:
			return checkError(job, "depends_on", err)
		}
		if _, ok := cols[d.Column]; d.Column != "" && !ok {
			return fmt.Errorf("job %s: depends_on: table %s has no column %s", job.Name, d.Table, d.Column)
		}
	}
	return nil
}

func checkError(job jobs.Job, setting string, err error) error {
	if errors.Is(err, query.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("job %s: %s: %w", job.Name, setting, err)
}

// Install readies the database for the jobs (warmer migrate, or the warmer at start): the changes
// of every table they depend on are recorded in the outbox with the columns that name their keys,
// and the figures of incremental jobs are maintained. What warmcache installed for tables and
// jobs no longer declared is removed; nothing else is touched. It is idempotent.
func Install(ctx context.Context, db *query.DB, list []jobs.Job) error {
	if err := db.Schema().InstallDependencies(ctx, jobs.Tables(list)); err != nil {
		return fmt.Errorf("record the changes of the jobs' tables: %w", err)
	}
	var incremental []string
	for _, job := range list {
		if job.Incremental == nil {
			continue
		}
		if err := db.Schema().InstallIncremental(ctx, job.Name, *job.Incremental); err != nil {
			return fmt.Errorf("job %s: incremental: %w", job.Name, err)
		}
		incremental = append(incremental, job.Name)
	}
	return db.Schema().UninstallIncrementalExcept(ctx, incremental)
}
