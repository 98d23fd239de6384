package api

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/recent"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/warm"
)

// statusJobs is the status page test's jobs file: a user's keyed job, one that fails at every
// run, and a built-in job switched off.
const statusJobs = `jobs:
  orders_by_date:
    description: Orders and revenue of each day.
    schedule: "*/10 * * * *"
    sql: SELECT orderdate, count(*) AS orders, sum(totalamount) AS revenue FROM orders GROUP BY orderdate
    key: "{orderdate}"
    ttl: 2h
  spend_ratio:
    description: Revenue per order of the customers who never ordered, which divides by zero.
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT sum(o.totalamount) / (SELECT count(*) FROM customers c WHERE c.customerid < 0) AS ratio FROM orders o
  credit_by_customer:
    enabled: false
`

// statusFixture is an api whose jobs ran three times a minute apart, spend_ratio failing each
// time, which served some reads, and whose warmer recorded invalidation lag.
func statusFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, fixtureOptions{jobs: statusJobs})
	ctx := context.Background()
	// The runner's clock starts each run at the fixture's time and follows the real time the
	// run takes, as its batches are written, so that the runs have their real durations.
	runnerArch := baseservice.NewArchetype(f.arch.Logger)
	runner := warm.NewRunner(runnerArch, f.db, f.db, f.store, warm.NewMetrics(prometheus.NewRegistry()))
	f.srv.sample()
	for round := range 3 {
		for _, job := range f.jobs {
			if !job.Enabled {
				continue
			}
			start, began := f.arch.Time.Now(), time.Now()
			runnerArch.Time.Stub(start)
			follow := func(int64) { runnerArch.Time.Stub(start.Add(time.Since(began))) }
			runner.Run(ctx, job, warm.TriggerSchedule, follow) //nolint:errcheck // spend_ratio fails, as it should
		}
		for i := range 40 {
			f.get("/v1/orders/count?customerid=" + itoa(1+i*round))
		}
		f.get("/v1/customers/42/credit") // computed: its job is off
		f.advance(trafficStep)
		f.srv.sample()
		f.advance(time.Minute - trafficStep)
	}
	f.srv.sample()
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lag", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1}})
	for _, v := range []float64{.004, .006, .012, .015, .018, .03} {
		lag.Observe(v)
	}
	now := f.arch.Time.Now()
	if err := f.store.RecordLag(ctx, cache.LagWindow{Warmer: "warmer-1", Start: now.Add(-10 * time.Second), End: now,
		Lag: recent.ReadHistogram(lag)}); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestStatusPageInChromium opens /status in a real headless Chromium: the page renders the jobs
