package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/term"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/build"
	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/invalidate"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

// deps are the warmer's connections and jobs.
type deps struct {
	primary *query.DB // claims, locks, migrations, invalidations
	reader  *query.DB // the runs' aggregates, on pools of their own
	store   *cache.Store
	purger  *invalidate.Purger // nil without PURGE_URLS
	jobs    []jobs.Job
}

func (d deps) close() {
	if d.store != nil {
		d.store.Close()
	}
	if d.reader != nil {
		d.reader.Close()
	}
	if d.primary != nil {
		d.primary.Close()
	}
}

// open connects (lazily: no server needs to be up yet), migrates unless told not to, and loads
// and checks the jobs. The purger of downstream caches, when there is one, registers its metrics
// on reg. On an error it closes what it opened.
func open(ctx context.Context, cfg cli.WarmerConfig, arch *baseservice.Archetype, reg prometheus.Registerer) (d deps, err error) {
	logger := arch.Logger
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	// No Open connects: the configuration was checked whole before anything connects.
	// Refreshes after changes read the replica, when one is set, once it has replayed past them.
	pg := cfg.WithReplica(query.Options{MaxConns: 8, Schema: cfg.Schema}, logger)
	if d.primary, err = query.Open(ctx, cfg.DatabaseURL, pg); err != nil {
		return d, cli.Errorf("DATABASE_URL", "%w", err)
	}
	// The runs read on pools of their own: however many run at once, and however long, the
	// invalidations and claims never wait for a connection behind them.
	if d.reader, err = query.Open(ctx, cfg.DatabaseURL, pg); err != nil {
		return d, cli.Errorf("DATABASE_URL", "%w", err)
	}
	keys, err := cache.NewKeys(cfg.Namespace)
	if err != nil {
		return d, cli.Errorf("CACHE_NAMESPACE", "%w", err)
	}
	opts := cache.Options{ClientName: "warmcache-warmer", RunHistory: cfg.RunHistory}
	if len(cfg.PurgeURLs) > 0 {
		d.purger = invalidate.NewPurger(arch, purgeConfig(cfg), keys, reg)
		opts.Invalidated = d.purger.Invalidated
	}
	if d.store, err = cache.Open(cfg.RedisURL, keys, opts); err != nil {
		return d, cli.Errorf("REDIS_URL", "%w", err)
	}
	_ = cli.LogConnect(ctx, logger, "postgresql", cfg.DatabaseURL, d.primary.Ping) // down: prepare says so
	if err := cli.LogConnect(ctx, logger, "redis", cfg.RedisURL, d.store.Ping); errors.Is(err, cache.ErrNoDatabase) {
		return d, cli.Errorf("REDIS_URL", "%w", err)
	}
	d.jobs, err = prepare(ctx, d.primary, d.reader, cfg, logger)
	return d, err
}

