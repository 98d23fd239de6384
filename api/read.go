package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// ordersCount serves orders_total, or with ?customerid= one customer's orders_by_customer.
func (s *Server) ordersCount(c echo.Context, rm routeMetrics) error {
	if !c.QueryParams().Has("customerid") {
		return s.serve(c, rm, s.byName["orders_total"], "")
	}
	return s.serve(c, rm, s.byName["orders_by_customer"], c.QueryParam("customerid"))
}

func (s *Server) customerCredit(c echo.Context, rm routeMetrics) error {
	return s.serve(c, rm, s.byName["credit_by_customer"], c.Param("id"))
}

func (s *Server) creditOverview(c echo.Context, rm routeMetrics) error {
	return s.serve(c, rm, s.byName["credit_overview"], "")
}

// result serves any job by name: /v1/results/{job} for a single-value job, /v1/results/{job}/{key}
// for a keyed one.
func (s *Server) result(c echo.Context, rm routeMetrics) error {
	job, ok := s.byName[c.Param("job")]
	key := c.Param("key")
	switch {
	case !ok:
		return notFound("no job is called %q", c.Param("job"))
	case job.Keyed() && key == "":
		return notFound("job %s has one value per key: ask for /v1/results/%s/{key}", job.Name, job.Name)
	case !job.Keyed() && key != "":
		return notFound("job %s has a single value: ask for /v1/results/%s", job.Name, job.Name)
	}
	return s.serve(c, rm, job, key)
}

// serve answers a read of job's value at key. The hit path is one Redis GET and the stored bytes
// written as they are: no JSON encoding and no database work. A missing value, or one due for
// refresh, is computed from PostgreSQL and stored (MISS); when PostgreSQL cannot answer, a value
// past freshness is served as it is (STALE); when Redis cannot answer, the value is computed
// from PostgreSQL and not stored (BYPASS).
func (s *Server) serve(c echo.Context, rm routeMetrics, job jobs.Job, key string) error {
	if job.Keyed() {
		canon, err := job.Aggregate.CanonicalKey(key)
		if err != nil {
			return badKey(job, key)
		}
		key = canon
	}
	// The store's socket timeouts (REDIS_TIMEOUT) bound this read: no timer per request.
	ctx := c.Request().Context()
	raw, err := s.redis.Execute(func() ([]byte, error) { return s.store.Get(ctx, job.Name, key) })
	var entry cache.Entry
	if err == nil {
		if entry, err = cache.DecodeEntry(raw); err != nil {
			err = cache.ErrMiss // an entry of an unknown format is as good as none
		}
	}
	now := s.now()
	switch {
	case err == nil && now.Before(entry.FreshUntil):
		return s.write(c, rm, entry, hit)
	case err == nil:
		fresh, err := s.readThrough(ctx, job, key, "refresh")
		if err != nil {
			s.logger.Debug("cache_stale", "job", job.Name, "key", key, "error", err)
			return s.write(c, rm, entry, stale)
		}
		return s.write(c, rm, fresh, miss)
	case errors.Is(err, cache.ErrMiss):
		fresh, err := s.readThrough(ctx, job, key, "miss")
		if err != nil {
			return err
		}
		return s.write(c, rm, fresh, miss)
	case errors.Is(err, context.Canceled):
		return err
	}
	// Redis is down, hung, or its breaker open.
	s.logger.Debug("cache_bypass", "job", job.Name, "key", key, "error", err)
	fresh, err := s.compute(ctx, job, key, "bypass")
	if err != nil {
		return err
	}
	return s.write(c, rm, fresh, bypass)
}

// write answers with entry: caching headers, then 304 if the request's preconditions say the
// client has it, else the stored body. A negative entry is a 404 with its stored error.
func (s *Server) write(c echo.Context, rm routeMetrics, e cache.Entry, result string) error {
	now := s.now()
	h := c.Response().Header()
	maxAge := e.FreshUntil.Sub(now) / time.Second
	if maxAge < 0 {
		maxAge = 0
	}
	age := now.Sub(e.ComputedAt) / time.Second
	if age < 0 {
		age = 0
	}
	h[echo.HeaderContentType] = []string{echo.MIMEApplicationJSON}
	h["Etag"] = []string{e.ETag}
	h[echo.HeaderCacheControl] = []string{"public, max-age=" + strconv.FormatInt(int64(maxAge), 10)}
	h["Expires"] = []string{s.dates.format(e.FreshUntil)}
	h[echo.HeaderLastModified] = []string{s.dates.format(e.ComputedAt)}
	h["Age"] = []string{strconv.FormatInt(int64(age), 10)}
	h[s.cacheHeader] = []string{result}
	rm.results[result].Inc()
	rm.age.Observe(now.Sub(e.ComputedAt).Seconds())
	if s.logger.Enabled(c.Request().Context(), slog.LevelDebug) {
		s.logger.Debug("cache_"+strings.ToLower(result), "path", c.Request().URL.Path, "etag", e.ETag)
	}
	status := http.StatusOK
	switch {
	case e.NotFound:
		status = http.StatusNotFound
	case notModified(c.Request().Header, e.ETag, e.ComputedAt):
		return c.NoContent(http.StatusNotModified)
	}
	h[echo.HeaderContentLength] = []string{strconv.Itoa(len(e.Body))}
	c.Response().WriteHeader(status)
	_, err := c.Response().Write(e.Body)
	return err
}

