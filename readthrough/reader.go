// Package readthrough owns the read policy, in one place: a read of a job's value looks in the
// api's in-process tier, then in Redis, and on a miss computes the value from PostgreSQL and
// stores it, one computation per key across the replicas (a lease in Redis, and coalescing in
// the process). It caches answers for keys without a row too, serves a value past freshness while
// PostgreSQL cannot answer (STALE), and computes without storing while Redis cannot (BYPASS).
// Circuit breakers keep a failing dependency from holding every read up.
//
// It knows nothing of HTTP: package api asks it for a value and writes the answer. Redis's keys
// and bytes are cache's, the SQL query's, and how a job's value is computed warm's.
package readthrough

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

// What a read was answered with: the values of the hit header, and of the result label of the
// api's request metrics.
const (
	Hit    = "HIT"    // fresh, from the in-process tier or Redis
	Miss   = "MISS"   // computed from PostgreSQL now, and stored (the key was missing or due for refresh)
	Stale  = "STALE"  // from Redis past freshness, PostgreSQL being unable to answer
	Bypass = "BYPASS" // computed from PostgreSQL and not stored, Redis being unable to answer
)

// Store is what a read needs of Redis (cache.Store).
type Store interface {
	Get(ctx context.Context, job, key string) (cache.Entry, error)
	Lease(ctx context.Context, job, key, owner string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, job, key, owner string) error
	Fill(ctx context.Context, job string, items ...cache.Item) (int, error)
	Watch(ctx context.Context, w cache.Watcher)
	TellsEveryChange() bool
}

var _ Store = (*cache.Store)(nil)

// Config tunes the reads.
type Config struct {
	// QueryTimeout bounds computing one value from PostgreSQL (QUERY_TIMEOUT).
	QueryTimeout time.Duration
	// LeaseWait is how long a replica waits for the value another replica is computing.
	LeaseWait time.Duration
	// LocalCacheSize bounds the in-process tier, in bytes (LOCAL_CACHE_SIZE); zero turns it off.
	LocalCacheSize uint64
	// LocalCacheTTL is the longest the in-process tier keeps a value (LOCAL_CACHE_TTL). Redis
	// tells the tier of every change (cache.Store.Watch), so it can be long; where it tells only
	// of warmcache's own writes (a Cluster), the tier keeps values untoldTTL at most.
	LocalCacheTTL time.Duration
}

// untoldTTL is the longest the in-process tier keeps a value where Redis does not tell of every
// change: a change warmcache's writes never announced (a warmer killed between writing and
// telling) is served that long at most.
const untoldTTL = time.Second

// Reader reads the jobs' values. A is the answer its user prepares once per value read (the
// api's headers and body), which the in-process tier keeps.
type Reader[A any] struct {
	*baseservice.Archetype
	cfg   Config
	store Store
	db    warm.Source
	// prepare makes the answer of an entry of a job's key; weigh says how many bytes it holds.
	prepare func(e cache.Entry, job, key string) A
	weigh   func(A) int
	owner   string // names this process in read-through leases

	local   *Local[tiered[A]] // nil when LocalCacheSize is zero
	redis   *gobreaker.CircuitBreaker[cache.Entry]
	pg      *gobreaker.CircuitBreaker[cache.Entry]
	queries *semaphore.Weighted
	flight  singleflight.Group
	metrics *metrics
}

// tiered is an answer in the in-process tier, with the freshness and position of its entry.
type tiered[A any] struct {
	answer     A
	freshUntil time.Time
	position   int64
}

