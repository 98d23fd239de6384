package api

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// ordersCount serves orders_total, or with ?customerid= one customer's orders_by_customer.
func (s *Server) ordersCount(c echo.Context, rm routeMetrics) error {
	customer, ok := queryParam(c, "customerid")
	if !ok {
		return s.serveBuiltin(c, rm, jobs.OrdersTotal, "")
	}
	return s.serveBuiltin(c, rm, jobs.OrdersByCustomer, customer)
}

// serveBuiltin serves a built-in job's value, or 404 where the built-in jobs are off.
func (s *Server) serveBuiltin(c echo.Context, rm routeMetrics, name, key string) error {
	job, ok := s.byName[name]
	if !ok {
		return errBuiltinsOff("job " + name)
	}
	return s.serve(c, rm, job, key)
}

// errBuiltinsOff is the answer of a built-in route (a job's, or the orders') where the built-in
// jobs are off.
func errBuiltinsOff(name string) error {
	return public(errNotFound, "%s is not configured: the built-in jobs, the dellstore2 demo, are off on this database (builtins in the jobs file)", name)
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
	return s.serveBuiltin(c, rm, jobs.CreditByCustomer, c.Param("id"))
}

func (s *Server) creditOverview(c echo.Context, rm routeMetrics) error {
	return s.serveBuiltin(c, rm, jobs.CreditOverview, "")
}

// result serves any job by name: /v1/results/{job} for a single-value job, /v1/results/{job}/{key}
// for a keyed one, whose keys /v1/results/{job} lists.
func (s *Server) result(c echo.Context, rm routeMetrics) error {
	job, ok := s.byName[c.Param("job")]
	key, err := keyParam(c)
	switch {
	case err != nil:
		return public(errInvalid, "the key %q is not a valid escaped path segment", c.Param("key"))
	case !ok:
		return public(errNotFound, "no job is called %q", c.Param("job"))
	case job.Keyed() && key == "":
		return s.compress(func(c echo.Context) error { return s.listKeys(c, job) })(c)
	case !job.Keyed() && key != "":
		return public(errNotFound, "job %s has a single value: ask for /v1/results/%s", job.Name, job.Name)
	}
	return s.serve(c, rm, job, key)
}

// keyParam returns the key of a /v1/results/{job}/{key} path, unescaped: a key of several
// columns may hold a slash ("{region}/{day}"), which a client sends as %2F.
func keyParam(c echo.Context) (string, error) {
	key := c.Param("key")
	if !strings.Contains(key, "%") {
		return key, nil
	}
	return url.PathUnescape(key)
}

// serve answers a read of job's value at key: readthrough finds the value (in the in-process
// tier, Redis, or PostgreSQL) and says which, and write sends its prepared headers and stored
// bytes as they are: no JSON encoding and no database work on the hit path.
func (s *Server) serve(c echo.Context, rm routeMetrics, job jobs.Job, key string) error {
	if job.Keyed() {
		canon, err := job.Aggregate.CanonicalKey(key)
		if err != nil {
			return public(err, "%s", job.InvalidKeyMessage(key))
		}
		key = canon
	}
	at, err := requestPosition(c.Request().Header)
	if err != nil {
		return err
	}
	a, result, err := s.reads.Read(c.Request().Context(), job, key, at)
	switch {
	case errors.Is(err, query.ErrInvalidKey):
		return public(err, "%s", job.InvalidKeyMessage(key))
	case err != nil:
		return err
	}
	return s.write(c, rm, a, result)
}

// HeaderPosition carries a WAL position: every write's answer says where its commit is, and a
// read that sends one gets a value read at or past it (read-your-writes).
const HeaderPosition = "Warmcache-Position"

// requestPosition returns the position a read asks for with HeaderPosition, zero when it sends
// none.
func requestPosition(h http.Header) (int64, error) {
	v := h.Get(HeaderPosition)
	if v == "" {
		return 0, nil
	}
	at, err := query.ParsePosition(v)
	if err != nil {
		return 0, public(errInvalid, "%s %q is %s", HeaderPosition, v, err)
	}
	return at, nil
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
