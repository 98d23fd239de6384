// Command warmer keeps warmcache's aggregates in Redis.
//
//	warmer migrate   apply the product's schema additions to PostgreSQL and exit
//
// Configuration comes from the environment; see the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // schedules and expiry need zone data even in images without /usr/share/zoneinfo

	"github.com/warmcache/warmcache/internal/conf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.Environ(), os.Stderr)
	stop()
	os.Exit(code)
}

// cli runs the command line and returns the exit status: 2 for bad usage or configuration, 1 for
// a failure.
func cli(ctx context.Context, args, environ []string, stderr io.Writer) int {
	var cfg Config
	err := conf.Load(&cfg, environ)
	if err == nil {
		err = cfg.validate()
	}
	if err != nil {
		fmt.Fprintln(stderr, "warmer: configuration:", err)
		return 2
	}
	logger, err := cfg.Logging.Logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "warmer: configuration:", err)
		return 2
	}
	switch {
	case len(args) == 1 && args[0] == "migrate":
		err = migrate(ctx, cfg, logger)
	default:
		fmt.Fprintln(stderr, "usage: warmer migrate")
		return 2
	}
	var confErr *conf.Error
	switch {
	case errors.As(err, &confErr):
		fmt.Fprintln(stderr, "warmer: configuration:", err)
		return 2
	case err != nil:
		logger.Error("warmer_failed", "error", err)
		return 1
	}
	return 0
}
