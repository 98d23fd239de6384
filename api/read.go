package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// ordersCount serves orders_total, or with ?customerid= one customer's orders_by_customer.
func (s *Server) ordersCount(c echo.Context, rm routeMetrics) error {
	customer, ok := queryParam(c, "customerid")
	if !ok {
		return s.serve(c, rm, s.byName[jobs.OrdersTotal], "")
	}
	return s.serve(c, rm, s.byName[jobs.OrdersByCustomer], customer)
}

// queryParam returns the first value of the query parameter name, and whether there is one, as
// echo's QueryParams does, without parsing the whole query into a map when nothing in it is
// escaped (the hot path).
func queryParam(c echo.Context, name string) (string, bool) {
	raw := c.Request().URL.RawQuery
	if strings.ContainsAny(raw, "%+;") {
		values := c.QueryParams()
		return values.Get(name), values.Has(name)
	}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if key, value, _ := strings.Cut(pair, "="); key == name {
			return value, true
		}
	}
	return "", false
}

func (s *Server) customerCredit(c echo.Context, rm routeMetrics) error {
	return s.serve(c, rm, s.byName[jobs.CreditByCustomer], c.Param("id"))
}

func (s *Server) creditOverview(c echo.Context, rm routeMetrics) error {
	return s.serve(c, rm, s.byName[jobs.CreditOverview], "")
}

// result serves any job by name: /v1/results/{job} for a single-value job, /v1/results/{job}/{key}
// for a keyed one, whose keys /v1/results/{job} lists.
func (s *Server) result(c echo.Context, rm routeMetrics) error {
	job, ok := s.byName[c.Param("job")]
	key := c.Param("key")
	switch {
	case !ok:
		return public(errNotFound, "no job is called %q", c.Param("job"))
	case job.Keyed() && key == "":
		return s.compress(func(c echo.Context) error { return s.listKeys(c, job) })(c)
	case !job.Keyed() && key != "":
		return public(errNotFound, "job %s has a single value: ask for /v1/results/%s", job.Name, job.Name)
	}
	return s.serve(c, rm, job, key)
}

// serve answers a read of job's value at key. The hit path is a lookup in the in-process tier,
// or one Redis GET, and stored bytes written as they are: no JSON encoding and no database work.
// A missing value, or one due for refresh, is computed from PostgreSQL and stored (MISS); when
// PostgreSQL cannot answer, a value past freshness is served as it is (STALE); when Redis
// cannot answer, the value is computed from PostgreSQL and not stored (BYPASS).
func (s *Server) serve(c echo.Context, rm routeMetrics, job jobs.Job, key string) error {
	if job.Keyed() {
		canon, err := job.Aggregate.CanonicalKey(key)
		if err != nil {
			return public(err, "%s", job.InvalidKeyMessage(key))
		}
		key = canon
	}
	now := s.Time.Now()
	var token uint64
	if s.local != nil {
		// Values past freshness are never served from memory: Redis decides about them.
		if a, ok := s.local.Get(job.Name, key); ok && now.Before(a.entry.FreshUntil) {
			s.metrics.memoryHits.Inc()
			return s.write(c, rm, a, hit)
		}
		token = s.local.Token()
	}
	// The store bounds this read by REDIS_TIMEOUT, whatever the fault (cache.Options.Timeout).
	ctx := c.Request().Context()
	entry, err := s.redis.Execute(func() (cache.Entry, error) { return s.store.Get(ctx, job.Name, key) })
	switch {
	case err == nil && now.Before(entry.FreshUntil):
		a := s.newAnswer(entry, job.Name, key)
		if s.local != nil {
			s.local.Set(job.Name, key, token, a, a.weight(), entry.FreshUntil)
		}
		s.metrics.redisHits.Inc()
		return s.write(c, rm, a, hit)
	case err == nil:
		fresh, err := s.readThrough(ctx, job, key, "refresh")
		if err != nil {
			if unexpected(err) {
				s.Logger.Error("refresh_failed", "job", job.Name, "key", key, "error", err)
			}
			s.Logger.Debug("cache_stale", "job", job.Name, "key", key, "error", err)
			return s.write(c, rm, s.newAnswer(entry, job.Name, key), stale)
		}
		return s.write(c, rm, s.newAnswer(fresh.entry, job.Name, key), fresh.result())
	case errors.Is(err, cache.ErrMiss):
		fresh, err := s.readThrough(ctx, job, key, "miss")
		if err != nil {
			return err
		}
		return s.write(c, rm, s.newAnswer(fresh.entry, job.Name, key), fresh.result())
	case errors.Is(err, context.Canceled):
		return err
	}
	// Redis is down, hung, slow, or its breaker open. Concurrent reads of a key share one
	// computation here too: with Redis down, every read would otherwise be a query.
	s.Logger.Debug("cache_bypass", "job", job.Name, "key", key, "error", err)
	fresh, err := s.shared(ctx, job, key, func(ctx context.Context) (computed, error) {
		e, err := s.compute(ctx, job, key, "bypass")
		return computed{entry: e}, err
	})
	if err != nil {
		return err
	}
	return s.write(c, rm, s.newAnswer(fresh.entry, job.Name, key), fresh.result())
}

