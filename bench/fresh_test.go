package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/redis/go-redis/v9"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

// readmeJobs are the jobs file of the README's example: users' jobs beside the built-in ones, a
// keyed one refreshed key by key, an incremental one, and a single value; PostgreSQL finds what
// the users' SQL jobs depend on.
const readmeJobs = `
jobs:
  orders_by_date:
    schedule: "@every 1h"
    sql: SELECT orderdate, count(*) AS orders, sum(totalamount) AS revenue FROM orders GROUP BY orderdate
    key: "{orderdate}"
  revenue_by_date:
    schedule: "@every 1h"
    incremental:
      table: orders
      group_by: orderdate
      count: orders
      sum: {revenue: totalamount}
  high_income_customers:
    schedule: "@every 1h"
    sql: SELECT count(*) AS customers, count(*) FILTER (WHERE income >= 80000) AS high_income FROM customers
`

// BenchmarkWrites measures what a write costs and how fast it shows, at dellstore2's size and at
// 1M customers / 10M orders, on a scratch copy of the data with the real warmer and two api
// processes (replicas, their in-process tier on) running at their defaults, the README's jobs
// file (with the index on orders.orderdate it advises), and a real Varnish in front of the first
// api with the VCL of deploy/varnish, purged by the warmer:
//
//   - visible: while wrk reads customers chosen with Zipf's law at 25 connections on each api, an
//     order is posted every 100 ms, 100 times, and the time from the POST's answer (the commit)
//     until Redis holds the new value, and each api and Varnish serve it, is taken for every key
//     the order changes: the four built-in jobs' and the users' jobs by date (one keyed by SQL,
//     one incremental). Every key is read from both apis and Varnish before the write, so that
//     each holds the old value, and polled after it over HTTP by a goroutine of its own, every
//     2 ms. Before the 51st write, runs of the per-customer jobs are requested, as their
//     schedules do every 5 minutes: the second half of the writes meets them. The hit ratio of
//     the reads, the share of hits from memory, what the other reads were answered with and how
//     often the apis' breakers in front of Redis opened come from the apis' metrics; how many of
//     Redis's own commands took long, from its slow log. The first api's p50 and p99 of each
//     key are bars (≤ 30 ms and ≤ 100 ms); its p50 and slowest of each half of the writes,
//     before the runs and with them, are in the summary too.
//   - throughput: with the warmer stopped, wrk posts orders at 16 connections, in rounds of 3 s
//     that alternate warmcache's triggers on and off; the ratio is the median of the rounds'.
func BenchmarkWrites(b *testing.B) {
	for _, scale := range []struct {
		name              string
		customers, orders int
	}{{"dellstore2", 20000, 12000}, {"1M", 1000000, 10000000}} {
		b.Run(scale.name, func(b *testing.B) {
			for range b.N {
				benchWrites(b, scale.customers, scale.orders)
			}
		})
	}
}

