package invalidate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/backoff"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/recent"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

// group is the consumer group of the warmers: each event goes to one warmer, and another takes
// it over if that warmer dies before acknowledging it.
const group = "warmers"

// Events is what the refresher needs of Redis (cache.Store): the stream of changes it consumes in
// the warmers' group, the recomputed values it writes (or drops, when Redis is full), the lag it
// records for the status page, and a probe for retries.
type Events interface {
	Consume(ctx context.Context, group, consumer string, count int, block, idle time.Duration) ([]cache.Delivery, error)
	Ack(ctx context.Context, group string, deliveries []cache.Delivery) error
	RemoveIdleConsumers(ctx context.Context, group string, idle time.Duration) ([]string, error)
	Put(ctx context.Context, job string, items ...cache.Item) (int, error)
	RecordLag(ctx context.Context, w cache.LagWindow) error
	Probe(ctx context.Context) error
	dropper
}

var _ Events = (*cache.Store)(nil)

// Refresher recomputes the keys that events name, in one warmer. Which keys an event touches is
// each job's to say (jobs.Job.AffectedBy); a change that touches every key of a keyed job asks
// for a run of the whole job instead.
type Refresher struct {
	*baseservice.Archetype
	db        *query.DB
	store     Events
	jobs      []jobs.Job
	namespace string
	consumer  string
	metrics   refresherMetrics
	// idle is how long an event may stay unacknowledged by the warmer that read it before
	// another warmer takes it over, and how often dead consumers are looked for.
	idle      time.Duration
	nextSweep time.Time
	// The lag window being measured for the status page: since when, and the lag histogram's
	// state then.
	windowStart time.Time
	windowFrom  recent.Histogram
}

type refresherMetrics struct {
	events prometheus.Counter
	keys   prometheus.Counter
	lag    prometheus.Histogram
}

// lagWindow is how long a window of lag measures before it is recorded in Redis.
const lagWindow = 10 * time.Second

