// Command api serves warmcache's cached aggregates over HTTP.
//
//	api [--jobs FILE]
//	api --help | --version
//
// Configuration comes from the environment; see the README. Exit status: 0 after SIGTERM or
// SIGINT (in-flight requests finished), 1 on a failure, 2 on bad usage or configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
	_ "time/tzdata" // calendar expiry needs zone data even in images without /usr/share/zoneinfo

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/conf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const synopsis = `usage: api [--jobs FILE]
       api --help | --version

Serves warmcache's cached aggregates over HTTP. Configuration comes from the environment. Exit
status: 0 after SIGTERM or SIGINT, 1 on a failure, 2 on bad usage or configuration.`

// cli runs the command line and returns the exit status. The whole configuration, jobs file
// included, is checked before anything connects anywhere.
func cli(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jobsFile := fs.String("jobs", "", "the jobs `FILE` (overrides JOBS_FILE)")
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() { conf.Usage(stdout, synopsis, fs, &Config{}) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case *version:
		fmt.Fprintln(stdout, "api", conf.Version())
		return 0
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "api: unexpected argument %q (api --help lists the flags)\n", fs.Arg(0))
		return 2
	}
	var cfg Config
	err := conf.Load(&cfg, environ)
	if err == nil {
		cfg.SetJobsFlag(*jobsFile)
		err = cfg.validate()
	}
	if err == nil {
		cfg.jobs, err = cfg.Cache.Jobs(time.Now())
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
