package api

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		{"results_of_keyed_job_without_key", "/v1/results/orders_by_customer", 404, ""},
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

// TestCachingHeaders checks the headers of a hit against the entry's times, with the clock
// moved on from when the value was computed.
func TestCachingHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.warm()
	computed := f.arch.Time.Now()
	f.advance(100 * time.Second)
	res := f.get("/v1/orders/count?customerid=7")
	if res.status != 200 || res.header.Get("X-Cache") != hit {
		t.Fatalf("%d %s", res.status, res.header.Get("X-Cache"))
	}
	entry := f.entry("orders_by_customer", "7")
	wantMaxAge := int(entry.FreshUntil.Sub(f.arch.Time.Now()) / time.Second)
	for header, want := range map[string]string{
		"Etag":          entry.ETag,
		"Cache-Control": "public, max-age=" + itoa(wantMaxAge),
		"Expires":       entry.FreshUntil.UTC().Format(http.TimeFormat),
		"Last-Modified": computed.UTC().Format(http.TimeFormat),
		"Age":           "100",
	} {
		if got := res.header.Get(header); got != want {
			t.Errorf("%s: %q, want %q", header, got, want)
		}
	}
	if wantMaxAge < 9*60-100 || wantMaxAge > 10*60-100 {
		t.Errorf("max-age %d: want the 10-minute TTL less jitter less the 100 s gone", wantMaxAge)
	}
	if !strings.HasPrefix(entry.ETag, `"`) || res.body != string(entry.Body) {
		t.Errorf("served %s, stored %s", res.body, entry.Body)
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
				for _, h := range []string{"Etag", "Last-Modified", "Cache-Control", "Expires", "X-Cache"} {
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
