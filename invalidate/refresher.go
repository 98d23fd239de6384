package invalidate

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// group is the consumer group of the warmers: each event goes to one warmer, and another takes
// it over if that warmer dies before acknowledging it.
const group = "warmers"

// Refresher recomputes the keys that events name, in one warmer.
type Refresher struct {
	db          *query.DB
	store       *cache.Store
	jobs        map[string]jobs.Job
	runNow      func(job string) bool
	consumer    string
	negativeTTL time.Duration
	logger      *slog.Logger
	now         func() time.Time
	metrics     refresherMetrics
	// idle is how long an event may stay unacknowledged by the warmer that read it before
	// another warmer takes it over.
	idle time.Duration
}

type refresherMetrics struct {
	events prometheus.Counter
	keys   prometheus.Counter
	lag    prometheus.Observer
}

// NewRefresher returns a refresher computing from db into store. runNow starts a run a request
// names (the scheduler's RunNow); reg receives its metrics.
func NewRefresher(db *query.DB, store *cache.Store, list []jobs.Job, runNow func(job string) bool,
	negativeTTL time.Duration, reg prometheus.Registerer, logger *slog.Logger) *Refresher {
	host, _ := os.Hostname()
	r := &Refresher{
		db: db, store: store, jobs: map[string]jobs.Job{}, runNow: runNow,
		consumer:    fmt.Sprintf("%s/%d/%x", host, os.Getpid(), rand.Uint32()),
		negativeTTL: negativeTTL,
		logger:      logger,
		now:         time.Now,
		idle:        10 * time.Second,
	}
	for _, j := range list {
		r.jobs[j.Name] = j
	}
	events := prometheus.NewCounter(prometheus.CounterOpts{Name: "warmcache_invalidation_events_total",
		Help: "Invalidation events handled by this warmer."})
	keys := prometheus.NewCounter(prometheus.CounterOpts{Name: "warmcache_invalidation_keys_total",
		Help: "Keys recomputed because of invalidation events."})
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "warmcache_invalidation_lag_seconds",
		Help:    "Time from an event's publication to its keys being written.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}})
	reg.MustRegister(events, keys, lag)
	r.metrics = refresherMetrics{events: events, keys: keys, lag: lag}
	return r
}

// Run handles events until ctx ends.
func (r *Refresher) Run(ctx context.Context) {
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		events, err := r.store.Consume(ctx, group, r.consumer, 256, time.Second, r.idle)
		if err == nil && len(events) > 0 {
			err = r.handle(ctx, events)
		}
		if err != nil && ctx.Err() == nil {
			// The events stay pending: they are read again once PostgreSQL and Redis answer
			// (by this warmer, or by another one after ten seconds).
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			r.logger.Warn("invalidation_failed", "error", err, "retry_in", backoff.String())
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
	}
}

// handle recomputes the keys of a batch of events, each key once however many events name it,
// writes them, and acknowledges the events.
func (r *Refresher) handle(ctx context.Context, events []cache.Event) error {
	r.logger.Debug("invalidation_received", "events", len(events))
	type target struct{ job, key string }
	targets := map[target]bool{}
	for _, e := range events {
		if e.Run != "" {
			if !r.runNow(e.Run) {
				r.logger.Warn("run_request_ignored", "job", e.Run, "reason", "no such job")
			}
			continue
		}
		targets[target{"orders_total", ""}] = true
		targets[target{"credit_overview", ""}] = true
		if e.Customer > 0 {
			id := strconv.FormatInt(e.Customer, 10)
			targets[target{"orders_by_customer", id}] = true
			targets[target{"credit_by_customer", id}] = true
		}
	}
	// Each key is written as soon as it is computed: the customer's own keys need not wait for
	// the overview over all customers.
	var written atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	now := r.now()
	for t := range targets {
		job, ok := r.jobs[t.job]
		if !ok {
			continue
		}
		g.Go(func() error {
			e, err := jobs.Compute(gctx, r.db, job, t.key, now, r.negativeTTL)
			if err != nil {
				return fmt.Errorf("recompute %s %q: %w", t.job, t.key, err)
			}
			item, err := job.Item(t.key, e)
			if err != nil {
				return err
			}
			if _, err := r.store.Put(gctx, []cache.Item{item}); err != nil {
				return fmt.Errorf("write %s %q: %w", t.job, t.key, err)
			}
			written.Add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := r.store.Ack(ctx, group, events); err != nil {
		return fmt.Errorf("acknowledge events: %w", err)
	}
	r.metrics.events.Add(float64(len(events)))
	r.metrics.keys.Add(float64(written.Load()))
	for _, e := range events {
		if published, ok := streamTime(e.ID); ok {
			r.metrics.lag.Observe(time.Since(published).Seconds())
		}
	}
	r.logger.Debug("keys_refreshed", "events", len(events), "keys", written.Load())
	return nil
}

// streamTime reads the publication time from a stream entry's id, <milliseconds>-<sequence>.
func streamTime(id string) (time.Time, bool) {
	ms, _, ok := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(n), true
}