// readThrough computes job's value at key from PostgreSQL and stores it. Concurrent reads of one
// key in this process share one computation; across api replicas, a short lease in Redis lets
// one replica compute while the others wait for its value. It returns errUnavailable when
// PostgreSQL cannot answer.
func (s *Server) readThrough(ctx context.Context, job jobs.Job, key, reason string) (cache.Entry, error) {
	v, err, _ := s.flight.Do(job.Name+"\x00"+key, func() (any, error) {
		// The computation serves every waiting request, so it must not end with the first
		// request's client going away.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.QueryTimeout)
		defer cancel()
		// The request looked in Redis before it got here: a computation that ended in between
		// has stored the value since.
		if e, ok := s.fresh(ctx, job, key); ok {
			return e, nil
		}
		leased, err := s.store.Lease(ctx, job.Name, key, s.owner, s.cfg.QueryTimeout)
		if err == nil && !leased {
			if e, ok := s.awaitOther(ctx, job, key); ok {
				return e, nil
			}
		}
		if leased {
			defer s.store.Release(context.WithoutCancel(ctx), job.Name, key, s.owner) //nolint:errcheck // the lease lapses anyway
			// Another replica may have stored it between our look and our lease.
			if e, ok := s.fresh(ctx, job, key); ok {
				return e, nil
			}
		}
		e, err := s.compute(ctx, job, key, reason)
		if err != nil {
			return nil, err
		}
		item, err := job.Item(key, e)
		if err == nil {
			_, err = s.store.Put(ctx, []cache.Item{item})
		}
		if err != nil {
			s.logger.Warn("cache_store_failed", "job", job.Name, "key", key, "error", err)
		}
		return e, nil
	})
	if err != nil {
		return cache.Entry{}, err
	}
	return v.(cache.Entry), nil
}

// awaitOther waits for the value another replica holds the lease to compute.
func (s *Server) awaitOther(ctx context.Context, job jobs.Job, key string) (cache.Entry, bool) {
	deadline := time.Now().Add(s.cfg.LeaseWait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return cache.Entry{}, false
		case <-time.After(10 * time.Millisecond):
		}
		if e, ok := s.fresh(ctx, job, key); ok {
			return e, true
		}
	}
	return cache.Entry{}, false
}

// fresh returns job's value at key from Redis if it is there and fresh.
func (s *Server) fresh(ctx context.Context, job jobs.Job, key string) (cache.Entry, bool) {
	raw, err := s.store.Get(ctx, job.Name, key)
	if err != nil {
		return cache.Entry{}, false
	}
	e, err := cache.DecodeEntry(raw)
	return e, err == nil && s.now().Before(e.FreshUntil)
}

// compute computes job's value at key from PostgreSQL, within the limit of queries at once, as
// the entry to serve and store. An unknown key gives a negative entry.
func (s *Server) compute(ctx context.Context, job jobs.Job, key, reason string) (cache.Entry, error) {
	if err := s.queries.Acquire(ctx, 1); err != nil {
		return cache.Entry{}, errUnavailable
	}
	defer s.queries.Release(1)
	e, err := s.pg.Execute(func() (cache.Entry, error) {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
		defer cancel()
		return jobs.Compute(ctx, s.db, job, key, s.now(), s.cfg.NegativeTTL)
	})
	s.metrics.fallbacks.WithLabelValues(job.Name, reason).Inc()
	switch {
	case errors.Is(err, query.ErrInvalidKey):
		return cache.Entry{}, badKey(job, key)
	case err != nil:
		s.logger.Warn("fallback_failed", "job", job.Name, "key", key, "error", err)
		return cache.Entry{}, errUnavailable
	}
	return e, nil
}

func badKey(job jobs.Job, key string) error {
	if job.KeyTemplate == "{customerid}" {
		return badRequest("%q is not a customer id (a positive integer)", key)
	}
	return badRequest("%q is not a key of job %s (%s)", key, job.Name, job.KeyTemplate)
}
