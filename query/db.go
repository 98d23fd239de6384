// Package query owns every SQL statement warmcache runs: the dellstore2 schema and the product's
// migrations, the built-in aggregates in a streaming and a single-key form, users' own SQL jobs,
// the outbox, claims and run requests of the warmers, and bulk loading for the data generator.
// Callers see Go types and the errors of this package, never pgx's. pgx appears elsewhere only
// where it cannot be otherwise: as pgtype values in the generator's COPY rows (seed), in the
// test harness that creates databases (internal/testenv), and in the benchmarks' reference
// handlers, which stand for code without warmcache.
package query

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound reports that the requested row (a customer, a key of a job) does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalidKey reports a key that cannot name a row of the aggregate, such as a customer id
// that is not a number.
var ErrInvalidKey = errors.New("invalid key")

// ErrUnavailable reports that PostgreSQL could not be reached or failed to answer. It wraps the
// driver's error, so the text says what happened.
var ErrUnavailable = errors.New("postgresql unavailable")

// DB runs warmcache's SQL on a pool of PostgreSQL connections.
type DB struct {
	pool   *pgxpool.Pool
	schema string // Options.Schema
	// useBuiltins is set by UseBuiltins; builtins are then the tables Maintain keeps the
	// built-in totals from, once found.
	useBuiltins atomic.Bool
	builtins    atomic.Pointer[builtinTables]
	conn        *pgx.ConnConfig // a copy of the pool's, for Probe's connections of its own
	locks       *locks          // the jobs' advisory locks, on a connection of their own
	timeout     time.Duration   // Options.Timeout
	replica     *replica        // Options.ReplicaURL's, or nil
}

// Options tunes the connection pool. Zero values keep pgx's defaults or the URL's settings.
type Options struct {
	// MaxConns bounds the pool; it is the concurrency limit of everything that queries.
	MaxConns int32
	// ConnectTimeout bounds establishing one connection, unless the URL does (connect_timeout);
	// zero means five seconds. Without it, a connection to a server that accepts but never
	// answers would wait as long as its caller.
	ConnectTimeout time.Duration
	// Timeout bounds what must be quick whatever the query: getting a connection from the pool
	// (a new one included) and starting a transaction. A server that stops answering then fails
	// a run at once, rather than at the end of the run's timeout. Zero means five seconds.
	Timeout time.Duration
	// QuietWrites spares this pool's writes the pg_notify that tells the warmers of a change:
	// its user wakes them itself (the api, through Redis), and a notification at every commit
	// costs a share of the write throughput. The outbox records the changes all the same.
	QuietWrites bool
	// ReplicaURL, when set, is a streaming replica of the primary (DATABASE_REPLICA_URL): the
	// snapshots of the aggregates (Stream, LookupMany) read there once it has replayed past
	// the position they need, within ReplicaWait, else on the primary; writes, the outbox,
	// claims and locks stay on the primary. A replica that stops answering is left for the
	// primary until it answers again. It has a pool of MaxConns of its own.
	ReplicaURL string
	// ReplicaWait bounds how long a snapshot waits for the replica to replay past its position
	// before it reads the primary; zero means DefaultReplicaWait.
	ReplicaWait time.Duration
	// Logger receives the replica's coming and going; nil discards it.
	Logger *slog.Logger
	// Schema is the schema of warmcache's own objects (DATABASE_SCHEMA); empty means
	// DefaultSchema. It comes first in the search path of every connection of the pool, before
	// the user's own, so that warmcache's statements find its objects and users' jobs find their
	// tables as they would themselves.
	Schema string
}

// DefaultReplicaWait is Options.ReplicaWait's default.
const DefaultReplicaWait = time.Second

// DefaultSchema is the schema of warmcache's own objects when none is set.
const DefaultSchema = "warmcache"

// schemaName is what a schema of warmcache's may be called: a plain lower-case name, which needs
// no quoting wherever it is written.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CheckSchema reports whether name can be the schema of warmcache's objects.
func CheckSchema(name string) error {
	if !schemaName.MatchString(name) || strings.HasPrefix(name, "pg_") {
		return fmt.Errorf("%q is not a schema warmcache can use: a lower-case name of letters, digits and _, not starting with pg_", name)
	}
	return nil
}

// Open parses url (a postgres:// URL or key=value DSN; sslmode, passwords and the like are
// honoured) and opens a pool. It does not wait for the server: connections are made on demand,
// so a process can start while PostgreSQL is still down.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	schema := cmp.Or(opts.Schema, DefaultSchema)
	if err := CheckSchema(schema); err != nil {
		return nil, err
	}
	cfg, err := poolConfig(url, schema, opts)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	timeout := cmp.Or(opts.Timeout, defaultTimeout)
	db := &DB{pool: pool, schema: schema, conn: cfg.ConnConfig.Copy(), locks: newLocks(cfg.ConnConfig.Copy(), timeout), timeout: timeout}
	if opts.ReplicaURL != "" {
		rcfg, err := poolConfig(opts.ReplicaURL, schema, opts)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("parse replica url: %w", err)
		}
		rpool, err := pgxpool.NewWithConfig(ctx, rcfg)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("open replica pool: %w", err)
		}
		logger := opts.Logger
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		db.replica = &replica{pool: rpool, conn: rcfg.ConnConfig.Copy(), wait: cmp.Or(opts.ReplicaWait, DefaultReplicaWait),
			logger: logger}
	}
	return db, nil
}

