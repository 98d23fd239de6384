package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/testenv"
)

// BenchmarkCapture measures what capturing changes costs the writers, and how fast their writes
// show, with warmcache's triggers (the default) and with logical decoding
// (CHANGE_CAPTURE=logical), on copies of the dellstore2-sized data set:
//
//   - throughput: pgbench inserts orders of random customers, a transaction each, from 2 clients,
//     in rounds of 4 s that go through three databases in turn: one without warmcache (nothing
//     installed, no warmer), one with the triggers and one with logical decoding, each with its
//     warmer running (and refreshing the keys the inserts change). The ratios are the medians of
//     the rounds' ratios to the round without warmcache.
//   - visible: with each warmer, 100 orders inserted in SQL one at a time, every 50 ms, and the
//     time from the commit until Redis holds the customer's new count and the new total.
func BenchmarkCapture(b *testing.B) {
	for range b.N {
		benchCapture(b)
	}
}

func benchCapture(b *testing.B) {
	const customers, orders = 20000, 12000
	source := dataset(b, customers, orders)
	dbs := map[string]string{}
	for _, mode := range []string{"none", "triggers", "logical"} {
		dbs[mode] = copyAs(b, source, "capture_"+mode)
	}
	rdb := testenv.Redis(b)
	namespaces := map[string]string{}
	for _, mode := range []string{"triggers", "logical"} {
		namespaces[mode] = testenv.Namespace(b)
		env := []string{"DATABASE_URL=" + dbs[mode], "REDIS_URL=" + testenv.Get(b).RedisURL,
			"CACHE_NAMESPACE=" + namespaces[mode], "CACHE_TTL=2h", "CHANGE_CAPTURE=" + mode}
		startWarmerWarm(b, env, 4)
	}

	script := testenv.WriteFile(b, "insert.sql", fmt.Sprintf(`\set c random(1, %d)
INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2026-11-21', :c, 12.34, 1.02, 13.36);
`, customers))
	tps := map[string][]float64{}
	for round := range 5 {
		for _, mode := range []string{"none", "triggers", "logical"} {
			out, err := exec.Command(pgbenchPath(b), "-n", "-c", "2", "-j", "2", "-T", "4", "-f", script, dbs[mode]).CombinedOutput()
			if err != nil {
				b.Fatalf("pgbench round %d on %s: %v\n%s", round, mode, err, out)
			}
			m := tpsLine.FindSubmatch(out)
			if m == nil {
				b.Fatalf("no tps in:\n%s", out)
			}
			v, _ := strconv.ParseFloat(string(m[1]), 64)
			tps[mode] = append(tps[mode], v)
		}
	}
	ratio := func(mode string) (float64, []float64) {
		var r []float64
		for i := range tps[mode] {
			r = append(r, tps[mode][i]/tps["none"][i])
		}
		return median(r), r
	}
	triggers, triggerRounds := ratio("triggers")
	logical, logicalRounds := ratio("logical")
	b.ReportMetric(median(tps["none"]), "tps-without")
	b.ReportMetric(triggers, "ratio-triggers")
	b.ReportMetric(logical, "ratio-logical")
	b.Logf("summary: capture, pgbench inserts at 2 clients, median of 5 rounds: %.0f tps without warmcache, "+
		"%.0f with the triggers (ratio %.2f, rounds %.2f), %.0f with logical decoding (ratio %.2f, rounds %.2f; goal ≥ 0.95)",
		median(tps["none"]), median(tps["triggers"]), triggers, triggerRounds, median(tps["logical"]), logical, logicalRounds)

	for _, mode := range []string{"triggers", "logical"} {
		keys, _ := cache.NewKeys(namespaces[mode])
		w := testenv.NewWriter(b, dbs[mode], 1)
		r := rand.New(rand.NewPCG(3, 4))
		visible := map[string][]time.Duration{}
		for range 100 {
			customer := strconv.Itoa(1 + r.IntN(customers))
			watched := map[string]string{"orders_by_customer": keys.Value("orders_by_customer", customer),
				"orders_total": keys.Value("orders_total", "")}
			before := map[string]string{}
			for name, key := range watched {
				before[name] = redisValue(b, rdb, key)
			}
			w.MustExec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2026-11-21', " +
				customer + ", 12.34, 1.02, 13.36)")
			committed := time.Now()
			for name, key := range watched {
				for redisValue(b, rdb, key) == before[name] {
					if time.Since(committed) > 10*time.Second {
						b.Fatalf("%s: %s not written 10 s after the insert", mode, name)
					}
					time.Sleep(time.Millisecond) // polling Redis, with a deadline
				}
				visible[name] = append(visible[name], time.Since(committed))
			}
			time.Sleep(50 * time.Millisecond) // pacing: an order every 50 ms
		}
		line := "summary: capture, " + mode + ", write to Redis:"
		for _, name := range []string{"orders_by_customer", "orders_total"} {
			at := visible[name]
			slices.Sort(at)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(at[49]), "p50-ms-"+mode+"-"+name)
			b.ReportMetric(ms(at[98]), "p99-ms-"+mode+"-"+name)
			line += fmt.Sprintf(" %s p50 %.1f ms, p99 %.1f ms;", name, ms(at[49]), ms(at[98]))
		}
		b.Log(strings.TrimSuffix(line, ";"))
	}
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+)`)

// redisValue is the bytes at key, empty when it holds none.
func redisValue(b *testing.B, rdb *redis.Client, key string) string {
	b.Helper()
	v, err := rdb.Get(context.Background(), key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		b.Fatal(err)
	}
	return v
}

// copyAs makes a copy of the database of dbURL called name, dropped first if it exists (it is
// kept after the benchmark, for a look), and returns its URL.
func copyAs(b *testing.B, dbURL, name string) string {
	b.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	source := strings.TrimPrefix(u.Path, "/")
	admin := testenv.Get(b).AdminURL
	// A template must have no connections: the data set's pool may hold some.
	for _, sql := range []string{"DROP DATABASE IF EXISTS " + name + " WITH (FORCE)",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + source + "' AND pid <> pg_backend_pid()",
		"CREATE DATABASE " + name + " TEMPLATE " + source} {
		psql(b, admin, sql)
	}
	u.Path = "/" + name
	return u.String()
}

// pgbenchPath finds pgbench: on the PATH, or beside the server's binaries.
func pgbenchPath(b *testing.B) string {
	b.Helper()
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	out, err := exec.Command("pg_config", "--bindir").Output()
	if err != nil {
		b.Fatalf("pgbench is not installed: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "pgbench")
}
