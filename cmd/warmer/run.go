package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/term"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/conf"
	"github.com/warmcache/warmcache/invalidate"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// deps are the warmer's connections and jobs.
type deps struct {
	primary *query.DB // claims, locks, migrations
	reader  *query.DB // aggregates: WARMER_DATABASE_URL, or the primary
	store   *cache.Store
	jobs    []jobs.Job
}

func (d deps) close() {
	d.store.Close()
	if d.reader != d.primary {
		d.reader.Close()
	}
	d.primary.Close()
}

// open connects (lazily: no server needs to be up yet), migrates unless told not to, and loads
// and checks the jobs.
func open(ctx context.Context, cfg Config, logger *slog.Logger) (deps, error) {
	var d deps
	var err error
	if d.primary, err = query.Open(ctx, cfg.DatabaseURL, query.Options{MaxConns: 8}); err != nil {
		return d, setting("DATABASE_URL", err)
	}
	d.reader = d.primary
	if cfg.WarmerDatabaseURL != "" {
		if d.reader, err = query.Open(ctx, cfg.WarmerDatabaseURL, query.Options{MaxConns: 8}); err != nil {
			d.primary.Close()
			return d, setting("WARMER_DATABASE_URL", err)
		}
	}
	keys, err := cache.NewKeys(cfg.Namespace)
	if err != nil {
		d.primary.Close()
		return d, setting("CACHE_NAMESPACE", err)
	}
	if d.store, err = cache.Open(cfg.RedisURL, keys, cache.Options{}); err != nil {
		d.primary.Close()
		return d, setting("REDIS_URL", err)
	}
	conf.LogConnect(ctx, logger, "postgresql", cfg.DatabaseURL, d.primary.Ping)
	conf.LogConnect(ctx, logger, "redis", cfg.RedisURL, d.store.Ping)
	d.jobs, err = jobs.Load(cfg.JobsFile, jobs.Defaults{TTL: cfg.TTL, Grace: cfg.Grace, Location: cfg.Location()}, time.Now())
	if err != nil {
		d.close()
		return d, setting("JOBS_FILE", err)
	}
	if cfg.Migrate {
		if err := d.primary.Migrate(ctx, logger); err != nil {
			d.close()
			return d, fmt.Errorf("migrate: %w", err)
		}
	}
	// A user's SQL with a syntax error or a missing key column stops the warmer now rather than
	// failing at every run; with PostgreSQL down the runs will report it.
	for _, job := range d.jobs {
		err := d.reader.Check(ctx, job.Aggregate)
		switch {
		case errors.Is(err, query.ErrUnavailable):
			logger.Warn("job_not_checked", "job", job.Name, "error", err)
		case err != nil:
			d.close()
			return d, setting("JOBS_FILE", fmt.Errorf("job %s: sql: %w", job.Name, err))
		}
	}
	return d, nil
}

// run is the daemon: it runs the jobs on their schedules until ctx ends, then finishes the runs
// in flight (within SHUTDOWN_TIMEOUT) and returns nil.
func run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	cfg.log(logger)
	d, err := open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer d.close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	runner := jobs.NewRunner(d.reader, d.store, jobs.NewMetrics(reg), logger)
	sched := jobs.NewScheduler(d.jobs, runner, d.primary, cfg.Namespace, logger)
	// Invalidations read the primary: a replica may not have the write yet.
	relay := invalidate.NewRelay(d.primary, d.store, logger)
	refresher := invalidate.NewRefresher(d.primary, d.store, d.jobs, sched.RunNow, cfg.NegativeTTL, reg, logger)

	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.MetricsAddr)
	if err != nil {
		return setting("METRICS_ADDR", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	sched.Start()
	eventsCtx, stopEvents := context.WithCancel(context.Background())
	var events sync.WaitGroup
	events.Go(func() { relay.Run(eventsCtx) })
	events.Go(func() { refresher.Run(eventsCtx) })
	logger.Info("warmer_started", "jobs", len(d.jobs), "metrics_addr", ln.Addr().String())
	var failed error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		failed = fmt.Errorf("metrics server: %w", err)
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
		logger.Warn("metrics_server_shutdown", "error", err)
	}
	logger.Info("warmer_stopped")
	return nil
}

// once runs every enabled job, or the one named, once, with a progress line on a terminal.
func once(ctx context.Context, cfg Config, logger *slog.Logger, name string, stderr io.Writer) error {
	d, err := open(ctx, cfg, logger)
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
		return &conf.Error{Setting: "--job", Err: fmt.Errorf("no job is called %q", name)}
	}
	runner := jobs.NewRunner(d.reader, d.store, jobs.NewMetrics(prometheus.NewRegistry()), logger)
	return jobs.Once(ctx, selected, runner, d.primary, cfg.Namespace, progressLine(stderr))
}

// progressLine returns, when w is a terminal, a progress printer for each job: a line that
// counts the keys written, redrawn at most five times a second.
func progressLine(w io.Writer) func(jobs.Job) jobs.Progress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func(jobs.Job) jobs.Progress { return nil }
	}
	return func(job jobs.Job) jobs.Progress {
		var last atomic.Int64
		return func(written int64) {
			now := time.Now().UnixMilli()
			if prev := last.Load(); now-prev >= 200 && last.CompareAndSwap(prev, now) {
				fmt.Fprintf(w, "\r%s: %d keys written", job.Name, written)
			}
		}
	}
}

// migrate applies the migrations alone, for a Kubernetes Job or init container.
func migrate(ctx context.Context, cfg Config, logger *slog.Logger) error {
	db, err := query.Open(ctx, cfg.DatabaseURL, query.Options{MaxConns: 2})
	if err != nil {
		return setting("DATABASE_URL", err)
	}
	defer db.Close()
	logger.Info("migrate_started", "database", conf.MaskURL(cfg.DatabaseURL))
	return db.Migrate(ctx, logger)
}