// New returns a Reader of the jobs in list over store and db. queries bounds the values
// computed from PostgreSQL at once (MAX_QUERIES), a limit its user may share. Its metrics are
// registered on reg.
func New[A any](arch *baseservice.Archetype, cfg Config, store Store, db warm.Source, list []jobs.Job,
	queries *semaphore.Weighted, prepare func(e cache.Entry, job, key string) A, weigh func(A) int,
	reg prometheus.Registerer) *Reader[A] {
	host, _ := os.Hostname()
	r := &Reader[A]{
		Archetype: arch,
		cfg:       cfg,
		store:     store,
		db:        db,
		prepare:   prepare,
		weigh:     weigh,
		owner:     fmt.Sprintf("%s/%d/%x", host, os.Getpid(), rand.Uint64()),
		queries:   queries,
		metrics:   newMetrics(reg),
	}
	if cfg.LocalCacheSize > 0 {
		names := make([]string, len(list))
		for i, j := range list {
			names[i] = j.Name
		}
		ttl := cfg.LocalCacheTTL
		if !store.TellsEveryChange() && ttl > untoldTTL {
			ttl = untoldTTL
			r.Logger.Warn("local_cache_ttl_shortened", "ttl", ttl.String(), "local_cache_ttl", cfg.LocalCacheTTL.String(),
				"reason", "Redis Cluster tells only of warmcache's own writes")
		}
		r.local = NewLocal[tiered[A]](cfg.LocalCacheSize, ttl, names, arch.Time.Now, reg)
	}
	r.redis = gobreaker.NewCircuitBreaker[cache.Entry](r.breakerSettings("redis", cache.ErrUnavailable, cache.ErrMiss))
	r.pg = gobreaker.NewCircuitBreaker[cache.Entry](r.breakerSettings("postgresql", query.ErrUnavailable,
		query.ErrInvalidKey))
	// Both breakers' gauges exist from the start, closed: an alert or a dashboard tells "closed"
	// from "never reported".
	for _, b := range []string{r.redis.Name(), r.pg.Name()} {
		r.metrics.breaker.WithLabelValues(b).Set(0)
	}
	return r
}

// Read returns the answer of job's value at key, canonical (jobs.Job.Aggregate.CanonicalKey),
// and what it was answered with: Hit, Miss, Stale or Bypass. The hit path is a lookup in the
// in-process tier, or one Redis GET: no database work. A missing value, or one due for refresh,
// is computed from PostgreSQL and stored (Miss); when PostgreSQL cannot answer, a value past
// freshness is answered as it is (Stale); when Redis cannot answer, the value is computed from
// PostgreSQL and not stored (Bypass). A key that can never name a row is query.ErrInvalidKey.
//
// A read at a WAL position (at above zero: a client's own write's, Warmcache-Position) takes a
// value read at that position or past it, never an older one (readAt).
func (r *Reader[A]) Read(ctx context.Context, job jobs.Job, key string, at int64) (A, string, error) {
	now := r.Time.Now()
	var token uint64
	if r.local != nil {
		// Values past freshness are never answered from memory: Redis decides about them.
		if t, ok := r.local.Get(job.Name, key); ok && now.Before(t.freshUntil) && t.position >= at {
			r.metrics.memoryHits.Inc()
			return t.answer, Hit, nil
		}
		token = r.local.Token()
	}
	// The store bounds this read by REDIS_TIMEOUT, whatever the fault (cache.Options.Timeout).
	entry, err := r.redis.Execute(func() (cache.Entry, error) { return r.store.Get(ctx, job.Name, key) })
	if at > 0 && (err == nil || errors.Is(err, cache.ErrMiss)) && entry.Position < at {
		return r.readAt(ctx, job, key, at, !errors.Is(err, cache.ErrMiss))
	}
	switch {
	case err == nil && now.Before(entry.FreshUntil):
		a := r.prepare(entry, job.Name, key)
		if r.local != nil {
			r.local.Set(job.Name, key, token, tiered[A]{a, entry.FreshUntil, entry.Position}, r.weigh(a), entry.FreshUntil)
		}
		r.metrics.redisHits.Inc()
		return a, Hit, nil
	case err == nil:
		fresh, err := r.readThrough(ctx, job, key, "refresh")
		if err != nil {
			if !expected(err) {
				r.Logger.Error("refresh_failed", "job", job.Name, "key", key, "error", err)
			}
			r.Logger.Debug("cache_stale", "job", job.Name, "key", key, "error", err)
			return r.prepare(entry, job.Name, key), Stale, nil
		}
		return r.prepare(fresh.entry, job.Name, key), fresh.result(), nil
	case errors.Is(err, cache.ErrMiss):
		fresh, err := r.readThrough(ctx, job, key, "miss")
		if err != nil {
			var zero A
			return zero, "", err
		}
		return r.prepare(fresh.entry, job.Name, key), fresh.result(), nil
	case errors.Is(err, context.Canceled):
		var zero A
		return zero, "", err
	}
	// Redis is down, hung, slow, or its breaker open. Concurrent reads of a key share one
	// computation here too: with Redis down, every read would otherwise be a query.
	r.Logger.Debug("cache_bypass", "job", job.Name, "key", key, "error", err)
	fresh, err := r.coalesce(ctx, job, key, at, func(ctx context.Context) (computed, error) {
		e, err := r.compute(ctx, job, key, at, "bypass")
		return computed{entry: e}, err
	})
	if err != nil {
		var zero A
		return zero, "", err
	}
	return r.prepare(fresh.entry, job.Name, key), fresh.result(), nil
}

