package cli

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// Cache is the configuration the warmer and the api share: where the data and the cache are,
// and how cached values age. A doc tag says more than help, for docs/configuration.md only; a
// help ending in "(required)" marks a variable that must be set.
type Cache struct {
	DatabaseURL string `env:"DATABASE_URL" secret:"file" help:"PostgreSQL, as a URL or key=value string (required)" doc:"sslmode, passwords and the like work from the URL"`
	// ReplicaURL is a streaming replica of DatabaseURL's server, read by both processes.
	ReplicaURL  string        `env:"DATABASE_REPLICA_URL" secret:"file" help:"a streaming replica of DATABASE_URL's server, where warm runs and read-through queries read" doc:"a refresh after a change reads it once it has replayed past the change, else the primary; writes, the outbox, claims and locks stay on DATABASE_URL. A replica that stops answering is left for the primary until it answers again"`
	ReplicaWait time.Duration `env:"REPLICA_WAIT" envDefault:"1s" help:"how long a read waits for the replica to replay past the position it needs before it reads the primary"`
	Schema      string        `env:"DATABASE_SCHEMA" envDefault:"warmcache" help:"the PostgreSQL schema of warmcache's own objects" doc:"its outbox, claims, migrations and change-capture functions; created by warmer migrate, which moves an older installation's objects there. On users' tables warmcache creates only its triggers"`
	RedisURL    string        `env:"REDIS_URL" secret:"file" help:"Redis: redis:// or rediss://, Sentinel with ?master_name=, Cluster with ?cluster=true (required)" doc:"rediss:// is TLS; user and password go in the URL; with ?master_name=NAME the host and addr= parameters are the sentinels; several addr= parameters make a Cluster too"`
	Namespace   string        `env:"CACHE_NAMESPACE" envDefault:"warmcache" help:"the prefix of every Redis key" doc:"values live at namespace:job and namespace:job:key"`
	TTL         time.Duration `env:"CACHE_TTL" envDefault:"10m" help:"how long values stay fresh, for jobs without a ttl"`
	Grace       time.Duration `env:"CACHE_GRACE" envDefault:"1h" help:"how long past freshness a value may be served stale" doc:"Redis keeps it that long, to be served while PostgreSQL is down"`
	TimeZone    string        `env:"TIMEZONE" envDefault:"UTC" help:"the IANA zone of schedules and of end_of_day / end_of_week"`
	JobsFile    string        `env:"JOBS_FILE" help:"the jobs file (YAML); --jobs FILE overrides it"`
	// NegativeTTL is how long an unknown key (a customer that does not exist) stays cached.
	NegativeTTL time.Duration `env:"CACHE_NEGATIVE_TTL" envDefault:"30s" help:"how long an unknown key is cached as unknown" doc:"a customer that does not exist, for instance"`
	// PurgeURLs are the downstream HTTP caches the warmer purges of changed values; with them
	// set, the api lets shared caches keep values longer (s-maxage).
	PurgeURLs []string `env:"PURGE_URLS" envSeparator:"," help:"comma-separated URLs of HTTP caches the warmer purges" doc:"set them for the api too, which then sends s-maxage"`

	// jobsFlag is set when the jobs file came from --jobs rather than JOBS_FILE.
	jobsFlag bool
	// jobs are the jobs of the configuration, loaded and checked at start.
	jobs       []jobs.Job
	builtins   jobs.Builtins // the jobs file's builtins
	jobsDigest string        // of the jobs file: JobsDigest
}

// WithReplica returns o reading from the replica, when one is set (DATABASE_REPLICA_URL), and
// logging its coming and going to logger.
func (c Cache) WithReplica(o query.Options, logger *slog.Logger) query.Options {
	o.ReplicaURL, o.ReplicaWait, o.Logger = c.ReplicaURL, c.ReplicaWait, logger
	return o
}

