package query

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The channels warmcache's notifications travel on.
const (
	// outboxChannel is notified by the outbox trigger at each commit that changes rows.
	outboxChannel = "warmcache_outbox"
	// runRequestChannel is notified by RequestRun, with the namespace as payload.
	runRequestChannel = "warmcache_run_requested"
)

// OnChange calls fn at start, at each commit that adds rows to the outbox and notifies, at
// each value of wake (the writes that wake the warmers themselves), and at least every poll,
// until ctx ends. lost, if not nil, is told why listening failed.
func (v Outbox) OnChange(ctx context.Context, poll time.Duration, wake <-chan struct{}, fn func(context.Context), lost func(error)) {
	db := v.db
	db.onNotify(ctx, outboxChannel, poll, wake, fn, lost)
}

// OnRunRequest calls fn at start, at each RequestRun, and at least every poll, until ctx ends.
// lost, if not nil, is told why listening failed.
func (v Runs) OnRunRequest(ctx context.Context, poll time.Duration, fn func(context.Context), lost func(error)) {
	db := v.db
	db.onNotify(ctx, runRequestChannel, poll, nil, fn, lost)
}

// onNotify is the loop of Outbox.OnChange and Runs.OnRunRequest. It listens on a connection of its own
// before calling fn, so that what happened before the LISTEN is seen by fn and what happens
// after it notifies; polling makes up for notifications missed while that connection was down.
func (db *DB) onNotify(ctx context.Context, channel string, poll time.Duration, wake <-chan struct{},
	fn func(context.Context), lost func(error)) {
	var conn *pgxpool.Conn
	defer func() { unlisten(ctx, conn) }()
	for ctx.Err() == nil {
		if conn == nil {
			var err error
			if conn, err = db.listen(ctx, channel); err != nil && lost != nil && ctx.Err() == nil {
				lost(err)
			}
		}
		fn(ctx)
		waitCtx, cancel := context.WithTimeout(ctx, poll)
		woken := make(chan struct{})
		go func() { // a wake-up ends the wait as a notification does
			defer close(woken)
			select {
			case <-wake:
				cancel()
			case <-waitCtx.Done():
			}
		}()
		if conn != nil {
			_, err := conn.Conn().WaitForNotification(waitCtx)
			switch {
			case err == nil:
				skipReceived(ctx, conn)
			case !errors.Is(err, context.DeadlineExceeded) && waitCtx.Err() == nil:
				if lost != nil {
					lost(translate(err))
				}
				unlisten(ctx, conn)
				conn = nil
			}
		} else {
			<-waitCtx.Done()
		}
		cancel()
		<-woken
	}
}

// skipReceived reads the notifications that have already reached conn, up to maxSkipped, without
// waiting for more. The call of fn that follows covers them all: each was sent at a commit before
// it, which its snapshot sees. So a burst of writes, which notify one each, costs a drain of the
// outbox rather than one each.
func skipReceived(ctx context.Context, conn *pgxpool.Conn) {
	for range maxSkipped {
		readCtx, cancel := context.WithTimeout(ctx, skipWait)
		_, err := conn.Conn().WaitForNotification(readCtx)
		cancel()
		if err != nil {
			return // none more there (a broken connection is found by the next wait)
		}
	}
}

// maxSkipped bounds skipReceived under a flood of notifications; skipWait is how long it gives a
// notification already on its way.
const (
	maxSkipped = 10_000
	skipWait   = 100 * time.Microsecond
)

// listen takes a connection of the pool and listens on channel on it.
func (db *DB) listen(ctx context.Context, channel string) (*pgxpool.Conn, error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, translate(err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		conn.Release()
		return nil, translate(err)
	}
	return conn, nil
}

// unlisten gives up a listening connection. Back in the pool it would still be listening, so it
// is closed instead.
func unlisten(ctx context.Context, conn *pgxpool.Conn) {
	if conn == nil {
		return
	}
	conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck // closing anyway
	conn.Release()
}
