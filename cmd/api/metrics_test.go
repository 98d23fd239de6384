package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"slices"
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
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body) //nolint:errcheck // only the metrics count
		res.Body.Close()
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
	ctx, cancel := context.WithCancel(context.Background())
	var log testenv.Output
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		cli.API(ctx, nil, env, &log, &log, run)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	m := log.WaitFor(t, regexp.MustCompile(`"msg":"api_started","addr":"([^"]+)","admin_addr":"([^"]+)"`), exited, 20*time.Second)
	return m[1], m[2]
}
