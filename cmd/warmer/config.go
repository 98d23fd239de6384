package main

import (
	"log/slog"
	"net"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/conf"
	"github.com/warmcache/warmcache/invalidate"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// Config is the warmer's configuration, read from the environment.
type Config struct {
	conf.Cache
	// WarmerDatabaseURL, when set, is where the aggregates are read: a replica, say. Claims,
	// locks and migrations stay on DATABASE_URL.
	WarmerDatabaseURL string        `env:"WARMER_DATABASE_URL" help:"where the aggregates are read (a replica); default DATABASE_URL"`
	MetricsAddr       string        `env:"METRICS_ADDR" envDefault:":9091" help:"the address of /metrics and /healthz"`
	Migrate           bool          `env:"MIGRATE" envDefault:"true" help:"apply the migrations at start (--no-migrate: false)"`
	ShutdownTimeout   time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s" help:"on SIGTERM, how long runs in flight may take to finish"`
	// RunHistory is how many runs of each job Redis keeps, for GET /v1/jobs/{job}/runs.
	RunHistory int `env:"RUN_HISTORY" envDefault:"50" help:"how many runs of each job are kept for /v1/jobs/{job}/runs (1 to 1000)"`
	// How downstream caches are purged (PURGE_URLS, in conf.Cache, says which).
	PurgeMethod    string            `env:"PURGE_METHOD" envDefault:"PURGE" help:"the method of a purge request"`
	PurgeKeyHeader string            `env:"PURGE_KEY_HEADER" envDefault:"xkey-purge" help:"the header carrying the keys to purge"`
	PurgeHeaders   map[string]string `env:"PURGE_HEADERS" envSeparator:"," envKeyValSeparator:":" help:"more headers of each purge, Name:value,Name:value"`
	conf.Logging

	// jobs are the jobs of the configuration, loaded and checked before anything connects.
	jobs []jobs.Job
}

func (c Config) validate() error {
	if err := c.Cache.Validate(); err != nil {
		return err
	}
	if err := checkServers(c.Cache); err != nil {
		return err
	}
	if err := query.CheckURL(c.WarmerDatabaseURL); c.WarmerDatabaseURL != "" && err != nil {
		return conf.Errorf("WARMER_DATABASE_URL", "%w", err)
	}
	if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
		return conf.Errorf("METRICS_ADDR", "%q is not an address to listen on (host:port, :port)", c.MetricsAddr)
	}
	switch {
	case c.ShutdownTimeout <= 0:
		return conf.Errorf("SHUTDOWN_TIMEOUT", "%s is not positive", c.ShutdownTimeout)
	case c.RunHistory < 1 || c.RunHistory > 1000:
		return conf.Errorf("RUN_HISTORY", "%d is not between 1 and 1000", c.RunHistory)
	case !httpguts.ValidHeaderFieldName(c.PurgeKeyHeader):
		return conf.Errorf("PURGE_KEY_HEADER", "%q is not a header name", c.PurgeKeyHeader)
	case !httpguts.ValidHeaderFieldName(c.PurgeMethod): // a method is a token, as a header name is
		return conf.Errorf("PURGE_METHOD", "%q is not an HTTP method", c.PurgeMethod)
	}
	for name := range c.PurgeHeaders {
		if !httpguts.ValidHeaderFieldName(strings.TrimSpace(name)) {
			return conf.Errorf("PURGE_HEADERS", "%q is not a header name (want Name:value,Name:value)", name)
		}
	}
	return nil
}

// validateMigrate checks what warmer migrate needs: PostgreSQL, and the jobs file.
func (c Config) validateMigrate() error {
	if err := c.Cache.ValidateMigrate(); err != nil {
		return err
	}
	if err := query.CheckURL(c.DatabaseURL); err != nil {
		return conf.Errorf("DATABASE_URL", "%w", err)
	}
	return nil
}

// checkServers checks the settings of PostgreSQL and Redis as their clients read them, without
// connecting.
func checkServers(c conf.Cache) error {
	if err := query.CheckURL(c.DatabaseURL); err != nil {
		return conf.Errorf("DATABASE_URL", "%w", err)
	}
	if err := cache.CheckURL(c.RedisURL); err != nil {
		return conf.Errorf("REDIS_URL", "%w", err)
	}
	if _, err := cache.NewKeys(c.Namespace); err != nil {
		return conf.Errorf("CACHE_NAMESPACE", "%w", err)
	}
	return nil
}

// purgeConfig is how the warmer purges downstream caches.
func (c Config) purgeConfig() invalidate.PurgeConfig {
	headers := map[string]string{}
	for name, v := range c.PurgeHeaders {
		headers[strings.TrimSpace(name)] = strings.TrimSpace(v)
	}
	urls := make([]string, len(c.PurgeURLs))
	for i, u := range c.PurgeURLs {
		urls[i] = strings.TrimSpace(u)
	}
	return invalidate.PurgeConfig{URLs: urls, Method: c.PurgeMethod, KeyHeader: c.PurgeKeyHeader, Headers: headers}
}

// log writes the effective configuration, secrets masked.
func (c Config) log(logger *slog.Logger) {
	logger.Info("config",
		"database_url", conf.MaskURL(c.DatabaseURL), "warmer_database_url", conf.MaskURL(c.WarmerDatabaseURL),
		"redis_url", conf.MaskURL(c.RedisURL), "namespace", c.Namespace, "ttl", c.TTL.String(),
		"grace", c.Grace.String(), "negative_ttl", c.NegativeTTL.String(), "timezone", c.TimeZone, "jobs_file", c.JobsFile,
		"metrics_addr", c.MetricsAddr, "migrate", c.Migrate, "shutdown_timeout", c.ShutdownTimeout.String(),
		"run_history", c.RunHistory, "purge_urls", maskAll(c.PurgeURLs), "purge_method", c.PurgeMethod, "purge_key_header", c.PurgeKeyHeader,
		"purge_headers", len(c.PurgeHeaders),
		"log_level", c.Level, "log_format", c.Format)
}

// maskAll masks the passwords of urls.
func maskAll(urls []string) []string {
	masked := make([]string, len(urls))
	for i, u := range urls {
		masked[i] = conf.MaskURL(u)
	}
	return masked
}
