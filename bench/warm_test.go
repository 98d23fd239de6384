package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

// BenchmarkWarm measures the warm bars (docs/performance.md, "Against the warm bars"), each
// scale in one run, side by side:
//
//   - warmer: the real warmer binary running orders_by_customer (every customer's key) alone, a
//     run a second after the last: its first run, at its start, into a namespace Redis holds
//     nothing of, and the run after it, which replaces those values; for each its time, keys/s
//     and the CPU seconds it, PostgreSQL and Redis spent, and the warmer's peak RSS;
//   - the runs' stages, each alone: query_alone, the aggregate statement with its rows read and
//     thrown away; encode_alone, the entries of as many rows encoded as the warmer encodes them,
//     kept in memory; redis_alone, those entries written as the warmer writes them (batches of
//     a thousand, two writers) into an empty namespace; sweep_alone, the sweep that ends such a
//     run (cache.Store.Sweep), whose result holds every key; redis_again and sweep_again, the
//     same for the next run, which replaces the values, from a newer snapshot;
//   - per_customer: the tutorials' way, one query and one SET per customer, on a sample.
//
// The summary line of each scale gives the ratios; at 1M customers they are bars of the table
// make bench ends with.
func BenchmarkWarm(b *testing.B) {
	for _, scale := range []struct{ customers, orders int }{{20000, 12000}, {1000000, 10000000}} {
		b.Run(fmt.Sprintf("customers=%d", scale.customers), func(b *testing.B) {
			dbURL := dataset(b, scale.customers, scale.orders)
			var first, next, alone, encode, write, sweep, rewrite, resweep, perCustomer result
			var encoded [][]cache.Item
			// The store of the stages alone: it sweeps the runs it wrote, as the warmer's does.
			keys, _ := cache.NewKeys(testenv.Namespace(b))
			store := testenv.OpenStore(b, testenv.Get(b).RedisURL, keys, cache.Options{})
			b.Run("warmer", func(b *testing.B) { first, next = benchWarmer(b, dbURL) })
			b.Run("query_alone", func(b *testing.B) { alone = benchQueryAlone(b, dbURL) })
			b.Run("encode_alone", func(b *testing.B) { encode, encoded = benchEncodeAlone(b, scale.customers) })
			b.Run("redis_alone", func(b *testing.B) { write = benchRedisAlone(b, store, encoded) })
			b.Run("sweep_alone", func(b *testing.B) { sweep = benchSweepAlone(b, store, encoded) })
			for _, batch := range encoded { // the next run's entries: a newer snapshot
				for i := range batch {
					batch[i].Entry.Position++
					batch[i].Entry.ComputedAt = batch[i].Entry.ComputedAt.Add(time.Second)
				}
			}
			b.Run("redis_again", func(b *testing.B) { rewrite = benchRedisAlone(b, store, encoded) })
			b.Run("sweep_again", func(b *testing.B) { resweep = benchSweepAlone(b, store, encoded) })
			b.Run("per_customer", func(b *testing.B) { perCustomer = benchPerCustomer(b, dbURL, 2000) })
			encoded = nil
			slowestFirst := max(alone.seconds, encode.seconds, write.seconds, sweep.seconds)
			slowestNext := max(alone.seconds, encode.seconds, rewrite.seconds, resweep.seconds)
			for _, r := range []struct {
				name    string
				run     result
				slowest float64
			}{{"first run", first, slowestFirst}, {"next run", next, slowestNext}} {
				b.Logf("%s at %d customers: %.2fs (%.0f keys/s; CPU s: warmer %.2f, PostgreSQL %.2f, Redis %.2f); "+
					"÷ query alone %.2f (bar ≤ 1.5); ÷ slowest stage alone %.2f (bar ≤ 1.2); ÷ per-customer speed %.0f× (bar ≥ 40)",
					r.name, scale.customers, r.run.seconds, r.run.keysPerSec, r.run.cpu.warmer, r.run.cpu.postgres, r.run.cpu.redis,
					r.run.seconds/alone.seconds, r.run.seconds/r.slowest, r.run.keysPerSec/perCustomer.keysPerSec)
			}
			b.Logf("stages alone at %d customers: query %.2fs, encoding %.2fs; first run: Redis writes %.2fs, sweep %.2fs; "+
				"next run: Redis writes %.2fs, sweep %.2fs; warmer's peak RSS %.0f MiB",
				scale.customers, alone.seconds, encode.seconds, write.seconds, sweep.seconds, rewrite.seconds, resweep.seconds, next.rssMiB)
			if scale.customers < 1000000 {
				barAtMost("warmer's peak RSS, 20k customers", next.rssMiB, 100, "MiB", "the warmer running orders_by_customer, two runs")
				return
			}
			const at = "1M keys of orders_by_customer, "
			firstAt, nextAt := at+"the warmer's first run", at+"the run after it"
			barAtMost("warm run ÷ its query alone", first.seconds/alone.seconds, 1.5, "×", firstAt)
			barAtMost("warm run ÷ its query alone", next.seconds/alone.seconds, 1.5, "×", nextAt)
			barAtMost("warm run ÷ its slowest stage alone", first.seconds/slowestFirst, 1.2, "×",
				firstAt+"; stages: query, encoding, Redis writes, sweep")
			barAtMost("warm run ÷ its slowest stage alone", next.seconds/slowestNext, 1.2, "×",
				nextAt+"; stages: query, encoding, Redis writes, sweep")
			bar("warm run ÷ per-customer way (keys/s)", first.keysPerSec/perCustomer.keysPerSec, 40,
				firstAt+"; one query and one SET per customer")
			bar("warm run ÷ per-customer way (keys/s)", next.keysPerSec/perCustomer.keysPerSec, 40,
				nextAt+"; one query and one SET per customer")
			barAtMost("warmer's peak RSS, 1M customers", next.rssMiB, 100, "MiB", at+"two runs")
		})
	}
}