// poolConfig is the configuration of a pool on url: opts's settings, and warmcache's schema
// first in the search path.
func poolConfig(url, schema string, opts Options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	switch {
	case opts.ConnectTimeout > 0:
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	case cfg.ConnConfig.ConnectTimeout == 0:
		cfg.ConnConfig.ConnectTimeout = defaultTimeout
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "warmcache"
	if opts.QuietWrites {
		cfg.ConnConfig.RuntimeParams["warmcache.notify"] = "off"
	}
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SELECT set_config('search_path', $1 || ', ' || current_setting('search_path'), false)", schema)
		return err
	}
	return cfg, nil
}

// replicaWait is how long a snapshot may wait for the replica.
func (db *DB) replicaWait() time.Duration {
	if db.replica == nil {
		return 0
	}
	return db.replica.wait
}

// defaultTimeout is Options.ConnectTimeout's and Options.Timeout's default.
const defaultTimeout = 5 * time.Second

// CheckURL reports whether Open accepts url, without connecting: a start-up check. Its error says
// what is wrong in a sentence, without the URL (and so without its password).
func CheckURL(url string) error {
	_, err := pgxpool.ParseConfig(url)
	if err == nil {
		return nil
	}
	// pgconn writes "cannot parse `<url, password masked>`: <reason> (<Go error>)": keep the reason.
	reason := err.Error()
	if _, after, ok := strings.Cut(reason, "`: "); ok {
		reason = after
	}
	reason, _, _ = strings.Cut(reason, " (")
	return fmt.Errorf("%s: not a PostgreSQL URL (postgres://user@host:5432/db?sslmode=require) or key=value string", reason)
}

// Close closes every connection of the pools, and the locks' connection.
func (db *DB) Close() {
	db.locks.close()
	db.pool.Close()
	if db.replica != nil {
		db.replica.pool.Close()
	}
}

// Ping checks that PostgreSQL answers a query.
func (db *DB) Ping(ctx context.Context) error {
	if _, err := db.pool.Exec(ctx, "SELECT 1"); err != nil {
		return translate(err)
	}
	return nil
}

// Probe checks that PostgreSQL answers a connection of its own, made for the probe and closed
// after it, leaving the pool alone. A retry's wait asks Probe rather than Ping: a fault that
// breaks connections once they carried some bytes (a middlebox cutting long replies) fails Ping
// on one pooled connection and passes it on the next, which is not PostgreSQL coming back, while
// a new connection answers a probe the same way for as long as the fault lasts.
func (db *DB) Probe(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, db.conn)
	if err != nil {
		return translate(err)
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // the probe's answer is Ping's
	if err := conn.Ping(ctx); err != nil {
		return translate(err)
	}
	return nil
}

// errTimedOut is the cause of a step's context ending with the DB's timeout.
var errTimedOut = errors.New("postgresql did not answer in time")

// failure translates err, the error of a step made with step, a context ending with the DB's
// timeout (WithTimeoutCause, errTimedOut): that timeout running out is PostgreSQL failing to
// answer (ErrUnavailable), while the caller's own deadline passing is the caller's business.
func (db *DB) failure(step context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && errors.Is(context.Cause(step), errTimedOut) {
		return fmt.Errorf("%w: no answer within %s", ErrUnavailable, db.timeout)
	}
	return translate(err)
}

// translate maps driver errors onto this package's errors, once, at the boundary.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	// A connection that could not be made in its ConnectTimeout is the server's failure, though
	// the error says a deadline passed.
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err) //nolint:errorlint // as below
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 (connection exception), 57P (operator intervention: shutdown, crash) and
		// 53 (insufficient resources) mean the server, not the statement, is the problem.
		switch {
		case pgErr.Code[:2] == "08", pgErr.Code[:3] == "57P", pgErr.Code[:2] == "53":
			return fmt.Errorf("%w: %s", ErrUnavailable, pgErr.Message)
		}
		return err
	}
	// Anything else pgx reports (refused connections, resets, EOF mid-result) is the network or
	// the server going away.
	// %v, not %w: callers above this package must not inspect pgx's errors.
	return fmt.Errorf("%w: %v", ErrUnavailable, err) //nolint:errorlint // on purpose, as said
}

// Runs are the statements of the warmers' coordination: the claims of scheduled runs, run
// requests, and the jobs' advisory locks. DB.Runs returns them.
type Runs struct{ db *DB }

// Outbox are the statements of the outbox of changes: the relay drains it, and the status page
// reads its backlog. DB.Outbox returns them.
type Outbox struct{ db *DB }

// Schema are the statements that change the database's schema or fill it in bulk: migrations,
// the change capture of the jobs' tables, incremental totals, and the demo data set. DB.Schema
// returns them.
type Schema struct{ db *DB }

// Runs returns the statements of the warmers' coordination on db's connections.
func (db *DB) Runs() Runs { return Runs{db} }

// Outbox returns the statements of the outbox on db's connections.
func (db *DB) Outbox() Outbox { return Outbox{db} }

// Schema returns the statements of migrations and bulk loading on db's connections.
func (db *DB) Schema() Schema { return Schema{db} }
