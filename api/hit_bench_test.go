package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHit measures the handler's cost of a cached read served from the in-process tier,
// without the network: a small value (a customer's count, 30 bytes), which is never compressed,
// and a large one (a user's job of 8 KiB), with and without Accept-Encoding: gzip. Run it with
// scripts/servers exec go test -run '^$' -bench BenchmarkHit ./api.
func BenchmarkHit(b *testing.B) {
	f := newFixture(b, fixtureOptions{jobs: `jobs:
  big:
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT string_agg(customerid::text || ':' || username, ',') AS users FROM customers WHERE customerid <= 700
`})
	f.warm()
	h := f.srv.Handler()
	for _, tc := range []struct {
		name, path, encoding string
	}{
		{"small", "/v1/orders/count?customerid=42", ""},
		{"small_gzip_asked", "/v1/orders/count?customerid=42", "gzip, deflate, br"},
		{"large", "/v1/results/big", ""},
		{"large_gzip", "/v1/results/big", "gzip, deflate, br"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.encoding != "" {
				req.Header.Set("Accept-Encoding", tc.encoding)
			}
			// Until the tier has subscribed and holds the value, reads go to Redis.
			for range 1000 {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", tc.path, w.Code, w.Body)
				}
			}
		})
	}
}