type result struct {
	seconds, keysPerSec, rssMiB float64
	cpu                         cpuSeconds
}

// cpuSeconds is the CPU time the processes of a run spent on it.
type cpuSeconds struct{ warmer, postgres, redis float64 }

// warmerJobs has the warmer run orders_by_customer alone, a run a second after the last ends.
const warmerJobs = `
jobs:
  orders_by_customer: {schedule: "@every 1s"}
  orders_total: {enabled: false}
  credit_by_customer: {enabled: false}
  credit_overview: {enabled: false}
`

// benchWarmer starts the warmer on warmerJobs and measures its first two runs, as its log tells
// their start and end: the time each took (duration_ms), and the CPU time of the warmer and the
// servers between those lines. Both carry the warmer's peak RSS.
func benchWarmer(b *testing.B, dbURL string) (first, next result) {
	warmer := binary(b, "warmer")
	servers := findServers(b)
	jobsFile := testenv.JobsFile(b, warmerJobs)
	started := regexp.MustCompile(`"msg":"job_started","job":"orders_by_customer"`)
	ended := regexp.MustCompile(`"msg":"job_(finished|failed)","job":"orders_by_customer".*"keys":(\d+),"duration_ms":(\d+)`)
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(warmer, "--no-migrate")
		cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_URL="+testenv.Get(b).RedisURL,
			"CACHE_NAMESPACE="+testenv.Namespace(b), "JOBS_FILE="+jobsFile, "ADMIN_ADDR=127.0.0.1:0")
		lines := testenv.StartLogged(b, cmd)
		peak := peakRSS(cmd.Process.Pid)
		run := func() result {
			if lines.Find(started) == nil {
				b.Fatal("the warmer ended before its run started")
			}
			warmerBefore, pgBefore, redisBefore := cpuOf(cmd.Process.Pid), cpuOf(servers.primary), cpuOf(servers.redis)
			m := lines.Find(ended)
			switch {
			case m == nil:
				b.Fatal("the warmer ended before its run finished")
			case m[1] == "failed":
				b.Fatalf("the run failed: %s", m[0])
			}
			r := result{cpu: cpuSeconds{
				warmer:   cpuOf(cmd.Process.Pid) - warmerBefore,
				postgres: cpuOf(servers.primary) - pgBefore,
				redis:    cpuOf(servers.redis) - redisBefore,
			}}
			keys, _ := strconv.ParseFloat(m[2], 64)
			ms, _ := strconv.ParseFloat(m[3], 64)
			r.seconds = ms / 1000
			r.keysPerSec = keys / r.seconds
			return r
		}
		first, next = run(), run()
		b.StopTimer()
		lines.Discard()
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			b.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("warmer: %v", err)
		}
		first.rssMiB = float64(<-peak) / 1024
		next.rssMiB = first.rssMiB
		b.StartTimer()
	}
	b.ReportMetric(first.seconds, "first-run-s")
	b.ReportMetric(next.seconds, "next-run-s")
	b.ReportMetric(next.rssMiB, "peak-RSS-MiB")
	b.ReportMetric(next.cpu.warmer, "next-warmer-CPU-s")
	b.ReportMetric(next.cpu.postgres, "next-postgres-CPU-s")
	b.ReportMetric(next.cpu.redis, "next-redis-CPU-s")
	return first, next
}

// cpuOf returns the CPU seconds the process pid and its descendants have spent, the children
// it has reaped included (a PostgreSQL backend's, once its connection closed), from the
// kernel's counters in clock ticks (100 a second on Linux).
func cpuOf(pid int) float64 {
	const ticksPerSecond = 100
	var ticks int64
	for _, p := range processTree(pid) {
		fields := statFields(p)
		if len(fields) < 15 {
			continue // gone meanwhile
		}
		for _, f := range fields[11:15] { // utime stime cutime cstime
			n, _ := strconv.ParseInt(f, 10, 64)
			ticks += n
		}
	}
	return float64(ticks) / ticksPerSecond
}

