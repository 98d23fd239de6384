package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
	"golang.org/x/net/http/httpguts"
)

const apiSynopsis = `usage: api [--jobs FILE]
       api --help | --version

Serves warmcache's cached aggregates over HTTP. Configuration comes from the environment. Exit
status: 0 after SIGTERM or SIGINT, 1 on a failure, 2 on bad usage or configuration. The api
starts with PostgreSQL or Redis down, and serves what it can.`

// API is the api's command line: it parses args, reads the configuration from environ and
// checks it whole, jobs file included, before anything connects, sets up the log, and calls
// run. It returns the exit status: 0 after --help, --version, or run returning nil; 1 when run
// fails; 2 on bad usage or configuration.
func API(ctx context.Context, args, environ []string, stdout, stderr io.Writer,
	run func(context.Context, APIConfig, *slog.Logger) error) int {
	cmd := newCommand("api", apiSynopsis, &APIConfig{}, stdout)
	jobsFile := cmd.flags.String("jobs", "", "the jobs `FILE` (overrides JOBS_FILE)")
	if status, done := cmd.parse(args, stdout, stderr, nil); done {
		return status
	}
	var cfg APIConfig
	err := Load(&cfg, environ)
	cfg.setJobsFlag(*jobsFile)
	cfg.stderr = stderr
	return cmd.start(&cfg, err, stderr, func(logger *slog.Logger) error { return run(ctx, cfg, logger) })
}

// APIConfig is the api's configuration, read from the environment. A doc tag says more than
// help, for docs/configuration.md only.
type APIConfig struct {
	Cache
	ListenAddr  string `env:"LISTEN_ADDR" envDefault:":8000" help:"the address the api listens on"`
	AdminAddr   string `env:"ADMIN_ADDR" envDefault:":9090" help:"the address of the admin listener: /metrics, /status and /debug/pprof/" doc:"never on the public port; scrape it from inside the cluster"`
	AccessLogOn bool   `env:"ACCESS_LOG" envDefault:"true" help:"log one line per request (http_request), with its X-Request-Id"`
	CacheHeader string `env:"CACHE_HEADER" envDefault:"X-Cache" help:"the name of the header that says HIT, MISS, STALE or BYPASS"`
	// HTTPMaxAge is the freshness every HTTP cache, browsers among them, gets: short, because a
	// value may change at any moment.
	HTTPMaxAge time.Duration `env:"HTTP_MAX_AGE" envDefault:"2s" help:"the freshness every HTTP cache gets (max-age)" doc:"0 makes browsers revalidate every time"`
	// HTTPSharedMaxAge is the freshness shared caches get (s-maxage) when PURGE_URLS is set.
	HTTPSharedMaxAge   time.Duration `env:"HTTP_SHARED_MAX_AGE" envDefault:"10m" help:"the freshness shared caches get (s-maxage) when PURGE_URLS is set"`
	SurrogateKeyHeader string        `env:"SURROGATE_KEY_HEADER" envDefault:"Surrogate-Key" help:"the header of the surrogate keys" doc:"Cache-Tag for Cloudflare-style caches"`
	// LocalCacheSize bounds the in-process tier; 0 turns it off. LocalCacheTTL is the longest a
	// value stays in it: Redis tells it of every change, so it can be long.
	LocalCacheSize  Bytes         `env:"LOCAL_CACHE_SIZE" envDefault:"64MiB" help:"memory of the in-process tier (B, KiB, MiB, GiB, kB, MB, GB); 0 turns it off"`
	LocalCacheTTL   time.Duration `env:"LOCAL_CACHE_TTL" envDefault:"5m" help:"longest a value stays in the in-process tier" doc:"Redis tells the tier of every change, so a value leaves it as soon as it changes; on a Redis Cluster it stays 1s at most"`
	RedisTimeout    time.Duration `env:"REDIS_TIMEOUT" envDefault:"100ms" help:"longest a Redis read may take before the value comes from PostgreSQL" doc:"connecting and the pool's wait included; with TLS, leave room for a handshake"`
	QueryTimeout    time.Duration `env:"QUERY_TIMEOUT" envDefault:"5s" help:"longest one value may take to compute from PostgreSQL" doc:"waiting for a turn and a connection included; it bounds a write too"`
	MaxQueries      int           `env:"MAX_QUERIES" envDefault:"16" help:"values computed from PostgreSQL at once (and the pool size)" doc:"1 to 1,000"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s" help:"on SIGTERM, how long requests in flight may take to finish"`
	// APIToken is the bearer token of writes and admin actions; without it they are refused.
	APIToken string `env:"API_TOKEN" secret:"file" help:"the bearer token of writes and admin actions, at least 16 characters; unset, they are refused" doc:"one character repeated, or an example's (CHANGE-ME), stops the api at start"`
	// CORSOrigins are the origins whose pages may call the api from a browser; none turns CORS
	// off.
	CORSOrigins []string `env:"CORS_ORIGINS" envSeparator:"," help:"origins whose pages may call the api from a browser (https://app.example.com, https://*.example.com, *); unset, CORS is off"`
	Logging

	stderr io.Writer // where the log goes, the access log included
}

