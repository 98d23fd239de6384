package query

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// A job's advisory lock is a session lock, held for the whole of a run, so that a job never runs
// twice at once across warmers; a warmer that dies loses its locks with its connection. Held on
// connections of the pool, each run would hold one connection while its query waits for
// another: with as many runs as the pool has connections, every run waits for a connection only
// a run can give back, and the invalidations that share the pool wait with them. So the locks a
// process holds are all held on one connection of their own, outside the pool, and taking one
// never waits: a lock held elsewhere is reported at once.

// locks holds the jobs' advisory locks of this process on one connection.
type locks struct {
	cfg *pgx.ConnConfig
	// timeout bounds each statement on the connection (the DB's Options.Timeout): a PostgreSQL
	// that does not answer must not hold the scheduler.
	timeout time.Duration
	mu      sync.Mutex // guards the rest, and serializes the connection's statements
	conn    *pgx.Conn
	session uint64            // counts the connections made, so that a lock is released only on its own
	held    map[string]uint64 // the locks held, with the session holding each
}

func newLocks(cfg *pgx.ConnConfig, timeout time.Duration) *locks {
	return &locks{cfg: cfg, timeout: timeout, held: map[string]uint64{}}
}

// Lock takes the advisory lock of job in namespace, which the holder keeps while it runs the job.
// It never waits: ok is false when another warmer holds the lock, or when this process does (a
// session may take its own locks again, so the process keeps count). unlock releases it; the
// lock also goes when the connection does, so a crashed warmer never keeps it.
func (v Runs) Lock(ctx context.Context, namespace, job string) (unlock func(), ok bool, err error) {
	db := v.db
	return db.locks.lock(ctx, "warmcache:"+namespace+":"+job)
}

func (l *locks) lock(ctx context.Context, name string) (func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, mine := l.held[name]; mine {
		return nil, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	if l.conn == nil || l.conn.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, l.cfg)
		if err != nil {
			return nil, false, translate(err)
		}
		l.conn = conn
		l.session++
	}
	var ok bool
	if err := l.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1))", name).Scan(&ok); err != nil {
		l.closeConn() // broken, or left mid-statement: its locks are gone either way
		return nil, false, translate(err)
	}
	if !ok {
		return nil, false, nil
	}
	session := l.session
	l.held[name] = session
	return func() { l.unlock(name, session) }, true, nil
}

// unlock releases name, taken on session. A lock of a session since lost went with it.
func (l *locks) unlock(name string, session uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, name)
	if l.conn == nil || l.session != session {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if _, err := l.conn.Exec(ctx, "SELECT pg_advisory_unlock(hashtext($1))", name); err != nil {
		l.closeConn() // closing the session releases the lock
	}
}

// close closes the connection, releasing every lock.
func (l *locks) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeConn()
}

func (l *locks) closeConn() {
	if l.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
		defer cancel()
		l.conn.Close(ctx) //nolint:errcheck // closing anyway
		l.conn = nil
	}
}
