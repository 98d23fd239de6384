package main

import (
	"context"
	"log/slog"

	"github.com/warmcache/warmcache/internal/conf"
	"github.com/warmcache/warmcache/query"
)

// Config is the warmer's configuration, read from the environment.
type Config struct {
	DatabaseURL string `env:"DATABASE_URL"`
	conf.Logging
}

func (c Config) validate() error {
	if c.DatabaseURL == "" {
		return conf.Errorf("DATABASE_URL", "is not set (alias PG_SERVICE_URI)")
	}
	return nil
}

// migrate applies the migrations alone, for a Kubernetes Job or init container.
func migrate(ctx context.Context, cfg Config, logger *slog.Logger) error {
	db, err := query.Open(ctx, cfg.DatabaseURL, query.Options{MaxConns: 2})
	if err != nil {
		return &conf.Error{Setting: "DATABASE_URL", Err: err}
	}
	defer db.Close()
	logger.Info("migrate_started", "database", conf.MaskURL(cfg.DatabaseURL))
	return db.Migrate(ctx, logger)
}
