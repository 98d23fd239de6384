package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
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
	"github.com/warmcache/warmcache/jobs"
)

// BenchmarkCapture measures what capturing changes costs the writers, and how fast their writes
// show, with warmcache's triggers (the default) and with logical decoding
// (CHANGE_CAPTURE=logical), on copies of the dellstore2-sized data set:
//
//   - throughput: pgbench inserts orders of random customers, a transaction each, from 2 clients,
//     in rounds of 4 s that go through three databases in turn: one without warmcache (nothing
//     installed, no warmer), one with the triggers (once as other applications' writes, once
//     without the pg_notify, as the api's) and one with logical decoding, each with its warmer
//     running (and refreshing the keys the inserts change). Before each round the warmers
//     have caught up with the last (each database's total in Redis is SQL's). The ratios are the
//     medians of the rounds' ratios to the round without warmcache. Twice: with every process
//     on both cores ("shared"), and with PostgreSQL's primary and pgbench on one core, warmcache
//     (warmers, Redis) and the streaming replica on the other ("pinned"), as on machines of
//     their own: what the writers' server then pays is the capture itself (the triggers' outbox
//     rows, or the WAL sender decoding for the slot) and the warmers' queries.
//   - cost: in each round, the CPU time of the primary's processes (/proc), from the round's
//     start until the warmer has caught up (work put off is the round's too), per 1,000 writes:
//     in all, of the WAL sender streaming the slot, and of the warmer's connections (those open
//     at the round's start); the writers' backends and PostgreSQL's own workers are the rest.
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
	stores, writers := map[string]*cache.Store{}, map[string]*testenv.Writer{}
	for _, mode := range []string{"triggers", "logical"} {
		stores[mode], writers[mode] = testenv.NamespaceStore(b, namespaces[mode]), testenv.NewWriter(b, dbs[mode], 1)
	}
	writers["none"] = testenv.NewWriter(b, dbs["none"], 1)
	count := regexp.MustCompile(`"count":(\d+)`)
	// settled waits until each warmer has caught up with the writes: its total counts every order.
	settled := func() {
		for _, mode := range []string{"triggers", "logical"} {
			want := strconv.FormatInt(writers[mode].Int("SELECT count(*) FROM orders"), 10)
			deadline := time.Now().Add(2 * time.Minute)
			for {
				e, err := stores[mode].Get(context.Background(), jobs.OrdersTotal, "")
				if m := count.FindSubmatch(e.Body); err == nil && m != nil && string(m[1]) == want {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%s: the warmer did not catch up with the writes in 2 minutes", mode)
				}
				time.Sleep(50 * time.Millisecond) // polling Redis, with a deadline
			}
		}
	}
	primary := findServers(b).primary
	for _, placement := range []string{"shared", "pinned"} {
		if placement == "pinned" {
			unpin := pinServers(b)
			defer unpin()
		}
		tps := map[string][]float64{}
		costs := map[string][]captureCPU{}
		for round := range 5 {
			for _, mode := range []string{"none", "triggers", "quiet", "logical"} {
				settled()
				db, w := dbs[mode], writers[mode]
				if mode == "quiet" {
					db, w = dbs["triggers"], writers["triggers"]
				}
				var cost func() captureCPU
				if w != nil {
					cost = sampleCapture(w, primary)
				}
				cmd := exec.Command(pgbenchPath(b), "-n", "-c", "2", "-j", "2", "-T", "4", "-f", script, db)
				if mode == "quiet" { // the triggers without their pg_notify, as the api's writes
					cmd.Env = append(os.Environ(), "PGOPTIONS=-c warmcache.notify=off")
				}
				if placement == "pinned" {
					cmd = exec.Command("taskset", append([]string{"-c", "0"}, cmd.Args...)...)
				}
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("pgbench round %d on %s: %v\n%s", round, mode, err, out)
				}
				m := tpsLine.FindSubmatch(out)
				if m == nil {
					b.Fatalf("no tps in:\n%s", out)
				}
				v, _ := strconv.ParseFloat(string(m[1]), 64)
				tps[mode] = append(tps[mode], v)
				if cost != nil {
					// Until the warmers have caught up: work put off past the round is the
					// round's too.
					settled()
					c := cost()
					t := transactionsLine.FindSubmatch(out)
					if t == nil {
						b.Fatalf("no transactions in:\n%s", out)
					}
					c.writes, _ = strconv.ParseFloat(string(t[1]), 64)
					costs[mode] = append(costs[mode], c)
				}
			}
		}
		ratio := func(mode string) (float64, []float64) {
			var r []float64
			for i := range tps[mode] {
				r = append(r, math.Round(100*tps[mode][i]/tps["none"][i])/100)
			}
			return median(r), r
		}
		triggers, triggerRounds := ratio("triggers")
		quiet, quietRounds := ratio("quiet")
		logical, logicalRounds := ratio("logical")
		bar("writer throughput, logical capture ÷ without warmcache, "+placement+" cores", logical, 0.95,
			"pgbench inserts at 2 clients, the warmer running, median of 5 rounds")
		b.ReportMetric(median(tps["none"]), "tps-without-"+placement)
		b.ReportMetric(triggers, "ratio-triggers-"+placement)
		b.ReportMetric(logical, "ratio-logical-"+placement)
		b.ReportMetric(quiet, "ratio-triggers-quiet-"+placement)
		b.Logf("summary: capture, %s cores, pgbench inserts at 2 clients, median of 5 rounds: %.0f tps without warmcache, "+
			"%.0f with the triggers (ratio %.2f, rounds %v), %.0f with the triggers without pg_notify (ratio %.2f, rounds %v), "+
			"%.0f with logical decoding (ratio %.2f, rounds %v; goal ≥ 0.95)",
			placement, median(tps["none"]), median(tps["triggers"]), triggers, triggerRounds, median(tps["quiet"]), quiet, quietRounds,
			median(tps["logical"]), logical, logicalRounds)
		for _, mode := range []string{"none", "triggers", "quiet", "logical"} {
			var all, walsender, warmer []float64
			per := func(cpu, writes float64) float64 { return math.Round(1e6 * cpu / writes) } // CPU-ms per 1,000 writes
			for _, c := range costs[mode] {
				all = append(all, per(c.primary, c.writes))
				walsender = append(walsender, per(c.walsender, c.writes))
				warmer = append(warmer, per(c.warmer, c.writes))
			}
			b.ReportMetric(median(all), "primary-cpu-ms-per-1k-writes-"+mode+"-"+placement)
			b.ReportMetric(median(walsender), "walsender-cpu-ms-per-1k-writes-"+mode+"-"+placement)
			b.ReportMetric(median(warmer), "warmer-conns-cpu-ms-per-1k-writes-"+mode+"-"+placement)
			b.Logf("summary: capture, %s cores, %s: the primary's CPU per 1,000 writes, from a round's start until the "+
				"warmer caught up: %.0f ms in all (rounds %v), of which the WAL sender for the slot %.0f ms (rounds %v) "+
				"and the warmer's connections %.0f ms (rounds %v)",
				placement, mode, median(all), all, median(walsender), walsender, median(warmer), warmer)
		}
	}

	for _, mode := range []string{"triggers", "logical"} {
		keys, _ := cache.NewKeys(namespaces[mode])
		w := writers[mode]
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

var (
	tpsLine          = regexp.MustCompile(`tps = ([0-9.]+)`)
	transactionsLine = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
)

// captureCPU is what a round of writes cost the primary's processes, in CPU seconds: all of
// them, the WAL sender streaming warmcache's slot, and the warmer's own connections.
type captureCPU struct{ primary, walsender, warmer, writes float64 }

// sampleCapture starts measuring, on the database w writes to, what its processes of the
// primary (whose postmaster is given) cost until the returned function is called, after the
// writers have gone: the WAL sender of the database's slot, if one streams it, and the warmer's
// connections, those of the database but w's own open then, and those opened since (counted
// whole).
func sampleCapture(w *testenv.Writer, postmaster int) func() captureCPU {
	walsender := int(w.Int(`SELECT COALESCE((SELECT active_pid FROM pg_replication_slots
		WHERE database = current_database() AND active), 0)`))
	connections := func() []int {
		var pids []int
		for _, pid := range strings.Split(w.Text(`SELECT COALESCE(string_agg(pid::text, ','), '') FROM pg_stat_activity
			WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`), ",") {
			if n, err := strconv.Atoi(pid); err == nil {
				pids = append(pids, n)
			}
		}
		return pids
	}
	primary, sender, warmer := cpuOf(postmaster), 0.0, map[int]float64{}
	if walsender > 0 {
		sender = cpuOf(walsender)
	}
	for _, pid := range connections() {
		warmer[pid] = cpuOf(pid)
	}
	return func() captureCPU {
		c := captureCPU{primary: cpuOf(postmaster) - primary}
		if walsender > 0 {
			c.walsender = cpuOf(walsender) - sender
		}
		for _, pid := range connections() {
			c.warmer += cpuOf(pid) - warmer[pid]
			delete(warmer, pid)
		}
		for pid, before := range warmer { // still there, or gone (cpuOf is then 0)
			c.warmer += max(cpuOf(pid)-before, 0)
		}
		return c
	}
}

// redisValue is the bytes at key, empty when it holds none.
func redisValue(b *testing.B, rdb *redis.Client, key string) string {
	b.Helper()
	v, err := rdb.Get(context.Background(), key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		b.Fatal(err)
	}
	return v
}

// pinServers puts PostgreSQL's primary (its postmaster and every process of it) on CPU 0, and
// the replica, Redis and the warmers (this benchmark's processes, children of the test binary)
// on CPU 1, and returns what puts them back on both. New backends inherit their postmaster's.
func pinServers(b *testing.B) func() {
	b.Helper()
	s := findServers(b)
	setAffinity("0", s.primary)
	setAffinity("1", s.replica, s.redis, os.Getpid())
	return func() { setAffinity("0,1", s.primary, s.replica, s.redis, os.Getpid()) }
}

// servers are the process ids of the servers the benchmarks use: PostgreSQL's primary and
// replica (their postmasters) and Redis.
type servers struct{ primary, replica, redis int }

func findServers(b *testing.B) servers {
	b.Helper()
	dataDir := func(dbURL string) string {
		out, err := testenv.Psql(dbURL, "-At", "-c", "SHOW data_directory").Output()
		if err != nil {
			b.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	postmaster := func(dbURL string) int {
		pidFile, err := os.ReadFile(filepath.Join(dataDir(dbURL), "postmaster.pid"))
		if err != nil {
			b.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
		return pid
	}
	info, err := testenv.Redis(b).InfoMap(context.Background(), "server").Result()
	if err != nil {
		b.Fatal(err)
	}
	redisPID, _ := strconv.Atoi(info["Server"]["process_id"])
	return servers{postmaster(testenv.Get(b).AdminURL), postmaster(os.Getenv("TEST_REPLICA_URL")), redisPID}
}

// setAffinity keeps each of pids, and every process it started, on cpus (taskset's list).
func setAffinity(cpus string, pids ...int) {
	for _, p := range pids {
		for _, pid := range processTree(p) {
			exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).Run() //nolint:errcheck // a process gone meanwhile
		}
	}
}

// processTree returns pid and its descendants.
func processTree(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fields := statFields(child)
		if len(fields) > 1 {
			parent, _ := strconv.Atoi(fields[1])
			children[parent] = append(children[parent], child)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// statFields returns the fields of /proc/pid/stat after the process's name (state, ppid, ...;
// utime is the 12th), or none when the process is gone. The name may hold spaces and
// parentheses: the fields start after its last closing parenthesis.
func statFields(pid int) []string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	return strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
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
	// Dropped at the end, its replication slot first: a slot left behind keeps every WAL segment
	// the server writes from then on (one filled this machine's disk).
	b.Cleanup(func() {
		for _, sql := range []string{
			"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '" + name + "'",
			"DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"} {
			testenv.Psql(admin, "-c", sql).Run() //nolint:errcheck // best effort, as the scratch copies'
		}
	})
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