// of the jobs file with their schedules and runs, a failing job's error (the kind of failure,
// not PostgreSQL's text), the traffic, lag, breakers and outbox, with no console error and no
// request leaving 127.0.0.1. GET / in the browser links to it and to /docs. The screenshot is
// written to docs/status.png with -update (the README shows it).
func TestStatusPageInChromium(t *testing.T) {
	t.Parallel()
	f := statusFixture(t)
	b := testenv.Chromium(t, time.Minute)
	var jobsText, healthText, trafficText string
	var failedBars, bars int
	err := chromedp.Do(b.Ctx,
		chromedp.Navigate(f.admin.URL+"/status"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="true"]`)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) (err error) {
			if jobsText, err = chromedp.Text(chromedp.CSS("#jobs"))(ctx, t); err != nil {
				return err
			}
			if healthText, err = chromedp.Text(chromedp.CSS("#health"))(ctx, t); err != nil {
				return err
			}
			if trafficText, err = chromedp.Text(chromedp.CSS("#traffic"))(ctx, t); err != nil {
				return err
			}
			if failedBars, err = chromedp.Evaluate[int](`document.querySelectorAll('tr[data-job="spend_ratio"] rect[data-result="failure"]').length`)(ctx, t); err != nil {
				return err
			}
			bars, err = chromedp.Evaluate[int](`document.querySelectorAll('tr[data-job="orders_by_date"] rect[data-result="success"]').length`)(ctx, t)
			return err
		}),
	)
	if err != nil {
		t.Fatalf("render /status: %v", err)
	}
	for _, want := range []string{
		"orders_by_date", "Orders and revenue of each day.", "every 10 minutes", "*/10 * * * *",
		"spend_ratio", "the query failed: data exception (SQLSTATE 22012)", "never succeeded",
		"orders_total", "every minute", "credit_by_customer", "disabled", "succeeded",
	} {
		if !strings.Contains(jobsText, want) {
			t.Errorf("the jobs table lacks %q:\n%s", want, jobsText)
		}
	}
	if strings.Contains(jobsText, "division by zero") {
		t.Errorf("the page shows PostgreSQL's message:\n%s", jobsText)
	}
	if failedBars != 3 || bars != 3 {
		t.Errorf("timelines: %d failed runs of spend_ratio, %d runs of orders_by_date; want 3 each", failedBars, bars)
	}
	for _, want := range []string{"Redis breaker", "closed", "PostgreSQL breaker", "Outbox backlog", "0 rows",
		"Invalidation lag, p99", "6 events in 5 min", "1 warmer"} {
		if !strings.Contains(healthText, want) {
			t.Errorf("the health cards lack %q:\n%s", want, healthText)
		}
	}
	for _, want := range []string{"Hit ratio", "123 reads: 1 missed", "Served age"} {
		if !strings.Contains(trafficText, want) {
			t.Errorf("the traffic lacks %q:\n%s", want, trafficText)
		}
	}
	shot, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if img, err := png.Decode(bytes.NewReader(shot)); err != nil || img.Bounds().Dx() < 1000 {
		t.Fatalf("screenshot: not a page-wide PNG: %v", err)
	}
	if *update {
		if err := os.WriteFile(filepath.Join(testenv.RepoRoot(), "docs", "status.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// GET / in a browser: a page with links to the status page and the docs, which load too.
	var links []string
	err = chromedp.Do(b.Ctx,
		chromedp.Navigate(f.http.URL+"/"),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) (err error) {
			links, err = chromedp.Evaluate[[]string](`[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))`)(ctx, t)
			return err
		}),
		chromedp.Navigate(f.http.URL+"/docs"),
		chromedp.WaitVisible(chromedp.CSS(".op")),
	)
	if err != nil {
		t.Fatalf("render / and /docs: %v", err)
	}
	if strings.Contains(strings.Join(links, " "), "/status") || !strings.Contains(strings.Join(links, " "), "/docs") {
		t.Errorf("/ in a browser links to %v, want /docs and not the admin listener's /status", links)
	}

	if problems := b.Problems(); len(problems) > 0 {
		t.Errorf("the console reported problems:\n%s", strings.Join(problems, "\n"))
	}
	requests := b.Requests()
	for _, r := range requests {
		if u, err := url.Parse(r); err != nil || u.Scheme != "data" && u.Hostname() != "127.0.0.1" {
			t.Errorf("the pages requested %s, away from 127.0.0.1", r)
		}
	}
	if len(requests) < 6 {
		t.Errorf("the pages made %d requests, want the pages and their API reads: %v", len(requests), requests)
	}
}

// TestStatus: GET /v1/status says how this replica and the warmers are doing.
func TestStatus(t *testing.T) {
	t.Parallel()
	f := statusFixture(t)
	res := f.adminGet("/v1/status")
	var got struct {
		Now      time.Time         `json:"now"`
		Breakers map[string]string `json:"breakers"`
		Traffic  struct {
			Windows []struct {
				Hits, Misses float64
				HitRatio     *float64 `json:"hit_ratio"`
			} `json:"windows"`
			Total struct {
				Hits, Misses float64
				HitRatio     float64 `json:"hit_ratio"`
				AgeMean      float64 `json:"age_mean_seconds"`
			} `json:"total"`
		} `json:"traffic"`
		Invalidation struct {
			Warmers int     `json:"warmers"`
			Events  int     `json:"events"`
			LagP50  float64 `json:"lag_p50_seconds"`
			LagP99  float64 `json:"lag_p99_seconds"`
		} `json:"invalidation"`
		Outbox struct {
			Rows *int64 `json:"rows"`
		} `json:"outbox"`
	}
	if err := json.Unmarshal([]byte(res.body), &got); err != nil || res.status != 200 || res.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("%d %s: %v", res.status, res.body, err)
	}
	if !got.Now.Equal(f.arch.Time.Now()) || got.Breakers["redis"] != "closed" || got.Breakers["postgresql"] != "closed" {
		t.Errorf("now %s, breakers %v", got.Now, got.Breakers)
	}
	// Three rounds of 41 reads: the customers' counts hits (the first round's customer 1 too),
	// and the credit of a customer whose job is off a miss, then hits.
	// Samples at 0, 10 s, 70 s, 130 s and 180 s: the three rounds of reads, and a quiet window.
	if n := len(got.Traffic.Windows); n != 4 || got.Traffic.Windows[3].HitRatio != nil {
		t.Errorf("%d traffic windows, want 4, the last without reads: %s", n, res.body)
	}
	total := got.Traffic.Total
	if total.Hits+total.Misses != 123 || total.Misses < 1 || total.HitRatio != total.Hits/123 || total.AgeMean <= 0 {
		t.Errorf("traffic in all: %+v, want 123 reads", total)
	}
	if inv := got.Invalidation; inv.Warmers != 1 || inv.Events != 6 || inv.LagP50 < .01 || inv.LagP50 > .025 || inv.LagP99 < .025 || inv.LagP99 > .05 {
		t.Errorf("invalidation %+v: want 6 events, p50 between 10 and 25 ms, p99 between 25 and 50 ms", inv)
	}
	if got.Outbox.Rows == nil || *got.Outbox.Rows != 0 {
		t.Errorf("outbox %s", res.body)
	}
}

// TestRootNegotiates: GET / is a page for browsers and JSON for everyone else, curl's */* and
// clients that send no Accept among them.
func TestRootNegotiates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	browser := "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
	for accept, wantHTML := range map[string]bool{
		"":                                  false,
		"*/*":                               false,
		"application/json":                  false,
		"application/json, text/html;q=0.5": false,
		browser:                             true,
		"text/html":                         true,
		"text/*":                            true,
	} {
		h := http.Header{}
		if accept != "" {
			h.Set("Accept", accept)
		}
		res := f.do(http.MethodGet, "/", h)
		isHTML := strings.HasPrefix(res.header.Get("Content-Type"), "text/html")
		if res.status != 200 || isHTML != wantHTML || res.header.Get("Vary") != "Accept" {
			t.Errorf("Accept %q: %d %s (Vary %q), want HTML %v", accept, res.status, res.header.Get("Content-Type"),
				res.header.Get("Vary"), wantHTML)
		}
		if isHTML && (strings.Contains(res.body, `href="/status"`) || !strings.Contains(res.body, `href="/docs"`) ||
			res.header.Get("Content-Security-Policy") == "") {
			t.Errorf("the page links to the admin listener's /status, or not to /docs, or has no policy: %s", res.body)
		}
		if !isHTML && (!strings.Contains(res.body, `"docs":"/docs"`) || strings.Contains(res.body, `"/status"`)) {
			t.Errorf("Accept %q: %s", accept, res.body)
		}
	}
}
