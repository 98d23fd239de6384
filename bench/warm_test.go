package bench

import (
	"bytes"
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
//   - warmer: the real warmer binary, warmer --once --job orders_by_customer (every
//     customer's key), with its wall time, keys/s, peak RSS and the CPU seconds it, PostgreSQL
//     and Redis spent on the run;
//   - the run's stages, each alone: query_alone, the aggregate statement with its rows read and
//     thrown away; encode_alone, the entries of as many rows encoded as the warmer encodes them,
//     kept in memory; redis_alone, those entries written as the warmer writes them (batches of
//     a thousand, two writers); sweep_alone, the sweep that ends a run (cache.Store.Sweep) over
//     those keys, all held by the result;
//   - per_customer: the tutorials' way, one query and one SET per customer, on a sample.
//
// The summary line of each scale gives the ratios; at 1M customers they are bars of the table
// make bench ends with.
func BenchmarkWarm(b *testing.B) {
	for _, scale := range []struct{ customers, orders int }{{20000, 12000}, {1000000, 10000000}} {
		b.Run(fmt.Sprintf("customers=%d", scale.customers), func(b *testing.B) {
			dbURL := dataset(b, scale.customers, scale.orders)
			var warm, alone, encode, write, sweep, perCustomer result
			var encoded [][]cache.Item
			written := testenv.Namespace(b) // redis_alone's, which sweep_alone walks
			b.Run("warmer", func(b *testing.B) { warm = benchWarmer(b, dbURL) })
			b.Run("query_alone", func(b *testing.B) { alone = benchQueryAlone(b, dbURL) })
			b.Run("encode_alone", func(b *testing.B) { encode, encoded = benchEncodeAlone(b, scale.customers) })
			b.Run("redis_alone", func(b *testing.B) { write = benchRedisAlone(b, written, encoded) })
			b.Run("sweep_alone", func(b *testing.B) { sweep = benchSweepAlone(b, written, encoded) })
			b.Run("per_customer", func(b *testing.B) { perCustomer = benchPerCustomer(b, dbURL, 2000) })
			encoded = nil
			slowest := max(alone.seconds, encode.seconds, write.seconds, sweep.seconds)
			b.Logf("summary at %d customers: warmer %.2fs (%.0f keys/s, peak RSS %.0f MiB; CPU s: warmer %.2f, PostgreSQL %.2f, Redis %.2f); "+
				"alone: query %.2fs, encoding %.2fs, Redis writes %.2fs, sweep %.2fs; warmer/query %.2f (bar ≤ 1.5); "+
				"warmer/slowest stage %.2f (bar ≤ 1.2); warmer/per-customer speed %.0f× (bar ≥ 40)",
				scale.customers, warm.seconds, warm.keysPerSec, warm.rssMiB, warm.cpu.warmer, warm.cpu.postgres, warm.cpu.redis,
				alone.seconds, encode.seconds, write.seconds, sweep.seconds, warm.seconds/alone.seconds,
				warm.seconds/slowest, warm.keysPerSec/perCustomer.keysPerSec)
			if scale.customers < 1000000 {
				barAtMost("warmer's peak RSS, 20k customers", warm.rssMiB, 100, "MiB", "warmer --once, every key of orders_by_customer")
				return
			}
			const at = "warmer --once, 1M keys of orders_by_customer"
			barAtMost("warm run ÷ its query alone", warm.seconds/alone.seconds, 1.5, "×", at)
			barAtMost("warm run ÷ its slowest stage alone", warm.seconds/slowest, 1.2, "×", at+"; stages: query, encoding, Redis writes, sweep")
			bar("warm run ÷ per-customer way (keys/s)", warm.keysPerSec/perCustomer.keysPerSec, 40, at+"; one query and one SET per customer")
			barAtMost("warmer's peak RSS, 1M customers", warm.rssMiB, 100, "MiB", at)
		})
	}
}

type result struct {
	seconds, keysPerSec, rssMiB float64
	cpu                         cpuSeconds
}

// cpuSeconds is the CPU time the processes of a run spent on it.
type cpuSeconds struct{ warmer, postgres, redis float64 }

func benchWarmer(b *testing.B, dbURL string) result {
	warmer := binary(b, "warmer")
	servers := findServers(b)
	b.ResetTimer()
	var r result
	for range b.N {
		ns := testenv.Namespace(b)
		cmd := exec.Command(warmer, "--once", "--job", "orders_by_customer", "--no-migrate")
		cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_URL="+testenv.Get(b).RedisURL,
			"CACHE_NAMESPACE="+ns, "LOG_LEVEL=warn")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		pgBefore, redisBefore := cpuOf(servers.primary), cpuOf(servers.redis)
		started := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatalf("warmer: %v", err)
		}
		peak := peakRSS(cmd.Process.Pid)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("warmer: %v\n%s", err, stderr.String())
		}
		r.seconds = time.Since(started).Seconds()
		b.StopTimer()
		r.cpu = cpuSeconds{
			warmer:   (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(),
			postgres: cpuOf(servers.primary) - pgBefore,
			redis:    cpuOf(servers.redis) - redisBefore,
		}
		r.rssMiB = float64(<-peak) / 1024
		r.keysPerSec = float64(keysWritten(b, ns)) / r.seconds
		b.StartTimer()
	}
	b.ReportMetric(r.keysPerSec, "keys/s")
	b.ReportMetric(r.rssMiB, "peak-RSS-MiB")
	b.ReportMetric(r.cpu.warmer, "warmer-CPU-s")
	b.ReportMetric(r.cpu.postgres, "postgres-CPU-s")
	b.ReportMetric(r.cpu.redis, "redis-CPU-s")
	return r
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

// benchRedisAlone writes the encoded batches to Redis in namespace ns as a run does:
// cache.Store.PutRun, two writers at once. (Each write of b.N after the first replaces values.)
func benchRedisAlone(b *testing.B, ns string, batches [][]cache.Item) result {
	var r result
	keys := 0
	for _, batch := range batches {
		keys += len(batch)
	}
	k, _ := cache.NewKeys(ns)
	store := testenv.OpenStore(b, testenv.Get(b).RedisURL, k, cache.Options{})
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

// benchSweepAlone sweeps the keys namespace ns holds of orders_by_customer, as a run ends whose
// result holds them all: every one is looked at, none deleted.
func benchSweepAlone(b *testing.B, ns string, batches [][]cache.Item) result {
	k, _ := cache.NewKeys(ns)
	store := testenv.OpenStore(b, testenv.Get(b).RedisURL, k, cache.Options{})
	var held cache.RunKeys
	for _, batch := range batches {
		for _, it := range batch {
			held.Add(it.Key)
		}
	}
	var r result
	for range b.N {
		started := time.Now()
		if n, err := store.Sweep(context.Background(), jobs.OrdersByCustomer, 0, &held); err != nil || n != 0 {
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

// keysWritten reads how many keys the warmer's run wrote, from its run record.
func keysWritten(b *testing.B, ns string) int64 {
	b.Helper()
	k, _ := cache.NewKeys(ns)
	store := testenv.OpenStore(b, testenv.Get(b).RedisURL, k, cache.Options{})
	runs, err := store.Runs(context.Background(), "orders_by_customer")
	if err != nil {
		b.Fatal(err)
	}
	return runs["orders_by_customer"].Keys
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
