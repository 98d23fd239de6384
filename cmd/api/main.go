// Command api serves warmcache's cached aggregates over HTTP.
//
//	api [--jobs FILE]
//
// Configuration comes from the environment; see the README. Exit status: 0 after SIGTERM or
// SIGINT (in-flight requests finished), 1 on a failure, 2 on bad usage or configuration.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // calendar expiry needs zone data even in images without /usr/share/zoneinfo

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/conf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.Environ(), os.Stderr)
	stop()
	os.Exit(code)
}

// cli runs the command line and returns the exit status.
func cli(ctx context.Context, args, environ []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jobsFile := fs.String("jobs", "", "the jobs file (overrides JOBS_FILE)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "api: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var cfg Config
	err := conf.Load(&cfg, environ)
	if err == nil {
		if *jobsFile != "" {
			cfg.JobsFile = *jobsFile
		}
		err = cfg.validate()
	}
	var logger *slog.Logger
	if err == nil {
		logger, err = cfg.Logging.Logger(stderr)
	}
	if err != nil {
		return conf.ExitStatus("api", err, stderr, nil)
	}
	cache.RouteDriverLogs(logger)
	return conf.ExitStatus("api", run(ctx, cfg, logger, nil), stderr, logger)
}
