// Package invalidate carries writes to the cache. The relay publishes the outbox's changes (which
// the triggers record in the writing transaction) as events on a Redis stream; the refresher,
// in every warmer, recomputes exactly the keys the events name. Together they deliver every
// change at least once: a change stays in the outbox until it is published, and an event stays
// pending in the stream until a warmer has written its keys.
package invalidate

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/backoff"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// Stream is what the relay needs of Redis (cache.Store): the stream it publishes the changes to,
// the wake-ups the apis send after their writes, a probe for retries, and the means to drop the
// values a change touches when Redis is too full to take the change.
type Stream interface {
	Publish(ctx context.Context, changes []query.Change) error
	Wakes(ctx context.Context) <-chan struct{}
	Probe(ctx context.Context) error
	dropper
}

var _ Stream = (*cache.Store)(nil)

// Relay drains the outbox into the event stream.
type Relay struct {
	*baseservice.Archetype
	db    *query.DB
	store Stream
	jobs  []jobs.Job // what the changes touch, for a Redis too full to take their events
	// poll is how often the outbox is drained without a notification: a notification missed
	// while the listening connection was down, or a publish that failed, is retried then.
	poll     time.Duration
	batch    int
	failures prometheus.Counter
}

// NewRelay returns a relay from db's outbox to store's stream, for the jobs. It registers on reg
// the count of its failures and, measured at each scrape, the outbox's backlog (see
// BacklogCollector).
func NewRelay(arch *baseservice.Archetype, db *query.DB, store Stream, list []jobs.Job, reg prometheus.Registerer) *Relay {
	failures := prometheus.NewCounter(prometheus.CounterOpts{Name: "warmcache_relay_failures_total",
		Help: "Attempts to publish the outbox's changes to Redis that failed (they stay in the outbox and are retried)."})
	reg.MustRegister(failures, newBacklogCollector(db))
	return &Relay{Archetype: arch, db: db, store: store, jobs: list, poll: time.Second, batch: 500, failures: failures}
}

// Run relays until ctx ends. It drains the outbox at start, at each notification the trigger
// sends when a write commits, at each wake-up the api sends through Redis after its writes, and
// every poll interval.
func (r *Relay) Run(ctx context.Context) {
	r.db.Outbox().OnChange(ctx, r.poll, r.store.Wakes(ctx), r.drain, func(err error) {
		r.Logger.Warn("relay_listen_failed", "error", err)
	})
}

// drain publishes every change in the outbox, a batch at a time.
func (r *Relay) drain(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := r.db.Outbox().Drain(ctx, r.batch, func(changes []query.Change) error {
			return r.store.Publish(ctx, changes)
		})
		switch {
		case errors.Is(err, cache.ErrFull):
			r.failures.Inc()
			r.Logger.Warn("relay_failed", "error", err)
			r.dropUndeliverable(ctx)
			return
		case err != nil && ctx.Err() == nil:
			r.failures.Inc()
			r.Logger.Warn("relay_failed", "error", err)
			// Again as soon as Redis and PostgreSQL answer: the writes waiting in the outbox
			// must show within the second of their coming back.
			if backoff.Wait(ctx, nil, r.poll, backoff.Answering(r.db.Probe, r.store.Probe)) {
				continue
			}
			return
		case err != nil:
			return
		}
		if n > 0 {
			r.Logger.Debug("relay_published", "changes", n)
		}
		if n < r.batch {
			return
		}
	}
}

// dropUndeliverable handles the changes a full Redis cannot take as events: the values they touch
// are deleted (a full Redis still deletes), so that readers compute them from PostgreSQL rather
// than serve values known to be stale, and the changes stay in the outbox, to be published once
// Redis has room (query.Outbox.Drop).
func (r *Relay) dropUndeliverable(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := r.db.Outbox().Drop(ctx, r.batch, func(changes []query.Change) error {
			return drop(ctx, r.store, r.jobs, changes)
		})
		if err != nil {
			if ctx.Err() == nil {
				r.Logger.Warn("relay_drop_failed", "error", err)
			}
			return
		}
		if n > 0 {
			r.Logger.Warn("relay_dropped", "changes", n,
				"reason", "redis is full: their values are computed from PostgreSQL until it has room")
		}
		if n < r.batch {
			return
		}
	}
}
