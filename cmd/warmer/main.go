// Command warmer keeps warmcache's aggregates in Redis.
//
//	warmer [--jobs FILE] [--no-migrate]                  run the jobs on their schedules
//	warmer --once [--job NAME] [--jobs FILE] [--no-migrate]  run the jobs (or one) once and exit
//	warmer migrate [--jobs FILE]                         apply the schema additions and exit
//	warmer --help | --version
//
// Configuration comes from the environment; see the README. Exit status: 0 on success (and after
// SIGTERM), 1 on a failure, 2 on bad usage or configuration.
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
	_ "time/tzdata" // schedules and expiry need zone data even in images without /usr/share/zoneinfo

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/conf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const synopsis = `usage: warmer [--jobs FILE] [--no-migrate]                    run the jobs on their schedules
       warmer --once [--job NAME] [--jobs FILE] [--no-migrate]  run the jobs (or one) once and exit
       warmer migrate [--jobs FILE]                           apply the schema additions and exit
       warmer --help | --version

Keeps warmcache's aggregates in Redis. Configuration comes from the environment. Exit status: 0
on success (and after SIGTERM), 1 on a failure, 2 on bad usage or configuration.`

// options are the command line's.
type options struct {
	migrateOnly bool
	once        bool
	job         string
	jobsFile    string
	noMigrate   bool
	version     bool
}

func parseArgs(args []string, stdout, stderr io.Writer) (options, error) {
	var o options
	if len(args) > 0 && args[0] == "migrate" {
		o.migrateOnly, args = true, args[1:]
	}
	fs := flag.NewFlagSet("warmer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.once, "once", false, "run the jobs once and exit: 0 on success, 1 on failure")
	fs.StringVar(&o.job, "job", "", "with --once, run only this job")
	fs.StringVar(&o.jobsFile, "jobs", "", "the jobs file (overrides JOBS_FILE)")
	fs.BoolVar(&o.noMigrate, "no-migrate", false, "do not apply migrations at start (MIGRATE=false)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() { conf.Usage(stdout, synopsis, fs, &Config{}) }
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q (warmer --help lists the flags)", fs.Arg(0))
	case o.job != "" && !o.once:
		return o, errors.New("--job goes with --once")
	case o.migrateOnly && (o.once || o.noMigrate):
		return o, errors.New("migrate takes no flags but --jobs")
	}
	return o, nil
}

// cli runs the command line and returns the exit status. The whole configuration, jobs file
// included, is checked before anything connects anywhere.
func cli(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	opts, err := parseArgs(args, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "warmer:", err)
		return 2
	case opts.version:
		fmt.Fprintln(stdout, "warmer", conf.Version())
		return 0
	}
	var cfg Config
	if err = conf.Load(&cfg, environ); err == nil {
		cfg.SetJobsFlag(opts.jobsFile)
		cfg.Migrate = cfg.Migrate && !opts.noMigrate
		if opts.migrateOnly {
			err = cfg.validateMigrate()
		} else {
			err = cfg.validate()
		}
	}
	if err == nil {
		cfg.jobs, err = cfg.Cache.Jobs(time.Now())
	}
	var logger *slog.Logger
	if err == nil {
		logger, err = cfg.Logging.Logger(stderr)
	}
	if err != nil {
		return conf.ExitStatus("warmer", err, stderr, nil)
	}
	cache.RouteDriverLogs(logger)
	switch {
	case opts.migrateOnly:
		err = migrate(ctx, cfg, logger)
	case opts.once:
		err = once(ctx, cfg, logger, opts.job, stderr)
	default:
		err = run(ctx, cfg, logger)
	}
	return conf.ExitStatus("warmer", err, stderr, logger)
}
