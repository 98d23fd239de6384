package main

import (
	"log/slog"
	"time"

	"github.com/warmcache/warmcache/internal/conf"
)

// Config is the warmer's configuration, read from the environment.
type Config struct {
	conf.Cache
	// WarmerDatabaseURL, when set, is where the aggregates are read: a replica, say. Claims,
	// locks and migrations stay on DATABASE_URL.
	WarmerDatabaseURL string        `env:"WARMER_DATABASE_URL"`
	MetricsAddr       string        `env:"METRICS_ADDR" envDefault:":9091"`
	Migrate           bool          `env:"MIGRATE" envDefault:"true"`
	ShutdownTimeout   time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s"`
	conf.Logging
}

func (c Config) validate() error {
	if err := c.Cache.Validate(); err != nil {
		return err
	}
	if c.ShutdownTimeout <= 0 {
		return conf.Errorf("SHUTDOWN_TIMEOUT", "%s is not positive", c.ShutdownTimeout)
	}
	return nil
}

// log writes the effective configuration, secrets masked.
func (c Config) log(logger *slog.Logger) {
	logger.Info("config",
		"database_url", conf.MaskURL(c.DatabaseURL), "warmer_database_url", conf.MaskURL(c.WarmerDatabaseURL),
		"redis_url", conf.MaskURL(c.RedisURL), "namespace", c.Namespace, "ttl", c.TTL.String(),
		"grace", c.Grace.String(), "negative_ttl", c.NegativeTTL.String(), "timezone", c.TimeZone, "jobs_file", c.JobsFile,
		"metrics_addr", c.MetricsAddr, "migrate", c.Migrate, "shutdown_timeout", c.ShutdownTimeout.String(),
		"log_level", c.Level, "log_format", c.Format)
}
