package api

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/cachecontrol/cacheobject"

	"github.com/warmcache/warmcache/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestRoutes checks every read route of the README's api table against dellstore2's figures:
// status, hit header and body (golden files, -update to rewrite).
func TestRoutes(t *testing.T) {
	t.Parallel()
	testenv.RequireDellstore2(t)
	f := newFixture(t, fixtureOptions{})
	f.warm()
	for _, tc := range []struct {
		name, path string
		status     int
		cache      string
	}{
		{"orders_total", "/v1/orders/count", 200, hit},
		{"orders_of_customer", "/v1/orders/count?customerid=19887", 200, hit},
		{"orders_of_customer_without_orders", "/v1/orders/count?customerid=1", 200, hit},
		{"orders_of_customer_leading_zeros", "/v1/orders/count?customerid=019887", 200, hit},
		{"orders_of_unknown_customer", "/v1/orders/count?customerid=20001", 404, miss},
		{"orders_of_malformed_customer", "/v1/orders/count?customerid=abc", 400, ""},
		{"orders_of_empty_customer", "/v1/orders/count?customerid=", 400, ""},
		{"credit_of_customer", "/v1/customers/19887/credit", 200, hit},
		{"credit_of_unknown_customer", "/v1/customers/99999/credit", 404, miss},
		{"credit_of_malformed_customer", "/v1/customers/-3/credit", 400, ""},
		{"credit_overview", "/v1/credit", 200, hit},
		{"tutorial_count", "/count", 200, hit},
		{"tutorial_count_of_customer", "/count?customerid=19887", 200, hit},
		{"tutorial_cached_results", "/cachedResults", 200, hit},
		{"results_of_builtin_job", "/v1/results/orders_total", 200, hit},
		{"results_of_keyed_job", "/v1/results/orders_by_customer/19887", 200, hit},
		{"results_of_single_job_with_key", "/v1/results/orders_total/1", 404, ""},
		{"results_of_unknown_job", "/v1/results/nope", 404, ""},
		{"unknown_route", "/v2/everything", 404, ""},
		{"greeting", "/", 200, ""},
		{"health", "/healthz", 200, ""},
		{"readiness", "/readyz", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := f.get(tc.path)
			if res.status != tc.status || res.header.Get("X-Cache") != tc.cache {
				t.Fatalf("GET %s: %d %q, want %d %q; body %s", tc.path, res.status, res.header.Get("X-Cache"), tc.status, tc.cache, res.body)
			}
			if !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
				t.Errorf("GET %s: Content-Type %q", tc.path, res.header.Get("Content-Type"))
			}
			golden(t, filepath.Join("testdata", tc.name+".json"), res.body)
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("body differs from %s:\n got  %s\n want %s", path, got, want)
	}
}

// TestCachingPolicy reads every cached route as HIT, MISS and STALE and has an RFC 9111 cache's
// rules (pquerna/cachecontrol) compute the lifetime a browser and a shared cache give the answer:
// HTTP_MAX_AGE for a browser, and for a shared cache too unless the warmer purges it, in which
// case s-maxage; never more than the value's own freshness, nothing when it is served stale. The
// api sends no Age and no Expires, so nothing is counted twice.
func TestCachingPolicy(t *testing.T) {
	t.Parallel()
	routes := []struct{ path, job, key string }{
		{"/v1/orders/count", "orders_total", ""},
		{"/v1/orders/count?customerid=7", "orders_by_customer", "7"},
		{"/v1/customers/7/credit", "credit_by_customer", "7"},
		{"/v1/credit", "credit_overview", ""},
		{"/count", "orders_total", ""},
		{"/count?customerid=7", "orders_by_customer", "7"},
		{"/cachedResults", "credit_overview", ""},
		{"/v1/results/orders_total", "orders_total", ""},
		{"/v1/results/orders_by_customer/7", "orders_by_customer", "7"},
	}
	for _, purged := range []bool{false, true} {
		t.Run(fmt.Sprintf("purged=%v", purged), func(t *testing.T) {
			t.Parallel()
			opts := fixtureOptions{proxies: true}
			if purged {
				opts.sharedMaxAge = 5 * time.Minute
			}
			f := newFixture(t, opts)
			f.warm()
			for _, state := range []string{hit, miss, stale} {
				switch state {
				case hit:
					f.advance(100 * time.Second)
				case miss:
					f.advance(10 * time.Minute) // past the 10-minute TTL: recomputed
				case stale:
					f.pgProxy.Down()
					f.advance(15 * time.Minute) // past the MISSes' freshness, within the grace
				}
				for _, r := range routes {
					res := f.get(r.path)
					// A MISS recomputed a value the next route serves as a HIT.
					if got := res.header.Get("X-Cache"); got != state && (state != miss || got != hit) {
						t.Fatalf("%s: %s, want %s", r.path, res.header.Get("X-Cache"), state)
					}
					e := f.entry(r.job, r.key)
					fresh := max(e.FreshUntil.Sub(f.arch.Time.Now()), 0)
					wantPrivate, wantShared := min(testMaxAge, fresh), min(testMaxAge, fresh)
					if purged {
						wantShared = min(opts.sharedMaxAge, fresh)
					}
					if state == stale {
						wantPrivate, wantShared = 0, 0
					}
					checkLifetime(t, r.path+" "+state+" (browser)", res.header, true, wantPrivate)
					checkLifetime(t, r.path+" "+state+" (shared)", res.header, false, wantShared)
					tags := f.ns + ":" + r.job
					if r.key != "" {
						tags += " " + f.ns + ":" + r.job + ":" + r.key
					}
					if got := res.header.Get("Surrogate-Key"); got != tags {
						t.Errorf("%s: Surrogate-Key %q, want %q", r.path, got, tags)
					}
				}
			}
		})
	}
}

