package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/internal/testenv"
)

// TestMetricsExported runs the warmer through what it reports on (scheduled runs that succeed
// and fail, the totals' drift checks, a write captured and refreshed, a purge) and checks its
// /metrics against the list the dashboard and the alerting rules of deploy/k8s are held to
// (testenv.CheckMetrics), with the outbox's backlog among them. It captures changes by logical
// decoding, whose metrics come beside the relay's (which drains the outbox in both modes).
func TestMetricsExported(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	purges := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(purges.Close) // after the warmer stopped
	jobsFile := testenv.JobsFile(t, `
jobs:
  orders_total: {schedule: "@every 1s"}
  failing:
    schedule: "@every 1s"
    sql: SELECT 1 / (count(*) - count(*)) AS never FROM categories
`)
	env := testenv.Environ(t, dbURL, "PURGE_URLS="+purges.URL, "CHANGE_CAPTURE=logical")
	m, log := testenv.RunInProcess(t, regexp.MustCompile(`"msg":"warmer_started".*"admin_addr":"([^"]+)"`), 30*time.Second,
		func(ctx context.Context, log io.Writer) int {
			return cli.Warmer(ctx, []string{"--jobs", jobsFile}, env, log, log, run)
		})
	addr := m[1]
	testenv.NewWriter(t, dbURL, 1).MustExec("UPDATE orders SET tax = tax + 1 WHERE orderid = 1")
	// Generous: on a loaded machine the first runs alone have taken half a minute.
	deadline := time.Now().Add(90 * time.Second)
	for {
		families := testenv.Scrape(t, "http://"+addr+"/metrics")
		// A run of orders_total reports its success and its drift check; one of failing, a failure.
		if count(families, "warmcache_invalidation_lag_seconds", "") > 0 && count(families, "warmcache_purge_requests_total", "") > 0 &&
			count(families, "warmcache_job_runs_total", "failing") > 0 && count(families, "warmcache_job_runs_total", "orders_total") > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the warmer did not report a run of each job, a refresh and a purge within 90 s; log:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond) // polling the metrics, with a deadline
	}
	families := testenv.CheckMetrics(t, "http://"+addr+"/metrics", "warmer")
	for _, name := range []string{"warmcache_outbox_rows", "warmcache_outbox_oldest_age_seconds", "warmcache_relay_failures_total",
		"warmcache_capture_changes_total", "warmcache_capture_streaming", "warmcache_replication_slot_lag_bytes"} {
		if _, ok := families[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
}

// count adds up a family's counters and histogram counts, of the series whose warmcache_job label
// is job (any, when empty).
func count(families map[string]*dto.MetricFamily, name, job string) float64 {
	var n float64
	for _, m := range families[name].GetMetric() {
		if job != "" && !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "warmcache_job" && l.GetValue() == job }) {
			continue
		}
		n += m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
	}
	return n
}