func benchQueryAlone(b *testing.B, dbURL string) result {
	db := testenv.OpenDB(b, dbURL, query.Options{MaxConns: 2})
	var r result
	for range b.N {
		rows := 0
		started := time.Now()
		_, err := db.Stream(context.Background(), query.OrdersByCustomerAggregate, query.Params{}, func(query.Row) error {
			rows++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		r.seconds = time.Since(started).Seconds()
		r.keysPerSec = float64(rows) / r.seconds
	}
	b.ReportMetric(r.keysPerSec, "rows/s")
	return r
}

// benchEncodeAlone encodes the entries of keys rows of orders_by_customer as a run does
// (warm.Entry), in batches of a thousand, and returns them.
func benchEncodeAlone(b *testing.B, keys int) (result, [][]cache.Item) {
	job := jobs.Job{Name: jobs.OrdersByCustomer, Aggregate: query.OrdersByCustomerAggregate,
		Lifetime: jobs.Lifetime{Policy: jobs.FixedPolicy(10 * time.Minute), Jitter: time.Minute, Grace: time.Hour, Location: time.UTC}}
	var r result
	var batches [][]cache.Item
	for range b.N {
		batches = batches[:0]
		now := time.Now()
		started := time.Now()
		batch := make([]cache.Item, 0, 1000)
		for i := 1; i <= keys; i++ {
			row := query.CustomerOrders{CustomerID: int64(i), Count: 10}
			key := strconv.FormatInt(row.CustomerID, 10)
			entry, err := warm.Entry(job, key, row, now.UnixMicro(), now)
			if err != nil {
				b.Fatal(err)
			}
			if batch = append(batch, cache.Item{Key: key, Entry: entry}); len(batch) == cap(batch) || i == keys {
				batches = append(batches, batch)
				batch = make([]cache.Item, 0, 1000)
			}
		}
		r.seconds = time.Since(started).Seconds()
		r.keysPerSec = float64(keys) / r.seconds
	}
	b.ReportMetric(r.keysPerSec, "keys/s")
	return r, batches
}

// benchRedisAlone writes the encoded batches to Redis through store as a run does:
// cache.Store.PutRun, two writers at once.
func benchRedisAlone(b *testing.B, store *cache.Store, batches [][]cache.Item) result {
	var r result
	keys := 0
	for _, batch := range batches {
		keys += len(batch)
	}
	for range b.N {
		next := make(chan []cache.Item)
		var g errgroup.Group
		for range 2 {
			g.Go(func() error {
				for batch := range next {
					if _, err := store.PutRun(context.Background(), jobs.OrdersByCustomer, batch); err != nil {
						return err
					}
				}
				return nil
			})
		}
		started := time.Now()
		for _, batch := range batches {
			next <- batch
		}
		close(next)
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		r.seconds = time.Since(started).Seconds()
		r.keysPerSec = float64(keys) / r.seconds
	}
	b.ReportMetric(r.keysPerSec, "keys/s")
	return r
}

// benchSweepAlone sweeps the keys of orders_by_customer through store, as the run that wrote
// batches ends, its result holding them all: none is deleted.
func benchSweepAlone(b *testing.B, store *cache.Store, batches [][]cache.Item) result {
	var held cache.RunKeys
	for _, batch := range batches {
		for _, it := range batch {
			held.Add(it.Key)
		}
	}
	position := batches[0][0].Entry.Position
	var r result
	for range b.N {
		started := time.Now()
		if n, err := store.Sweep(context.Background(), jobs.OrdersByCustomer, position, &held); err != nil || n != 0 {
			b.Fatalf("sweep: %d, %v; want none deleted", n, err)
		}
		r.seconds = time.Since(started).Seconds()
		r.keysPerSec = float64(held.Len()) / r.seconds
	}
	b.ReportMetric(r.keysPerSec, "keys/s")
	return r
}

// benchPerCustomer is the tutorials' way: for each customer, one COUNT query and one SET.
func benchPerCustomer(b *testing.B, dbURL string, sample int) result {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	rdb := testenv.Redis(b)
	ns := testenv.Namespace(b)
	var r result
	for range b.N {
		started := time.Now()
		for id := 1; id <= sample; id++ {
			var n int64
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders WHERE customerid = $1", id).Scan(&n); err != nil {
				b.Fatal(err)
			}
			if err := rdb.Set(ctx, ns+":num_orders:"+strconv.Itoa(id), n, time.Hour).Err(); err != nil {
				b.Fatal(err)
			}
		}
		r.seconds = time.Since(started).Seconds()
		r.keysPerSec = float64(sample) / r.seconds
	}
	b.ReportMetric(r.keysPerSec, "keys/s")
	return r
}

var hwmLine = regexp.MustCompile(`(?m)^VmHWM:\s+(\d+) kB$`)

// peakRSS follows the peak resident size of the process pid, in KiB, until it exits, and then
// sends it. It reads the kernel's high-water mark of the process's memory (VmHWM) every few
// milliseconds: the rusage of a child started by os/exec would also count the parent's own peak,
// whose memory the child shared until it ran its program.
func peakRSS(pid int) <-chan int64 {
	peak := make(chan int64, 1)
	go func() {
		var kib int64
		for {
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			m := hwmLine.FindSubmatch(status)
			if err != nil || m == nil {
				peak <- kib
				return
			}
			kib, _ = strconv.ParseInt(string(m[1]), 10, 64)
			time.Sleep(5 * time.Millisecond) // sampling the process while it runs
		}
	}()
	return peak
}
