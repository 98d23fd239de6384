package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// schedule, its ttl (and where it comes from), its keys and what it depends on. With
// DATABASE_URL set and PostgreSQL answering, it also checks every job against the database
// (warm.Check): its SQL plans, and its tables and columns exist. It writes nothing anywhere.
func check(ctx context.Context, cfg cli.WarmerConfig, _ *slog.Logger) error {
	out, list := cfg.Command.Out, cfg.Jobs()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "job\tschedule\tttl\tkeys\tdepends on")
	for _, j := range list {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", j.Name, scheduleOf(j), ttlOf(j), keysOf(j), dependenciesOf(j))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		fmt.Fprintln(out, "\nDATABASE_URL is not set: the jobs file is valid; its SQL was not checked against a database.")
		return nil
	}
	db, err := query.Open(ctx, cfg.DatabaseURL, query.Options{MaxConns: 2, ConnectTimeout: 3 * time.Second,
		Timeout: 3 * time.Second})
	if err != nil {
		return cli.Errorf("DATABASE_URL", "%w", err)
	}
	defer db.Close()
	switch err := warm.Check(ctx, db, list); {
	case errors.Is(err, query.ErrUnavailable):
		fmt.Fprintf(out, "\nPostgreSQL could not be used (%v): the jobs file is valid; its SQL was not checked against the database.\n",
			cli.Redact(err.Error()))
		return nil
	case err != nil:
		return cli.Errorf(cfg.JobsSetting(), "%w", err)
	}
	fmt.Fprintln(out, "\nChecked against the database: every job's SQL plans, and the tables and columns it depends on exist.")
	return nil
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

func dependenciesOf(j jobs.Job) string {
	if len(j.DependsOn) == 0 {
		return "(schedule only)"
	}
	deps := make([]string, len(j.DependsOn))
	for i, d := range j.DependsOn {
		deps[i] = d.Table
		if d.Column != "" {
			deps[i] += "." + d.Column
		}
	}
	return strings.Join(deps, ", ")
}
