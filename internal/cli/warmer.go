package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/warmcache/warmcache/query"
)

const warmerSynopsis = `usage: warmer [--jobs FILE] [--no-migrate]                    run the jobs on their schedules
       warmer --once [--job NAME] [--jobs FILE] [--no-migrate]  run the jobs (or one) once and exit
       warmer migrate [--dry-run] [--jobs FILE]               apply the schema additions and exit
       warmer check [--jobs FILE]                             check the jobs file, and exit
       warmer uninstall                                       remove what warmcache added to users' tables, and exit
       warmer --help | --version

Keeps warmcache's aggregates in Redis. Configuration comes from the environment. Exit status: 0
on success (and after SIGTERM), 1 on a failure, 2 on bad usage or configuration, 3 when
PostgreSQL or Redis could not be reached (try again later).`

// Warmer is the warmer's command line: it parses args, reads the configuration from environ
// and checks it whole, jobs file included, before anything connects, sets up the log, and calls
// run with what the command line asks for in the configuration's Command. It returns the exit
// status: 0 after --help, --version, or run returning nil; 1 when run fails; 2 on bad usage or
// configuration.
func Warmer(ctx context.Context, args, environ []string, stdout, stderr io.Writer,
	run func(context.Context, WarmerConfig, *slog.Logger) error) int {
	migrateOnly := len(args) > 0 && args[0] == "migrate"
	checkOnly := len(args) > 0 && args[0] == "check"
	uninstall := len(args) > 0 && args[0] == "uninstall"
	if migrateOnly || checkOnly || uninstall {
		args = args[1:]
	}
	cmd := newCommand("warmer", warmerSynopsis, &WarmerConfig{}, stdout)
	once := cmd.flags.Bool("once", false, "run the jobs once and exit: 0 on success, 1 on a failure, 3 with a server down")
	job := cmd.flags.String("job", "", "with --once, run only the job called `NAME`")
	jobsFile := cmd.flags.String("jobs", "", "the jobs `FILE` (overrides JOBS_FILE)")
	noMigrate := cmd.flags.Bool("no-migrate", false, "do not apply migrations at start (MIGRATE=false)")
	dryRun := cmd.flags.Bool("dry-run", false, "with migrate, print what it would create or drop, and change nothing")
	status, done := cmd.parse(args, stdout, stderr, func() error {
		switch {
		case *job != "" && !*once:
			return errors.New("--job goes with --once")
		case migrateOnly && (*once || *noMigrate):
			return errors.New("migrate takes no flags but --jobs and --dry-run")
		case *dryRun && !migrateOnly:
			return errors.New("--dry-run goes with migrate")
		case checkOnly && (*once || *noMigrate):
			return errors.New("check takes no flags but --jobs")
		case uninstall && (*once || *noMigrate || *jobsFile != ""):
			return errors.New("uninstall takes no flags")
		}
		return nil
	})
	if done {
		return status
	}
	var cfg WarmerConfig
	err := Load(&cfg, environ)
	cfg.setJobsFlag(*jobsFile)
	cfg.Migrate = cfg.Migrate && !*noMigrate
	cfg.Command = WarmerCommand{MigrateOnly: migrateOnly, DryRun: *dryRun, CheckOnly: checkOnly, Uninstall: uninstall,
		Once: *once, Job: *job, Progress: stderr, Out: stdout}
	return cmd.start(&cfg, err, stderr, func(logger *slog.Logger) error { return run(ctx, cfg, logger) })
}

// WarmerConfig is the warmer's configuration: read from the environment, but for Command. A doc
// tag says more than help, for docs/configuration.md only.
type WarmerConfig struct {
	Cache
	// ChangeCapture is how changes of the jobs' tables are captured: query.CaptureTriggers or
	// query.CaptureLogical.
	ChangeCapture   string        `env:"CHANGE_CAPTURE" envDefault:"triggers" help:"how changes are captured: triggers (an outbox written in the writing transaction) or logical (logical decoding of the WAL, no trigger on users' tables)" doc:"logical needs the server's wal_level set to logical, and a role with REPLICATION; switching either way loses no change (docs/freshness.md)"`
	AdminAddr       string        `env:"ADMIN_ADDR" envDefault:":9091" help:"the address of the admin listener: /metrics, /healthz, /readyz and /debug/pprof/"`
	Migrate         bool          `env:"MIGRATE" envDefault:"true" help:"apply the migrations at start (--no-migrate: false)"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s" help:"on SIGTERM, how long runs in flight may take to finish" doc:"then they are cancelled"`
	// RunHistory is how many runs of each job Redis keeps, for GET /v1/jobs/{job}/runs.
	RunHistory int `env:"RUN_HISTORY" envDefault:"50" help:"how many runs of each job are kept for /v1/jobs/{job}/runs (1 to 1000)" doc:"the status page shows them too"`
	// How downstream caches are purged (PURGE_URLS, in Cache, says which).
	PurgeMethod    string            `env:"PURGE_METHOD" envDefault:"PURGE" help:"the method of a purge request"`
	PurgeKeyHeader string            `env:"PURGE_KEY_HEADER" envDefault:"xkey-purge" help:"the header carrying the keys to purge" doc:"separated by spaces"`
	PurgeHeaders   map[string]string `env:"PURGE_HEADERS" envSeparator:"," envKeyValSeparator:":" help:"more headers of each purge, Name:value,Name:value" doc:"a CDN API's token, say; logged as a count only"`
	Logging

	// Command is what the command line asks for.
	Command WarmerCommand
}

