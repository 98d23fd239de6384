package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestJobsList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.warm()
	res := f.get("/v1/jobs")
	var got struct {
		Jobs []struct {
			Name     string `json:"name"`
			Schedule string `json:"schedule"`
			TTL      string `json:"ttl"`
			NextRun  string `json:"next_run"`
			LastRun  *struct {
				Started string  `json:"started"`
				Keys    int64   `json:"keys_written"`
				Seconds float64 `json:"duration_seconds"`
				Error   string  `json:"error"`
			} `json:"last_run"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(res.body), &got); err != nil || res.status != 200 {
		t.Fatalf("%d %s: %v", res.status, res.body, err)
	}
	if len(got.Jobs) != 4 || res.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("jobs: %s", res.body)
	}
	for _, j := range got.Jobs {
		if j.Schedule == "" || j.TTL != "10m0s" || j.NextRun == "" || j.LastRun == nil || j.LastRun.Started == "" ||
			j.LastRun.Keys < 1 || j.LastRun.Error != "" {
			t.Errorf("job %+v", j)
		}
	}
}

// TestDocsAreSelfContained: the docs page loads nothing but this server's /openapi.json.
func TestDocsAreSelfContained(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	page := f.get("/docs")
	if page.status != 200 || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d %s", page.status, page.header.Get("Content-Type"))
	}
	for _, m := range regexp.MustCompile(`(?i)(src|href)\s*=\s*["']([^"']+)`).FindAllStringSubmatch(page.body, -1) {
		if u, err := url.Parse(m[2]); err != nil || u.Host != "" {
			t.Errorf("the docs page loads %s from elsewhere", m[2])
		}
	}
	if strings.Contains(page.body, "http://") || strings.Contains(page.body, "https://") || !strings.Contains(page.body, "fetch('/openapi.json')") {
		t.Error("the docs page refers to another site, or does not render /openapi.json")
	}
	doc := f.get("/openapi.json")
	var spec struct {
		OpenAPI string                     `json:"openapi"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(doc.body), &spec); err != nil || !strings.HasPrefix(spec.OpenAPI, "3.") {
		t.Fatalf("/openapi.json: %v", err)
	}
	for _, path := range []string{"/", "/v1/orders/count", "/v1/customers/{id}/credit", "/v1/credit", "/v1/results/{job}",
		"/v1/results/{job}/{key}", "/v1/jobs", "/v1/jobs/{job}/run", "/v1/orders", "/add/", "/count", "/cachedResults", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"} {
		if _, ok := spec.Paths[path]; !ok {
			t.Errorf("/openapi.json does not document %s", path)
		}
	}
}

func TestMetricsCountResults(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.get("/v1/credit")
	f.get("/v1/credit")
	body := f.get("/metrics").body
	for _, want := range []string{
		`warmcache_cache_requests_total{result="HIT",route="/v1/credit"} 1`,
		`warmcache_cache_requests_total{result="MISS",route="/v1/credit"} 1`,
		`warmcache_fallback_queries_total{job="credit_overview",reason="miss"} 1`,
		`warmcache_http_request_duration_seconds_count{code="200",method="GET",route="/v1/credit"} 2`,
		`warmcache_served_age_seconds_count{route="/v1/credit"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// FuzzRequest sends arbitrary paths and query strings: a valid request never gets a 5xx, and
// every error is JSON.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{"/v1/orders/count?customerid=42", "/v1/customers/%2e%2e/credit", "/v1/results/x/%00",
		"/count?customerid=-0", "/v1/orders/count?customerid=1&customerid=2", "/v1/customers/99999999999999999999/credit"} {
		f.Add(s)
	}
	fx := newFixture(f, fixtureOptions{})
	f.Fuzz(func(t *testing.T, path string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#") {
			return
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return
		}
		res := fx.fetch(t, http.MethodGet, path, nil, "")
		if res.status >= 500 {
			t.Fatalf("GET %s: %d %s", path, res.status, res.body)
		}
		if res.status >= 400 && !strings.Contains(res.body, `"error"`) {
			t.Fatalf("GET %s: %d without a JSON error: %s", path, res.status, res.body)
		}
	})
}