// prepare readies the database for the jobs and returns them: without the built-in jobs where
// they are off (cli.Cache.OpenJobs), with what they depend on found (warm.Resolve). A user's SQL
// with a syntax error, or a table or column a job depends on that does not exist, stops the
// warmer now (a configuration error) rather than failing at every run. With migrate set it applies
// the migrations and installs what the jobs need (warm.Install); without, it warns when what is
// installed does not record every change the jobs depend on. PostgreSQL down is an error
// wrapping query.ErrUnavailable (exit status 3): the tables of the jobs are its to find.
func prepare(ctx context.Context, primary, reader *query.DB, cfg cli.WarmerConfig, logger *slog.Logger) ([]jobs.Job, error) {
	migrate := cfg.Migrate
	if migrate {
		if err := primary.Schema().Migrate(ctx, logger); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	list, err := cfg.OpenJobs(ctx, primary, logger)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(list, func(j jobs.Job) bool { return j.Builtin }) {
		primary.UseBuiltins() // the changes of orders and customers keep their totals
	}
	if cfg.ChangeCapture == query.CaptureLogical {
		for _, j := range list {
			if j.Incremental != nil {
				return nil, cli.Errorf("CHANGE_CAPTURE", "job %s is incremental: its figures are kept by triggers in the "+
					"writing transactions; use CHANGE_CAPTURE=triggers, or drop its incremental", j.Name)
			}
		}
	}
	err = warm.Check(ctx, reader, list)
	switch {
	case errors.Is(err, query.ErrUnavailable):
		logger.Warn("jobs_not_checked", "error", err)
	case err != nil:
		return nil, cli.Errorf(cfg.JobsSetting(), "%w", err)
	}
	// Which changes refresh what only the database can say: without it the warmer cannot start.
	list, err = warm.Resolve(ctx, primary, list)
	switch {
	case errors.Is(err, query.ErrUnavailable):
		return nil, fmt.Errorf("find the tables the jobs depend on: %w", err)
	case err != nil:
		return nil, cli.Errorf(cfg.JobsSetting(), "%w", err)
	}
	warnUnpushedLookups(ctx, reader, list, logger)
	if migrate {
		if err := warm.Install(ctx, primary, list, cfg.ChangeCapture); err != nil {
			return nil, fmt.Errorf("install: %w", err)
		}
		return list, nil
	}
	warnUninstalled(ctx, primary, list, logger)
	return list, nil
}

// warnUnpushedLookups warns of the users' keyed jobs whose lookups PostgreSQL cannot restrict
// to the keys where it reads the rows: each of their misses and refreshes computes everything.
func warnUnpushedLookups(ctx context.Context, db *query.DB, list []jobs.Job, logger *slog.Logger) {
	for _, job := range list {
		if !job.Keyed() || job.Builtin || job.Incremental != nil {
			continue
		}
		if pushed, plan, err := db.LookupPushedDown(ctx, job.Aggregate); err == nil && !pushed {
			logger.Warn("lookup_not_pushed_down", "job", job.Name, "plan", plan,
				"hint", "each key's read-through and refresh computes the whole query: see the README, Jobs")
		}
	}
}

// warnUninstalled warns of the tables whose changes the jobs depend on but warmcache does not
// record, and of the built-in jobs' functions missing: warmer migrate has not run with this jobs
// file.
func warnUninstalled(ctx context.Context, db *query.DB, list []jobs.Job, logger *slog.Logger) {
	installed, err := db.Schema().InstalledDependencies(ctx)
	if err != nil {
		logger.Warn("dependencies_not_checked", "error", err)
		return
	}
	if slices.ContainsFunc(list, func(j jobs.Job) bool { return j.Builtin }) {
		if ok, err := db.Schema().BuiltinsInstalled(ctx); err == nil && !ok {
			logger.Warn("builtins_not_installed",
				"hint", "run warmer migrate: the built-in totals cannot be kept without their functions")
		}
	}
	for table, cols := range jobs.Tables(list) {
		have, ok := installed[table]
		for _, c := range cols {
			ok = ok && slices.Contains(have, c)
		}
		if !ok {
			logger.Warn("dependencies_not_installed", "table", table, "columns", cols,
				"hint", "run warmer migrate with this jobs file: changes to this table do not reach the cache")
		}
	}
}

// settleLimit is how long the check of the built-in totals waits for the changes committed
// before it to be booked; a check they are not booked for by then is put off to the next run.
const settleLimit = 30 * time.Second

// daemon runs the jobs on their schedules until ctx ends, then finishes the runs in flight
// (within SHUTDOWN_TIMEOUT) and returns nil.
func daemon(ctx context.Context, cfg cli.WarmerConfig, logger *slog.Logger) error {
	cfg.Log(logger)
	arch := baseservice.NewArchetype(logger)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build.Collector())
	d, err := open(ctx, cfg, arch, reg)
	if err != nil {
		return err
	}
	defer d.close()

	metrics := warm.NewMetrics(reg)
	metrics.Declare(d.jobs, time.Now())
	runner := warm.NewRunner(arch, d.reader, d.primary, d.store, metrics)
	runner.Settle = invalidate.Settle(d.primary, d.store, cfg.ChangeCapture == query.CaptureLogical, settleLimit)
	sched := warm.NewScheduler(arch, d.jobs, runner, d.primary.Runs(), cfg.Namespace)
	// The relay drains the outbox in both modes: with logical decoding, what the triggers
	// recorded before the switch.
	relay := invalidate.NewRelay(arch, d.primary, d.store, d.jobs, reg)
	var capture *invalidate.Capture
	if cfg.ChangeCapture == query.CaptureLogical {
		capture = invalidate.NewCapture(arch, d.primary, d.store, d.jobs, reg)
	}
	refresher := invalidate.NewRefresher(arch, d.primary, d.store, d.jobs, cfg.Namespace, reg)

	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.AdminAddr)
	if err != nil {
		return cli.Errorf("ADMIN_ADDR", "%w", err)
	}
	srv := &http.Server{Handler: adminHandler(reg, d, sched), ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout: 2 * time.Minute}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	// A data set Redis lost while no warmer ran is warmed again by requests, which the
	// scheduler's first runs meet.
	recovery := warm.NewRecovery(arch, d.store, d.primary, d.jobs, cfg.Namespace, reg)
	recovery.Look(ctx)
	sched.Start()
	eventsCtx, stopEvents := context.WithCancel(context.Background())
	var events sync.WaitGroup
	events.Go(func() { recovery.Run(eventsCtx) })
	events.Go(func() { relay.Run(eventsCtx) })
	if capture != nil {
		events.Go(func() { capture.Run(eventsCtx) })
	}
	events.Go(func() { refresher.Run(eventsCtx) })
	jobsFiles := cli.NewJobsFiles(d.store, logger, reg, "warmer", cfg.JobsDigest())
	jobsFiles.Check(ctx)
	events.Go(func() { jobsFiles.Watch(eventsCtx) })
	if d.purger != nil {
		events.Go(func() { d.purger.Run(eventsCtx) })
	}
	logger.Info("warmer_started", "jobs", len(d.jobs), "admin_addr", ln.Addr().String())
	var failed error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		failed = fmt.Errorf("admin listener: %w", err)
	}
	logger.Info("warmer_stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// An event being handled is acknowledged or, cut short, taken over by another warmer.
	stopEvents()
	events.Wait()
	sched.Stop(stopCtx)
	if failed != nil {
		return failed
	}
	if err := srv.Shutdown(stopCtx); err != nil {
		logger.Warn("admin_listener_shutdown", "error", err)
	}
	logger.Info("warmer_stopped")
	return nil
}

