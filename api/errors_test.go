package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sony/gobreaker/v2"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/query"
)

// TestStatuses holds the one table from errors to statuses: every kind, wrapped as handlers wrap
// them, gets its status and the message its client may see.
func TestStatuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		err    error
		status int
		msg    string
	}{
		{"invalid request", public(errInvalid, "the body is not an order"), 400, "the body is not an order"},
		{"invalid key", public(fmt.Errorf("compute: %w", query.ErrInvalidKey), `"x" is not a customer id`), 400, `"x" is not a customer id`},
		{"no token", public(errUnauthorized, "a token is required"), 401, "a token is required"},
		{"wrong token", public(errForbidden, "the token is not valid"), 403, "the token is not valid"},
		{"unknown job", public(errNotFound, "no job is called %q", "x"), 404, `no job is called "x"`},
		{"no row", fmt.Errorf("lookup: %w", query.ErrNotFound), 404, "Not Found"},
		{"invalid order", public(&query.InvalidOrderError{Problems: []string{"tax must not be negative"}}, "tax must not be negative"), 422, "tax must not be negative"},
		{"unknown customer", public(fmt.Errorf("customer 9: %w", query.ErrUnknownCustomer), "customer 9 does not exist"), 422, "customer 9 does not exist"},
		{"unprocessable", public(errUnprocessable, "customerid is required"), 422, "customerid is required"},
		{"postgresql unavailable", fmt.Errorf("compute: %w", fmt.Errorf("%w: connection refused", query.ErrUnavailable)), 503, unavailableMessage},
		{"redis unavailable", fmt.Errorf("%w: i/o timeout", cache.ErrUnavailable), 503, unavailableMessage},
		{"breaker open", fmt.Errorf("compute: %w", gobreaker.ErrOpenState), 503, unavailableMessage},
		{"breaker probing", gobreaker.ErrTooManyRequests, 503, unavailableMessage},
		{"too slow", fmt.Errorf("compute: %w", context.DeadlineExceeded), 503, unavailableMessage},
		{"a failing statement", fmt.Errorf("compute mine: %w", errors.New("ERROR: division by zero (SQLSTATE 22012)")), 500, "internal error"},
		{"a public message on a failure nobody foresaw", public(errors.New("boom"), "details"), 500, "internal error"},
		{"echo's own", echo.ErrStatusRequestEntityTooLarge, 413, "Request Entity Too Large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, msg := classify(tc.err)
			if status != tc.status || msg != tc.msg {
				t.Errorf("classify(%v) = %d %q, want %d %q", tc.err, status, msg, tc.status, tc.msg)
			}
		})
	}
}

// TestFailingUserJob: a user job whose SQL fails is a 500, not a 503 to retry, its details kept
// out of the answer and logged at error level; PostgreSQL answered, so its breaker stays closed.
func TestFailingUserJob(t *testing.T) {
	t.Parallel()
	logs := &recorder{}
	f := newFixture(t, fixtureOptions{logger: slog.New(logs), jobs: `
jobs:
  broken:
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT 1 / (count(*) - count(*)) AS n FROM orders
`})
	for range 8 { // past the breaker's five failures in a row
		res := f.get("/v1/results/broken")
		if res.status != http.StatusInternalServerError || res.body != `{"error":"internal error"}`+"\n" ||
			res.header.Get("Retry-After") != "" {
			t.Fatalf("a failing user job: %d %s (Retry-After %q), want 500 without details", res.status, res.body,
				res.header.Get("Retry-After"))
		}
	}
	if !logs.has(slog.LevelError, "request_failed", "division by zero") {
		t.Errorf("the failure was not logged at error level; logs:\n%s", logs)
	}
	if res := f.get("/v1/orders/count"); res.status != http.StatusOK || res.header.Get("X-Cache") != miss {
		t.Errorf("after the failures, another job: %d %s; want PostgreSQL still in use (MISS)", res.status, res.header.Get("X-Cache"))
	}
}

// recorder is a slog handler that keeps every record.
type recorder struct {
	mu   sync.Mutex
	recs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, b.String())
	return nil
}

// has reports whether a record of level and message mentions text.
func (r *recorder) has(level slog.Level, msg, text string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if strings.HasPrefix(rec, level.String()+" "+msg+" ") && strings.Contains(rec, text) {
			return true
		}
	}
	return false
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.recs, "\n")
}

// TestPanicIsA500: a handler that panics gets a 500 like any error nobody foresaw, logged with
// its stack and timed, and the server goes on serving.
func TestPanicIsA500(t *testing.T) {
	t.Parallel()
	logs := &recorder{}
	s := &Server{metrics: newMetrics(prometheus.NewRegistry())}
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(slog.New(logs))
	e.Use(s.instrument)
	e.GET("/boom", func(echo.Context) error { panic("boom") })
	e.GET("/fine", func(c echo.Context) error { return c.String(http.StatusOK, "fine") })
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{{"/boom", 500, `{"error":"internal error"}` + "\n"}, {"/fine", 200, "fine"}} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != tc.status || rec.Body.String() != tc.body {
			t.Errorf("GET %s: %d %q, want %d %q", tc.path, rec.Code, rec.Body, tc.status, tc.body)
		}
	}
	if !logs.has(slog.LevelError, "request_failed", "panic: boom") {
		t.Errorf("the panic was not logged at error level; logs:\n%s", logs)
	}
	if n := testutil.CollectAndCount(s.metrics.duration, "warmcache_http_request_duration_seconds"); n != 2 {
		t.Errorf("%d latency series, want 2 (the 500 and the 200)", n)
	}
}

// FuzzQueryParam: the query parameter read without parsing the whole query is what net/url
// reads.
func FuzzQueryParam(f *testing.F) {
	for _, q := range []string{"customerid=5", "a=1&customerid=7&customerid=8", "customerid", "customerid=%35",
		"customerid=5;x=1", "&&customerid=", "customerid=a+b", "customerid%3D5", "x=customerid"} {
		f.Add(q)
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, raw string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.RawQuery = raw
		got, present := queryParam(e.NewContext(req, nil), "customerid")
		values, _ := url.ParseQuery(raw)
		if want := values.Get("customerid"); got != want || present != values.Has("customerid") {
			t.Errorf("%q: %q %v, want %q %v", raw, got, present, want, values.Has("customerid"))
		}
	})
}
