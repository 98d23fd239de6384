// Command warmer keeps warmcache's aggregates in Redis.
//
//	warmer [--jobs FILE] [--no-migrate]                  run the jobs on their schedules
//	warmer --once [--job NAME] [--jobs FILE] [--no-migrate]  run the jobs (or one) once and exit
//	warmer migrate [--jobs FILE]                         apply the schema additions and exit
//	warmer --help | --version
//
// Configuration comes from the environment; see docs/configuration.md. Exit status: 0 on
// success (and after SIGTERM), 1 on a failure, 2 on bad usage or configuration.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // schedules and expiry need zone data even in images without /usr/share/zoneinfo

	"github.com/warmcache/warmcache/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Warmer(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr, run)
	stop()
	os.Exit(code)
}

// run does what the command line asks: apply the migrations (warmer migrate), check the jobs
// (warmer check), remove what warmcache added (warmer uninstall), run the jobs once (--once), or
// run them on their schedules.
func run(ctx context.Context, cfg cli.WarmerConfig, logger *slog.Logger) error {
	switch {
	case cfg.Command.MigrateOnly:
		return migrate(ctx, cfg, logger)
	case cfg.Command.CheckOnly:
		return check(ctx, cfg, logger)
	case cfg.Command.Uninstall:
		return uninstall(ctx, cfg, logger)
	case cfg.Command.Once:
		return once(ctx, cfg, logger)
	}
	return daemon(ctx, cfg, logger)
}