// checkLifetime has an RFC 9111 cache compute the freshness lifetime of an answer, as a private
// (browser) or shared cache, and compares it with want, in whole seconds.
func checkLifetime(t *testing.T, what string, h http.Header, private bool, want time.Duration) {
	t.Helper()
	for _, name := range []string{"Age", "Expires"} {
		if h.Get(name) != "" {
			t.Errorf("%s: %s %s: the origin's answers carry none", what, name, h.Get(name))
		}
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		t.Fatalf("%s: Date %q: %v", what, h.Get("Date"), err)
	}
	directives, err := cacheobject.ParseResponseCacheControl(h.Get("Cache-Control"))
	if err != nil {
		t.Fatalf("%s: Cache-Control %q: %v", what, h.Get("Cache-Control"), err)
	}
	obj := &cacheobject.Object{RespDirectives: directives, RespHeaders: h, RespStatusCode: http.StatusOK,
		RespDateHeader: date, NowUTC: date, CacheIsPrivate: private,
		ReqMethod: http.MethodGet, ReqDirectives: &cacheobject.RequestCacheDirectives{MaxAge: -1, MaxStale: -1, MinFresh: -1}}
	var rv cacheobject.ObjectResults
	cacheobject.CachableObject(obj, &rv)
	cacheobject.ExpirationObject(obj, &rv)
	if len(rv.OutReasons) > 0 || rv.OutErr != nil {
		t.Fatalf("%s: not cacheable: %v %v (%s)", what, rv.OutReasons, rv.OutErr, h.Get("Cache-Control"))
	}
	got := rv.OutExpirationTime.Sub(date)
	if got/time.Second != want/time.Second {
		t.Errorf("%s: lifetime %s, want %s (Cache-Control: %s)", what, got, want.Truncate(time.Second), h.Get("Cache-Control"))
	}
}

// TestConditionalRequests covers If-None-Match and If-Modified-Since as RFC 9110 orders them,
// over HTTP, for GET and HEAD.
func TestConditionalRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.warm()
	f.advance(time.Minute)
	const path = "/v1/customers/7/credit"
	first := f.get(path)
	etag, lastModified := first.header.Get("Etag"), first.header.Get("Last-Modified")
	computed, err := http.ParseTime(lastModified)
	if err != nil {
		t.Fatal(err)
	}
	date := func(d time.Duration) string { return computed.Add(d).Format(http.TimeFormat) }
	for _, tc := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"no preconditions", nil, 200},
		{"matching tag", http.Header{"If-None-Match": {etag}}, 304},
		{"weak form of the tag", http.Header{"If-None-Match": {"W/" + etag}}, 304},
		{"list holding the tag", http.Header{"If-None-Match": {`"nope", ` + etag}}, 304},
		{"star", http.Header{"If-None-Match": {"*"}}, 304},
		{"other tag", http.Header{"If-None-Match": {`"0000000000000000"`}}, 200},
		{"not modified since", http.Header{"If-Modified-Since": {date(0)}}, 304},
		{"not modified since later", http.Header{"If-Modified-Since": {date(time.Hour)}}, 304},
		{"modified since", http.Header{"If-Modified-Since": {date(-time.Hour)}}, 200},
		{"unparsable date", http.Header{"If-Modified-Since": {"last week"}}, 200},
		{"If-None-Match wins: other tag, old date", http.Header{"If-None-Match": {`"x"`}, "If-Modified-Since": {date(time.Hour)}}, 200},
		{"If-None-Match wins: tag, earlier date", http.Header{"If-None-Match": {etag}, "If-Modified-Since": {date(-time.Hour)}}, 304},
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			t.Run(tc.name+"/"+method, func(t *testing.T) {
				res := f.do(method, path, tc.header)
				if res.status != tc.status {
					t.Fatalf("status %d, want %d", res.status, tc.status)
				}
				// Both answers carry the validators and the caching headers.
				for _, h := range []string{"Etag", "Last-Modified", "Cache-Control", "X-Cache"} {
					if res.header.Get(h) != first.header.Get(h) {
						t.Errorf("%s: %q, want %q", h, res.header.Get(h), first.header.Get(h))
					}
				}
				wantBody := first.body
				if tc.status == 304 || method == http.MethodHead {
					wantBody = ""
				}
				if res.body != wantBody {
					t.Errorf("body %q, want %q", res.body, wantBody)
				}
			})
		}
	}
}

func TestHeadWorksWhereGetDoes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	for _, path := range []string{"/", "/v1/orders/count", "/v1/credit", "/v1/jobs", "/healthz", "/readyz", "/openapi.json", "/docs", "/count", "/cachedResults"} {
		get, head := f.get(path), f.do(http.MethodHead, path, nil)
		if head.status != get.status || head.body != "" || head.header.Get("Content-Type") != get.header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d %q %q; GET gave %d %q", path, head.status, head.body, head.header.Get("Content-Type"), get.status, get.header.Get("Content-Type"))
		}
	}
}
