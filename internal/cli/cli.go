// Package cli is the start-up the api and the warmer share: their command lines (flags, --help,
// --version), their configuration, read from the environment 12-factor style and checked whole
// before anything connects, their log, and their exit statuses. The tutorials' variable names
// are accepted as aliases, durations may be plain seconds as the tutorials wrote them, and every
// error names the setting at fault. A main hands API or Warmer its run function, which receives
// the configuration as a value.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/build"
	"github.com/warmcache/warmcache/query"
)

// The exit statuses of both binaries.
const (
	exitOK            = 0
	exitFailure       = 1 // logged as <name>_failed
	exitConfiguration = 2 // bad usage or configuration, printed to stderr
	exitUnavailable   = 3 // PostgreSQL or Redis could not be reached or did not answer: try again later
)

// command is a binary's command line.
type command struct {
	name    string // api or warmer: the start of every message it prints
	flags   *flag.FlagSet
	version bool
}

// newCommand returns the command line of the binary called name, with --version, and --help
// writing synopsis, the flags and the settings of cfg (a pointer to its configuration) to
// stdout.
func newCommand(name, synopsis string, cfg any, stdout io.Writer) *command {
	c := &command{name: name, flags: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.flags.SetOutput(io.Discard) // parse prints a usage error itself, once, naming the binary
	c.flags.BoolVar(&c.version, "version", false, "print the version and exit")
	c.flags.Usage = func() { usage(stdout, synopsis, c.flags, cfg) }
	return c
}

// parse parses args, then check, if not nil, says what else is wrong with them. It reports
// whether the command line is done, and with which exit status: after --help or --version, or
// after a usage error, printed to stderr.
func (c *command) parse(args []string, stdout, stderr io.Writer, check func() error) (status int, done bool) {
	err := c.flags.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK, true
	case err == nil && c.flags.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q (%s --help lists the flags)", c.flags.Arg(0), c.name)
	case err == nil && check != nil:
		err = check()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", c.name, err)
		return exitConfiguration, true
	}
	if c.version {
		fmt.Fprintln(stdout, c.name, build.Read())
		return exitOK, true
	}
	return exitOK, false
}

// settings is a binary's configuration as the start-up both share sees it: *APIConfig or
// *WarmerConfig.
type settings interface {
	common() (*Cache, Logging)
	validate() error
}

// start is the start-up both binaries share once cfg is read from the environment (with
// loadErr) and the flags are applied: it checks the configuration whole, jobs file included,
// before anything connects, sets up the log, and calls run. It returns the exit status.
func (c *command) start(cfg settings, loadErr error, stderr io.Writer, run func(*slog.Logger) error) int {
	err := loadErr
	if err == nil {
		err = cfg.validate()
	}
	shared, logging := cfg.common()
	if err == nil {
		err = shared.loadJobs(time.Now())
	}
	var logger *slog.Logger
	if err == nil {
		logger, err = logging.Logger(stderr)
	}
	if err != nil {
		return c.exit(err, stderr, nil)
	}
	cache.RouteDriverLogs(logger)
	return c.exit(run(logger), stderr, logger)
}

// exit reports err and returns the exit status: 0 without an error, 2 for a configuration
// error (printed to stderr, naming the setting), 3 when PostgreSQL or Redis was unavailable (a
// retry may succeed), 1 for any other failure (both logged as <name>_failed), its secrets masked
// either way (the logger of Logging masks every error it logs). Without a logger every error is
// a configuration error.
func (c *command) exit(err error, stderr io.Writer, logger *slog.Logger) int {
	var confErr *Error
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &confErr) || logger == nil:
		for line := range strings.Lines(Redact(err.Error())) {
			fmt.Fprintf(stderr, "%s: configuration: %s\n", c.name, strings.TrimSuffix(line, "\n"))
		}
		return exitConfiguration
	}
	logger.Error(c.name+"_failed", "error", err)
	if errors.Is(err, query.ErrUnavailable) || errors.Is(err, cache.ErrUnavailable) {
		return exitUnavailable
	}
	return exitFailure
}