// setJobsFlag makes path, given as --jobs, the jobs file.
func (c *Cache) setJobsFlag(path string) {
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

// validateMigrate checks the settings a migration needs: all but Redis's.
func (c Cache) validateMigrate() error {
	if c.DatabaseURL == "" {
		return Errorf("DATABASE_URL", "is not set (alias PG_SERVICE_URI)")
	}
	if err := query.CheckSchema(c.Schema); err != nil {
		return Errorf("DATABASE_SCHEMA", "%w", err)
	}
	if err := c.validateLifetimes(); err != nil {
		return err
	}
	if err := query.CheckURL(c.DatabaseURL); err != nil {
		return Errorf("DATABASE_URL", "%w", err)
	}
	return nil
}

// validateCheck checks the settings warmer check needs: those of how values age, and of
// PostgreSQL if it is set (check then looks at the database too). Redis is not needed.
func (c Cache) validateCheck() error {
	if err := c.validateLifetimes(); err != nil {
		return err
	}
	if err := query.CheckSchema(c.Schema); err != nil {
		return Errorf("DATABASE_SCHEMA", "%w", err)
	}
	if err := query.CheckURL(c.DatabaseURL); c.DatabaseURL != "" && err != nil {
		return Errorf("DATABASE_URL", "%w", err)
	}
	return nil
}

// validate checks the settings that need no connection, those of PostgreSQL and Redis as their
// clients read them.
func (c Cache) validate() error {
	if c.DatabaseURL == "" {
		return Errorf("DATABASE_URL", "is not set (alias PG_SERVICE_URI)")
	}
	if err := c.validateLifetimes(); err != nil {
		return err
	}
	if c.RedisURL == "" {
		return Errorf("REDIS_URL", "is not set (alias VALKEY_SERVICE_URI)")
	}
	if err := c.validatePurges(); err != nil {
		return err
	}
	return c.checkServers()
}

// checkServers checks the settings of PostgreSQL and Redis as their clients read them, without
// connecting.
func (c Cache) checkServers() error {
	if err := query.CheckURL(c.DatabaseURL); err != nil {
		return Errorf("DATABASE_URL", "%w", err)
	}
	if err := query.CheckSchema(c.Schema); err != nil {
		return Errorf("DATABASE_SCHEMA", "%w", err)
	}
	if err := query.CheckURL(c.ReplicaURL); c.ReplicaURL != "" && err != nil {
		return Errorf("DATABASE_REPLICA_URL", "%w", err)
	}
	if c.ReplicaWait <= 0 || c.ReplicaWait > 30*time.Second {
		return Errorf("REPLICA_WAIT", "%s is not between 0 and 30s", c.ReplicaWait)
	}
	if err := cache.CheckURL(c.RedisURL); err != nil {
		return Errorf("REDIS_URL", "%w", err)
	}
	if _, err := cache.NewKeys(c.Namespace); err != nil {
		return Errorf("CACHE_NAMESPACE", "%w", err)
	}
	return nil
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
	_, err := loadLocation("TIMEZONE", c.TimeZone)
	return err
}

// location returns the time zone of schedules and calendar expiry; validate has checked it.
func (c Cache) location() *time.Location {
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// loadJobs loads the jobs of the configuration both binaries share: the built-in jobs, and the
// jobs file's overrides and jobs, with the defaults of CACHE_TTL, CACHE_GRACE,
// CACHE_NEGATIVE_TTL and TIMEZONE. Its errors are configuration errors naming the jobs file as
// the user gave it (--jobs FILE or JOBS_FILE=FILE), then the line and the setting.
func (c *Cache) loadJobs(now time.Time) error {
	defaults := jobs.Defaults{TTL: c.TTL, Grace: c.Grace, NegativeTTL: c.NegativeTTL, Location: c.location()}
	list, builtins, err := jobs.Load(c.JobsFile, defaults, now)
	if err != nil {
		return Errorf(c.JobsSetting(), "%w", err)
	}
	c.jobs, c.builtins = list, builtins
	c.jobsDigest, err = jobs.FileDigest(c.JobsFile)
	return err
}

// JobsDigest is the digest of the jobs file loaded at start ("none" without one), which the
// binaries announce to each other (WatchJobsFiles).
func (c Cache) JobsDigest() string { return c.jobsDigest }

// Jobs are the jobs of the configuration, loaded and checked at start: the built-in jobs (unless
// the jobs file's builtins is false), and the jobs file's overrides and jobs. OpenJobs decides
// whether the built-in ones stay.
func (c Cache) Jobs() []jobs.Job { return c.jobs }

// OpenJobs returns the jobs on db's database: without the built-in jobs where they are off
// (jobs.Builtins.Decide), and says which are on in the log. builtins: true on a database without
// their tables is a configuration error. With PostgreSQL down the database cannot say: the
// built-in jobs stay unless the file turned them off, and a warning says so.
func (c Cache) OpenJobs(ctx context.Context, db *query.DB, logger *slog.Logger) ([]jobs.Job, error) {
	if c.builtins == jobs.BuiltinsOff {
		logger.Info("builtins", "on", false, "reason", "builtins: false in the jobs file")
		return c.jobs, nil
	}
	missing, err := db.Schema().Missing(ctx, query.BuiltinTables)
	if err != nil {
		logger.Warn("builtins_not_checked", "on", true, "error", err)
		return c.jobs, nil
	}
	on, err := c.builtins.Decide(missing)
	if err != nil {
		return nil, Errorf(c.JobsSetting(), "%w", err)
	}
	if !on {
		logger.Info("builtins", "on", false, "reason", "the database has no table "+missing[0])
		return jobs.WithoutBuiltins(c.jobs), nil
	}
	var names []string
	for _, job := range c.jobs {
		if job.Builtin {
			names = append(names, job.Name)
		}
	}
	logger.Info("builtins", "on", true, "jobs", names)
	return c.jobs, nil
}
