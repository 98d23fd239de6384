package query

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Change is one row of the outbox: rows of Table (by qualified name, schema.table) changed, and
// Columns holds the text of the columns the trigger recorded of them, by name (a NULL left out),
// which name the keys the change touches. Truncated is a TRUNCATE: every row went.
type Change struct {
	ID        int64
	Table     string
	Columns   map[string]string
	Truncated bool
	// Position is a WAL position at or past the change's commit: a snapshot reaching it
	// reflects the change. Latest when unknown (an event of an older warmer).
	Position int64
}

// Drain takes up to limit of the oldest outbox rows no other relay holds, hands them to
// publish, and deletes them only if publish succeeds, in one transaction: a relay that dies or
// fails to publish leaves its rows for the next attempt, so every change is published at least
// once. Several relays may drain at once; each takes rows the others have not locked. It returns
// how many rows it published.
func (v Outbox) Drain(ctx context.Context, limit int, publish func([]Change) error) (int, error) {
	db := v.db
	return db.takeOutbox(ctx, `
		DELETE FROM warmcache_outbox
		WHERE id = ANY(ARRAY(SELECT id FROM warmcache_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))
		RETURNING id, tablename, columns, truncated, `+drainedPosition, limit, func(_ pgx.Tx, changes []Change) error { return publish(changes) })
}

// takeOutbox runs take, a statement that takes up to limit ($1) outbox rows and returns them,
// and hands the rows to handle, in one transaction that commits only if handle succeeds. It
// returns how many rows it handled; handle's error comes back as it is.
//
// The statements name the rows they take by an array of ids, not IN (subquery): PostgreSQL may
// plan IN as a hash join over a scan of the whole outbox, rows waiting and rows deleted alike (it
// did at a backlog of 5,000 rows), so that a batch costs as much as the backlog; an array of ids
// is looked up in the primary key whatever the table's statistics say.
func (db *DB) takeOutbox(ctx context.Context, take string, limit int, handle func(pgx.Tx, []Change) error) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// A relay that stops answering (frozen, partitioned) must not hold the rows for long:
		// PostgreSQL ends its transaction, and another relay takes them.
		if _, err := tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = '30s'"); err != nil {
			return translate(err)
		}
		rows, _ := tx.Query(ctx, take, limit)
		changes, err := pgx.CollectRows(rows, scanChange)
		if err != nil {
			return translate(err)
		}
		if len(changes) == 0 {
			return nil
		}
		if err := handle(tx, changes); err != nil {
			return &handleError{err}
		}
		n = len(changes)
		return nil
	})
	var he *handleError
	if errors.As(err, &he) {
		return 0, he.err
	}
	return n, translate(err)
}

// drainedPosition is the position of the rows a relay takes from the outbox: the primary's WAL
// as written when the statement runs, past the commit of every row it can see.
const drainedPosition = "(pg_current_wal_insert_lsn() - '0/0')::bigint"

// scanChange reads an outbox row.
func scanChange(r pgx.CollectableRow) (Change, error) {
	var c Change
	var columns map[string]*string
	err := r.Scan(&c.ID, &c.Table, &columns, &c.Truncated, &c.Position)
	c.Columns = make(map[string]string, len(columns))
	for name, v := range columns {
		if v != nil {
			c.Columns[name] = *v
		}
	}
	return c, err
}

// Drop is for changes Redis cannot take as events, being full. It takes up to limit of the
// oldest outbox rows no relay dropped or holds yet, books them in the maintained figures (as
// Maintain does: the values computed from PostgreSQL meanwhile read them), hands them to drop,
// and marks them dropped if drop succeeds, in one transaction. drop deletes the values the changes
// touch, which Redis does when full, so that readers compute them from PostgreSQL rather than
// serve values known to be stale. The rows stay, and Outbox.Drain publishes them once Redis has
// room. It returns how many rows it dropped.
func (v Outbox) Drop(ctx context.Context, limit int, drop func([]Change) error) (int, error) {
	db := v.db
	return db.takeOutbox(ctx, `
		UPDATE warmcache_outbox SET dropped = true
		WHERE id = ANY(ARRAY(SELECT id FROM warmcache_outbox WHERE NOT dropped ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))
		RETURNING id, tablename, columns, truncated, `+drainedPosition, limit, func(tx pgx.Tx, changes []Change) error {
		if _, err := db.maintain(ctx, tx, changes); err != nil {
			return err
		}
		return drop(changes)
	})
}

// handleError carries the error of takeOutbox's handle through the transaction unchanged.
type handleError struct{ err error }

func (e *handleError) Error() string { return e.err.Error() }

// Backlog is what waits in the outbox: its rows, and the age of the oldest (zero when empty).
type Backlog struct {
	Rows   int64
	Oldest time.Duration
}

// Backlog measures the outbox. Rows that stay are changes no relay publishes: no warmer
// runs, or Redis refuses them.
func (v Outbox) Backlog(ctx context.Context) (Backlog, error) {
	db := v.db
	var b Backlog
	var oldest float64
	err := db.pool.QueryRow(ctx, `SELECT count(*),
		COALESCE(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8
		FROM warmcache_outbox`).Scan(&b.Rows, &oldest)
	b.Oldest = time.Duration(max(oldest, 0) * float64(time.Second))
	return b, translate(err)
}
