package cache

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	rdb   redis.UniversalClient
	probe func() redis.UniversalClient // a client of rdb's options for Probe, with one connection
	// tracker returns a client of rdb's options with one connection, which onConnect prepares
	// (Watch); nil on a Cluster.
	tracker     func(onConnect func(context.Context, *redis.Conn) error) *redis.Client
	keys        Keys
	cluster     bool
	invalidated func(Invalidation)
	// runHistory is how many runs of each job are kept (Options.RunHistory).
	runHistory int
	timeout    time.Duration // Options.Timeout
	sweeps     sweeps        // the bulk runs written and swept, for Sweep
}

// Options tunes the Redis client. Zero values keep go-redis's defaults or the URL's settings,
// but for the timeouts, which Timeout sets whatever the URL says.
type Options struct {
	PoolSize int
	// Timeout bounds each call to Redis from start to answer, whatever holds it up: the wait for
	// a pooled connection, resolving the host, dialing and the TLS handshake, writing the
	// command, reading the reply, and the retry of a command on a connection found dead. Past
	// it, the call fails with ErrUnavailable. Zero means five seconds, go-redis's read timeout.
	Timeout time.Duration
	// Resolver resolves the URL's hosts; nil is the system's resolver.
	Resolver *net.Resolver
	// ClientName names the connections (CLIENT LIST), unless the URL does (client_name=).
	ClientName string
	// Invalidated, if set, is told of the invalidations this store's writes make (the warmer
	// purges downstream caches of them), besides the namespace's channel, which tells every
	// process.
	Invalidated func(Invalidation)
	// RunHistory is how many runs of each job RecordRun keeps (RUN_HISTORY); zero keeps
	// DefaultRunHistory.
	RunHistory int
}

// defaultTimeout is Options.Timeout's default.
const defaultTimeout = 5 * time.Second

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
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	q := u.Query()
	var (
		rdb     redis.UniversalClient
		probe   func() redis.UniversalClient
		tracker func(func(context.Context, *redis.Conn) error) *redis.Client
		cluster bool
	)
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("sentinel URL: %w", err)
		}
		opts.apply(settings{&o.ContextTimeoutEnabled, &o.Protocol, &o.ClientName, &o.PoolSize, &o.MaxRetries,
			&o.DialerRetries, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.Dialer, o.TLSConfig})
		rdb = redis.NewFailoverClient(o)
		probe = func() redis.UniversalClient { one := *o; one.PoolSize = 1; return redis.NewFailoverClient(&one) }
		tracker = func(onConnect func(context.Context, *redis.Conn) error) *redis.Client {
			one := *o
			one.PoolSize, one.OnConnect = 1, onConnect
			return redis.NewFailoverClient(&one)
		}
	case q.Get("cluster") == "true" || len(q["addr"]) > 0:
		q.Del("cluster")
		u.RawQuery = q.Encode()
		o, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("cluster URL: %w", err)
		}
		opts.apply(settings{&o.ContextTimeoutEnabled, &o.Protocol, &o.ClientName, &o.PoolSize, &o.MaxRetries,
			&o.DialerRetries, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.Dialer, o.TLSConfig})
		rdb, cluster = redis.NewClusterClient(o), true
		probe = func() redis.UniversalClient { one := *o; one.PoolSize = 1; return redis.NewClusterClient(&one) }
	default:
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		opts.apply(settings{&o.ContextTimeoutEnabled, &o.Protocol, &o.ClientName, &o.PoolSize, &o.MaxRetries,
			&o.DialerRetries, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.Dialer, o.TLSConfig})
		rdb = redis.NewClient(o)
		probe = func() redis.UniversalClient { one := *o; one.PoolSize = 1; return redis.NewClient(&one) }
		tracker = func(onConnect func(context.Context, *redis.Conn) error) *redis.Client {
			one := *o
			one.PoolSize, one.OnConnect = 1, onConnect
			return redis.NewClient(&one)
		}
	}
	history := opts.RunHistory
	if history <= 0 {
		history = DefaultRunHistory
	}
	return &Store{rdb: rdb, probe: probe, tracker: tracker, keys: keys, cluster: cluster, invalidated: opts.Invalidated, runHistory: history,
		timeout: opts.Timeout}, nil
}

// CheckURL reports whether Open accepts rawURL, without connecting: a start-up check.
func CheckURL(rawURL string) error {
	s, err := Open(rawURL, Keys{}, Options{})
	if err != nil {
		return err
	}
	return s.Close()
}

// settings are the fields of go-redis's options for a single server, a Sentinel deployment
// and a Cluster that apply sets.
type settings struct {
	contextTimeouts                *bool
	protocol                       *int
	clientName                     *string
	poolSize, retries, dialRetries *int
	dial, read, write, pool        *time.Duration
	dialer                         *func(ctx context.Context, network, addr string) (net.Conn, error)
	tls                            *tls.Config
}

