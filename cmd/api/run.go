package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/warmcache/warmcache/api"
	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/build"
	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/query"
)

// run serves the API on LISTEN_ADDR, and the admin routes on ADMIN_ADDR, until ctx ends, then
// stops accepting, lets the requests in flight finish (within SHUTDOWN_TIMEOUT) and returns nil.
// It logs api_started with the addresses it listens on, which tests read with port 0.
func run(ctx context.Context, cfg cli.APIConfig, logger *slog.Logger) error {
	cfg.Log(logger)
	keys, err := cache.NewKeys(cfg.Namespace)
	if err != nil {
		return cli.Errorf("CACHE_NAMESPACE", "%w", err)
	}
	// Neither Open connects: every setting is checked before anything is.
	db, err := query.Open(ctx, cfg.DatabaseURL, cfg.WithReplica(query.Options{MaxConns: int32(cfg.MaxQueries) + 4,
		ConnectTimeout: 2 * time.Second, QuietWrites: true, Schema: cfg.Schema}, logger))
	if err != nil {
		return cli.Errorf("DATABASE_URL", "%w", err)
	}
	defer db.Close()
	store, err := cache.Open(cfg.RedisURL, keys, cache.Options{PoolSize: 64, Timeout: cfg.RedisTimeout,
		ClientName: "warmcache-api"})
	if err != nil {
		return cli.Errorf("REDIS_URL", "%w", err)
	}
	defer store.Close()
	_ = cli.LogConnect(ctx, logger, "postgresql", cfg.DatabaseURL, db.Ping) // down is not fatal: served stale, then reconnected
	if err := cli.LogConnect(ctx, logger, "redis", cfg.RedisURL, store.Ping); errors.Is(err, cache.ErrNoDatabase) {
		return cli.Errorf("REDIS_URL", "%w", err)
	}
	list, err := cfg.OpenJobs(ctx, db, logger)
	if err != nil {
		return err
	}

	accessLog, accessLogText, stopAccessLog := cfg.AccessLog()
	defer stopAccessLog()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build.Collector())
	server := api.New(baseservice.NewArchetype(logger), api.Config{
		CacheHeader:        cfg.CacheHeader,
		QueryTimeout:       cfg.QueryTimeout,
		MaxQueries:         int64(cfg.MaxQueries),
		LeaseWait:          2 * time.Second,
		Keys:               keys,
		APIToken:           cfg.APIToken,
		MaxAge:             cfg.HTTPMaxAge,
		SharedMaxAge:       cfg.SharedMaxAge(),
		SurrogateKeyHeader: cfg.SurrogateKeyHeader,
		LocalCacheSize:     uint64(cfg.LocalCacheSize),
		LocalCacheTTL:      cfg.LocalCacheTTL,
		CORSOrigins:        cfg.Origins(),
		AccessLog:          accessLog,
		AccessLogText:      accessLogText,
	}, store, db, list, reg)

	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.ListenAddr)
	if err != nil {
		return cli.Errorf("LISTEN_ADDR", "%w", err)
	}
	adminLn, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.AdminAddr)
	if err != nil {
		ln.Close()
		return cli.Errorf("ADMIN_ADDR", "%w", err)
	}
	srv, admin := server.HTTPServer(), server.AdminHTTPServer()
	watchCtx, stopWatching := context.WithCancel(context.Background())
	var watching sync.WaitGroup
	watching.Go(func() { server.Watch(watchCtx) })
	watching.Go(func() { server.Track(watchCtx) })
	jobsFiles := cli.NewJobsFiles(store, logger, reg, "api", cfg.JobsDigest())
	jobsFiles.Check(ctx)
	watching.Go(func() { jobsFiles.Watch(watchCtx) })
	defer func() {
		stopWatching()
		watching.Wait()
	}()
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	go func() { serveErr <- admin.Serve(adminLn) }()
	logger.Info("api_started", "addr", ln.Addr().String(), "admin_addr", adminLn.Addr().String())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("api_stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(stopCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := admin.Shutdown(stopCtx); err != nil {
		logger.Warn("admin_listener_shutdown", "error", err)
	}
	logger.Info("api_stopped")
	return nil
}
