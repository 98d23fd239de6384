package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/internal/testenv"
)

// TestMetricsExported runs the api, reads every kind of route, and checks its /metrics against
// the list the dashboard and the alerting rules of deploy/k8s are held to (testenv.CheckMetrics),
// and that both circuit breakers are reported, closed, from the start.
func TestMetricsExported(t *testing.T) {
	t.Parallel()
	addr, admin := startAPI(t, environ(t))
	for _, path := range []string{"/v1/orders/count", "/v1/orders/count?customerid=42", "/v1/customers/42/credit", "/v1/credit",
		"/v1/results/orders_total", "/v1/orders/count?customerid=99999999", "/v1/jobs", "/nowhere"} {
		testenv.HTTPGet(t, "http://"+addr+path) // only the metrics count
	}
	families := testenv.CheckMetrics(t, "http://"+admin+"/metrics", "api")
	open := map[string]float64{}
	for _, m := range families["warmcache_circuit_breaker_open"].GetMetric() {
		open[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
	}
	if len(open) != 2 || open["redis"] != 0 || open["postgresql"] != 0 {
		t.Errorf("warmcache_circuit_breaker_open = %v, want redis and postgresql, both 0", open)
	}
	// The alert on reads older than the TTL reads the bucket of the default CACHE_TTL, 10m.
	buckets := families["warmcache_served_age_seconds"].GetMetric()[0].GetHistogram().GetBucket()
	if !slices.ContainsFunc(buckets, func(b *dto.Bucket) bool { return b.GetUpperBound() == 600 }) {
		t.Error("warmcache_served_age_seconds has no bucket at 600 s, the default CACHE_TTL")
	}
}

// startAPI runs the api in this process until the test ends and returns its address and its
// admin listener's.
func startAPI(t *testing.T, env []string) (addr, admin string) {
	t.Helper()
	addr, admin, _ = startAPIWithLog(t, env)
	return addr, admin
}

// startAPIWithLog is startAPI, and returns the api's log too.
func startAPIWithLog(t *testing.T, env []string) (addr, admin string, log *testenv.Output) {
	t.Helper()
	m, log := testenv.RunInProcess(t, apiStarted, 20*time.Second, func(ctx context.Context, log io.Writer) int {
		return cli.API(ctx, nil, env, log, log, run)
	})
	return m[1], m[2], log
}

// TestJobsFilesThatDiffer: an api started beside one of the same namespace that runs with another
// jobs file says so at once (jobs_file_differs, and the gauge at 1); one with the same file does
// not (the gauge at 0).
func TestJobsFilesThatDiffer(t *testing.T) {
	t.Parallel()
	file := func(schedule string) string {
		return testenv.JobsFile(t, "jobs:\n  orders_total:\n    schedule: \""+schedule+"\"\n")
	}
	a, b := file("@every 1m"), file("@every 2m")
	env := environ(t)
	startAPI(t, append(slices.Clone(env), "JOBS_FILE="+a))
	differs := func(path string) (float64, string) {
		t.Helper()
		_, admin, log := startAPIWithLog(t, append(slices.Clone(env), "JOBS_FILE="+path))
		families := testenv.Scrape(t, "http://"+admin+"/metrics")
		return families["warmcache_jobs_file_differs"].GetMetric()[0].GetGauge().GetValue(), log.String()
	}
	if gauge, log := differs(a); gauge != 0 || strings.Contains(log, "jobs_file_differs") {
		t.Errorf("beside an api with the same jobs file: gauge %v, want 0, and no jobs_file_differs line in:\n%s", gauge, log)
	}
	if gauge, log := differs(b); gauge != 1 || !strings.Contains(log, `"msg":"jobs_file_differs"`) {
		t.Errorf("beside apis with another jobs file: gauge %v, want 1, and a jobs_file_differs line in:\n%s", gauge, log)
	}
}
