package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/warmcache/warmcache/api"
	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

// BenchmarkHitPath measures the hit-path bars of the README's Performance section:
// requests/s and p50/p99 latency of GET /v1/orders/count?customerid=ID at 50 connections (wrk),
// on four workloads: a skewed (Zipf, s = 1.1) and a uniform choice of ids, over 20,000 customers
// and over 1,000,000. wrk runs on CPU 0 and every server on CPU 1 (PostgreSQL, Redis, the apis
// and the reference handlers, which this process serves with one P): what is compared is the
// servers' cost of a request, not wrk's. On each workload, the product and reference handlers
// that live only here take turns in three rounds of 3 s each:
//
//   - api: the real api binary at its defaults (the in-process tier of 64 MiB with
//     LOCAL_CACHE_TTL of 5 minutes, the access log on), every key warmed;
//   - api_ttl_1s (skewed workloads only): the same with LOCAL_CACHE_TTL=1s, the default before
//     Redis told the tier of every change: keys read less than once a second come from Redis;
//   - api_no_tier: the same with LOCAL_CACHE_SIZE=0, one Redis GET a hit;
//   - bare_redis: an echo handler doing one go-redis GET of the same key and writing the bytes;
//   - constant: an echo handler writing constant bytes;
//   - constant_headers (skewed workloads only): the same with the headers of one of the api's
//     hits, copied once, to tell what the headers every cached read carries cost from what the
//     rest of the api costs;
//   - postgres (20,000 uniform only): an echo handler computing the count on every request.
//
// The summary gives, for each workload, the medians of each round's ratios (goals: api ÷
// constant ≥ 0.8 over 20,000 Zipf keys and ≥ 0.6 over 1,000,000; api_no_tier ÷ bare_redis ≥ 1.0),
// and the share of the api's hits served from memory.
func BenchmarkHitPath(b *testing.B) {
	s := findServers(b)
	setAffinity("1", s.primary, s.replica, s.redis, os.Getpid())
	defer setAffinity("0,1", s.primary, s.replica, s.redis, os.Getpid())
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	constant := serve(b, func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, []byte(`{"customerid":42,"count":3}`))
	})
	rdb := redisClient(b)
	for _, scale := range []struct {
		name              string
		customers, orders int
	}{{"20k", 20000, 12000}, {"1M", 1000000, 10000000}} {
		dbURL := dataset(b, scale.customers, scale.orders)
		ns := warmAll(b, dbURL, "orders_by_customer")
		tiered := startAPI(b, dbURL, ns)
		shortTTL := startAPI(b, dbURL, ns, "LOCAL_CACHE_TTL=1s")
		untiered := startAPI(b, dbURL, ns, "LOCAL_CACHE_SIZE=0")
		bareRedis := serve(b, func(c echo.Context) error {
			v, err := rdb.Get(c.Request().Context(), ns+":orders_by_customer:"+c.QueryParam("customerid")).Bytes()
			if err != nil {
				return err
			}
			return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, v)
		})
		for _, skewed := range []bool{true, false} {
			workload := scale.name + "/uniform"
			script := uniformScript(b, scale.customers)
			if skewed {
				workload, script = scale.name+"/zipf", zipfScript(b, scale.customers)
			}
			targets := []struct{ name, addr string }{
				{"api", tiered}, {"api_no_tier", untiered}, {"bare_redis", bareRedis}, {"constant", constant},
			}
			if skewed {
				targets = append(targets, struct{ name, addr string }{"api_ttl_1s", shortTTL},
					struct{ name, addr string }{"constant_headers", constantHeaders(b, tiered, &http.Server{})},
					struct{ name, addr string }{"constant_headers_limits", constantHeaders(b, tiered, api.NewHTTPServer(nil))})
			}
			if workload == "20k/uniform" {
				pool := pgPool(b, dbURL)
				targets = append(targets, struct{ name, addr string }{"postgres", serve(b, func(c echo.Context) error {
					var n int64
					err := pool.QueryRow(c.Request().Context(), "SELECT count(*) FROM orders WHERE customerid = $1",
						c.QueryParam("customerid")).Scan(&n)
					if err != nil {
						return err
					}
					return c.JSON(http.StatusOK, map[string]any{"customerid": c.QueryParam("customerid"), "count": n})
				})})
			}
			// A running api's tier holds what its reads asked for: each api is read for 3 s
			// before it is measured, as it would have been before.
			for _, target := range targets {
				if strings.HasPrefix(target.name, "api") {
					b.Run(fmt.Sprintf("%s/%s/read_before", workload, target.name), func(b *testing.B) {
						runWrk(b, true, script, "http://"+target.addr, 3*time.Second)
					})
				}
			}
			hitsBefore := tierHits(b, tiered)
			// The machine is shared and its load drifts: the targets take turns in short
			// rounds, and each round's ratio compares neighbours in time.
			rounds := map[string][]load{}
			for round := range 3 {
				for _, target := range targets {
					b.Run(fmt.Sprintf("%s/%s/round=%d", workload, target.name, round), func(b *testing.B) {
						rounds[target.name] = append(rounds[target.name], runWrk(b, true, script, "http://"+target.addr, 3*time.Second))
					})
				}
			}
			hits := tierHits(b, tiered)
			for tier, n := range hitsBefore {
				hits[tier] -= n
			}
			for _, target := range targets {
				l := medianLoad(rounds[target.name])
				b.Logf("summary: %-12s %-16s median %6.0f req/s, p50 %.2f ms, p99 %.2f ms", workload, target.name, l.rps, l.p50ms, l.p99ms)
			}
			ratio := func(a, b string) float64 {
				var r []float64
				for i := range rounds[a] {
					r = append(r, rounds[a][i].rps/rounds[b][i].rps)
				}
				return median(r)
			}
			memory := 100 * hits["memory"] / (hits["memory"] + hits["redis"])
			line := fmt.Sprintf("summary: %-12s api/constant %.2f, api/api_no_tier %.2f, api_no_tier/bare_redis %.2f, "+
				"bare_redis/constant %.2f; the api's hits from memory %.0f%%", workload, ratio("api", "constant"),
				ratio("api", "api_no_tier"), ratio("api_no_tier", "bare_redis"), ratio("bare_redis", "constant"), memory)
			if rounds["api_ttl_1s"] != nil {
				line += fmt.Sprintf(", api_ttl_1s/constant %.2f, constant_headers/constant %.2f, api/constant_headers %.2f, "+
					"constant_headers_limits/constant %.2f, api/constant_headers_limits %.2f",
					ratio("api_ttl_1s", "constant"), ratio("constant_headers", "constant"), ratio("api", "constant_headers"),
					ratio("constant_headers_limits", "constant"), ratio("api", "constant_headers_limits"))
			}
			if rounds["postgres"] != nil {
				line += fmt.Sprintf(", api/postgres %.0f×", ratio("api", "postgres"))
			}
			b.Log(line)
			p99 := medianLoad(rounds["api"]).p99ms
			if skewed {
				goal := map[string]float64{"20k": 0.8, "1M": 0.6}[scale.name]
				bar(fmt.Sprintf("hit path, %s Zipf keys: api ÷ echo constant", scale.name), ratio("api", "constant"), goal,
					fmt.Sprintf("%.0f%% from memory, api p99 %.2f ms", memory, p99))
			}
			bar(fmt.Sprintf("hit path, %s %s, no tier: api ÷ echo + go-redis GET", scale.name, map[bool]string{true: "Zipf", false: "uniform"}[skewed]),
				ratio("api_no_tier", "bare_redis"), 1.0, fmt.Sprintf("api_no_tier p99 %.2f ms", medianLoad(rounds["api_no_tier"]).p99ms))
		}
	}
}

