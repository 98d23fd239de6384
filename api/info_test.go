package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestJobsList(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{jobs: "jobs:\n  credit_by_customer:\n    enabled: false\n  orders_by_customer:\n    schedule: '*/5 * * * *'\n"})
	f.warm()
	f.advance(90 * time.Second)
	res := f.get("/v1/jobs")
	var got struct {
		Jobs []struct {
			Name         string `json:"name"`
			Enabled      bool   `json:"enabled"`
			Schedule     string `json:"schedule"`
			ScheduleText string `json:"schedule_text"`
			TTL          string `json:"ttl"`
			NextRun      string `json:"next_run"`
			LastRun      *struct {
				Started string  `json:"started"`
				Keys    int64   `json:"keys_written"`
				Seconds float64 `json:"duration_seconds"`
				Trigger string  `json:"trigger"`
				Result  string  `json:"result"`
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
	// The next run comes from the schedule and the api's clock: the scheduled runs' times for a
	// cron schedule, an interval after now for @every (no run on schedule is recorded: the
	// fixture's runs are warmer --once's), none for a disabled job.
	wantNext := map[string]string{
		"orders_total":       "2026-11-21T12:02:30Z",
		"orders_by_customer": "2026-11-21T12:05:00Z",
		"credit_overview":    "2026-11-21T12:02:30Z",
		"credit_by_customer": "",
	}
	for _, j := range got.Jobs {
		if j.Schedule == "" || j.ScheduleText == "" || j.TTL != "10m0s" || j.LastRun == nil || j.LastRun.Started == "" ||
			j.LastRun.Keys < 1 || j.LastRun.Error != "" || j.LastRun.Trigger != "once" || j.LastRun.Result != "success" {
			t.Errorf("job %+v", j)
		}
		if j.NextRun != wantNext[j.Name] {
			t.Errorf("%s (%s, enabled %v): next run %q, want %q", j.Name, j.Schedule, j.Enabled, j.NextRun, wantNext[j.Name])
		}
	}
}

// TestJobRuns: a job's runs, newest first, each with why it ran and what it did.
func TestJobRuns(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	for range 3 {
		f.warm()
		f.advance(time.Minute)
	}
	res := f.get("/v1/jobs/orders_total/runs")
	var got struct {
		Job  string `json:"job"`
		Runs []struct {
			Started string `json:"started"`
			Keys    int64  `json:"keys_written"`
			Trigger string `json:"trigger"`
			Result  string `json:"result"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(res.body), &got); err != nil || res.status != 200 || res.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("%d %s: %v", res.status, res.body, err)
	}
	var starts []string
	for _, r := range got.Runs {
		starts = append(starts, r.Started)
		if r.Keys != 1 || r.Trigger != "once" || r.Result != "success" {
			t.Errorf("run %+v", r)
		}
	}
	if want := []string{"2026-11-21T12:02:00Z", "2026-11-21T12:01:00Z", "2026-11-21T12:00:00Z"}; got.Job != "orders_total" ||
		!slices.Equal(starts, want) {
		t.Errorf("runs of %s started %v, want %v", got.Job, starts, want)
	}
	if res := f.get("/v1/jobs/nope/runs"); res.status != 404 || !strings.Contains(res.body, `"error"`) {
		t.Errorf("runs of an unknown job: %d %s", res.status, res.body)
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
	body := f.adminGet("/metrics").body
	for _, want := range []string{
		`warmcache_cache_requests_total{result="HIT",route="/v1/credit"} 1`,
		`warmcache_cache_requests_total{result="MISS",route="/v1/credit"} 1`,
		`warmcache_fallback_queries_total{reason="miss",warmcache_job="credit_overview"} 1`,
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
