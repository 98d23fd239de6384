package api

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/readthrough"
)

// TestLocalTierStaysWithinItsSize fills an in-process tier of 32 MiB with answers to a million
// distinct keys, as the api keeps them after reading them from Redis: what the process's heap
// holds afterwards, the tier's whole cost, stays within the size, and the tier holds as many
// answers as the size allows.
func TestLocalTierStaysWithinItsSize(t *testing.T) {
	const size = 32 << 20
	keys, err := cache.NewKeys("warmcache")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: Config{Keys: keys}, surrogateSeparator: " "}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	local := readthrough.NewLocal[*answer](size, time.Hour, []string{"orders_by_customer"}, time.Now, prometheus.NewRegistry())
	local.Subscribed()
	weight := 0
	for i := range 1_000_000 {
		key := strconv.Itoa(i + 1)
		now := time.Now()
		e, err := cache.NewEntry(json.RawMessage(fmt.Sprintf(`{"customerid":%d,"count":%d}`, i+1, i%9)), 1, now, now.Add(time.Hour), now.Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// As read from Redis: the body sits behind the entry's header, in one buffer.
		stored := make([]byte, 52+len(e.Body))
		e.Body = stored[52+copy(stored[52:], e.Body)-len(e.Body):]
		a := s.newAnswer(e, "orders_by_customer", key)
		weight = a.weight()
		local.Set("orders_by_customer", key, local.Token(), a, weight, e.FreshUntil)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := 0
	for i := range 1_000_000 {
		if _, ok := local.Get("orders_by_customer", strconv.Itoa(i+1)); ok {
			held++
		}
	}
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d answers of %d bytes by the tier's count; the heap grew by %.1f MiB, %d bytes an answer",
		held, weight, float64(grown)/(1<<20), grown/int64(max(held, 1)))
	if grown > size {
		t.Errorf("the heap grew by %.1f MiB for a tier of %d MiB", float64(grown)/(1<<20), size>>20)
	}
	if held < size/weight*9/10 {
		t.Errorf("the tier holds %d answers of %d bytes, want about %d", held, weight, size/weight)
	}
	runtime.KeepAlive(local)
}