// constantHeaders serves constant bytes with the headers of one of the api's hits, copied once,
// on srv: what writing the headers a cached read must carry costs, without anything else the api
// does (and, on a server with the api's limits, what those cost too).
func constantHeaders(b *testing.B, api string, srv *http.Server) string {
	b.Helper()
	res := testenv.HTTPGet(b, "http://"+api+"/v1/orders/count?customerid=42")
	if res.Status != http.StatusOK {
		b.Fatalf("the api answered %d", res.Status)
	}
	header := res.Header.Clone()
	header.Del("Date") // net/http writes its own, as for the api
	header.Del("Content-Length")
	return serveOn(b, srv, func(c echo.Context) error {
		h := c.Response().Header()
		for name, values := range header {
			h[name] = values
		}
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, []byte(res.Body))
	})
}

var hitsLine = regexp.MustCompile(`(?m)^warmcache_cache_hits_total\{tier="(\w+)"\} ([0-9.e+]+)$`)

// tierHits reads the api's hits so far, by tier, from its /metrics.
func tierHits(b *testing.B, api string) map[string]float64 {
	b.Helper()
	hits := map[string]float64{}
	for _, m := range hitsLine.FindAllStringSubmatch(testenv.HTTPGet(b, "http://"+adminOf(b, api)+"/metrics").Body, -1) {
		hits[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	return hits
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianLoad(ls []load) load {
	var rps, p50, p99 []float64
	for _, l := range ls {
		rps, p50, p99 = append(rps, l.rps), append(p50, l.p50ms), append(p99, l.p99ms)
	}
	return load{rps: median(rps), p50ms: median(p50), p99ms: median(p99)}
}

// BenchmarkTotalAt10M compares GET /v1/orders/count (the total, from the cache) with
// SELECT count(*) FROM orders per request, at 10M orders.
func BenchmarkTotalAt10M(b *testing.B) {
	dbURL := dataset(b, 1000000, 10000000)
	ns := warmAll(b, dbURL, "orders_total")
	api := startAPI(b, dbURL, ns)
	pool := pgPool(b, dbURL)
	perRequest := serve(b, func(c echo.Context) error {
		var n int64
		if err := pool.QueryRow(c.Request().Context(), "SELECT count(*) FROM orders").Scan(&n); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"count": n})
	})
	var cached, counted load
	b.Run("api", func(b *testing.B) { cached = runWrk(b, false, "", "http://"+api+"/v1/orders/count", 10*time.Second) })
	b.Run("count_per_request", func(b *testing.B) {
		counted = runWrk(b, false, "", "http://"+perRequest+"/v1/orders/count", 10*time.Second)
	})
	b.Logf("summary at 10M orders: api %.0f req/s (p50 %.2f ms, p99 %.2f ms); SELECT count(*) per request %.1f req/s "+
		"(p50 %.0f ms, p99 %.0f ms); api/count %.0f×", cached.rps, cached.p50ms, cached.p99ms, counted.rps,
		counted.p50ms, counted.p99ms, cached.rps/counted.rps)
}

type load struct{ rps, p50ms, p99ms float64 }

var (
	rpsLine = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	pctLine = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// runWrk loads url for d at 50 connections and reports requests/s and latency percentiles: from
// one thread on CPU 0 when pinned, else two on any CPU. A request not answered within 30 s is
// an error.
func runWrk(b *testing.B, pinned bool, script, url string, d time.Duration) load {
	b.Helper()
	var l load
	for range b.N {
		cmd := []string{wrkPath(b), "-t", "2"}
		if pinned {
			cmd = []string{"taskset", "-c", "0", wrkPath(b), "-t", "1"}
		}
		cmd = append(cmd, "-c", "50", "-d", d.String(), "--timeout", "30s", "--latency")
		if script != "" {
			cmd = append(cmd, "-s", script)
		}
		out, err := exec.Command(cmd[0], append(cmd[1:], url)...).CombinedOutput()
		if err != nil {
			b.Fatalf("wrk: %v\n%s", err, out)
		}
		if strings.Contains(string(out), "Non-2xx") || strings.Contains(string(out), "Socket errors") {
			b.Fatalf("wrk saw errors:\n%s", out)
		}
		m := rpsLine.FindSubmatch(out)
		if m == nil {
			b.Fatalf("no Requests/sec in:\n%s", out)
		}
		l.rps, _ = strconv.ParseFloat(string(m[1]), 64)
		for _, p := range pctLine.FindAllSubmatch(out, -1) {
			v, _ := strconv.ParseFloat(string(p[2]), 64)
			switch string(p[3]) {
			case "us":
				v /= 1000
			case "s":
				v *= 1000
			}
			if string(p[1]) == "50" {
				l.p50ms = v
			} else {
				l.p99ms = v
			}
		}
	}
	b.ReportMetric(l.rps, "req/s")
	b.ReportMetric(l.p50ms, "p50-ms")
	b.ReportMetric(l.p99ms, "p99-ms")
	return l
}

// uniformScript writes a wrk script asking for customers chosen uniformly among ids.
func uniformScript(b *testing.B, ids int) string {
	b.Helper()
	return writeScript(b, fmt.Sprintf(`math.randomseed(42)
request = function()
  return wrk.format("GET", "/v1/orders/count?customerid=" .. math.random(1, %d))
end
`, ids))
}

// zipfScript writes a wrk script asking for customers among ids with Zipf's law (s = 1.1): the
// k-th most asked for is asked for about k^1.1 times less often than the first. The customers'
// ranks are shuffled, and each of wrk's threads walks its own part of one drawn sequence.
func zipfScript(b *testing.B, ids int) string {
	b.Helper()
	r := rand.New(rand.NewPCG(42, 1))
	zipf := rand.NewZipf(r, 1.1, 1, uint64(ids-1))
	rank := r.Perm(ids)
	var seq strings.Builder
	const draws = 200_000
	for range draws {
		fmt.Fprintf(&seq, "%d,", rank[zipf.Uint64()]+1)
	}
	return writeScript(b, fmt.Sprintf(`local ids = {%s}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("start", threads * 99991)
end
function init(args)
  i = start
end
request = function()
  i = i %% %d + 1
  return wrk.format("GET", "/v1/orders/count?customerid=" .. ids[i])
end
`, seq.String(), draws))
}

// writeScript writes a wrk script.
func writeScript(b *testing.B, script string) string {
	b.Helper()
	return testenv.WriteFile(b, "ids.lua", script)
}

// warmAll runs the built-in jobs (or those named) once into a namespace of the benchmark's own.
func warmAll(b *testing.B, dbURL string, only ...string) string {
	b.Helper()
	ns := testenv.Namespace(b)
	db := testenv.OpenDB(b, dbURL, query.Options{MaxConns: 4})
	var selected []jobs.Job
	for _, j := range benchJobs(b, "") {
		if len(only) == 0 || j.Name == only[0] {
			selected = append(selected, j)
		}
	}
	warmOnce(b, db, testenv.NamespaceStore(b, ns), ns, selected)
	return ns
}

// benchJobs returns the jobs of the jobs file at path (the built-in jobs alone when it is empty)
// with the settings the benchmarks run them with.
func benchJobs(b *testing.B, path string) []jobs.Job {
	b.Helper()
	list, _, err := jobs.Load(path, jobs.Defaults{TTL: 2 * time.Hour, Grace: time.Hour, NegativeTTL: 30 * time.Second,
		Timeout: 10 * time.Minute, Location: time.UTC}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return list
}

// warmOnce runs list once into namespace ns of store, as warmer --once does.
func warmOnce(b *testing.B, db *query.DB, store *cache.Store, ns string, list []jobs.Job) {
	b.Helper()
	r := warm.NewRunner(baseservice.NewArchetype(slog.New(slog.DiscardHandler)), db, db, store, warm.NewMetrics(prometheus.NewRegistry()))
	if err := warm.Once(context.Background(), list, r, db.Runs(), ns, func(jobs.Job) warm.Progress { return nil }); err != nil {
		b.Fatal(err)
	}
}

// startAPI starts the real api binary on a free port and returns its address; adminOf gives its
// admin listener's, where its metrics are.
func startAPI(b *testing.B, dbURL, ns string, environ ...string) string {
	b.Helper()
	env := append([]string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + testenv.Get(b).RedisURL, "CACHE_NAMESPACE=" + ns,
		"CACHE_TTL=2h", "LISTEN_ADDR=127.0.0.1:0", "ADMIN_ADDR=127.0.0.1:0"}, environ...)
	m := startProcess(b, "api", env, regexp.MustCompile(`"msg":"api_started","addr":"([^"]+)","admin_addr":"([^"]+)"`))
	admins.Store(m[1], m[2])
	return m[1]
}

// admins holds the admin listener of each api the benchmarks started, by its address.
var admins sync.Map

// adminOf returns the admin listener of the api at addr (host:port, or a URL of it).
func adminOf(b *testing.B, addr string) string {
	b.Helper()
	admin, ok := admins.Load(strings.TrimPrefix(addr, "http://"))
	if !ok {
		b.Fatalf("no api was started at %s", addr)
	}
	return admin.(string)
}

// startProcess starts a binary of the product with env added to the environment, waits for a
// log line matching started and returns the match and its submatches; the process is
// interrupted when the benchmark ends.
func startProcess(b *testing.B, name string, env []string, started *regexp.Regexp) []string {
	b.Helper()
	cmd := exec.Command(binary(b, name))
	cmd.Env = append(os.Environ(), env...)
	lines := testenv.StartLogged(b, cmd)
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) //nolint:errcheck // best effort; Wait reaps it
		cmd.Wait()                       //nolint:errcheck // the exit status does not matter here
	})
	m := lines.Await(started)
	if m == nil {
		b.Fatalf("%s did not start", name)
	}
	return m
}

// serve runs a reference echo handler on a free port, for the route the benchmark asks for.
func serve(b *testing.B, h echo.HandlerFunc) string { return serveOn(b, &http.Server{}, h) }

// serveOn is serve on srv, a server of the limits the benchmark asks for.
func serveOn(b *testing.B, srv *http.Server, h echo.HandlerFunc) string {
	b.Helper()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/v1/orders/count", h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv.Handler = e
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func redisClient(b *testing.B) *redis.Client {
	b.Helper()
	opts, err := redis.ParseURL(testenv.Get(b).RedisURL)
	if err != nil {
		b.Fatal(err)
	}
	opts.PoolSize = 64
	rdb := redis.NewClient(opts)
	b.Cleanup(func() { rdb.Close() })
	return rdb
}

func pgPool(b *testing.B, dbURL string) *pgxpool.Pool {
	b.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

// wrkPath finds wrk, which make bench installs.
func wrkPath(b *testing.B) string {
	b.Helper()
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatal("wrk is not installed (make bench installs it with apt-get)")
	}
	return wrk
}
