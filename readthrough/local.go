package readthrough

import (
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
)

// Local is an api replica's in-process tier in front of Redis: values it read from Redis, kept
// in memory so that a hit costs a map lookup. It holds at most a size in bytes (otter's
// W-TinyLFU eviction: the keys read often stay), each value for at most its own freshness and a
// lifetime of its own (LOCAL_CACHE_TTL), and it is exactly as fresh as Redis: it watches the
// namespace's changes, which Redis tells of whoever makes them (cache.Store.Watch), and drops
// what they name within milliseconds of the write. It serves nothing while it does not watch
// (before its subscription, and from the loss of one until the next, after which it starts
// empty), since it could not know what changed meanwhile.
//
// A value read from Redis just before a change of its key, and kept just after the change was
// told, would outlive it: the reader takes a Token before it reads, and Set keeps nothing that a
// change since the token names.
type Local[V any] struct {
	entries *otter.Cache[localKey, localValue[V]]
	// changes counts the changes told and the times the tier was emptied; tombs holds, for the
	// keys changed lately, the count at their last change; forgotten is the highest count of a
	// change tombs no longer holds, emptied the count when the tier was last emptied, and jobs,
	// for each job, the count at its last change of every key. A value read before any of these
	// is not kept, or not served.
	changes   atomic.Uint64
	tombs     *otter.Cache[localKey, uint64]
	forgotten atomic.Uint64
	emptied   atomic.Uint64
	jobs      map[string]*atomic.Uint64 // never changed after NewLocal
	on        atomic.Bool
	metrics   localMetrics
}

type localKey struct{ job, key string }

type localValue[V any] struct {
	v       V
	weight  uint32
	expires time.Time
	token   uint64 // the change count when it was read from Redis
}

type localMetrics struct {
	evictions, invalidations, subscriptions prometheus.Counter
	watching                                prometheus.Gauge
}

// tombstoneLife is how long a changed key is remembered, to keep a value read before its change
// out: far longer than a read from Redis takes (REDIS_TIMEOUT). A read that takes longer is
// not kept.
const tombstoneLife = 5 * time.Second

// NewLocal returns a tier of at most size bytes for the values of jobs, keeping each at most
// ttl; now is the clock values' freshness is measured by, and reg receives its metrics. It serves
// nothing until Watch (through Subscribed) turns it on.
func NewLocal[V any](size uint64, ttl time.Duration, jobs []string, now func() time.Time, reg prometheus.Registerer) *Local[V] {
	l := &Local[V]{jobs: map[string]*atomic.Uint64{}}
	for _, job := range jobs {
		l.jobs[job] = new(atomic.Uint64)
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "warmcache_local_cache_" + name, Help: help})
	}
	l.metrics = localMetrics{
		evictions:     counter("evictions_total", "Values the in-process tier evicted to stay within LOCAL_CACHE_SIZE."),
		invalidations: counter("invalidations_total", "Changes the in-process tier was told of: a changed key, or every key of a job."),
		subscriptions: counter("subscriptions_total", "Times the in-process tier subscribed to the changes: its start and each reconnection."),
		watching: prometheus.NewGauge(prometheus.GaugeOpts{Name: "warmcache_local_cache_watching",
			Help: "1 while the in-process tier watches the changes and serves; 0 while it does not."}),
	}
	l.entries = otter.Must(&otter.Options[localKey, localValue[V]]{
		MaximumWeight: size,
		Weigher:       func(_ localKey, v localValue[V]) uint32 { return v.weight },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[localKey, localValue[V]]) time.Duration {
			return max(min(e.Value.expires.Sub(now()), ttl), 0)
		}),
		OnDeletion: func(e otter.DeletionEvent[localKey, localValue[V]]) {
			if e.Cause == otter.CauseOverflow {
				l.metrics.evictions.Inc()
			}
		},
	})
	l.tombs = otter.Must(&otter.Options[localKey, uint64]{
		MaximumSize:      100_000,
		ExpiryCalculator: otter.ExpiryWriting[localKey, uint64](tombstoneLife),
		OnDeletion: func(e otter.DeletionEvent[localKey, uint64]) {
			if e.Cause != otter.CauseReplacement {
				raise(&l.forgotten, e.Value)
			}
		},
	})
	bytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "warmcache_local_cache_bytes",
		Help: "Bytes the in-process tier holds, by its own count (bodies and headers)."},
		func() float64 { return float64(l.entries.WeightedSize()) })
	reg.MustRegister(l.metrics.evictions, l.metrics.invalidations,
		l.metrics.subscriptions, l.metrics.watching, bytes)
	return l
}

