package bench

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/maypok86/otter/v2"
)

// BenchmarkLocalCacheLibraries compares the two maintained Go caches the in-process tier could
// be built on, otter (which it is) and ristretto, on its workload: 1,000,000 keys read through
// a cache of LOCAL_CACHE_SIZE's default, 64 MiB, holding values that weigh 450 bytes (an
// orders_by_customer answer as the tier weighs it), so that about 15% of the keys fit. Two
// goroutines (the machine's cores) read keys drawn with Zipf's law (s = 1.1) or uniformly, and
// keep what they missed, as the api keeps what it read from Redis. After a million reads to fill
// the cache, four million more are timed: ns per read, and the share found in the cache.
func BenchmarkLocalCacheLibraries(b *testing.B) {
	const (
		keys   = 1_000_000
		size   = 64 << 20
		weight = 450
	)
	value := make([]byte, 200)
	libraries := []struct {
		name string
		open func() (get func(string) bool, set func(string))
	}{
		{"otter", func() (func(string) bool, func(string)) {
			c := otter.Must(&otter.Options[string, []byte]{
				MaximumWeight: size,
				Weigher:       func(string, []byte) uint32 { return weight },
			})
			return func(k string) bool { _, ok := c.GetIfPresent(k); return ok },
				func(k string) { c.Set(k, value) }
		}},
		{"ristretto", func() (func(string) bool, func(string)) {
			c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
				NumCounters: 10 * size / weight, // ten counters a value held, as its documentation advises
				MaxCost:     size,
				BufferItems: 64,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(c.Close)
			return func(k string) bool { _, ok := c.Get(k); return ok },
				func(k string) { c.Set(k, value, weight) }
		}},
	}
	for _, dist := range []string{"zipf", "uniform"} {
		draws := drawKeys(dist, keys, 5_000_000)
		for _, lib := range libraries {
			b.Run(dist+"/"+lib.name, func(b *testing.B) {
				for range b.N {
					get, set := lib.open()
					read := func(part []string) (hits int64) {
						var wg sync.WaitGroup
						var found atomic.Int64
						for half := range 2 {
							wg.Go(func() {
								n := int64(0)
								for _, k := range part[half*len(part)/2 : (half+1)*len(part)/2] {
									if get(k) {
										n++
									} else {
										set(k)
									}
								}
								found.Add(n)
							})
						}
						wg.Wait()
						return found.Load()
					}
					read(draws[:1_000_000])
					timed := draws[1_000_000:]
					started := time.Now()
					hits := read(timed)
					elapsed := time.Since(started)
					b.ReportMetric(float64(elapsed.Nanoseconds())/float64(len(timed)), "ns/read")
					b.ReportMetric(float64(hits)/float64(len(timed)), "hit-ratio")
					b.Logf("summary: %-7s %-9s %5.1f ns/read, hit ratio %.3f", dist, lib.name,
						float64(elapsed.Nanoseconds())/float64(len(timed)), float64(hits)/float64(len(timed)))
				}
			})
		}
	}
}

// drawKeys draws n keys among keys, with Zipf's law (s = 1.1) over shuffled ranks or uniformly.
func drawKeys(dist string, keys, n int) []string {
	r := rand.New(rand.NewPCG(42, 2))
	names := make([]string, keys)
	for i := range names {
		names[i] = "orders_by_customer:" + strconv.Itoa(i+1)
	}
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	zipf := rand.NewZipf(r, 1.1, 1, uint64(keys-1))
	draws := make([]string, n)
	for i := range draws {
		switch dist {
		case "zipf":
			draws[i] = names[zipf.Uint64()]
		default:
			draws[i] = names[r.IntN(keys)]
		}
	}
	return draws
}