// readAt answers a read at position at that Redis had no value for, or one read before at: the
// value is computed in a snapshot at or past at (a replica that has replayed past it, or the
// primary) and stored, unless Redis holds a newer one by then. The reads of one key at one
// position share the computation. Stored values older than at are never answered: with
// PostgreSQL unable to answer, the read fails.
func (r *Reader[A]) readAt(ctx context.Context, job jobs.Job, key string, at int64, found bool) (A, string, error) {
	reason := "miss"
	if found {
		reason = "position"
	}
	fresh, err := r.coalesce(ctx, job, key, at, func(ctx context.Context) (computed, error) {
		e, err := r.compute(ctx, job, key, at, reason)
		if err != nil {
			return computed{}, err
		}
		return r.fill(ctx, job, key, e), nil
	})
	if err != nil {
		var zero A
		return zero, "", err
	}
	return r.prepare(fresh.entry, job.Name, key), fresh.result(), nil
}

// Watch keeps the in-process tier as fresh as Redis until ctx ends, by the changes the store
// tells of; without a tier it returns at once. The tier serves nothing until it watches.
func (r *Reader[A]) Watch(ctx context.Context) {
	if r.local == nil {
		return
	}
	r.store.Watch(ctx, watchLog{r.local, r.Logger})
}

// Breakers returns the state of the breakers in front of Redis and PostgreSQL, by dependency.
func (r *Reader[A]) Breakers() map[string]string {
	return map[string]string{r.redis.Name(): r.redis.State().String(), r.pg.Name(): r.pg.State().String()}
}

// readThrough computes job's value at key from PostgreSQL and stores it. Concurrent reads of one
// key in this process share one computation; across api replicas, a short lease in Redis lets
// one replica compute while the others wait for its value. Its errors are compute's.
//
// Redis failing half-way through costs the read one REDIS_TIMEOUT, not one for each of its
// steps: once a step finds Redis unavailable, the others leave it alone, and the value is
// answered without being stored (Bypass).
func (r *Reader[A]) readThrough(ctx context.Context, job jobs.Job, key, reason string) (computed, error) {
	return r.coalesce(ctx, job, key, 0, func(ctx context.Context) (computed, error) {
		// The request looked in Redis before it got here: a computation that ended in between
		// has stored the value since.
		e, redisAnswers, ok := r.fresh(ctx, job, key)
		if ok {
			return computed{e, true}, nil
		}
		leased := false
		if redisAnswers {
			var err error
			leased, err = r.store.Lease(ctx, job.Name, key, r.owner, r.cfg.QueryTimeout)
			redisAnswers = !errors.Is(err, cache.ErrUnavailable)
			if err == nil && !leased {
				if e, ok := r.awaitOther(ctx, job, key, &redisAnswers); ok {
					return computed{e, true}, nil
				}
			}
		}
		if leased {
			defer func() {
				if redisAnswers {
					r.store.Release(context.WithoutCancel(ctx), job.Name, key, r.owner) //nolint:errcheck // the lease lapses anyway
				}
			}()
			// Another replica may have stored it between our look and our lease.
			if e, ok := r.freshWhileAnswering(ctx, job, key, &redisAnswers); ok {
				return computed{e, true}, nil
			}
		}
		e, err := r.compute(ctx, job, key, 0, reason)
		switch {
		case err != nil:
			return computed{}, err
		case !redisAnswers:
			return computed{entry: e}, nil
		}
		return r.fill(ctx, job, key, e), nil
	})
}

// fill stores e, computed from PostgreSQL, as job's value at key: unless Redis holds a newer one
// by then. A store that fails is logged, and the value answered as not stored (Bypass).
func (r *Reader[A]) fill(ctx context.Context, job jobs.Job, key string, e cache.Entry) computed {
	if _, err := r.store.Fill(ctx, job.Name, cache.Item{Key: key, Entry: e}); err != nil {
		r.Logger.Warn("cache_store_failed", "job", job.Name, "key", key, "error", err)
		return computed{entry: e}
	}
	return computed{e, true}
}

// computed is a value computed for the reads that shared its computation, and whether it is
// stored in Redis.
type computed struct {
	entry  cache.Entry
	stored bool
}

