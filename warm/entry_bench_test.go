package warm_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

// BenchmarkEntry measures the encoding of one per-customer value as a warm run makes it: the
// entry of orders_by_customer's row, its JSON, ETag and lifetimes (warm.Entry).
func BenchmarkEntry(b *testing.B) {
	job := jobs.Job{Name: jobs.OrdersByCustomer, Aggregate: query.OrdersByCustomerAggregate,
		Lifetime: jobs.Lifetime{Policy: jobs.FixedPolicy(10 * time.Minute), Jitter: time.Minute, Grace: time.Hour, Location: time.UTC}}
	now := time.Now()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = strconv.Itoa(i + 1)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		row := query.CustomerOrders{CustomerID: int64(i%len(keys) + 1), Count: int64(i % 17)}
		if _, err := warm.Entry(job, keys[i%len(keys)], row, 1, now); err != nil {
			b.Fatal(err)
		}
	}
}
