package warm

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// DataSet is what recovery needs of Redis (cache.Store): the server's counters, the mark of the
// data set it holds, and the means to drop a job's values and to tell that all of them changed.
type DataSet interface {
	Info(ctx context.Context) (cache.ServerInfo, error)
	MarkDataSet(ctx context.Context, id string) (string, error)
	DropAll(ctx context.Context, job string) error
	InvalidateAll(ctx context.Context, jobs ...string) error
}

var _ DataSet = (*cache.Store)(nil)

// Recovery watches Redis for the warmer, twice a second, for what Redis does not say by itself:
//
//   - A lost data set. A Redis restarted empty, or flushed, holds none of the values, and keys
//     nobody reads would stay missing until their job's next run; a Redis restarted from a
//     snapshot (RDB, AOF) or replaced by a replica holds values older than what was written to
//     it since, with nothing to say which. Either way every enabled job is run again at once
//     (a request, which one warmer takes), the values of disabled jobs are dropped (readers
//     compute them again), and the apis' in-process tiers and downstream caches are told that
//     every value changed. The data set is recognised by a mark in Redis holding the run ids
//     of the servers that hold it (cache.Store.MarkDataSet), and of several warmers the first
//     to see a change acts on it.
//   - Evictions. A Redis that reached maxmemory with an evicting policy makes room by dropping
//     keys, written values among them, and says so only in INFO's evicted_keys: they are
//     counted (warmcache_redis_evicted_keys_total) and logged.
type Recovery struct {
	*baseservice.Archetype
	store     DataSet
	db        *query.DB // the primary, where runs are requested
	jobs      []jobs.Job
	namespace string
	interval  time.Duration
	metrics   recoveryMetrics

	looked   bool   // a look got an answer
	runIDs   string // the servers' run ids at the last look
	evicted  int64  // evicted_keys at the last look
	unlogged int64  // evictions counted but not logged yet
	loggedAt time.Time
	owed     bool // runs to request, once PostgreSQL takes them
}

type recoveryMetrics struct {
	evicted prometheus.Counter
	lost    *prometheus.CounterVec
}

// NewRecovery returns the watcher of store's Redis for jobs, which requests runs in db; reg
// receives its metrics.
func NewRecovery(arch *baseservice.Archetype, store DataSet, db *query.DB, jobs []jobs.Job, namespace string,
	reg prometheus.Registerer) *Recovery {
	m := recoveryMetrics{
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "warmcache_redis_evicted_keys_total",
			Help: "Keys Redis evicted to make room (INFO evicted_keys), as the warmer saw them: Redis is too small for the data set."}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warmcache_redis_data_lost_total",
			Help: "Times Redis lost the data set (emptied) or came back with older data (restarted), each followed by warming every job again."},
			[]string{"reason"}),
	}
	for _, reason := range []string{"emptied", "restarted"} {
		m.lost.WithLabelValues(reason)
	}
	reg.MustRegister(m.evicted, m.lost)
	return &Recovery{Archetype: arch, store: store, db: db, jobs: jobs, namespace: namespace,
		interval: 500 * time.Millisecond, metrics: m}
}

// evictionLogEvery spaces the logs of evictions: a Redis too small evicts all the time.
const evictionLogEvery = time.Minute

// Run watches until ctx ends. The warmer calls Look once before its scheduler starts, so that
// the runs a data set lost while no warmer ran asks for meet the scheduler's first runs.
func (r *Recovery) Run(ctx context.Context) {
	ticker := time.NewTicker(r.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			r.Look(ctx)
		}
	}
}

// Look looks at Redis once. A Redis that does not answer says nothing: the runs and the
// refresher retry by themselves, and the next look that gets an answer tells what it lost.
func (r *Recovery) Look(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := r.store.Info(ctx)
	if err != nil {
		return
	}
	r.countEvictions(info)
	ids := strings.Join(info.RunIDs, ",")
	prev, err := r.store.MarkDataSet(ctx, ids)
	reason := ""
	switch {
	case err != nil && r.looked && ids != r.runIDs:
		// The mark cannot be written (a full Redis): the servers' own ids still say it.
		reason = "restarted"
	case err != nil, prev == ids:
	case !r.looked:
		// No mark, or an old one, at start: a Redis new to warmcache, or one that lost its data
		// while no warmer ran. The scheduler's first runs may be skipped (claimed before).
		r.Logger.Info("redis_data_unmarked", "action", "warming every job")
		r.owed = true
	case prev == "":
		reason = "emptied"
	default:
		reason = "restarted"
	}
	if reason != "" {
		r.Logger.Warn("redis_data_lost", "reason", reason, "action", "warming every job again now",
			"hint", "Redis restarted empty, was flushed, or came back with older data (a snapshot, a promoted replica)")
		r.metrics.lost.WithLabelValues(reason).Inc()
		r.owed = true
		r.forget(ctx, reason)
	}
	r.looked, r.runIDs = true, ids
	if r.owed {
		r.owed = !r.requestRuns(ctx)
	}
}

// forget tells every copy of the values that they may have changed and, when Redis came back
// with older data, drops the values of the jobs no run refreshes.
func (r *Recovery) forget(ctx context.Context, reason string) {
	names := make([]string, len(r.jobs))
	for i, job := range r.jobs {
		names[i] = job.Name
		if !job.Enabled && reason == "restarted" {
			if err := r.store.DropAll(ctx, job.Name); err != nil {
				r.Logger.Warn("redis_data_not_dropped", "job", job.Name, "error", err)
			}
		}
	}
	if err := r.store.InvalidateAll(ctx, names...); err != nil {
		r.Logger.Warn("redis_changes_not_told", "error", err)
	}
}

// requestRuns asks for a run of every enabled job, and reports whether it could.
func (r *Recovery) requestRuns(ctx context.Context) bool {
	for _, job := range r.jobs {
		if !job.Enabled {
			continue
		}
		if err := r.db.Runs().RequestRun(ctx, r.namespace, job.Name); err != nil {
			r.Logger.Warn("redis_rewarm_not_requested", "job", job.Name, "error", err)
			return false
		}
	}
	return true
}

// countEvictions counts the keys evicted since the last look, and logs them at most once every
// evictionLogEvery.
func (r *Recovery) countEvictions(info cache.ServerInfo) {
	if r.looked && info.EvictedKeys > r.evicted {
		n := info.EvictedKeys - r.evicted
		r.metrics.evicted.Add(float64(n))
		r.unlogged += n
	}
	r.evicted = info.EvictedKeys // a restarted server counts from 0 again
	if now := r.Time.Now(); r.unlogged > 0 && now.Sub(r.loggedAt) >= evictionLogEvery {
		r.Logger.Warn("redis_evicted_keys", "keys", r.unlogged,
			"used_memory", info.UsedMemory, "maxmemory", info.MaxMemory, "maxmemory_policy", info.Policy,
			"hint", "Redis is too small for the data set: values written are dropped (README: Sizing Redis)")
		r.unlogged, r.loggedAt = 0, now
	}
}
