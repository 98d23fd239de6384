package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// BenchmarkFreshness measures write-to-visible latency under a read-heavy load: while wrk reads
// random customers at 50 connections, an order is posted every 100 ms, and the time from the
// POST's answer (the commit) until the api serves the new value on every key the order changes
// is taken, 100 times. The hit ratio of the reads during it comes from the api's metrics. The
// real warmer (relay and refresher) and api run as processes, on a scratch copy of the data.
func BenchmarkFreshness(b *testing.B) {
	wrk := wrkPath(b)
	dbURL := scratchCopy(b, dataset(b, 20000, 12000))
	ns := warmAll(b, dbURL)
	const token = "bench-token"
	startWarmer(b, dbURL, ns)
	api := "http://" + startAPI(b, dbURL, ns, "API_TOKEN="+token)
	db, err := query.Open(context.Background(), dbURL, query.Options{MaxConns: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	list, err := jobs.Load("", jobs.Defaults{TTL: time.Hour, Grace: time.Hour, NegativeTTL: 30 * time.Second, Timeout: time.Minute, Location: time.UTC}, time.Now())
	if err != nil {
		b.Fatal(err)
	}

	for range b.N {
		before := cacheResults(b, api)
		readers := exec.Command(wrk, "-t", "2", "-c", "50", "-d", "20s", "-s", writeScript(b, 20000), api)
		if err := readers.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Second) // let the read load settle before the first write
		var visible, own []time.Duration
		r := rand.New(rand.NewPCG(1, 2))
		for range 100 {
			customer := 1 + r.IntN(20000)
			post(b, api, token, customer)
			committed := time.Now()
			for i, k := range affectedKeys(customer) {
				want := expected(b, db, list, k.job, k.key)
				for get(b, api+k.path) != want {
					if time.Since(committed) > 10*time.Second {
						b.Fatalf("%s not visible 10 s after the write", k.path)
					}
				}
				if i == 0 {
					own = append(own, time.Since(committed))
				}
			}
			visible = append(visible, time.Since(committed))
			time.Sleep(100 * time.Millisecond) // pacing: an order every 100 ms under the read load
		}
		if err := readers.Wait(); err != nil {
			b.Fatalf("wrk: %v", err)
		}
		after := cacheResults(b, api)
		slices.Sort(visible)
		slices.Sort(own)
		hits := after["HIT"] - before["HIT"]
		total := 0.0
		for state := range after {
			total += after[state] - before[state]
		}
		b.ReportMetric(float64(visible[50].Microseconds())/1000, "p50-visible-ms")
		b.ReportMetric(float64(visible[98].Microseconds())/1000, "p99-visible-ms")
		b.ReportMetric(hits/total, "hit-ratio")
		b.Logf("summary: 100 writes under %.0f reads; write to visible on the customer's count: p50 %s, p99 %s; "+
			"on all four keys: p50 %s, p99 %s, max %s; hit ratio %.4f", total, own[50].Round(time.Microsecond),
			own[98].Round(time.Microsecond), visible[50].Round(time.Microsecond), visible[98].Round(time.Microsecond),
			visible[99].Round(time.Microsecond), hits/total)
	}
}

// affectedKeys are the keys an order of customer changes, as api paths with job and key.
func affectedKeys(customer int) []struct{ path, job, key string } {
	id := strconv.Itoa(customer)
	return []struct{ path, job, key string }{
		{"/v1/orders/count?customerid=" + id, "orders_by_customer", id},
		{"/v1/customers/" + id + "/credit", "credit_by_customer", id},
		{"/v1/orders/count", "orders_total", ""},
		{"/v1/credit", "credit_overview", ""},
	}
}

// expected is the body a key should serve now, computed from PostgreSQL.
func expected(b *testing.B, db *query.DB, list []jobs.Job, job, key string) string {
	b.Helper()
	i := slices.IndexFunc(list, func(j jobs.Job) bool { return j.Name == job })
	e, err := list[i].Compute(context.Background(), db, key, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return string(e.Body)
}

func post(b *testing.B, api, token string, customer int) {
	b.Helper()
	body := fmt.Sprintf(`{"orderdate":"2026-11-21","customerid":%d,"netamount":12.34,"tax":1.02}`, customer)
	req, _ := http.NewRequest(http.MethodPost, api+"/v1/orders", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, res.Body) //nolint:errcheck // draining
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		b.Fatalf("POST /v1/orders: %s", res.Status)
	}
}

func get(b *testing.B, u string) string {
	b.Helper()
	res, err := http.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.Fatal(err)
	}
	return string(body)
}

var resultLine = regexp.MustCompile(`(?m)^warmcache_cache_requests_total\{result="(\w+)",route="[^"]+"\} ([0-9.e+]+)$`)

// cacheResults sums the api's cached reads by result over all routes.
func cacheResults(b *testing.B, api string) map[string]float64 {
	b.Helper()
	sums := map[string]float64{}
	for _, m := range resultLine.FindAllStringSubmatch(get(b, api+"/metrics"), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		sums[m[1]] += v
	}
	return sums
}

// scratchCopy copies a benchmark database, for a benchmark that writes.
func scratchCopy(b *testing.B, dbURL string) string {
	b.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	source := strings.TrimPrefix(u.Path, "/")
	u.Path = "/" + source + "_scratch"
	scratch := u.String()
	admin := testenv.Get(b).AdminURL
	for _, sql := range []string{"DROP DATABASE IF EXISTS " + source + "_scratch WITH (FORCE)",
		"CREATE DATABASE " + source + "_scratch TEMPLATE " + source} {
		if out, err := testenv.Psql(admin, "-c", sql).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v %s", sql, err, out)
		}
	}
	b.Cleanup(func() {
		testenv.Psql(admin, "-c", "DROP DATABASE IF EXISTS "+source+"_scratch WITH (FORCE)").Run() //nolint:errcheck // best effort
	})
	return scratch
}

// startWarmer runs the real warmer as a daemon (scheduled runs two hours apart: the events alone
// refresh the keys while the benchmark runs).
func startWarmer(b *testing.B, dbURL, ns string) {
	b.Helper()
	startProcess(b, "warmer", []string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + testenv.Get(b).RedisURL,
		"CACHE_NAMESPACE=" + ns, "CACHE_TTL=2h", "METRICS_ADDR=127.0.0.1:0"}, regexp.MustCompile(`"msg":"warmer_started"`))
}
