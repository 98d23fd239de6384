package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// BenchmarkHitPath measures the hit-path bar of the README's Performance section: requests/s and p50/p99 latency of
// GET /v1/orders/count?customerid=ID over random ids at 50 connections (wrk), for the product
// and for reference handlers that live only here, taking turns in five rounds of 3 s each:
//
//   - api: the real api binary, every key warmed;
//   - bare_redis: an echo handler doing one go-redis GET of the same key and writing the bytes;
//   - constant: an echo handler writing constant bytes;
//   - postgres: an echo handler computing the count from PostgreSQL on every request.
//
// The summary gives the median of each round's api ÷ bare_redis (bar: ≥ 0.9).
func BenchmarkHitPath(b *testing.B) {
	wrk := wrkPath(b)
	dbURL := dataset(b, 20000, 12000)
	ns := warmAll(b, dbURL)
	script := writeScript(b, 20000)
	api := startAPI(b, dbURL, ns)

	rdb := redisClient(b)
	pool := pgPool(b, dbURL)
	bareRedis := serve(b, func(c echo.Context) error {
		v, err := rdb.Get(c.Request().Context(), ns+":orders_by_customer:"+c.QueryParam("customerid")).Bytes()
		if err != nil {
			return err
		}
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, v)
	})
	constant := serve(b, func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, []byte(`{"customerid":42,"count":3}`))
	})
	postgres := serve(b, func(c echo.Context) error {
		var n int64
		err := pool.QueryRow(c.Request().Context(), "SELECT count(*) FROM orders WHERE customerid = $1", c.QueryParam("customerid")).Scan(&n)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"customerid": c.QueryParam("customerid"), "count": n})
	})

	// The machine is shared and its load drifts: the targets take turns in short rounds, and
	// each round's ratio compares neighbours in time.
	targets := []struct{ name, addr string }{
		{"api", api}, {"bare_redis", bareRedis}, {"constant", constant}, {"postgres", postgres},
	}
	rounds := map[string][]load{}
	for round := range 5 {
		for _, target := range targets {
			b.Run(fmt.Sprintf("%s/round=%d", target.name, round), func(b *testing.B) {
				rounds[target.name] = append(rounds[target.name], runWrk(b, wrk, script, "http://"+target.addr, 3*time.Second))
			})
		}
	}
	var ratio, overhead, speedup []float64
	for i := range rounds["api"] {
		ratio = append(ratio, rounds["api"][i].rps/rounds["bare_redis"][i].rps)
		overhead = append(overhead, rounds["bare_redis"][i].rps/rounds["constant"][i].rps)
		speedup = append(speedup, rounds["api"][i].rps/rounds["postgres"][i].rps)
	}
	for _, target := range targets {
		l := medianLoad(rounds[target.name])
		b.Logf("summary: %-10s median %6.0f req/s, p50 %.2f ms, p99 %.2f ms", target.name, l.rps, l.p50ms, l.p99ms)
	}
	b.Logf("summary: api/bare_redis median %.2f (rounds %.2f; bar ≥ 0.9); bare_redis/constant %.2f; api/postgres %.2f×",
		median(ratio), ratio, median(overhead), median(speedup))
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
	wrk := wrkPath(b)
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
	b.Run("api", func(b *testing.B) { cached = runWrk(b, wrk, "", "http://"+api+"/v1/orders/count", 10*time.Second) })
	b.Run("count_per_request", func(b *testing.B) {
		counted = runWrk(b, wrk, "", "http://"+perRequest+"/v1/orders/count", 10*time.Second)
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

// runWrk loads url for d at 50 connections and reports requests/s and latency percentiles. A
// request not answered within 30 s is an error.
func runWrk(b *testing.B, wrk, script, url string, d time.Duration) load {
	b.Helper()
	var l load
	for range b.N {
		args := []string{"-t", "2", "-c", "50", "-d", d.String(), "--timeout", "30s", "--latency"}
		if script != "" {
			args = append(args, "-s", script)
		}
		out, err := exec.Command(wrk, append(args, url)...).CombinedOutput()
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

// writeScript writes a wrk script asking for random customers among ids.
func writeScript(b *testing.B, ids int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "ids.lua")
	script := fmt.Sprintf(`math.randomseed(42)
request = function()
  return wrk.format("GET", "/v1/orders/count?customerid=" .. math.random(1, %d))
end
`, ids)
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// warmAll runs the built-in jobs (or those named) once into a namespace of the benchmark's own.
func warmAll(b *testing.B, dbURL string, only ...string) string {
	b.Helper()
	ns := testenv.Namespace(b)
	ctx := context.Background()
	db, err := query.Open(ctx, dbURL, query.Options{MaxConns: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	keys, _ := cache.NewKeys(ns)
	store, err := cache.Open(testenv.Get(b).RedisURL, keys, cache.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	list, err := jobs.Load("", jobs.Defaults{TTL: 2 * time.Hour, Grace: time.Hour, NegativeTTL: 30 * time.Second, Timeout: 10 * time.Minute, Location: time.UTC}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var selected []jobs.Job
	for _, j := range list {
		if len(only) == 0 || j.Name == only[0] {
			selected = append(selected, j)
		}
	}
	r := jobs.NewRunner(baseservice.NewArchetype(slog.New(slog.DiscardHandler)), db, db, store, jobs.NewMetrics(prometheus.NewRegistry()))
	if err := jobs.Once(ctx, selected, r, db, ns, func(jobs.Job) jobs.Progress { return nil }); err != nil {
		b.Fatal(err)
	}
	return ns
}

// startAPI starts the real api binary on a free port and returns its address.
func startAPI(b *testing.B, dbURL, ns string, environ ...string) string {
	b.Helper()
	env := append([]string{"DATABASE_URL=" + dbURL, "REDIS_URL=" + testenv.Get(b).RedisURL, "CACHE_NAMESPACE=" + ns,
		"CACHE_TTL=2h", "LISTEN_ADDR=127.0.0.1:0"}, environ...)
	return startProcess(b, "api", env, regexp.MustCompile(`"msg":"api_started","addr":"([^"]+)"`))
}

// startProcess starts a binary of the product with env added to the environment, waits for a
// log line matching started and returns the line's first submatch; the process is interrupted
// when the benchmark ends.
func startProcess(b *testing.B, name string, env []string, started *regexp.Regexp) string {
	b.Helper()
	cmd := exec.Command(binary(b, name))
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) //nolint:errcheck // best effort; Wait reaps it
		cmd.Wait()                       //nolint:errcheck // the exit status does not matter here
	})
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		if m := started.FindStringSubmatch(lines.Text()); m != nil {
			go io.Copy(io.Discard, stderr) //nolint:errcheck // draining the log
			return m[len(m)-1]
		}
	}
	b.Fatalf("%s did not start", name)
	return ""
}

// serve runs a reference echo handler on a free port, for the route the benchmark asks for.
func serve(b *testing.B, h echo.HandlerFunc) string {
	b.Helper()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/v1/orders/count", h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: e}
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
