// Package invalidate carries writes to the cache. The relay publishes the outbox's changes (which
// the triggers record in the writing transaction) as events on a Redis stream; the refresher,
// in every warmer, recomputes exactly the keys the events name. Together they deliver every
// change at least once: a change stays in the outbox until it is published, and an event stays
// pending in the stream until a warmer has written its keys.
package invalidate

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/query"
)

// Relay drains the outbox into the event stream.
type Relay struct {
	db     *query.DB
	store  *cache.Store
	logger *slog.Logger
	// poll is how often the outbox is drained without a notification: a notification missed
	// while the listening connection was down, or a publish that failed, is retried then.
	poll  time.Duration
	batch int
}

// NewRelay returns a relay from db's outbox to store's stream.
func NewRelay(db *query.DB, store *cache.Store, logger *slog.Logger) *Relay {
	return &Relay{db: db, store: store, logger: logger, poll: time.Second, batch: 500}
}

// Run relays until ctx ends. It drains the outbox at start, at each notification the trigger
// sends when a write commits, and every poll interval.
func (r *Relay) Run(ctx context.Context) {
	var wait func(context.Context) error
	var stopListening func()
	defer func() {
		if stopListening != nil {
			stopListening()
		}
	}()
	for ctx.Err() == nil {
		// Listen before draining: a commit before the LISTEN is drained, one after it notifies.
		if wait == nil {
			var err error
			if wait, stopListening, err = r.db.ListenOutbox(ctx); err != nil {
				r.logger.Warn("relay_listen_failed", "error", err)
				wait, stopListening = nil, nil
			}
		}
		r.drain(ctx)
		pollCtx, cancel := context.WithTimeout(ctx, r.poll)
		if wait != nil {
			if err := wait(pollCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				r.logger.Warn("relay_listen_lost", "error", err)
				stopListening()
				wait, stopListening = nil, nil
			}
		} else {
			<-pollCtx.Done()
		}
		cancel()
	}
}

// drain publishes every change in the outbox, a batch at a time.
func (r *Relay) drain(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := r.db.DrainOutbox(ctx, r.batch, func(changes []query.Change) error {
			events := make([]cache.Event, len(changes))
			for i, c := range changes {
				events[i] = cache.Event{Customer: c.CustomerID, Change: c.ID}
			}
			return r.store.Publish(ctx, events)
		})
		if err != nil {
			if ctx.Err() == nil {
				r.logger.Warn("relay_failed", "error", err)
			}
			return
		}
		if n > 0 {
			r.logger.Debug("relay_published", "changes", n)
		}
		if n < r.batch {
			return
		}
	}
}
