package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

// check is warmer check. Start-up has read the jobs file and refused it with every error at
// once, each with its line and a fix; here it is valid, and check says what each job is: its
// schedule, its ttl (and where it comes from), its keys and what it declares it depends on. With
// DATABASE_URL set and PostgreSQL answering, it also checks every job against the database
// (warm.Check: its SQL plans, its tables and columns exist), says whether the built-in jobs are
// on, and for each job what PostgreSQL finds it reads, how the changes of each table refresh it,
// the plan's warnings and the indexes its key lookups would need. It writes nothing anywhere.
func check(ctx context.Context, cfg cli.WarmerConfig, _ *slog.Logger) error {
	out, list := cfg.Command.Out, cfg.Jobs()
	if cfg.DatabaseURL == "" {
		if err := describeFile(out, list); err != nil {
			return err
		}
		fmt.Fprintln(out, "\nDATABASE_URL is not set: the jobs file is valid; its SQL was not checked against a database.")
		return nil
	}
	db, err := query.Open(ctx, cfg.DatabaseURL, query.Options{MaxConns: 2, Schema: cfg.Schema, ConnectTimeout: 3 * time.Second,
		Timeout: 3 * time.Second})
	if err != nil {
		return cli.Errorf("DATABASE_URL", "%w", err)
	}
	defer db.Close()
	unavailable := func(err error) error {
		if err := describeFile(out, list); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nPostgreSQL could not be used (%v): the jobs file is valid; its SQL was not checked against the database.\n",
			cli.Redact(err.Error()))
		return nil
	}
	if err := db.Ping(ctx); err != nil {
		return unavailable(err)
	}
	// The database says whether the built-in jobs are on: the file is described as it runs there.
	if list, err = cfg.OpenJobs(ctx, db, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	switch err := warm.Check(ctx, db, list); {
	case errors.Is(err, query.ErrUnavailable):
		return unavailable(err)
	case err != nil:
		return cli.Errorf(cfg.JobsSetting(), "%w", err)
	}
	if err := describeFile(out, list); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nChecked against the database: every job's SQL plans, and the tables and columns it depends on exist.")
	fmt.Fprintf(out, "Built-in jobs: %s.\n", builtinsOf(list))
	if err := describeCapture(ctx, out, db, cfg.ChangeCapture, list); err != nil {
		return err
	}
	var errs []error
	for _, j := range list {
		if err := describe(ctx, out, db, j); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cli.Errorf(cfg.JobsSetting(), "%w", err)
	}
	return nil
}

// describeFile writes the table of the jobs as the file declares them: schedule, ttl (and where
// it comes from), keys and declared dependencies.
func describeFile(out io.Writer, list []jobs.Job) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "job\tschedule\tttl\tkeys\tdepends on")
	for _, j := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", j.Name, scheduleOf(j), ttlOf(j), keysOf(j), dependenciesOf(j))
	}
	return w.Flush()
}

// describeCapture says how changes are captured, and with logical decoding what warmer migrate
// sets up for it: the publication, the slot, and the tables whose replica identity becomes FULL.
func describeCapture(ctx context.Context, out io.Writer, db *query.DB, capture string, list []jobs.Job) error {
	if capture != query.CaptureLogical {
		fmt.Fprintln(out, "Change capture: triggers (CHANGE_CAPTURE=triggers): each table below carries warmcache's triggers, which record its changes in the outbox.")
		return nil
	}
	resolved, err := warm.Resolve(ctx, db, list)
	if err != nil {
		return err
	}
	plan, err := db.Schema().PlanLogical(ctx, jobs.Tables(resolved))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Change capture: logical decoding (CHANGE_CAPTURE=logical): the publication %s of the tables below, read through the replication slot %s; no trigger.\n",
		plan.Logical.Publication, plan.Logical.Slot)
	for _, t := range plan.IdentityFull {
		fmt.Fprintf(out, "  REPLICA IDENTITY FULL on %s: its updates and deletes must carry the old values of columns its identity lacks (warmer migrate sets it; warmer uninstall puts it back)\n", t)
	}
	return nil
}

// builtinsOf says whether the built-in jobs are among list.
func builtinsOf(list []jobs.Job) string {
	if slices.ContainsFunc(list, func(j jobs.Job) bool { return j.Builtin }) {
		return "on (the database has their tables, or builtins: true)"
	}
	return "off (builtins: false, or the database lacks their tables): their routes answer 404"
}

// describe writes what job depends on in db's database, table by table, with the strategy its
// changes are refreshed by, the lookup's plan warning and the indexes to create.
func describe(ctx context.Context, out io.Writer, db *query.DB, j jobs.Job) error {
	deps, indexes, err := warm.Dependencies(ctx, db, j)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s (%s):\n", j.Name, keysOf(j))
	if len(deps) == 0 {
		fmt.Fprintln(out, "  depends on nothing: its schedule alone refreshes it")
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, d := range deps {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", d.Table, strings.Join(d.Columns(), ", "), strategyOf(j, d))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if pushed, _, err := db.LookupPushedDown(ctx, j.Aggregate); err == nil && !pushed && j.Keyed() && !j.Builtin {
		fmt.Fprintln(out, "  warning: PostgreSQL cannot restrict the statement to the keys looked up: each read-through and refresh of a key computes it whole")
	}
	for _, ix := range indexes {
		fmt.Fprintf(out, "  advice: %s;\n", ix)
	}
	return nil
}

// strategyOf says how a change of d's table refreshes j.
func strategyOf(j jobs.Job, d jobs.Dependency) string {
	switch d.Strategy(j.KeyColumns()) {
	case query.ExactKeys:
		return "exact keys: a changed row names the keys it touches"
	case query.JoinedKeys:
		var via []string
		for _, k := range d.Keys {
			if k.Via != nil {
				via = append(via, fmt.Sprintf("%s of %s where %s = the row's %s", k.Via.KeyColumn, k.Via.Table, k.Via.Column, k.Via.From))
			}
		}
		return "joined keys: " + strings.Join(via, "; ")
	}
	if !j.Keyed() {
		return "its one value"
	}
	return "whole job: a change runs the job, refreshing every key"
}

func scheduleOf(j jobs.Job) string {
	s := j.Schedule.Text()
	if !j.Enabled {
		s += " (disabled)"
	}
	return s
}

func ttlOf(j jobs.Job) string {
	ttl := j.Lifetime.Policy.String()
	if j.TTLFromSchedule {
		ttl += " (no ttl: twice the longest gap between runs)"
	}
	return ttl
}

func keysOf(j jobs.Job) string {
	if !j.Keyed() {
		return "one value"
	}
	return j.KeyTemplate
}

// dependenciesOf says what the job declares it depends on; a job of the user's SQL depends too
// on what PostgreSQL finds it reads.
func dependenciesOf(j jobs.Job) string {
	found := j.Aggregate.User() && j.Incremental == nil
	switch {
	case j.DependsOnSet && len(j.DependsOn) == 0:
		return "(schedule only)"
	case len(j.DependsOn) == 0 && found:
		return "(found by PostgreSQL)"
	}
	deps := make([]string, len(j.DependsOn))
	for i, d := range j.DependsOn {
		deps[i] = d.Table
		if cols := d.Columns(); len(cols) > 0 {
			deps[i] += "." + strings.Join(cols, ",")
		}
	}
	if found {
		return strings.Join(deps, ", ") + " + found by PostgreSQL"
	}
	return strings.Join(deps, ", ")
}
