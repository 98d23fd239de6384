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

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// BenchmarkWarm measures the warm bars of the README's Performance section, each scale in one run, side by side:
//
//   - warmer: the real warmer binary, warmer --once --job orders_by_customer (every
//     customer's key), with its wall time, keys/s and peak RSS;
//   - query_alone: the same aggregate statement, rows read and thrown away;
//   - redis_alone: writing as many keys, already encoded, through the same versioned writes;
//   - sweep_alone: the sweep that ends a run (cache.Store.Sweep), over those keys, none to delete;
//   - per_customer: the tutorials' way, one query and one SET per customer, on a sample.
//
// The summary line of each scale gives the ratios: warmer ÷ query_alone (bar: ≤ 1.2) and
// warmer keys/s ÷ per-customer keys/s (bar: ≥ 30).
func BenchmarkWarm(b *testing.B) {
	for _, scale := range []struct{ customers, orders int }{{20000, 12000}, {1000000, 10000000}} {
		b.Run(fmt.Sprintf("customers=%d", scale.customers), func(b *testing.B) {
			dbURL := dataset(b, scale.customers, scale.orders)
			var warm, alone, perCustomer, write, sweep result
			var written string // redis_alone's namespace
			b.Run("warmer", func(b *testing.B) { warm = benchWarmer(b, dbURL) })
			b.Run("query_alone", func(b *testing.B) { alone = benchQueryAlone(b, dbURL) })
			b.Run("redis_alone", func(b *testing.B) { write, written = benchRedisAlone(b, scale.customers) })
			b.Run("sweep_alone", func(b *testing.B) { sweep = benchSweepAlone(b, written, scale.customers) })
			b.Run("per_customer", func(b *testing.B) { perCustomer = benchPerCustomer(b, dbURL, 2000) })
			b.Logf("summary at %d customers: warmer %.2fs (%.0f keys/s, peak RSS %.0f MiB); query alone %.2fs; "+
				"redis writes alone %.2fs; sweep alone %.2fs; warmer/query %.2f (bar ≤ 1.2); warmer/per-customer speed %.0f× (bar ≥ 30)",
				scale.customers, warm.seconds, warm.keysPerSec, warm.rssMiB, alone.seconds, write.seconds, sweep.seconds,
				warm.seconds/alone.seconds, warm.keysPerSec/perCustomer.keysPerSec)
		})
	}
}

type result struct{ seconds, keysPerSec, rssMiB float64 }

func benchWarmer(b *testing.B, dbURL string) result {
	warmer := binary(b, "warmer")
	b.ResetTimer()
	var r result
	for range b.N {
		ns := testenv.Namespace(b)
		cmd := exec.Command(warmer, "--once", "--job", "orders_by_customer", "--no-migrate")
		cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_URL="+testenv.Get(b).RedisURL,
			"CACHE_NAMESPACE="+ns, "LOG_LEVEL=warn")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
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
		r.rssMiB = float64(<-peak) / 1024
		r.keysPerSec = float64(keysWritten(b, ns)) / r.seconds
		b.StartTimer()
	}
	b.ReportMetric(r.keysPerSec, "keys/s")
	b.ReportMetric(r.rssMiB, "peak-RSS-MiB")
	return r
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

func benchRedisAlone(b *testing.B, keys int) (result, string) {
	ns := testenv.Namespace(b)
	k, _ := cache.NewKeys(ns)
	store := testenv.OpenStore(b, testenv.Get(b).RedisURL, k, cache.Options{})
	now := time.Now()
	life := jobs.Lifetime{Policy: jobs.FixedPolicy(10 * time.Minute), Jitter: time.Minute, Grace: time.Hour, Location: time.UTC}
	batch := make([]cache.Item, 0, 1000)
	var r result
	for range b.N {
		started := time.Now()
		for i := 1; i <= keys; i++ {
			key := strconv.Itoa(i)
			fresh, stale := life.Fresh(key, now)
			entry, err := cache.NewEntry(query.CustomerOrders{CustomerID: int64(i), Count: 10}, now.UnixMicro(), now, fresh, stale)
			if err != nil {
				b.Fatal(err)
			}
			batch = append(batch, cache.Item{Key: key, Entry: entry})
			if len(batch) == cap(batch) || i == keys {
				if _, err := store.PutRun(context.Background(), "orders_by_customer", batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		r.seconds = time.Since(started).Seconds()
		r.keysPerSec = float64(keys) / r.seconds
	}
	b.ReportMetric(r.keysPerSec, "keys/s")
	return r, ns
}

// benchSweepAlone sweeps the keys namespace ns holds of orders_by_customer, as a run ends: every
// one is looked at, none deleted (version 0 is older than all).
func benchSweepAlone(b *testing.B, ns string, keys int) result {
	k, _ := cache.NewKeys(ns)
	store := testenv.OpenStore(b, testenv.Get(b).RedisURL, k, cache.Options{})
	var r result
	for range b.N {
		started := time.Now()
		if n, err := store.Sweep(context.Background(), "orders_by_customer", 0); err != nil || n != 0 {
			b.Fatalf("sweep: %d, %v; want none deleted", n, err)
		}
		r.seconds = time.Since(started).Seconds()
		r.keysPerSec = float64(keys) / r.seconds
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