// Get returns job's value at key if the tier holds it.
func (l *Local[V]) Get(job, key string) (V, bool) {
	if l.on.Load() {
		if v, ok := l.entries.GetIfPresent(localKey{job, key}); ok && v.token >= l.emptied.Load() &&
			v.token >= l.jobs[job].Load() {
			return v.v, true
		}
	}
	var zero V
	return zero, false
}

// Token is taken before a value is read from Redis, for Set.
func (l *Local[V]) Token() uint64 { return l.changes.Load() }

// Set keeps job's value at key, read from Redis after token was taken, weighing weight bytes,
// until freshUntil or the tier's lifetime, whichever comes first, unless a change since token
// names it.
func (l *Local[V]) Set(job, key string, token uint64, v V, weight int, freshUntil time.Time) {
	changed, known := l.jobs[job]
	k := localKey{job, key}
	if !known || !l.on.Load() || l.emptied.Load() > token || changed.Load() > token || l.changedSince(k, token) {
		return
	}
	l.entries.Set(k, localValue[V]{v: v, weight: uint32(min(weight, 1<<31)), expires: freshUntil, token: token})
	// A change told between the look above and the Set would have dropped the key before the
	// value was there: look again now that it is. (Changed records the change, then drops the
	// key: one of the two sees the other.)
	if l.changedSince(k, token) {
		l.entries.Invalidate(k)
	}
}

// changedSince reports whether a change of k may have been told since token was taken.
func (l *Local[V]) changedSince(k localKey, token uint64) bool {
	if l.forgotten.Load() > token {
		return true
	}
	changed, ok := l.tombs.GetIfPresent(k)
	return ok && changed > token
}

// Subscribed starts the tier afresh: whatever it held may have changed unseen.
func (l *Local[V]) Subscribed() {
	l.forget()
	l.on.Store(true)
	l.metrics.subscriptions.Inc()
	l.metrics.watching.Set(1)
}

// Lost stops the tier until it is subscribed again.
func (l *Local[V]) Lost(error) {
	l.on.Store(false)
	l.metrics.watching.Set(0)
	l.forget()
}

// forget drops everything, and keeps out what was read before: a value read before, and kept
// while the tier empties, is not served (Get compares its token).
func (l *Local[V]) forget() {
	l.emptied.Store(l.changes.Add(1))
	l.entries.InvalidateAll()
}

// Invalidated drops what an invalidation names.
func (l *Local[V]) Invalidated(c cache.Invalidation) {
	count := l.changes.Add(1)
	if c.All {
		l.metrics.invalidations.Inc()
		if changed, ok := l.jobs[c.Job]; ok {
			raise(changed, count)
		}
		return
	}
	l.metrics.invalidations.Add(float64(len(c.Keys)))
	for _, key := range c.Keys {
		k := localKey{c.Job, key}
		l.tombs.Set(k, count)
		l.entries.Invalidate(k)
	}
}

var _ cache.Watcher = (*Local[int])(nil)

// raise sets n to v if v is higher.
func raise(n *atomic.Uint64, v uint64) {
	for cur := n.Load(); cur < v && !n.CompareAndSwap(cur, v); cur = n.Load() {
	}
}