// WarmerCommand is what the warmer's command line asks for, beyond its settings.
type WarmerCommand struct {
	// MigrateOnly is warmer migrate: apply the migrations, install what the jobs need, and exit.
	MigrateOnly bool
	// DryRun is warmer migrate --dry-run: say what migrate would create or drop, and change
	// nothing.
	DryRun bool
	// CheckOnly is warmer check: the jobs file is valid (start-up checked it, every error at
	// once), so say what each job is, check it against the database when one answers, and exit.
	CheckOnly bool
	// Uninstall is warmer uninstall: remove what warmcache added outside its schema (triggers,
	// the replication slot and publication, replica identities), and exit.
	Uninstall bool
	// Once is --once: run every enabled job, or the one Job names, once and exit.
	Once bool
	Job  string
	// Progress is where --once draws its progress line, when it is a terminal: stderr.
	Progress io.Writer
	// Out is where warmer check writes what it found: stdout.
	Out io.Writer
}

func (c *WarmerConfig) common() (*Cache, Logging) { return &c.Cache, c.Logging }

// validate checks the settings that need no connection; for warmer migrate, those of
// PostgreSQL alone.
func (c WarmerConfig) validate() error {
	if c.ChangeCapture != query.CaptureTriggers && c.ChangeCapture != query.CaptureLogical {
		return Errorf("CHANGE_CAPTURE", "%q is not triggers or logical", c.ChangeCapture)
	}
	if c.Command.MigrateOnly || c.Command.Uninstall {
		return c.Cache.validateMigrate()
	}
	if c.Command.CheckOnly {
		return c.Cache.validateCheck()
	}
	if err := c.Cache.validate(); err != nil {
		return err
	}
	if _, port, err := net.SplitHostPort(c.AdminAddr); err != nil || port == "" {
		return Errorf("ADMIN_ADDR", "%q is not an address to listen on (host:port, :port)", c.AdminAddr)
	}
	switch {
	case c.ShutdownTimeout <= 0:
		return Errorf("SHUTDOWN_TIMEOUT", "%s is not positive", c.ShutdownTimeout)
	case c.RunHistory < 1 || c.RunHistory > 1000:
		return Errorf("RUN_HISTORY", "%d is not between 1 and 1000", c.RunHistory)
	case !httpguts.ValidHeaderFieldName(c.PurgeKeyHeader):
		return Errorf("PURGE_KEY_HEADER", "%q is not a header name", c.PurgeKeyHeader)
	case !httpguts.ValidHeaderFieldName(c.PurgeMethod): // a method is a token, as a header name is
		return Errorf("PURGE_METHOD", "%q is not an HTTP method", c.PurgeMethod)
	}
	for name := range c.PurgeHeaders {
		if !httpguts.ValidHeaderFieldName(strings.TrimSpace(name)) {
			return Errorf("PURGE_HEADERS", "%q is not a header name (want Name:value,Name:value)", name)
		}
	}
	return nil
}

// Log writes the effective configuration, secrets masked.
func (c WarmerConfig) Log(logger *slog.Logger) {
	logger.Info("config",
		"database_url", MaskURL(c.DatabaseURL), "database_replica_url", MaskURL(c.ReplicaURL), "change_capture", c.ChangeCapture,
		"redis_url", MaskURL(c.RedisURL), "namespace", c.Namespace, "ttl", c.TTL.String(),
		"grace", c.Grace.String(), "negative_ttl", c.NegativeTTL.String(), "timezone", c.TimeZone, "jobs_file", c.JobsFile,
		"admin_addr", c.AdminAddr, "migrate", c.Migrate, "shutdown_timeout", c.ShutdownTimeout.String(),
		"run_history", c.RunHistory, "purge_urls", maskAll(c.PurgeURLs), "purge_method", c.PurgeMethod, "purge_key_header", c.PurgeKeyHeader,
		"purge_headers", len(c.PurgeHeaders),
		"log_level", c.Level, "log_format", c.Format)
}

// maskAll masks the passwords of urls.
func maskAll(urls []string) []string {
	masked := make([]string, len(urls))
	for i, u := range urls {
		masked[i] = MaskURL(u)
	}
	return masked
}