// Access log buffering: the lines wait at most accessLogFlush, and at most accessLogBuffer
// bytes of them, before one write sends them.
const (
	accessLogFlush  = 100 * time.Millisecond
	accessLogBuffer = 64 << 10
)

// AccessLog returns where the access log goes (ACCESS_LOG), nil when it is off, whether its
// lines are logfmt rather than JSON (LOG_FORMAT), and the function that writes what it holds and
// stops it. Its lines go to the log's stream in one write every 100 ms or 64 KiB rather than one
// a request: a write system call a request cost a busy api a quarter of its hits. A process
// killed with SIGKILL loses the lines of its last 100 ms. At LOG_LEVEL warn or error, whose log
// holds no info lines, it is off.
func (c APIConfig) AccessLog() (io.Writer, bool, func()) {
	var level slog.Level
	if !c.AccessLogOn || c.stderr == nil || level.UnmarshalText([]byte(c.Level)) != nil || level > slog.LevelInfo {
		return nil, false, func() {}
	}
	// Without the stream's Sync: the buffer syncs what it writes, and a log file would be
	// fsynced ten times a second.
	w := &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(struct{ io.Writer }{c.stderr}), Size: accessLogBuffer,
		FlushInterval: accessLogFlush}
	return w, c.Format == "text", func() { w.Stop() } //nolint:errcheck // the log's stream has nowhere to report to
}

func (c *APIConfig) common() (*Cache, Logging) { return &c.Cache, c.Logging }

// corsOrigin is an origin of CORS_ORIGINS: a scheme and a host, with an optional port, in which
// * stands for any text ("https://*.example.com"); or * alone.
var corsOrigin = regexp.MustCompile(`^(\*|https?://[A-Za-z0-9*.-]+(:[0-9]+)?)$`)

func (c APIConfig) validate() error {
	if err := c.Cache.validate(); err != nil {
		return err
	}
	if _, port, err := net.SplitHostPort(c.ListenAddr); err != nil || !validPort(port) {
		return Errorf("LISTEN_ADDR", "%q is not an address to listen on (host:port, :port)", c.ListenAddr)
	}
	if _, port, err := net.SplitHostPort(c.AdminAddr); err != nil || !validPort(port) {
		return Errorf("ADMIN_ADDR", "%q is not an address to listen on (host:port, :port)", c.AdminAddr)
	}
	if c.AdminAddr == c.ListenAddr && !strings.HasSuffix(c.ListenAddr, ":0") {
		return Errorf("ADMIN_ADDR", "%q is LISTEN_ADDR too: the admin listener needs a port of its own", c.AdminAddr)
	}
	switch {
	case !httpguts.ValidHeaderFieldName(c.CacheHeader):
		return Errorf("CACHE_HEADER", "%q is not a header name", c.CacheHeader)
	case !httpguts.ValidHeaderFieldName(c.SurrogateKeyHeader):
		return Errorf("SURROGATE_KEY_HEADER", "%q is not a header name", c.SurrogateKeyHeader)
	case c.HTTPMaxAge < 0:
		return Errorf("HTTP_MAX_AGE", "%s is negative", c.HTTPMaxAge)
	case c.HTTPSharedMaxAge < 0:
		return Errorf("HTTP_SHARED_MAX_AGE", "%s is negative", c.HTTPSharedMaxAge)
	case c.LocalCacheTTL <= 0 && c.LocalCacheSize > 0:
		return Errorf("LOCAL_CACHE_TTL", "%s is not positive", c.LocalCacheTTL)
	case c.RedisTimeout <= 0:
		return Errorf("REDIS_TIMEOUT", "%s is not positive", c.RedisTimeout)
	case c.QueryTimeout <= 0:
		return Errorf("QUERY_TIMEOUT", "%s is not positive", c.QueryTimeout)
	case c.MaxQueries < 1 || c.MaxQueries > 1000:
		return Errorf("MAX_QUERIES", "%d is not between 1 and 1000", c.MaxQueries)
	case c.ShutdownTimeout <= 0:
		return Errorf("SHUTDOWN_TIMEOUT", "%s is not positive", c.ShutdownTimeout)
	}
	for _, o := range c.CORSOrigins {
		if !corsOrigin.MatchString(strings.TrimSpace(o)) {
			return Errorf("CORS_ORIGINS", "%q is not an origin (https://app.example.com, https://*.example.com or *)", o)
		}
	}
	return checkToken(c.APIToken)
}