// result is what a read answered with the value was answered with: Miss when it is stored,
// Bypass when Redis did not take it.
func (c computed) result() string {
	if c.stored {
		return Miss
	}
	return Bypass
}

// coalesce runs compute once for the concurrent reads of job's value at key at position at,
// within QUERY_TIMEOUT. Reads that missed in Redis and reads that could not reach it share one
// computation, whichever started it: a burst of reads that Redis answers too slowly for some
// of them still costs one query. The computation serves every waiting read, so it does not end
// with the first read's client going away. Reads at a position share only with reads at the
// same position: one started before a write cannot answer for it.
func (r *Reader[A]) coalesce(ctx context.Context, job jobs.Job, key string, at int64,
	compute func(context.Context) (computed, error)) (computed, error) {
	flight := job.Name + "\x00" + key
	if at > 0 {
		flight += "\x00" + strconv.FormatInt(at, 10)
	}
	v, err, _ := r.flight.Do(flight, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.QueryTimeout)
		defer cancel()
		return compute(ctx)
	})
	if err != nil {
		return computed{}, err
	}
	return v.(computed), nil
}

// awaitOther waits for the value another replica holds the lease to compute, while Redis
// answers.
func (r *Reader[A]) awaitOther(ctx context.Context, job jobs.Job, key string, redisAnswers *bool) (cache.Entry, bool) {
	deadline := time.Now().Add(r.cfg.LeaseWait)
	for time.Now().Before(deadline) && *redisAnswers {
		select {
		case <-ctx.Done():
			return cache.Entry{}, false
		case <-time.After(10 * time.Millisecond):
		}
		if e, ok := r.freshWhileAnswering(ctx, job, key, redisAnswers); ok {
			return e, true
		}
	}
	return cache.Entry{}, false
}

// fresh returns job's value at key from Redis, whether Redis answered, and whether the value is
// there and fresh.
func (r *Reader[A]) fresh(ctx context.Context, job jobs.Job, key string) (e cache.Entry, answered, ok bool) {
	e, err := r.store.Get(ctx, job.Name, key)
	return e, !errors.Is(err, cache.ErrUnavailable), err == nil && r.Time.Now().Before(e.FreshUntil)
}

// freshWhileAnswering returns job's value at key from Redis if it is there and fresh, and clears
// redisAnswers when Redis did not answer.
func (r *Reader[A]) freshWhileAnswering(ctx context.Context, job jobs.Job, key string, redisAnswers *bool) (cache.Entry, bool) {
	e, answered, ok := r.fresh(ctx, job, key)
	*redisAnswers = *redisAnswers && answered
	return e, ok
}

// compute computes job's value at key from PostgreSQL, within the limit of queries at once, as
// the entry to answer and store. QUERY_TIMEOUT bounds it all: the wait for a turn among
// MAX_QUERIES, for a pooled connection or a new one, and the query. A key without a row gives a
// negative entry. A key that can never name a row is query.ErrInvalidKey; PostgreSQL not
// answering, or its breaker open, query.ErrUnavailable or gobreaker's errors; a failing statement
// (a user's SQL dividing by zero) its own error.
func (r *Reader[A]) compute(ctx context.Context, job jobs.Job, key string, at int64, reason string) (cache.Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.QueryTimeout)
	defer cancel()
	if err := r.queries.Acquire(ctx, 1); err != nil {
		return cache.Entry{}, fmt.Errorf("wait to query: %w", err)
	}
	defer r.queries.Release(1)
	e, err := r.pg.Execute(func() (cache.Entry, error) {
		return warm.Compute(ctx, r.db, job, key, at, r.Time.Now())
	})
	r.metrics.fallbacks.WithLabelValues(job.Name, reason).Inc()
	if err != nil && expected(err) && !errors.Is(err, query.ErrInvalidKey) {
		r.Logger.Warn("fallback_failed", "job", job.Name, "key", key, "error", err)
	}
	return e, err
}

// expected reports whether err is a failure a read foresees: a dependency unable to answer (or
// its breaker open), a deadline, a client gone, a key that names no row. Anything else is a bug
// or a failing statement, which the api answers with a 500.
func expected(err error) bool {
	for _, kind := range []error{query.ErrUnavailable, cache.ErrUnavailable, gobreaker.ErrOpenState,
		gobreaker.ErrTooManyRequests, context.DeadlineExceeded, context.Canceled, query.ErrInvalidKey} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}
