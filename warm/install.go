package warm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// Check checks the jobs against the database before anything runs: every user's SQL parses and
// plans, and every table and column an incremental job counts or sums exists (Resolve checks
// those depends_on names). Every problem is
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
	return nil
}

func checkError(job jobs.Job, setting string, err error) error {
	if errors.Is(err, query.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("job %s: %s: %w", job.Name, setting, err)
}

// Resolve returns the jobs with what they depend on found (Dependencies), every table by its
// qualified name (schema.table), as changes name them. A table that does not exist, or a column
// depends_on names that it lacks, is an error naming the job; PostgreSQL down is
// query.ErrUnavailable.
func Resolve(ctx context.Context, db *query.DB, list []jobs.Job) ([]jobs.Job, error) {
	var errs []error
	out := make([]jobs.Job, 0, len(list))
	for _, job := range list {
		deps, _, err := Dependencies(ctx, db, job)
		switch {
		case errors.Is(err, query.ErrUnavailable):
			return nil, err
		case err != nil:
			errs = append(errs, err)
			continue
		}
		job.DependsOn = deps
		out = append(out, job)
	}
	return out, errors.Join(errs...)
}

// Dependencies returns what job depends on: for a job of the user's own SQL, every table its
// statement reads as PostgreSQL plans it (query.DB.Dependencies), with what depends_on adds —
// unless depends_on is written empty, which leaves the job to its schedule; for the others, what
// they declare. Tables come by qualified name. It returns too the indexes the job's key lookups
// would need.
func Dependencies(ctx context.Context, db *query.DB, job jobs.Job) ([]jobs.Dependency, []string, error) {
	var deps []jobs.Dependency
	if len(job.DependsOn) > 0 {
		// The tables it declares, found in one query.
		qualified, err := db.Schema().Resolve(ctx, jobs.TableNames([]jobs.Job{job}))
		if err != nil {
			return nil, nil, checkError(job, "depends_on", err)
		}
		deps = jobs.Resolve([]jobs.Job{job}, qualified)[0].DependsOn
		for _, d := range deps {
			for _, k := range d.Keys {
				if err := hasColumn(ctx, db, d.Table, k.Column); err != nil {
					return nil, nil, checkError(job, "depends_on", err)
				}
			}
		}
	}
	if job.Incremental != nil || job.DependsOnSet && len(job.DependsOn) == 0 {
		return deps, nil, nil
	}
	found, err := db.Dependencies(ctx, job.Aggregate)
	if err != nil {
		return nil, nil, checkError(job, "sql", err)
	}
	return append(found.Dependencies, deps...), found.Indexes, nil
}

// hasColumn checks that table, by qualified name, has column.
func hasColumn(ctx context.Context, db *query.DB, table, column string) error {
	cols, err := db.Schema().Columns(ctx, query.QuoteTable(table))
	if err != nil {
		return err
	}
	if _, ok := cols[column]; !ok {
		return fmt.Errorf("table %s has no column %s", table, column)
	}
	return nil
}

// Install readies the database for the jobs (warmer migrate, or the warmer at start): the changes
// of every table they depend on are captured with the columns that name their keys, as capture
// says (query.CaptureTriggers: triggers record them in the outbox; query.CaptureLogical: a
// publication and a replication slot), and the figures of incremental jobs are maintained. What
// warmcache installed for tables and jobs no longer declared is removed, and so is the other way
// of capturing, without losing a change: the slot is created before the triggers go, and the
// changes the slot holds move to the outbox once the triggers are back. Nothing else is
// touched. It is idempotent.
func Install(ctx context.Context, db *query.DB, list []jobs.Job, capture string) error {
	tables := jobs.Tables(list)
	if capture == query.CaptureLogical {
		if _, err := db.Schema().InstallLogical(ctx, tables); err != nil {
			return fmt.Errorf("capture the changes of the jobs' tables: %w", err)
		}
		tables = nil // no trigger
	}
	if err := db.Schema().InstallDependencies(ctx, tables); err != nil {
		return fmt.Errorf("record the changes of the jobs' tables: %w", err)
	}
	if capture != query.CaptureLogical {
		if _, err := db.Schema().MoveSlotToOutbox(ctx, tables); err != nil {
			return fmt.Errorf("move the changes of the replication slot to the outbox: %w", err)
		}
		if _, err := db.Schema().UninstallLogical(ctx); err != nil {
			return fmt.Errorf("remove logical decoding: %w", err)
		}
	}
	if slices.ContainsFunc(list, func(j jobs.Job) bool { return j.Builtin }) {
		if err := db.Schema().InstallBuiltins(ctx); err != nil {
			return err
		}
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

// Plan says, a line each, what Install would create or drop for list, without changing anything
// (warmer migrate --dry-run): the change capture of each table (created, replaced for other
// columns, or dropped), the built-in jobs' functions, the figures of incremental jobs.
func Plan(ctx context.Context, db *query.DB, list []jobs.Job, capture string) ([]string, error) {
	var plan []string
	installed, err := db.Schema().InstalledDependencies(ctx)
	if err != nil {
		return nil, err
	}
	wanted := jobs.Tables(list)
	logical, err := db.Schema().PlanLogical(ctx, wanted)
	if err != nil {
		return nil, err
	}
	if capture == query.CaptureLogical {
		verb := "set"
		if logical.CreatePublication {
			verb = "create"
		}
		for _, t := range logical.IdentityFull {
			plan = append(plan, "set the replica identity of "+t+" to FULL: its changes must carry old values its identity lacks")
		}
		plan = append(plan, fmt.Sprintf("%s the publication %s of %s", verb, logical.Logical.Publication,
			strings.Join(slices.Sorted(maps.Keys(wanted)), ", ")))
		if logical.CreateSlot {
			plan = append(plan, "create the logical replication slot "+logical.Logical.Slot+" (pgoutput)")
		}
		wanted = nil
	} else if !logical.CreateSlot {
		plan = append(plan, "move the changes the replication slot "+logical.Logical.Slot+" holds to the outbox, then drop it and the publication "+logical.Logical.Publication)
	}
	for _, table := range slices.Sorted(maps.Keys(wanted)) {
		cols, verb := wanted[table], "create"
		if have, ok := installed[table]; ok {
			if slices.Equal(have, cols) {
				continue
			}
			verb = "replace"
		}
		plan = append(plan, fmt.Sprintf("%s the change-capture triggers on %s, recording %s", verb, table, columnsText(cols)))
	}
	for _, table := range slices.Sorted(maps.Keys(installed)) {
		if _, ok := wanted[table]; !ok {
			plan = append(plan, fmt.Sprintf("drop warmcache's triggers on %s: no job depends on it", table))
		}
	}
	if slices.ContainsFunc(list, func(j jobs.Job) bool { return j.Builtin }) {
		plan = append(plan, "create or replace the built-in totals' functions (warmcache_reconcile_totals and others)")
	}
	summaries, err := db.Schema().SummaryTables(ctx)
	if err != nil {
		return nil, err
	}
	var kept []string
	for _, job := range list {
		if job.Incremental == nil {
			continue
		}
		t := query.SummaryTable(job.Name)
		kept = append(kept, t)
		ok, err := db.Schema().IncrementalInstalled(ctx, job.Name, *job.Incremental)
		if err != nil {
			return nil, err
		}
		if !ok {
			plan = append(plan, fmt.Sprintf("create the table %s of job %s's figures, and its triggers on %s", t, job.Name, job.Incremental.Table))
		}
	}
	for _, t := range summaries {
		if !slices.Contains(kept, t) {
			plan = append(plan, fmt.Sprintf("drop the table %s of an incremental job no longer declared, and its triggers", t))
		}
	}
	return plan, nil
}

func columnsText(cols []string) string {
	if len(cols) == 0 {
		return "no column (every change touches whole jobs)"
	}
	return strings.Join(cols, ", ")
}