// Origins are the origins of CORS_ORIGINS, trimmed.
func (c APIConfig) Origins() []string {
	origins := make([]string, len(c.CORSOrigins))
	for i, o := range c.CORSOrigins {
		origins[i] = strings.TrimSpace(o)
	}
	return origins
}

// minTokenLength is the shortest API_TOKEN accepted: 16 characters, 64 bits as hex.
const (
	minTokenLength = 16
	tokenAdvice    = "set a random token of at least 16 characters, such as: head -c 32 /dev/urandom | base64"
)

// placeholders are the words of example tokens, once letters alone remain, lower case: long
// enough that a random token holds none by chance.
var placeholders = []string{"changeme", "replaceme", "placeholder", "example", "yourtoken", "secrettoken"}

// checkToken refuses an API_TOKEN an attacker could guess: one copied from an example (the
// example Secret's CHANGE-ME), or too short. Unset is fine: writes are then refused.
func checkToken(token string) error {
	if token == "" {
		return nil
	}
	letters := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) {
			return unicode.ToLower(r)
		}
		return -1
	}, token)
	for _, p := range placeholders {
		if strings.Contains(letters, p) {
			return Errorf("API_TOKEN", "looks like a placeholder (%q): %s", p, tokenAdvice)
		}
	}
	if n := utf8.RuneCountInString(token); n < minTokenLength || strings.Count(token, token[:1]) == len(token) {
		return Errorf("API_TOKEN", "is too short or too simple (%d characters): %s", n, tokenAdvice)
	}
	return nil
}

// validPort reports a port number, or a service name such as http.
func validPort(port string) bool {
	_, err := net.DefaultResolver.LookupPort(context.Background(), "tcp", port)
	return err == nil
}

// SharedMaxAge is the s-maxage shared caches get: none unless the warmer purges them.
func (c APIConfig) SharedMaxAge() time.Duration {
	if len(c.PurgeURLs) == 0 {
		return 0
	}
	return c.HTTPSharedMaxAge
}

// Log writes the effective configuration, secrets masked.
func (c APIConfig) Log(logger *slog.Logger) {
	logger.Info("config",
		"database_url", MaskURL(c.DatabaseURL), "database_replica_url", MaskURL(c.ReplicaURL), "redis_url", MaskURL(c.RedisURL),
		"namespace", c.Namespace, "ttl", c.TTL.String(), "grace", c.Grace.String(), "timezone", c.TimeZone,
		"jobs_file", c.JobsFile, "listen_addr", c.ListenAddr, "admin_addr", c.AdminAddr, "access_log", c.AccessLogOn,
		"cache_header", c.CacheHeader,
		"http_max_age", c.HTTPMaxAge.String(), "http_shared_max_age", c.SharedMaxAge().String(),
		"surrogate_key_header", c.SurrogateKeyHeader, "purge_urls", len(c.PurgeURLs),
		"local_cache_size", uint64(c.LocalCacheSize), "local_cache_ttl", c.LocalCacheTTL.String(),
		"redis_timeout", c.RedisTimeout.String(), "query_timeout", c.QueryTimeout.String(),
		"max_queries", c.MaxQueries, "negative_ttl", c.NegativeTTL.String(),
		"shutdown_timeout", c.ShutdownTimeout.String(), "api_token_set", c.APIToken != "", "cors_origins", c.Origins(),
		"log_level", c.Level, "log_format", c.Format)
	if c.APIToken == "" {
		logger.Warn("writes_disabled", "reason", "API_TOKEN is not set")
	}
}
