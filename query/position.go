package query

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Positions are PostgreSQL's WAL positions (LSNs) as int64: where a commit's record ends in the
// primary's write-ahead log, and how far a server's snapshot reaches. A snapshot at position p
// reflects every commit acknowledged at or before p; a streaming replica's snapshot reflects
// what it has replayed. The primary and its streaming replicas share one WAL, so positions
// compare across them.

// Latest asks for a snapshot of the primary: no replica is waited for.
const Latest int64 = math.MaxInt64

// FormatPosition writes a position as PostgreSQL does (16/B374D848), for the Warmcache-Position
// header.
func FormatPosition(p int64) string { return pglogrepl.LSN(p).String() }

// ParsePosition reads a position written as PostgreSQL does, as pg_current_wal_insert_lsn()
// returns it.
func ParsePosition(s string) (int64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, herr := strconv.ParseUint(hi, 16, 32)
	l, lerr := strconv.ParseUint(lo, 16, 32)
	if !ok || herr != nil || lerr != nil || h > math.MaxInt32 {
		return 0, errors.New("not a WAL position (such as 16/B374D848, as pg_current_wal_insert_lsn() returns it)")
	}
	return int64(h<<32 | l), nil
}

// positionSQL is the position a snapshot taken next on the server reaches: the end of the
// primary's WAL as inserted, or what a replica has replayed. Read before the snapshot is taken,
// it bounds what the snapshot reflects. A replica makes a commit visible as it replays its
// record, before its replay position moves past it: its position is exact. The primary's is
// not quite: a commit's record is in the WAL a moment before the commit is visible, so a
// snapshot taken in that moment misses it though the position read just before is past its
// record; acquire takes one less (see there). (The WAL as written, pg_current_wal_lsn(), may lag
// behind a commit acknowledged with synchronous_commit off.)
const positionSQL = `SELECT COALESCE(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
	ELSE pg_current_wal_insert_lsn() END - '0/0', 0)::bigint`

// Position returns the primary's WAL position now: a commit acknowledged before the call is at or
// before it. A write's answer carries it (Warmcache-Position).
func (db *DB) Position(ctx context.Context) (int64, error) {
	var p int64
	if err := db.pool.QueryRow(ctx, positionSQL).Scan(&p); err != nil {
		return 0, translate(err)
	}
	return p, nil
}

// replica is a streaming replica of the primary (Options.ReplicaURL) that snapshots read from
// once it has replayed past the position they need.
type replica struct {
	pool   *pgxpool.Pool
	conn   *pgx.ConnConfig // for probes, on connections of their own
	wait   time.Duration   // Options.ReplicaWait
	logger *slog.Logger
	// down is set while the replica does not answer: snapshots read the primary until a probe,
	// one at a time and at most every probeEvery, finds it answering again.
	down    atomic.Bool
	probing sync.Mutex
	probed  atomic.Int64 // when the last probe started, Unix nanoseconds
	reads   atomic.Int64 // snapshots read on the replica (ReplicaReads)
}

// probeEvery is how often a replica that stopped answering is probed.
const probeEvery = time.Second

// replicaPoll is how often a snapshot waiting for the replica to replay looks again.
const replicaPoll = 5 * time.Millisecond

// ReplicaReads reports how many snapshots were read on the replica, and whether one is set: what
// the tests of the replica's use look at.
func (db *DB) ReplicaReads() (int64, bool) {
	if db.replica == nil {
		return 0, false
	}
	return db.replica.reads.Load(), true
}

// acquire returns a connection for a snapshot that must reach position at, and the position the
// server's snapshot will reach: the replica's when it has replayed past at, or does within its
// wait, else the primary's. Latest goes to the primary at once.
func (db *DB) acquire(ctx context.Context, at int64) (*pgxpool.Conn, int64, error) {
	if r := db.replica; r != nil && at != Latest && r.up() {
		// The replica has its wait and a second more to answer: one that stops answering
		// leaves the snapshot time for the primary.
		rctx, cancel := context.WithTimeout(ctx, r.wait+time.Second)
		conn, position, err := r.acquire(rctx, at)
		cancel()
		switch {
		case err == nil && position >= at:
			r.reads.Add(1)
			return conn, position, nil
		case err == nil:
			conn.Release() // it did not replay far enough in time: the primary has it
		case ctx.Err() != nil:
			return nil, 0, ctx.Err()
		default:
			r.fail(err)
		}
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, 0, err
	}
	var position int64
	if err := conn.QueryRow(ctx, positionSQL).Scan(&position); err != nil {
		conn.Release()
		return nil, 0, err
	}
	// A write's position (Position) is read once it is acknowledged, so visible. A snapshot
	// whose position read before it is past a write's was read after the write's position,
	// and sees the write; one whose position equals it may have been read while the commit was
	// not yet visible. So a primary's snapshot claims one less than it read: equal to a write's
	// position, it is not taken for having the write (read-your-writes computes it afresh).
	return conn, max(position-1, 0), nil
}

// acquire returns a connection to the replica and its replay position, looking again until the
// position reaches at or the replica's wait is over.
func (r *replica) acquire(ctx context.Context, at int64) (*pgxpool.Conn, int64, error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return nil, 0, err
	}
	deadline := time.Now().Add(r.wait)
	for {
		var position int64
		if err := conn.QueryRow(ctx, positionSQL).Scan(&position); err != nil {
			conn.Release()
			return nil, 0, err
		}
		if position >= at || !time.Now().Before(deadline) {
			return conn, position, nil
		}
		select {
		case <-ctx.Done():
			conn.Release()
			return nil, 0, ctx.Err()
		case <-time.After(replicaPoll):
		}
	}
}

// up reports whether snapshots may read the replica. While it is down, it starts a probe now and
// then, which brings it back once it answers.
func (r *replica) up() bool {
	if !r.down.Load() {
		return true
	}
	now := time.Now().UnixNano()
	if last := r.probed.Load(); now-last >= int64(probeEvery) && r.probed.CompareAndSwap(last, now) {
		go r.probe()
	}
	return false
}

// fail marks the replica down after it failed to answer.
func (r *replica) fail(err error) {
	if r.down.CompareAndSwap(false, true) {
		r.probed.Store(time.Now().UnixNano())
		r.logger.Warn("replica_down", "error", translate(err), "reads", "on the primary until it answers")
	}
}

// probe connects to the replica on a connection of its own, and marks it up if it answers.
func (r *replica) probe() {
	if !r.probing.TryLock() {
		return
	}
	defer r.probing.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.conn.ConnectTimeout+time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, r.conn)
	if err != nil {
		return
	}
	defer conn.Close(ctx) //nolint:errcheck // the probe's answer is the ping's
	if conn.Ping(ctx) == nil && r.down.CompareAndSwap(true, false) {
		r.logger.Info("replica_up")
	}
}