// apply makes the client keep to the timeout whatever the fault. Every call of the Store runs
// under a context that ends with the timeout (bounded), and the client honours it everywhere:
// in its socket deadlines (go-redis ignores contexts unless told), in the wait for a pooled
// connection, in its retries and their pauses, and in the dial, whose TLS handshake go-redis's
// own dialer bounds by the dial timeout alone. A refused dial is tried once, not five times
// with pauses, and a command is retried once, on a new connection, within the same time: with
// go-redis's defaults a read of a stopped Redis took four tries of five dials. The client also
// speaks RESP2: RESP3's push messages serve nothing here, and go-redis checks for them before
// every command.
func (o Options) apply(s settings) {
	*s.contextTimeouts = true
	*s.protocol = 2
	if *s.clientName == "" {
		*s.clientName = o.ClientName
	}
	if o.PoolSize > 0 {
		*s.poolSize = o.PoolSize
	}
	*s.retries, *s.dialRetries = 1, 1
	*s.dial, *s.read, *s.write, *s.pool = o.Timeout, o.Timeout, o.Timeout, o.Timeout
	dialer := &net.Dialer{Timeout: o.Timeout, Resolver: o.Resolver,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}}
	*s.dialer = dialer.DialContext
	if s.tls != nil {
		*s.dialer = (&tls.Dialer{NetDialer: dialer, Config: s.tls}).DialContext
	}
}

// bounded returns ctx limited to the store's timeout, unless it ends sooner already: the calls
// of a call share its time.
func (s *Store) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.timeout {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, s.timeout, errTimedOut)
}

// errTimedOut is the cause of a call's context ending with the store's timeout.
var errTimedOut = errors.New("redis did not answer in time")

// failure translates err, the error of a call made with call, a context from bounded: the
// store's timeout running out is Redis failing to answer (ErrUnavailable), while the caller's
// own deadline passing is the caller's business.
func (s *Store) failure(call context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && errors.Is(context.Cause(call), errTimedOut) {
		return fmt.Errorf("%w: no answer within %s", ErrUnavailable, s.timeout)
	}
	return translate(err)
}

// Close closes the connections.
func (s *Store) Close() error { return s.rdb.Close() }

// Ping checks that Redis answers, in the URL's database: ErrNoDatabase when the server has none
// of that number.
func (s *Store) Ping(ctx context.Context) error {
	call, cancel := s.bounded(ctx)
	defer cancel()
	err := s.rdb.Ping(call).Err()
	var redisErr redis.Error
	if errors.As(err, &redisErr) && strings.Contains(redisErr.Error(), "DB index is out of range") {
		if c, ok := s.rdb.(*redis.Client); ok {
			return fmt.Errorf("database %d: %w (Redis has 16, 0 to 15, unless its databases setting says more)",
				c.Options().DB, ErrNoDatabase)
		}
		return ErrNoDatabase
	}
	return s.failure(call, err)
}

// Probe checks that Redis answers a connection of its own, made for the probe and closed after
// it, leaving the pool alone. A retry's wait asks Probe rather than Ping: a fault that breaks
// connections once they carried some bytes (a middlebox cutting long replies) fails Ping on one
// pooled connection and passes it on the next, which is not Redis coming back, while a new
// connection answers a probe the same way for as long as the fault lasts.
func (s *Store) Probe(ctx context.Context) error {
	call, cancel := s.bounded(ctx)
	defer cancel()
	rdb := s.probe()
	defer rdb.Close()
	return s.failure(call, rdb.Ping(call).Err())
}

// Get returns the entry of a job's key, or ErrMiss. Bytes that are not an entry of a format this
// version reads are as good as none: ErrMiss too.
func (s *Store) Get(ctx context.Context, job, key string) (Entry, error) {
	call, cancel := s.bounded(ctx)
	b, err := s.rdb.Get(call, s.keys.Value(job, key)).Bytes()
	cancel()
	if err != nil {
		return Entry{}, s.failure(call, err)
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
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, context.DeadlineExceeded) && !isDial(err):
		return err // a dial that timed out is Redis's failure; other deadlines are the caller's
	}
	var redisErr redis.Error
	switch {
	case flushed(err):
		return ErrFlushed
	case errors.As(err, &redisErr) && strings.HasPrefix(redisErr.Error(), "OOM "):
		return fmt.Errorf("%w: %v", ErrFull, err) //nolint:errorlint // as below
	case errors.As(err, &redisErr) && !isServerGone(redisErr.Error()):
		return err // the server answered with an error about the command
	}
	// %v, not %w: callers above this package must not inspect go-redis's errors.
	return fmt.Errorf("%w: %v", ErrUnavailable, err) //nolint:errorlint // on purpose, as said
}

// flushed reports whether err is go-redis's failure to read an invalidation naming no key (a
// null where the keys are), which Redis sends to tracking clients at a FLUSHDB or FLUSHALL.
func flushed(err error) bool {
	return strings.HasSuffix(err.Error(), "unsupported pubsub message payload: <nil>")
}

// isDial reports whether err is the failure of a dial.
func isDial(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
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