// adminHandler serves the warmer's admin listener (ADMIN_ADDR): the metrics; /healthz, which
// answers while the process does; /readyz, which says whether the warmer can do its work: reach
// PostgreSQL and Redis, and hold its schedule; and Go's profiles.
func adminHandler(reg *prometheus.Registry, d deps, sched *warm.Scheduler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		state := map[string]string{"postgresql": "ok", "redis": "ok", "schedule": "ok"}
		if d.primary.Ping(ctx) != nil {
			state["postgresql"] = "unavailable"
		}
		if d.store.Ping(ctx) != nil {
			state["redis"] = "unavailable"
		}
		if !sched.Running() {
			state["schedule"] = "not running"
		}
		status := http.StatusOK
		for _, v := range state {
			if v != "ok" {
				status = http.StatusServiceUnavailable
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(state)
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// once runs every enabled job, or the one --job names, once, with a progress line on a
// terminal.
func once(ctx context.Context, cfg cli.WarmerConfig, logger *slog.Logger) error {
	name := cfg.Command.Job
	arch := baseservice.NewArchetype(logger)
	d, err := open(ctx, cfg, arch, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer d.close()
	var selected []jobs.Job
	for _, job := range d.jobs {
		if name == job.Name || name == "" && job.Enabled {
			selected = append(selected, job)
		}
	}
	if len(selected) == 0 {
		return &cli.Error{Setting: "--job", Err: fmt.Errorf("no job is called %q", name)}
	}
	runner := warm.NewRunner(arch, d.reader, d.primary, d.store, warm.NewMetrics(prometheus.NewRegistry()))
	err = warm.Once(ctx, selected, runner, d.primary.Runs(), cfg.Namespace, progressLine(cfg.Command.Progress))
	if d.purger != nil {
		d.purger.Drain(ctx) // the runs' changes leave downstream caches before the warmer does
	}
	return err
}

// purgeConfig is how the warmer purges downstream caches: PURGE_URLS and the settings of the
// purge requests, trimmed.
func purgeConfig(cfg cli.WarmerConfig) invalidate.PurgeConfig {
	headers := map[string]string{}
	for name, v := range cfg.PurgeHeaders {
		headers[strings.TrimSpace(name)] = strings.TrimSpace(v)
	}
	urls := make([]string, len(cfg.PurgeURLs))
	for i, u := range cfg.PurgeURLs {
		urls[i] = strings.TrimSpace(u)
	}
	return invalidate.PurgeConfig{URLs: urls, Method: cfg.PurgeMethod, KeyHeader: cfg.PurgeKeyHeader, Headers: headers}
}

// progressLine returns, when w is a terminal, a progress printer for each job: a line that
// counts the keys written, redrawn at most five times a second.
func progressLine(w io.Writer) func(jobs.Job) warm.Progress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func(jobs.Job) warm.Progress { return nil }
	}
	return func(job jobs.Job) warm.Progress {
		var last atomic.Int64
		return func(written int64) {
			now := time.Now().UnixMilli()
			if prev := last.Load(); now-prev >= 200 && last.CompareAndSwap(prev, now) {
				fmt.Fprintf(w, "\r%s: %d keys written", job.Name, written)
			}
		}
	}
}

// migrate applies the migrations and installs what the jobs file's jobs need, alone, for a
// Kubernetes Job or init container.
func migrate(ctx context.Context, cfg cli.WarmerConfig, logger *slog.Logger) error {
	db, err := query.Open(ctx, cfg.DatabaseURL, query.Options{MaxConns: 2, Schema: cfg.Schema})
	if err != nil {
		return cli.Errorf("DATABASE_URL", "%w", err)
	}
	defer db.Close()
	if cfg.Command.DryRun {
		return dryRun(ctx, db, cfg, logger)
	}
	logger.Info("migrate_started", "database", cli.MaskURL(cfg.DatabaseURL))
	cfg.Migrate = true
	_, err = prepare(ctx, db, db, cfg, logger)
	return err
}

// uninstall is warmer uninstall: it removes what warmcache added outside its schema (the triggers
// on users' tables, the replication slot and publication, the replica identities it set) and
// says what it removed. warmcache's schema stays, with the changes recorded: DROP SCHEMA removes
// it (docs/operations.md).
func uninstall(ctx context.Context, cfg cli.WarmerConfig, logger *slog.Logger) error {
	db, err := query.Open(ctx, cfg.DatabaseURL, query.Options{MaxConns: 2, Schema: cfg.Schema})
	if err != nil {
		return cli.Errorf("DATABASE_URL", "%w", err)
	}
	defer db.Close()
	removed, err := db.Schema().Uninstall(ctx)
	for _, r := range removed {
		fmt.Fprintf(cfg.Command.Out, "removed %s\n", r)
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		fmt.Fprintln(cfg.Command.Out, "nothing to remove: warmcache has nothing outside its schema")
	}
	logger.Info("uninstalled", "removed", len(removed))
	return nil
}

// dryRun is warmer migrate --dry-run: it prints what warmer migrate would create or drop, the
// migrations it would apply and what the jobs need installed, and changes nothing.
func dryRun(ctx context.Context, db *query.DB, cfg cli.WarmerConfig, logger *slog.Logger) error {
	cfg.Migrate = false
	list, err := cfg.OpenJobs(ctx, db, logger)
	if err != nil {
		return err
	}
	switch list, err = warm.Resolve(ctx, db, list); {
	case errors.Is(err, query.ErrUnavailable):
		return err
	case err != nil:
		return cli.Errorf(cfg.JobsSetting(), "%w", err)
	}
	adopt, files, err := db.Schema().Pending(ctx)
	if err != nil {
		return err
	}
	plan, err := warm.Plan(ctx, db, list, cfg.ChangeCapture)
	if err != nil {
		return err
	}
	out := cfg.Command.Out
	fmt.Fprintf(out, "warmer migrate would, in schema %s (nothing is changed now):\n", cfg.Schema)
	if adopt != "" {
		fmt.Fprintf(out, "- move warmcache's tables and functions from schema %s, with their data\n", adopt)
	}
	for _, f := range files {
		fmt.Fprintf(out, "- apply migration %s\n", f)
	}
	for _, line := range plan {
		fmt.Fprintf(out, "- %s\n", line)
	}
	if adopt == "" && len(files) == 0 && len(plan) == 0 {
		fmt.Fprintln(out, "- nothing: the database is up to date for these jobs")
	}
	if cfg.ChangeCapture == query.CaptureLogical {
		fmt.Fprintf(out, "Outside schema %s it creates nothing but the publication, the slot and the replica identities named above.\n", cfg.Schema)
		return nil
	}
	fmt.Fprintf(out, "Outside schema %s it creates nothing but the triggers named above.\n", cfg.Schema)
	return nil
}
