package bench

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// BenchmarkRedisMemory measures what the README's "Sizing Redis" says: the Redis memory
// (used_memory, what maxmemory is compared with) each built-in job's values take at 1M customers
// / 10M orders, per key, each job alone in a Redis of its own; then the event stream's, per
// event, as it keeps its last million events.
func BenchmarkRedisMemory(b *testing.B) {
	dbURL := dataset(b, 1000000, 10000000)
	ctx := context.Background()
	db := testenv.OpenDB(b, dbURL, query.Options{MaxConns: 4})
	total := 0.0
	for _, job := range benchJobs(b, "") {
		b.Run(job.Name, func(b *testing.B) {
			store, server, used := ownRedis(b)
			before := used()
			warmOnce(b, db, store, "warmcache", []jobs.Job{job})
			if !job.Keyed() { // one value: its key's size, the rest of used_memory being Redis's own
				size := server.CLI("MEMORY", "USAGE", "warmcache:"+job.Name)
				n, _ := strconv.ParseFloat(size, 64)
				total += n
				b.ReportMetric(n, "bytes/key")
				b.Logf("%s: one key, %s bytes", job.Name, size)
				return
			}
			runs, err := store.Runs(ctx, job.Name)
			if err != nil {
				b.Fatal(err)
			}
			keys, bytes := runs[job.Name].Keys, used()-before
			total += float64(bytes)
			b.ReportMetric(float64(bytes)/float64(keys), "bytes/key")
			b.ReportMetric(float64(keys), "keys")
			b.Logf("%s: %d keys, %.1f MiB, %.0f bytes a key", job.Name, keys, float64(bytes)/(1<<20), float64(bytes)/float64(keys))
		})
	}
	b.Run("events", func(b *testing.B) {
		store, _, used := ownRedis(b)
		before := used()
		const events = 1000000
		batch := make([]query.Change, 1000)
		for i := range events / len(batch) {
			for j := range batch {
				batch[j] = query.Change{ID: int64(i*len(batch) + j), Table: "orders",
					Columns: map[string]string{"customerid": strconv.Itoa(1 + (i*len(batch)+j)%1000000)}}
			}
			if err := store.Publish(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		bytes := used() - before
		b.ReportMetric(float64(bytes)/events, "bytes/event")
		b.Logf("events: the stream's last %d events take %.1f MiB, %.0f bytes an event", events,
			float64(bytes)/(1<<20), float64(bytes)/events)
	})
	b.Logf("every built-in job's values at 1M customers: %.1f MiB", total/(1<<20))
}

// ownRedis starts a Redis of the benchmark's own and returns it, a store on it (namespace
// warmcache), and a function that reads its used_memory.
func ownRedis(b *testing.B) (*cache.Store, *testenv.RedisServer, func() int64) {
	b.Helper()
	server := testenv.NewRedis(b)
	keys, _ := cache.NewKeys("warmcache")
	store := testenv.OpenStore(b, server.URL(), keys, cache.Options{})
	return store, server, func() int64 {
		info, err := store.Info(context.Background())
		if err != nil {
			b.Fatal(fmt.Errorf("info: %w", err))
		}
		return info.UsedMemory
	}
}