// write answers with a: caching headers, then 304 if the request's preconditions say the client
// has it, else the stored body, or its gzip representation when the body is large and the client
// accepts gzip. A negative entry is a 404 with its stored error.
func (s *Server) write(c echo.Context, rm routeMetrics, a *answer, result string) error {
	now := s.Time.Now()
	req := c.Request()
	h := c.Response().Header()
	s.setHeaders(h, a, result, now)
	e := a.entry
	rm.results[result].Inc()
	rm.age.Observe(now.Sub(e.ComputedAt).Seconds())
	if s.Logger.Enabled(req.Context(), slog.LevelDebug) {
		s.Logger.Debug("cache_"+strings.ToLower(result), "path", req.URL.Path, "etag", e.ETag)
	}
	body, length := e.Body, a.header(headerLength)
	large := len(body) >= gzipMinLength
	if large { // small bodies, the hit path's, skip all of this
		if vary := h["Vary"]; len(vary) == 0 {
			h["Vary"] = varyEncoding
		} else {
			h["Vary"] = append(vary, "Accept-Encoding")
		}
		if acceptsGzip(req.Header) {
			if g := a.gzipped(); g.body != nil {
				h["Etag"], h["Content-Encoding"] = g.etag, gzipEncoding
				body, length = g.body, g.length
			}
		}
	}
	status := http.StatusOK
	switch {
	case e.NotFound:
		status = http.StatusNotFound
	case notModified(req.Header, e.ETag, large, e.ComputedAt):
		return c.NoContent(http.StatusNotModified)
	}
	if req.Method == http.MethodHead || large {
		// A small GET's length net/http counts itself; a HEAD has none to count, and a body of
		// more than 2 KiB would be sent in chunks.
		h["Content-Length"] = length
	}
	c.Response().WriteHeader(status)
	_, err := c.Response().Write(body)
	return err
}

// gzipEncoding and varyEncoding are header values of the answers that may be compressed, of
// capacity one.
var (
	gzipEncoding = []string{"gzip"}
	varyEncoding = []string{"Accept-Encoding"}
)

// readThrough computes job's value at key from PostgreSQL and stores it. Concurrent reads of one
// key in this process share one computation; across api replicas, a short lease in Redis lets
// one replica compute while the others wait for its value. Its errors are compute's.
//
// Redis failing half-way through costs the read one REDIS_TIMEOUT, not one for each of its
// steps: once a step finds Redis unavailable, the others leave it alone, and the value is
// answered without being stored (BYPASS).
func (s *Server) readThrough(ctx context.Context, job jobs.Job, key, reason string) (computed, error) {
	return s.shared(ctx, job, key, func(ctx context.Context) (computed, error) {
		// The request looked in Redis before it got here: a computation that ended in between
		// has stored the value since.
		e, reachable, ok := s.fresh(ctx, job, key)
		if ok {
			return computed{e, true}, nil
		}
		leased := false
		if reachable {
			var err error
			leased, err = s.store.Lease(ctx, job.Name, key, s.owner, s.cfg.QueryTimeout)
			reachable = !errors.Is(err, cache.ErrUnavailable)
			if err == nil && !leased {
				if e, ok := s.awaitOther(ctx, job, key, &reachable); ok {
					return computed{e, true}, nil
				}
			}
		}
		if leased {
			defer func() {
				if reachable {
					s.store.Release(context.WithoutCancel(ctx), job.Name, key, s.owner) //nolint:errcheck // the lease lapses anyway
				}
			}()
			// Another replica may have stored it between our look and our lease.
			if e, ok := s.freshIfReachable(ctx, job, key, &reachable); ok {
				return computed{e, true}, nil
			}
		}
		e, err := s.compute(ctx, job, key, reason)
		switch {
		case err != nil:
			return computed{}, err
		case !reachable:
			return computed{entry: e}, nil
		}
		if _, err := s.store.Fill(ctx, job.Name, cache.Item{Key: key, Entry: e}); err != nil {
			s.Logger.Warn("cache_store_failed", "job", job.Name, "key", key, "error", err)
			return computed{entry: e}, nil
		}
		return computed{e, true}, nil
	})
}

