package query

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// Change is one row of the outbox: the aggregates of a customer changed (CustomerID 0: of no
// customer in particular, such as an order without one) through a write to Table.
type Change struct {
	ID         int64
	Table      string
	CustomerID int64
}

// outboxChannel is the channel the outbox trigger notifies at each commit that changes rows.
const outboxChannel = "warmcache_outbox"

// DrainOutbox takes up to limit of the oldest outbox rows no other relay holds, hands them to
// publish, and deletes them only if publish succeeds, in one transaction: a relay that dies or
// fails to publish leaves its rows for the next attempt, so every change is published at least
// once. Several relays may drain at once; each takes rows the others have not locked. It returns
// how many rows it published.
func (db *DB) DrainOutbox(ctx context.Context, limit int, publish func([]Change) error) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// A relay that stops answering (frozen, partitioned) must not hold the rows for long:
		// PostgreSQL ends its transaction, and another relay takes them.
		if _, err := tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = '30s'"); err != nil {
			return translate(err)
		}
		rows, _ := tx.Query(ctx, `
			DELETE FROM warmcache_outbox
			WHERE id IN (SELECT id FROM warmcache_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
			RETURNING id, tablename, COALESCE(customerid, 0)`, limit)
		changes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Change, error) {
			var c Change
			err := r.Scan(&c.ID, &c.Table, &c.CustomerID)
			return c, err
		})
		if err != nil {
			return translate(err)
		}
		if len(changes) == 0 {
			return nil
		}
		if err := publish(changes); err != nil {
			return &publishError{err}
		}
		n = len(changes)
		return nil
	})
	var pe *publishError
	if errors.As(err, &pe) {
		return 0, pe.err
	}
	return n, translate(err)
}

// publishError carries publish's error through the transaction unchanged.
type publishError struct{ err error }

func (e *publishError) Error() string { return e.err.Error() }

// ListenOutbox listens for the outbox trigger's notifications on a connection of its own. wait
// blocks until a notification arrives (or ctx ends); close releases the connection.
func (db *DB) ListenOutbox(ctx context.Context) (wait func(context.Context) error, close func(), err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, translate(err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+outboxChannel); err != nil {
		conn.Release()
		return nil, nil, translate(err)
	}
	wait = func(ctx context.Context) error {
		_, err := conn.Conn().WaitForNotification(ctx)
		return translate(err)
	}
	close = func() {
		// The connection goes back to the pool still listening: destroy it instead.
		conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck // closing anyway
		conn.Release()
	}
	return wait, close, nil
}