// NewRefresher returns a refresher computing the jobs' values from db into store; namespace is
// where whole runs are requested. reg receives its metrics.
func NewRefresher(arch *baseservice.Archetype, db *query.DB, store Events, list []jobs.Job, namespace string,
	reg prometheus.Registerer) *Refresher {
	host, _ := os.Hostname()
	r := &Refresher{
		Archetype: arch, db: db, store: store, jobs: list, namespace: namespace,
		consumer: fmt.Sprintf("%s/%d/%x", host, os.Getpid(), rand.Uint32()),
		idle:     10 * time.Second,
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

// batchEvents is the most events (changes) one batch takes, in entries of up to
// cache.ChangesPerEvent: the events that arrive while a batch is handled wait in the stream and
// are handled together in the next.
const batchEvents = 2000

// Run handles events until ctx ends. About every ten seconds (Consume waits a second at most for
// events) it records the lag it measured in Redis, for the api's status page.
func (r *Refresher) Run(ctx context.Context) {
	delay := time.Duration(0)
	r.windowStart, r.windowFrom = r.Time.Now(), recent.ReadHistogram(r.metrics.lag)
	for ctx.Err() == nil {
		r.recordLag(ctx)
		r.sweepConsumers(ctx)
		events, err := r.store.Consume(ctx, group, r.consumer, batchEvents/cache.ChangesPerEvent, time.Second, r.idle)
		if err == nil && len(events) > 0 {
			err = r.handle(ctx, events)
		}
		if err != nil && ctx.Err() == nil {
			// The events stay pending: they are read again once PostgreSQL and Redis answer
			// (by this warmer, or by another one after ten seconds), at once when they come
			// back: the writes made meanwhile must show within the second.
			delay = min(max(2*delay, 100*time.Millisecond), 5*time.Second)
			r.Logger.Warn("invalidation_failed", "error", err, "retry_in", delay.String())
			backoff.Wait(ctx, nil, delay, backoff.Answering(r.db.Probe, r.store.Probe))
			continue
		}
		delay = 0
	}
}

// deadAfter is how long a consumer of the group stays idle, with nothing pending, before it is
// removed. A live refresher reads at least every second, but while it handles a long batch;
// Redis before 7.2 counts only the reads that returned events, though, so there a live
// refresher of a quiet deployment is idle too.
const deadAfter = 30 * time.Second

// sweepConsumers removes from the group, every idle interval, the consumers idle for deadAfter
// with nothing pending: warmers that died (another took their pending events over after idle)
// or stopped, which nothing else would ever remove. A live one removed (above) loses nothing,
// and is added back by its next read that returns events.
func (r *Refresher) sweepConsumers(ctx context.Context) {
	now := r.Time.Now()
	if now.Before(r.nextSweep) {
		return
	}
	r.nextSweep = now.Add(r.idle)
	removed, err := r.store.RemoveIdleConsumers(ctx, group, deadAfter)
	if err != nil {
		r.Logger.Debug("consumers_not_swept", "error", err)
		return
	}
	for _, c := range removed {
		r.Logger.Debug("consumer_removed", "consumer", c, "idle_over", deadAfter.String())
	}
}

// handle recomputes the keys of a batch of events, each key once however many events name it,
// writes them, and acknowledges the events. A job's keys are computed together, a chunk per
// statement; a single-value job is computed once per batch, so that a burst of writes costs
// one recomputation of it per batch, and in one warmer at most one is in flight.
func (r *Refresher) handle(ctx context.Context, events []cache.Delivery) error {
	r.Logger.Debug("invalidation_received", "events", len(events))
	changes := make([]query.Change, len(events))
	for i, e := range events {
		changes[i] = e.Change
	}
	// The figures the incremental jobs read are brought up to date before they are read. Every
	// value is read at a position past the changes, and an incremental job's past the figures'
	// update too: on a replica once it has replayed that far, else on the primary.
	booked, err := r.db.Maintain(ctx, changes)
	if err != nil {
		return err
	}
	var at int64
	for _, c := range changes {
		at = max(at, c.Position)
	}
	joined, err := lookUp(ctx, r.db, r.jobs, changes)
	if err != nil {
		return err
	}
	keys, whole := touched(r.jobs, changes, joined)
	for _, name := range whole {
		if err := r.db.Runs().RequestRun(ctx, r.namespace, name); err != nil {
			return fmt.Errorf("request a run of %s: %w", name, err)
		}
	}
	// Each chunk is written as soon as it is computed: the customers' own keys need not wait
	// for the totals. Chunks go in the order of the positions they read at: on a replica, the
	// ones waiting longest for its replay do not hold back those it has already replayed.
	type task struct {
		job   jobs.Job
		chunk []string
		at    int64
	}
	var tasks []task
	for _, job := range r.jobs {
		at := at
		if job.Aggregate.Incremental() {
			at = max(at, booked)
		}
		for chunk := range slices.Chunk(slices.Sorted(maps.Keys(keys[job.Name])), refreshChunk) {
			tasks = append(tasks, task{job, chunk, at})
		}
	}
	slices.SortStableFunc(tasks, func(a, b task) int { return cmp.Compare(a.at, b.at) })
	var written atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	now := r.Time.Now()
	var full atomic.Bool
	for _, t := range tasks {
		g.Go(func() error {
			n, err := r.refresh(gctx, t.job, t.chunk, t.at, now)
			written.Add(int64(n))
			if errors.Is(err, cache.ErrFull) {
				// No room for the new values: readers compute them from PostgreSQL rather
				// than read the old ones.
				full.Store(true)
				err = r.store.Drop(gctx, t.job.Name, t.chunk)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if full.Load() {
		for _, name := range whole { // their runs cannot write either
			if err := r.store.DropAll(ctx, name); err != nil {
				return err
			}
		}
		r.Logger.Warn("invalidation_dropped", "events", len(events), "reason", cache.ErrFull.Error())
	}
	if err := r.store.Ack(ctx, group, events); err != nil {
		return fmt.Errorf("acknowledge events: %w", err)
	}
	r.metrics.events.Add(float64(len(events)))
	r.metrics.keys.Add(float64(written.Load()))
	for _, e := range events {
		if published, ok := streamTime(e.StreamID); ok {
			r.metrics.lag.Observe(time.Since(published).Seconds())
		}
	}
	r.Logger.Debug("keys_refreshed", "events", len(events), "keys", written.Load())
	return nil
}

// recordLag records the lag measured since the window started in Redis, once the window is
// over. A window Redis does not take is merged into the next.
func (r *Refresher) recordLag(ctx context.Context) {
	now := r.Time.Now()
	if now.Sub(r.windowStart) < lagWindow {
		return
	}
	state := recent.ReadHistogram(r.metrics.lag)
	w := cache.LagWindow{Warmer: r.consumer, Start: r.windowStart, End: now, Lag: state.Sub(r.windowFrom)}
	if err := r.store.RecordLag(ctx, w); err != nil {
		r.Logger.Debug("lag_not_recorded", "error", err)
		return
	}
	r.windowStart, r.windowFrom = now, state
}

// refresh recomputes keys of job at position at or past it, writes them, and returns how many
// it wrote. A key the job's key column cannot hold (a changed row's value that no key of the job
// can be) names no value, and is left out.
func (r *Refresher) refresh(ctx context.Context, job jobs.Job, keys []string, at int64, now time.Time) (int, error) {
	items, err := warm.ComputeMany(ctx, r.db, job, keys, at, now)
	if errors.Is(err, query.ErrInvalidKey) && len(keys) > 1 {
		written := 0
		for _, key := range keys {
			n, err := r.refresh(ctx, job, []string{key}, at, now)
			if err != nil {
				return written, err
			}
			written += n
		}
		return written, nil
	}
	if errors.Is(err, query.ErrInvalidKey) {
		r.Logger.Warn("invalidation_key_ignored", "job", job.Name, "key", keys[0], "error", err)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if _, err := r.store.Put(ctx, job.Name, items...); err != nil {
		return 0, fmt.Errorf("write %s: %w", job.Name, err)
	}
	return len(items), nil
}

// refreshChunk is how many keys of a job one statement recomputes.
const refreshChunk = 500

// streamTime reads the publication time from a stream entry's id, <milliseconds>-<sequence>.
func streamTime(id string) (time.Time, bool) {
	ms, _, ok := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(n), true
}