func benchWrites(b *testing.B, customers, orders int) {
	wrk := wrkPath(b)
	dbURL := scratchCopy(b, dataset(b, customers, orders))
	ns := testenv.Namespace(b)
	jobsFile := testenv.JobsFile(b, readmeJobs)
	psql(b, dbURL, "CREATE INDEX ON orders (orderdate)")
	const token = "bench-token-of-16-chars"
	// The product at its defaults (CACHE_TTL and the built-in jobs' schedules among them), as a
	// user starts it: only what names the servers, the jobs file and the purges are set.
	env := []string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + testenv.Get(b).RedisURL, "CACHE_NAMESPACE=" + ns,
		"CACHE_TTL=10m", "JOBS_FILE=" + jobsFile}
	// Varnish needs the api's address, and the api and the warmer Varnish's: a port is taken
	// for the api first.
	apiAddr := freeAddr(b)
	varnish := "http://" + testenv.StartVarnish(b, apiAddr)
	env = append(env, "PURGE_URLS="+varnish+"/")
	stopWarmer := startWarmerWarm(b, env, 7)
	env = append(env, "API_TOKEN="+token)
	api := "http://" + startAPI(b, dbURL, ns, append(env, "LISTEN_ADDR="+apiAddr)...)
	replica := "http://" + startAPI(b, dbURL, ns, env...)
	db := testenv.OpenDB(b, dbURL, query.Options{MaxConns: 4})
	list := benchJobs(b, jobsFile)

	// Redis's slow log says which of its own commands took long while the writes went on.
	rdb := testenv.Redis(b)
	if err := rdb.Do(context.Background(), "SLOWLOG", "RESET").Err(); err != nil {
		b.Fatal(err)
	}
	before := cacheResults(b, api, replica)
	var readers []*exec.Cmd
	for _, target := range []string{api, replica} {
		wrk := exec.Command(wrk, "-t", "1", "-c", "25", "-d", "25s", "-s", zipfScript(b, customers), target)
		if err := wrk.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { wrk.Process.Kill() }) //nolint:errcheck // it may have ended
		readers = append(readers, wrk)
	}
	time.Sleep(time.Second) // let the read load settle before the first write
	// One write at a time: at each place, the first value of a key that differs from the one
	// served before the write is the one the write made.
	// Redis is polled too: what a figure at an api adds to Redis's is the api's own delay.
	keys, _ := cache.NewKeys(ns)
	fromURL := func(url string) func(writtenKey) (string, error) {
		return func(k writtenKey) (string, error) { return fetch(url + k.path) }
	}
	vias := []struct {
		name string
		read func(writtenKey) (string, error)
	}{
		{"redis", func(k writtenKey) (string, error) {
			value, err := rdb.Get(context.Background(), keys.Value(k.job, k.key)).Result()
			if errors.Is(err, redis.Nil) {
				return "", nil // the first order of a day: its key held nothing
			}
			return value, err
		}},
		{"api", fromURL(api)}, {"replica", fromURL(replica)}, {"varnish", fromURL(varnish)},
	}
	type probe struct {
		writtenKey
		via int
	}
	type measure struct{ key, via string }
	visible := map[measure][]time.Duration{}
	// The halves of the writes: before the per-customer jobs' runs are requested, and after.
	halves := [2]map[measure][]time.Duration{{}, {}}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 100 {
		if i == 50 {
			// The per-customer jobs' scheduled runs (every 5 minutes at the defaults) are part
			// of what a user's writes meet: the second half of the writes meets one of each.
			for _, job := range []string{jobs.OrdersByCustomer, jobs.CreditByCustomer} {
				if res := testenv.Post(b, api+"/v1/jobs/"+job+"/run", token, ""); res.Status != http.StatusAccepted {
					b.Fatalf("POST /v1/jobs/%s/run: %d", job, res.Status)
				}
			}
		}
		customer := 1 + r.IntN(customers)
		served := map[probe]string{}
		for _, k := range writtenKeys(customer) {
			for via, v := range vias {
				value, err := v.read(k) // in memory and in Varnish's cache before the write
				if err != nil {
					b.Fatal(err)
				}
				served[probe{k, via}] = value
			}
		}
		post(b, api, token, customer)
		committed := time.Now()
		// Each key at each place is polled by a goroutine of its own, so that a figure does not
		// include a round of polling the others.
		var mu sync.Mutex
		news := map[string]map[string]bool{} // the new values of each key
		var g errgroup.Group
		for p, before := range served {
			g.Go(func() error {
				for {
					got, err := vias[p.via].read(p.writtenKey)
					if err != nil {
						return err
					}
					if got != before {
						m := measure{p.name, vias[p.via].name}
						mu.Lock()
						defer mu.Unlock()
						visible[m] = append(visible[m], time.Since(committed))
						halves[i/50][m] = append(halves[i/50][m], time.Since(committed))
						if news[p.path] == nil {
							news[p.path] = map[string]bool{}
						}
						if vias[p.via].name != "redis" {
							news[p.path][got] = true
						}
						return nil
					}
					if time.Since(committed) > 10*time.Second {
						return fmt.Errorf("%s not visible through %s 10 s after the write", p.path, vias[p.via].name)
					}
					time.Sleep(2 * time.Millisecond) // polling, with a deadline
				}
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		for path, values := range news {
			if len(values) != 1 {
				b.Fatalf("%s: the apis and Varnish showed different new values: %v", path, values)
			}
		}
		time.Sleep(100 * time.Millisecond) // pacing: an order every 100 ms under the read load
	}
	for _, wrk := range readers {
		if err := wrk.Wait(); err != nil {
			b.Fatalf("wrk: %v", err)
		}
	}
	for _, k := range writtenKeys(1 + r.IntN(customers)) {
		want := expected(b, db, list, k.job, k.key)
		for _, target := range []string{api, replica} {
			if got := get(b, target+k.path); got != want {
				b.Errorf("%s%s serves %s after the writes, want %s", target, k.path, got, want)
			}
		}
	}
	after := cacheResults(b, api, replica)
	hits, total := after["HIT"]-before["HIT"], 0.0
	for _, state := range []string{"HIT", "MISS", "STALE", "BYPASS"} {
		total += after[state] - before[state]
	}
	memory := after["memory"] - before["memory"]
	b.ReportMetric(hits/total, "hit-ratio")
	b.ReportMetric(memory/hits, "memory-hit-share")
	var slowest []time.Duration
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for _, k := range writtenKeys(0) {
		line := fmt.Sprintf("summary: %s write to visible, %-24s", scaleName(customers), k.name)
		for _, via := range vias {
			at := visible[measure{k.name, via.name}]
			slices.Sort(at)
			if via.name == "api" || via.name == "replica" {
				slowest = append(slowest, at[98])
			}
			if via.name == "api" {
				what := fmt.Sprintf("write to visible over HTTP, %s, %s", scaleName(customers), k.name)
				barAtMost(what+", p50", ms(at[50]), 30, "ms", "at the defaults, under reads, half the writes during runs")
				barAtMost(what+", p99", ms(at[98]), 100, "ms", "at the defaults, under reads, half the writes during runs")
			}
			b.ReportMetric(ms(at[98]), "p99-ms-"+via.name+"-"+k.job)
			line += fmt.Sprintf(" %s p50 %5.1f ms, p99 %5.1f ms;", via.name, ms(at[50]), ms(at[98]))
		}
		for half, name := range []string{"before the runs", "with the runs"} {
			at := halves[half][measure{k.name, "api"}]
			slices.Sort(at)
			line += fmt.Sprintf(" api %s p50 %5.1f ms, max %5.1f ms;", name, ms(at[len(at)/2]), ms(at[len(at)-1]))
		}
		b.Log(strings.TrimSuffix(line, ";"))
	}
	b.Logf("summary: %s 100 writes under %.0f reads at two api processes, hit ratio %.4f (%.0f%% of hits from memory), "+
		"slowest key's p99 at either api %.1f ms", scaleName(customers), total, hits/total, 100*memory/hits,
		float64(slices.Max(slowest).Microseconds())/1000)
	b.Logf("summary: %s the reads answered HIT %.0f, MISS %.0f, STALE %.0f, BYPASS %.0f; the apis' breakers in front "+
		"of Redis opened %.0f times; %s", scaleName(customers), after["HIT"]-before["HIT"], after["MISS"]-before["MISS"],
		after["STALE"]-before["STALE"], after["BYPASS"]-before["BYPASS"], after["breaker_opens"]-before["breaker_opens"],
		slowCommands(b, rdb))
	stopWarmer()
	writeThroughput(b, wrk, api, dbURL, token, customers)
}

// slowCommands says how many commands Redis's slow log holds and how long the slowest took.
func slowCommands(b *testing.B, rdb *redis.Client) string {
	b.Helper()
	ctx := context.Background()
	config, err := rdb.ConfigGet(ctx, "slowlog-*").Result()
	if err != nil {
		b.Fatal(err)
	}
	logged, err := rdb.SlowLogGet(ctx, -1).Result() // every command it holds
	if err != nil {
		b.Fatal(err)
	}
	var slowest time.Duration
	for _, c := range logged {
		slowest = max(slowest, c.Duration)
	}
	return fmt.Sprintf("Redis's slow log (commands over %s µs, the last %s kept) holds %d, the slowest %.1f ms",
		config["slowlog-log-slower-than"], config["slowlog-max-len"], len(logged), float64(slowest.Microseconds())/1000)
}

// writeThroughput posts orders at 16 connections in rounds that alternate warmcache's triggers
// on and off, and reports orders/s of both and their ratio.
func writeThroughput(b *testing.B, wrk, api, dbURL, token string, customers int) {
	script := testenv.WriteFile(b, "post.lua", fmt.Sprintf(`math.randomseed(7)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
request = function()
  return wrk.format(nil, "/v1/orders", nil,
    string.format('{"orderdate":"2026-11-21","customerid":%%d,"netamount":12.34,"tax":1.02}', math.random(1, %d)))
end
`, token, customers))
	rounds := map[string][]float64{}
	for round := range 5 {
		for _, triggers := range []string{"ENABLE", "DISABLE"} {
			psql(b, dbURL, "ALTER TABLE orders "+triggers+" TRIGGER USER")
			out, err := exec.Command(wrk, "-t", "2", "-c", "16", "-d", "3s", "-s", script, api).CombinedOutput()
			if err != nil || strings.Contains(string(out), "Non-2xx") {
				b.Fatalf("wrk round %d, triggers %s: %v\n%s", round, triggers, err, out)
			}
			m := rpsLine.FindSubmatch(out)
			if m == nil {
				b.Fatalf("no Requests/sec in:\n%s", out)
			}
			rps, _ := strconv.ParseFloat(string(m[1]), 64)
			rounds[triggers] = append(rounds[triggers], rps)
		}
	}
	psql(b, dbURL, "ALTER TABLE orders ENABLE TRIGGER USER")
	var ratio []float64
	for i := range rounds["ENABLE"] {
		ratio = append(ratio, rounds["ENABLE"][i]/rounds["DISABLE"][i])
	}
	b.ReportMetric(median(ratio), "write-ratio")
	b.Logf("summary: %s api writes, median of 5 rounds: %.0f orders/s with the triggers, %.0f without; "+
		"ratio %.2f (rounds %.2f; goal ≥ 0.8)", scaleName(customers), median(rounds["ENABLE"]),
		median(rounds["DISABLE"]), median(ratio), ratio)
}

func scaleName(customers int) string {
	if customers >= 1000000 {
		return "1M/10M"
	}
	return "dellstore2"
}

type writtenKey struct{ name, path, job, key string }

// writtenKeys are the keys an order of customer, dated 2026-11-21, changes.
func writtenKeys(customer int) []writtenKey {
	id := strconv.Itoa(customer)
	return []writtenKey{
		{"orders_by_customer", "/v1/orders/count?customerid=" + id, "orders_by_customer", id},
		{"credit_by_customer", "/v1/customers/" + id + "/credit", "credit_by_customer", id},
		{"orders_total", "/v1/orders/count", "orders_total", ""},
		{"credit_overview", "/v1/credit", "credit_overview", ""},
		{"orders_by_date (sql)", "/v1/results/orders_by_date/2026-11-21", "orders_by_date", "2026-11-21"},
		{"revenue_by_date (incr.)", "/v1/results/revenue_by_date/2026-11-21", "revenue_by_date", "2026-11-21"},
	}
}

// expected is the body a key should serve now, computed from PostgreSQL: the value of one key
// (the warmers' maintained figures of the totals are settled by then).
func expected(b *testing.B, db *query.DB, list []jobs.Job, job, key string) string {
	b.Helper()
	i := slices.IndexFunc(list, func(j jobs.Job) bool { return j.Name == job })
	e, err := warm.Compute(context.Background(), db, list[i], key, query.Latest, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return string(e.Body)
}

func post(b *testing.B, api, token string, customer int) {
	b.Helper()
	body := fmt.Sprintf(`{"orderdate":"2026-11-21","customerid":%d,"netamount":12.34,"tax":1.02}`, customer)
	if res := testenv.Post(b, api+"/v1/orders", token, body); res.Status != http.StatusCreated {
		b.Fatalf("POST /v1/orders: %d", res.Status)
	}
}

func get(b *testing.B, u string) string {
	b.Helper()
	body, err := fetch(u)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// pollClient keeps a connection for each of the goroutines polling at once.
var pollClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// fetch reads u's body; it may be called from any goroutine.
func fetch(u string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	res, err := testenv.Do(pollClient, req)
	return res.Body, err
}

var redisBreakerLine = regexp.MustCompile(`(?m)^warmcache_circuit_breaker_opens_total\{dependency="redis"\} ([0-9.e+]+)$`)

var resultLine = regexp.MustCompile(`(?m)^warmcache_cache_requests_total\{result="(\w+)",route="[^"]+"\} ([0-9.e+]+)$`)

// cacheResults sums the apis' cached reads by result over all routes, their hits from memory
// ("memory"), and how often their breakers in front of Redis opened ("breaker_opens").
func cacheResults(b *testing.B, apis ...string) map[string]float64 {
	b.Helper()
	sums := map[string]float64{}
	for _, api := range apis {
		metrics := get(b, "http://"+adminOf(b, api)+"/metrics")
		for _, m := range resultLine.FindAllStringSubmatch(metrics, -1) {
			v, _ := strconv.ParseFloat(m[2], 64)
			sums[m[1]] += v
		}
		for _, m := range hitsLine.FindAllStringSubmatch(metrics, -1) {
			if m[1] == "memory" {
				v, _ := strconv.ParseFloat(m[2], 64)
				sums["memory"] += v
			}
		}
		if m := redisBreakerLine.FindStringSubmatch(metrics); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			sums["breaker_opens"] += v
		}
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
		psql(b, admin, sql)
	}
	b.Cleanup(func() {
		testenv.Psql(admin, "-c", "DROP DATABASE IF EXISTS "+source+"_scratch WITH (FORCE)").Run() //nolint:errcheck // best effort
	})
	return scratch
}

func psql(b *testing.B, dbURL, sql string) {
	b.Helper()
	if out, err := testenv.Psql(dbURL, "-c", sql).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v %s", sql, err, out)
	}
}

// freeAddr returns a loopback address with a port free now.
func freeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startWarmerWarm runs the real warmer as a daemon (scheduled runs an hour apart: the events alone
// refresh the keys while the benchmark runs), waits until its first run of each of its jobs
// (count of them) has written, and returns a function that stops it.
func startWarmerWarm(b *testing.B, env []string, count int) (stop func()) {
	b.Helper()
	cmd := exec.Command(binary(b, "warmer"))
	cmd.Env = append(append(os.Environ(), env...), "ADMIN_ADDR=127.0.0.1:0")
	lines := testenv.StartLogged(b, cmd)
	stop = sync.OnceFunc(func() {
		cmd.Process.Signal(os.Interrupt) //nolint:errcheck // best effort; Wait reaps it
		cmd.Wait()                       //nolint:errcheck // the exit status does not matter here
	})
	b.Cleanup(stop)
	finished := map[string]bool{}
	job := regexp.MustCompile(`"msg":"job_finished","job":"(\w+)"`)
	var log strings.Builder
	for len(finished) < count && lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if m := job.FindStringSubmatch(lines.Text()); m != nil {
			finished[m[1]] = true
		}
		if strings.Contains(lines.Text(), `"level":"ERROR"`) {
			b.Fatalf("the warmer failed:\n%s", log.String())
		}
	}
	if len(finished) < count {
		b.Fatalf("the warmer ran only %v:\n%s", finished, log.String())
	}
	lines.Discard()
	return stop
}