// computed is a value computed for the reads that shared its computation, and whether it is
// stored in Redis.
type computed struct {
	entry  cache.Entry
	stored bool
}

// result is the hit header of an answer with the value: MISS when it is stored, BYPASS when
// Redis did not take it.
func (c computed) result() string {
	if c.stored {
		return miss
	}
	return bypass
}

// shared runs compute once for the concurrent reads of job's value at key, within
// QUERY_TIMEOUT. Reads that missed in Redis and reads that could not reach it share one
// computation, whichever started it: a burst of reads that Redis answers too slowly for some
// of them still costs one query. The computation serves every waiting read, so it does not end
// with the first read's client going away.
func (s *Server) shared(ctx context.Context, job jobs.Job, key string,
	compute func(context.Context) (computed, error)) (computed, error) {
	v, err, _ := s.flight.Do(job.Name+"\x00"+key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.QueryTimeout)
		defer cancel()
		return compute(ctx)
	})
	if err != nil {
		return computed{}, err
	}
	return v.(computed), nil
}

// awaitOther waits for the value another replica holds the lease to compute, while Redis is
// reachable.
func (s *Server) awaitOther(ctx context.Context, job jobs.Job, key string, reachable *bool) (cache.Entry, bool) {
	deadline := time.Now().Add(s.cfg.LeaseWait)
	for time.Now().Before(deadline) && *reachable {
		select {
		case <-ctx.Done():
			return cache.Entry{}, false
		case <-time.After(10 * time.Millisecond):
		}
		if e, ok := s.freshIfReachable(ctx, job, key, reachable); ok {
			return e, true
		}
	}
	return cache.Entry{}, false
}

// fresh returns job's value at key from Redis, and whether Redis answered and the value is
// there and fresh.
func (s *Server) fresh(ctx context.Context, job jobs.Job, key string) (e cache.Entry, reachable, ok bool) {
	e, err := s.store.Get(ctx, job.Name, key)
	return e, !errors.Is(err, cache.ErrUnavailable), err == nil && s.Time.Now().Before(e.FreshUntil)
}

// freshIfReachable returns job's value at key from Redis if it is there and fresh, and clears
// reachable when Redis did not answer.
func (s *Server) freshIfReachable(ctx context.Context, job jobs.Job, key string, reachable *bool) (cache.Entry, bool) {
	e, answered, ok := s.fresh(ctx, job, key)
	*reachable = *reachable && answered
	return e, ok
}

// compute computes job's value at key from PostgreSQL, within the limit of queries at once, as
// the entry to serve and store. QUERY_TIMEOUT bounds it all: the wait for a turn among
// MAX_QUERIES, for a pooled connection or a new one, and the query. A key without a row gives a
// negative entry. A key that can never name a row is a 400; PostgreSQL not answering, or its
// breaker open, a 503; a failing statement (a user's SQL dividing by zero) a 500.
func (s *Server) compute(ctx context.Context, job jobs.Job, key, reason string) (cache.Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	if err := s.queries.Acquire(ctx, 1); err != nil {
		return cache.Entry{}, fmt.Errorf("wait to query: %w", err)
	}
	defer s.queries.Release(1)
	e, err := s.pg.Execute(func() (cache.Entry, error) {
		return job.Compute(ctx, s.db, key, s.Time.Now())
	})
	s.metrics.fallbacks.WithLabelValues(job.Name, reason).Inc()
	switch {
	case errors.Is(err, query.ErrInvalidKey):
		return cache.Entry{}, public(err, "%s", job.InvalidKeyMessage(key))
	case err != nil && !unexpected(err):
		s.Logger.Warn("fallback_failed", "job", job.Name, "key", key, "error", err)
	}
	return e, err
}
