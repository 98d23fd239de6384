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

// Capture publishes the changes logical decoding captures (CHANGE_CAPTURE=logical) as events on
// the Redis stream, as the relay publishes the outbox's: no trigger runs in the writing
// transactions. One warmer streams the slot at a time (PostgreSQL lets one connection hold it);
// the others try every second and take over within one of its connection ending. The slot is
// confirmed only once the changes it carried are on the stream, so a warmer that dies (even by
// SIGKILL) loses none: the next one streams them again from where the slot was confirmed.
type Capture struct {
	*baseservice.Archetype
	db      *query.DB
	store   Stream
	jobs    []jobs.Job
	columns map[string][]string // the columns each table's changes carry
	metrics captureMetrics
}

type captureMetrics struct {
	changes   prometheus.Counter
	failures  prometheus.Counter
	streaming prometheus.Gauge
}

// NewCapture returns a capture of the jobs' tables from db's slot to store's stream. It
// registers its metrics on reg, and, measured at each scrape, the slot's lag
// (warmcache_replication_slot_lag_bytes).
func NewCapture(arch *baseservice.Archetype, db *query.DB, store Stream, list []jobs.Job, reg prometheus.Registerer) *Capture {
	m := captureMetrics{
		changes: prometheus.NewCounter(prometheus.CounterOpts{Name: "warmcache_capture_changes_total",
			Help: "Changes logical decoding captured and this warmer published to Redis."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "warmcache_capture_failures_total",
			Help: "Times this warmer's streaming of the replication slot failed (it streams again from the slot's confirmed position)."}),
		streaming: prometheus.NewGauge(prometheus.GaugeOpts{Name: "warmcache_capture_streaming",
			Help: "1 while this warmer streams the replication slot (one warmer does at a time)."}),
	}
	reg.MustRegister(m.changes, m.failures, m.streaming, newSlotCollector(db))
	return &Capture{Archetype: arch, db: db, store: store, jobs: list, columns: jobs.Tables(list), metrics: m}
}

// takeOverEvery is how often a warmer that does not stream the slot tries to.
const takeOverEvery = time.Second

// Run streams the slot until ctx ends, or tries to while another warmer does.
func (c *Capture) Run(ctx context.Context) {
	delay := time.Duration(0)
	for ctx.Err() == nil {
		err := c.stream(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, query.ErrSlotBusy):
			delay = 0
			select {
			case <-ctx.Done():
			case <-time.After(takeOverEvery):
			}
			continue
		}
		c.metrics.failures.Inc()
		delay = min(max(2*delay, 100*time.Millisecond), 5*time.Second)
		c.Logger.Warn("capture_failed", "error", err, "retry_in", delay.String())
		backoff.Wait(ctx, nil, delay, backoff.Answering(c.db.Probe, c.store.Probe))
	}
}

// stream publishes what the slot holds, as it comes, until an error.
func (c *Capture) stream(ctx context.Context) error {
	capture, err := c.db.StartCapture(ctx, c.columns)
	if err != nil {
		return err
	}
	defer capture.Close()
	c.Logger.Info("capture_streaming", "slot", capture.Slot())
	c.metrics.streaming.Set(1)
	defer c.metrics.streaming.Set(0)
	for {
		changes, end, err := capture.Next(ctx, time.Second)
		if err != nil {
			return err
		}
		if len(changes) > 0 {
			if err := c.store.Publish(ctx, changes); err != nil {
				if errors.Is(err, cache.ErrFull) {
					c.dropUndeliverable(ctx, changes)
				}
				return err // unconfirmed: streamed again
			}
			c.metrics.changes.Add(float64(len(changes)))
		}
		if end > 0 {
			if err := capture.Confirm(ctx, end); err != nil {
				return err
			}
		}
	}
}

// dropUndeliverable handles changes a full Redis cannot take as events, as the relay does: the
// built-in totals book them, and the values they touch are deleted, so that readers compute them
// from PostgreSQL rather than serve values known to be stale. The slot keeps them, to be
// published once Redis has room.
func (c *Capture) dropUndeliverable(ctx context.Context, changes []query.Change) {
	if _, err := c.db.Maintain(ctx, changes); err != nil {
		c.Logger.Warn("capture_drop_failed", "error", err)
		return
	}
	if err := drop(ctx, c.store, c.jobs, changes); err != nil {
		c.Logger.Warn("capture_drop_failed", "error", err)
		return
	}
	c.Logger.Warn("capture_dropped", "changes", len(changes),
		"reason", "redis is full: their values are computed from PostgreSQL until it has room")
}

// slotCollector measures the replication slot's lag at each scrape: the WAL the primary keeps
// for it.
type slotCollector struct {
	db   *query.DB
	desc *prometheus.Desc
}

func newSlotCollector(db *query.DB) *slotCollector {
	return &slotCollector{db: db, desc: prometheus.NewDesc("warmcache_replication_slot_lag_bytes",
		"WAL the primary keeps for warmcache's replication slot, not yet confirmed: it grows while no warmer streams the slot.",
		nil, nil)}
}

func (s *slotCollector) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s *slotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	lag, ok, err := s.db.Schema().SlotLag(ctx)
	if err != nil || !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, float64(lag))
}
