package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrMiss reports that a key holds no entry.
var ErrMiss = errors.New("cache: miss")

// ErrNoDatabase reports that the server has no database of the URL's number (redis://host/99):
// a configuration error, which no retry mends.
var ErrNoDatabase = errors.New("no such database on the server")

// ErrUnavailable reports that Redis could not be reached or failed to answer. It wraps the
// driver's error, so the text says what happened.
var ErrUnavailable = errors.New("redis unavailable")

// ErrFull reports that Redis refused a write because it is full: its memory reached maxmemory
// and its policy (noeviction) evicts nothing to make room. Reads and deletions still work.
var ErrFull = errors.New("redis is full (used memory reached maxmemory and maxmemory-policy evicts nothing)")

// Store reads and writes warmcache's entries and records in Redis.
type Store struct {
	rdb     redis.UniversalClient
	keys    Keys
	cluster bool
	changed func(Change)
	// runHistory is how many runs of each job are kept (Options.RunHistory).
	runHistory int
}

// Options tunes the Redis client. Zero values keep go-redis's defaults or the URL's settings.
type Options struct {
	PoolSize     int
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// ClientName names the connections (CLIENT LIST), unless the URL does (client_name=).
	ClientName string
	// Changed, if set, is told of the changes this store's writes make (the warmer purges
	// downstream caches of them), besides the namespace's channel, which tells every process.
	Changed func(Change)
	// RunHistory is how many runs of each job RecordRun keeps (RUN_HISTORY); zero keeps
	// DefaultRunHistory.
	RunHistory int
}

// Open parses url and returns a Store on it. It does not wait for the server. The URL is
// redis:// (or rediss:// for TLS, with user and password in the URL as usual), and names:
//   - a Sentinel deployment when it carries master_name=NAME (the host and any addr= parameters
//     are the sentinels);
//   - a Redis Cluster when it carries cluster=true or several addr= parameters (the host and the
//     addr= parameters are seed nodes);
//   - a single server otherwise.
func Open(rawURL string, keys Keys, opts Options) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Not %w: url.Parse's error quotes the URL, password included, and its reason may quote
		// a piece of the password (an unescaped / in it ends the host early).
		return nil, errors.New("not a valid URL (a password with @, / or : must be percent-encoded)")
	}
	q := u.Query()
	var (
		rdb     redis.UniversalClient
		cluster bool
	)
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("sentinel URL: %w", err)
		}
		opts.apply(&o.ContextTimeoutEnabled, &o.Protocol, &o.ClientName, &o.PoolSize, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout)
		rdb = redis.NewFailoverClient(o)
	case q.Get("cluster") == "true" || len(q["addr"]) > 0:
		q.Del("cluster")
		u.RawQuery = q.Encode()
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("cluster URL: %w", err)
		}
		opts.apply(&o.ContextTimeoutEnabled, &o.Protocol, &o.ClientName, &o.PoolSize, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout)
		rdb, cluster = redis.NewClusterClient(o), true
	default:
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		opts.apply(&o.ContextTimeoutEnabled, &o.Protocol, &o.ClientName, &o.PoolSize, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout)
		rdb = redis.NewClient(o)
	}
	history := opts.RunHistory
	if history <= 0 {
		history = DefaultRunHistory
	}
	return &Store{rdb: rdb, keys: keys, cluster: cluster, changed: opts.Changed, runHistory: history}, nil
}

// CheckURL reports whether Open accepts rawURL, without connecting: a start-up check.
func CheckURL(rawURL string) error {
	s, err := Open(rawURL, Keys{}, Options{})
	if err != nil {
		return err
	}
	return s.Close()
}

// apply overrides the URL's settings with the options that are set, and makes the client honour
// the deadlines of its callers' contexts: go-redis ignores them by default, and a hung server
// would then hold every read for the full read timeout. It also speaks RESP2: RESP3's push
// messages serve nothing here, and go-redis checks for them before every command.
func (o Options) apply(contextTimeouts *bool, protocol *int, clientName *string, poolSize *int, dial, read, write *time.Duration) {
	*contextTimeouts = true
	*protocol = 2
	if *clientName == "" {
		*clientName = o.ClientName
	}
	if o.PoolSize > 0 {
		*poolSize = o.PoolSize
	}
	for _, d := range []struct {
		to   *time.Duration
		from time.Duration
	}{{dial, o.DialTimeout}, {read, o.ReadTimeout}, {write, o.WriteTimeout}} {
		if d.from != 0 {
			*d.to = d.from
		}
	}
}

// Close closes the connections.
func (s *Store) Close() error { return s.rdb.Close() }

// Ping checks that Redis answers, in the URL's database: ErrNoDatabase when the server has none
// of that number.
func (s *Store) Ping(ctx context.Context) error {
	err := s.rdb.Ping(ctx).Err()
	var redisErr redis.Error
	if errors.As(err, &redisErr) && strings.Contains(redisErr.Error(), "DB index is out of range") {
		if c, ok := s.rdb.(*redis.Client); ok {
			return fmt.Errorf("database %d: %w (Redis has 16, 0 to 15, unless its databases setting says more)",
				c.Options().DB, ErrNoDatabase)
		}
		return ErrNoDatabase
	}
	return translate(err)
}

// Get returns the entry of a job's key, or ErrMiss. Bytes that are not an entry of a format this
// version reads are as good as none: ErrMiss too.
func (s *Store) Get(ctx context.Context, job, key string) (Entry, error) {
	b, err := s.rdb.Get(ctx, s.keys.Value(job, key)).Bytes()
	if err != nil {
		return Entry{}, translate(err)
	}
	e, err := decodeEntry(b)
	if err != nil {
		return Entry{}, ErrMiss
	}
	return e, nil
}

// translate maps go-redis errors onto this package's errors, once, at the boundary.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return ErrMiss
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	var redisErr redis.Error
	switch {
	case errors.As(err, &redisErr) && strings.HasPrefix(redisErr.Error(), "OOM "):
		return fmt.Errorf("%w: %v", ErrFull, err) //nolint:errorlint // as below
	case errors.As(err, &redisErr) && !isServerGone(redisErr.Error()):
		return err // the server answered with an error about the command
	}
	// %v, not %w: callers above this package must not inspect go-redis's errors.
	return fmt.Errorf("%w: %v", ErrUnavailable, err) //nolint:errorlint // on purpose, as said
}

// isServerGone recognises the error replies of a server that cannot serve right now.
func isServerGone(msg string) bool {
	for _, prefix := range []string{"LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "READONLY"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// RouteDriverLogs sends go-redis's own log lines (reconnection attempts and the like, which the
// errors this package returns already report) to logger at debug level. go-redis keeps its
// logger in a global, so only a main calls this, once.
func RouteDriverLogs(logger *slog.Logger) { redis.SetLogger(driverLogger{logger}) }

type driverLogger struct{ logger *slog.Logger }

func (l driverLogger) Printf(ctx context.Context, format string, v ...any) {
	l.logger.DebugContext(ctx, "redis_driver", "message", fmt.Sprintf(format, v...))
}
