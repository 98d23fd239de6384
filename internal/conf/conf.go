// Package conf reads warmcache's configuration from the environment, 12-factor style, for both
// binaries: the tutorials' variable names are accepted as aliases, durations may be plain
// seconds as the tutorials wrote them, and every error names the setting at fault.
package conf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/warmcache/warmcache/jobs"
)

// aliases maps the tutorials' names onto warmcache's. The warmcache name wins when both are set.
var aliases = map[string]string{
	"PG_SERVICE_URI":        "DATABASE_URL",
	"VALKEY_SERVICE_URI":    "REDIS_URL",
	"CACHE_TIMEOUT_SECONDS": "CACHE_TTL",
}

// Error is a configuration error: the setting and what is wrong with it. Binaries exit with
// status 2 on it.
type Error struct {
	Setting string
	Err     error
}

func (e *Error) Error() string { return e.Setting + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error for setting.
func Errorf(setting, format string, args ...any) error {
	return &Error{Setting: setting, Err: fmt.Errorf(format, args...)}
}

// Load fills cfg, a pointer to a struct with env tags, from environ (os.Environ's form).
func Load(cfg any, environ []string) error {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	for alias, name := range aliases {
		if v, ok := vars[alias]; ok {
			if _, set := vars[name]; !set {
				vars[name] = v
			}
		}
	}
	err := env.ParseWithOptions(cfg, env.Options{
		Environment: vars,
		FuncMap: map[reflect.Type]env.ParserFunc{
			reflect.TypeFor[time.Duration](): parseDuration,
			reflect.TypeFor[Bytes]():         parseBytes,
		},
	})
	if err == nil {
		return nil
	}
	// env names struct fields and Go types in its errors; say which variable and what it wants.
	var parseErr env.ParseError
	if errors.As(err, &parseErr) {
		name := envName(cfg, parseErr.Name)
		return &Error{Setting: name, Err: wanted(parseErr.Type, vars[name], parseErr.Err)}
	}
	return err
}

// wanted says what a setting of type t wants, when value is not it. The errors of this
// package's own parsers say so already; strconv's do not.
func wanted(t reflect.Type, value string, err error) error {
	if t == reflect.TypeFor[time.Duration]() || t == reflect.TypeFor[Bytes]() {
		return err
	}
	switch t.Kind() {
	case reflect.Bool:
		return fmt.Errorf("%q is not true or false", value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Errorf("%q is not a whole number", value)
	case reflect.Map:
		return fmt.Errorf("%q is not a list of name:value pairs separated by commas", value)
	}
	return err
}

func parseDuration(s string) (any, error) { return jobs.ParseDuration(s) }

// Bytes is a size setting: a number of bytes, or a number with a unit, KiB, MiB and GiB being
// powers of 1024 and kB, MB and GB of 1000 ("64MiB").
type Bytes uint64

var byteUnits = []struct {
	suffix string
	size   uint64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}

// ParseBytes reads a Bytes setting.
func ParseBytes(s string) (Bytes, error) {
	number, unit := strings.TrimSpace(s), uint64(1)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(number, u.suffix); ok {
			number, unit = strings.TrimSpace(n), u.size
			break
		}
	}
	n, err := strconv.ParseUint(number, 10, 64)
	if err != nil || n > math.MaxUint64/unit {
		return 0, fmt.Errorf("%q is not a size (a number of bytes, or with KiB, MiB, GiB, kB, MB, GB)", s)
	}
	return Bytes(n * unit), nil
}

func parseBytes(s string) (any, error) { return ParseBytes(s) }

// envName finds the env tag of the field called field anywhere in cfg's struct.
func envName(cfg any, field string) string {
	var find func(t reflect.Type) string
	find = func(t reflect.Type) string {
		for f := range t.Fields() {
			if f.Name == field {
				name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
				return name
			}
			if f.Type.Kind() == reflect.Struct {
				if name := find(f.Type); name != "" {
					return name
				}
			}
		}
		return ""
	}
	if name := find(reflect.TypeOf(cfg).Elem()); name != "" {
		return name
	}
	return field
}

// Logging configures the structured log.
type Logging struct {
	Level  string `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	Format string `env:"LOG_FORMAT" envDefault:"json" help:"json or text"`
}

// Logger returns the logger Logging describes, writing to w.
func (l Logging) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, Errorf("LOG_LEVEL", "%q is not one of debug, info, warn, error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactErrors}
	switch l.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, Errorf("LOG_FORMAT", "%q is not json or text", l.Format)
}

// redactErrors masks what an error logged under the key "error" may quote: a password, a card
// number (RedactError). Errors are logged off the hot path, so every one is looked at.
func redactErrors(_ []string, a slog.Attr) slog.Attr {
	if a.Key != "error" {
		return a
	}
	switch v := a.Value.Any().(type) {
	case error:
		return slog.String(a.Key, RedactError(v.Error()))
	case string:
		return slog.String(a.Key, RedactError(v))
	}
	return a
}

// LoadLocation loads the IANA time zone named by setting's value.
func LoadLocation(setting, name string) (*time.Location, error) {
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, Errorf(setting, "%q is not a known time zone (want an IANA name such as Europe/Paris)", name)
	}
	return loc, nil
}

// Cache is the configuration the warmer and the api share: where the data and the cache are,
// and how cached values age.
type Cache struct {
	DatabaseURL string        `env:"DATABASE_URL" help:"PostgreSQL, as a URL or key=value string (required)"`
	RedisURL    string        `env:"REDIS_URL" help:"Redis: redis:// or rediss://, Sentinel with ?master_name=, Cluster with ?cluster=true (required)"`
	Namespace   string        `env:"CACHE_NAMESPACE" envDefault:"warmcache" help:"the prefix of every Redis key"`
	TTL         time.Duration `env:"CACHE_TTL" envDefault:"10m" help:"how long values stay fresh, for jobs without a ttl"`
	Grace       time.Duration `env:"CACHE_GRACE" envDefault:"1h" help:"how long past freshness a value may be served stale"`
	TimeZone    string        `env:"TIMEZONE" envDefault:"UTC" help:"the IANA zone of schedules and of end_of_day / end_of_week"`
	JobsFile    string        `env:"JOBS_FILE" help:"the jobs file (YAML); --jobs FILE overrides it"`
	// NegativeTTL is how long an unknown key (a customer that does not exist) stays cached.
	NegativeTTL time.Duration `env:"CACHE_NEGATIVE_TTL" envDefault:"30s" help:"how long an unknown key is cached as unknown"`
	// PurgeURLs are the downstream HTTP caches the warmer purges of changed values; with them
	// set, the api lets shared caches keep values longer (s-maxage).
	PurgeURLs []string `env:"PURGE_URLS" envSeparator:"," help:"comma-separated URLs of HTTP caches the warmer purges"`

	// jobsFlag is set when the jobs file came from --jobs rather than JOBS_FILE.
	jobsFlag bool
}

// SetJobsFlag makes path, given as --jobs, the jobs file.
func (c *Cache) SetJobsFlag(path string) {
	if path != "" {
		c.JobsFile, c.jobsFlag = path, true
	}
}

// JobsSetting names the jobs file as the user gave it, for errors: "--jobs FILE" or
// "JOBS_FILE=FILE" (or "jobs" for the built-in jobs alone).
func (c Cache) JobsSetting() string {
	switch {
	case c.jobsFlag:
		return "--jobs " + c.JobsFile
	case c.JobsFile != "":
		return "JOBS_FILE=" + c.JobsFile
	}
	return "jobs"
}

// ValidateMigrate checks the settings a migration needs: all but Redis's.
func (c Cache) ValidateMigrate() error {
	if c.DatabaseURL == "" {
		return Errorf("DATABASE_URL", "is not set (alias PG_SERVICE_URI)")
	}
	return c.validateLifetimes()
}

// Validate checks the settings that need no connection.
func (c Cache) Validate() error {
	if err := c.ValidateMigrate(); err != nil {
		return err
	}
	if c.RedisURL == "" {
		return Errorf("REDIS_URL", "is not set (alias VALKEY_SERVICE_URI)")
	}
	return c.validatePurges()
}

// validatePurges checks that every purge URL is an http or https URL.
func (c Cache) validatePurges() error {
	for _, raw := range c.PurgeURLs {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Errorf("PURGE_URLS", "%q is not an http:// or https:// URL", raw)
		}
	}
	return nil
}

// validateLifetimes checks the settings of how values age and of the time zone.
func (c Cache) validateLifetimes() error {
	switch {
	case c.TTL < time.Second:
		return Errorf("CACHE_TTL", "%s is shorter than one second", c.TTL)
	case c.Grace < 0:
		return Errorf("CACHE_GRACE", "%s is negative", c.Grace)
	case c.NegativeTTL < time.Second:
		return Errorf("CACHE_NEGATIVE_TTL", "%s is shorter than a second", c.NegativeTTL)
	}
	_, err := LoadLocation("TIMEZONE", c.TimeZone)
	return err
}

// Location returns the time zone of schedules and calendar expiry; Validate has checked it.
func (c Cache) Location() *time.Location {
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// ExitStatus reports err the way both binaries do and returns their exit status: 0 without an
// error, 2 for a configuration error (printed to stderr, naming the setting), 1 for any other
// (logged as name_failed), its secrets masked either way (the logger of Logging masks every
// error it logs).
func ExitStatus(name string, err error, stderr io.Writer, logger *slog.Logger) int {
	var confErr *Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &confErr) || logger == nil:
		fmt.Fprintf(stderr, "%s: configuration: %s\n", name, Redact(err.Error()))
		return 2
	}
	logger.Error(name+"_failed", "error", err)
	return 1
}

// LogConnect tries a dependency once at start and logs the named event <name>_connected, or a
// warning: a process starts even while a server is down, and reconnects when it returns. It
// returns the error, for the caller to tell a server that is down from one that refuses the
// configuration.
func LogConnect(ctx context.Context, logger *slog.Logger, name, url string, ping func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	started := time.Now()
	if err := ping(ctx); err != nil {
		logger.Warn(name+"_unavailable", "url", MaskURL(url), "error", err)
		return err
	}
	logger.Info(name+"_connected", "url", MaskURL(url), "duration_ms", time.Since(started).Milliseconds())
	return nil
}

// JobDefaults returns the defaults of jobs the configuration both binaries share gives: CACHE_TTL,
// CACHE_GRACE, CACHE_NEGATIVE_TTL and TIMEZONE.
func (c Cache) JobDefaults() jobs.Defaults {
	return jobs.Defaults{TTL: c.TTL, Grace: c.Grace, NegativeTTL: c.NegativeTTL, Location: c.Location()}
}

// Jobs loads the jobs of the configuration both binaries share: the built-in jobs, and the
// jobs file's overrides and jobs. Its errors are configuration errors naming the jobs file as
// the user gave it (--jobs FILE or JOBS_FILE=FILE), then the line and the setting.
func (c Cache) Jobs(now time.Time) ([]jobs.Job, error) {
	list, err := jobs.Load(c.JobsFile, c.JobDefaults(), now)
	if err != nil {
		return nil, Errorf(c.JobsSetting(), "%w", err)
	}
	return list, nil
}
