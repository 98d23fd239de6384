package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
)

// abuseJobs are users' keyed jobs: one keyed by text, one by date.
const abuseJobs = `
jobs:
  customers_by_city:
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT city, count(*) AS customers FROM customers GROUP BY city
    key: "{city}"
  orders_by_date:
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT orderdate, count(*) AS orders FROM orders GROUP BY orderdate
    key: "{orderdate}"
`

// TestHostileClients makes the requests a hostile or careless client can make, and checks each
// against the bound a user of the api would see: the answer's status and size, the series of
// /metrics, the PostgreSQL queries made, what Redis keeps, and what the log keeps.
func TestHostileClients(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		test func(t *testing.T)
	}{
		{"methods of every name make one series", testUnknownMethods},
		{"a megabyte of method or of key is refused unread", testHugeRequests},
		{"a flood of unknown ids", testUnknownIDFlood},
		{"keys too long, not UTF-8, or of the wrong type", testBadKeys},
		{"reads of one key with Redis down share one query", testBypassStampede},
		{"an order whose total overflows", testOverflowingOrder},
		{"a body too large without a length", testChunkedBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t)
		})
	}
}

// testUnknownMethods sends requests with 200 made-up methods: the latency metric gets one
// series for all of them (OTHER), not one each, and /metrics does not grow with them.
func testUnknownMethods(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.do("MADEUP", "/v1/orders/count", nil) // the OTHER series, once
	before := f.metricsSize()
	for i := range 200 {
		method := fmt.Sprintf("M%d-%x", i, rand.Uint64())
		if res := f.do(method, "/v1/orders/count", nil); res.status != http.StatusMethodNotAllowed {
			t.Fatalf("%s /v1/orders/count: %d, want 405", method, res.status)
		}
	}
	metrics := f.adminGet("/metrics").body
	// The counts of the series grow by a few digits; a series of a method takes 1.5 KiB.
	if grown := len(metrics) - before; grown > 512 || strings.Contains(metrics, `method="M1-`) {
		t.Errorf("/metrics grew by %d bytes with 200 made-up methods, want the OTHER series alone to count them", grown)
	}
}

// testHugeRequests sends a request line of a megabyte, as a method and as a key: the api
// answers 431 without reading it all, and remembers nothing of it.
func testHugeRequests(t *testing.T) {
	f := newFixture(t, fixtureOptions{jobs: abuseJobs})
	before := f.metricsSize()
	huge := strings.Repeat("A", 1<<20)
	for _, line := range []string{huge + " /v1/orders/count HTTP/1.1", "GET /v1/results/customers_by_city/" + huge + " HTTP/1.1"} {
		if status := rawStatus(t, f.http.Listener.Addr().String(), line); status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a request line of %d bytes: %d, want 431", len(line), status)
		}
	}
	if grown := len(f.adminGet("/metrics").body) - before; grown > 512 {
		t.Errorf("/metrics grew by %d bytes", grown)
	}
	if keys := testenv.Keys(t, f.ns, "customers_by_city"); len(keys) > 0 {
		t.Errorf("Redis holds %d keys of customers_by_city, want none", len(keys))
	}
}

// metricsSize is the size of /metrics, once its own series exist: a scrape's latency is observed
// after it is answered, so the first scrape's series shows from the second on.
func (f *fixture) metricsSize() int {
	f.adminGet("/metrics")
	return len(f.adminGet("/metrics").body)
}

// rawStatus sends line as a request's first line on a connection of its own, and returns the
// status of the answer. The request is written while the answer is read: a server that refuses
// it answers before it is all sent.
func rawStatus(t *testing.T, addr, line string) int {
	t.Helper()
	conn, err := new(net.Dialer).DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go io.WriteString(conn, line+"\r\nHost: test\r\n\r\n") //nolint:errcheck // the server may close first
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("answer to a request of %d bytes: %v", len(line), err)
	}
	res.Body.Close()
	return res.StatusCode
}

// testUnknownIDFlood reads 1,000 customers that do not exist, each twice, eight at a time: one
// PostgreSQL query each (the second read is a cached 404), no key kept in the touched set, and
// what Redis keeps is the negative entries alone, for CACHE_NEGATIVE_TTL and its grace.
func testUnknownIDFlood(t *testing.T) {
	f := newFixture(t, fixtureOptions{noLocal: true})
	const ids = 1000
	next := make(chan int)
	go func() {
		defer close(next)
		for range ids {
			next <- 1_000_000 + rand.IntN(1_000_000_000)
		}
	}()
	var wg sync.WaitGroup
	distinct := sync.Map{}
	for range 8 {
		wg.Go(func() {
			for id := range next {
				distinct.Store(id, true)
				for _, want := range []string{miss, hit} {
					res := f.fetch(t, http.MethodGet, "/v1/orders/count?customerid="+strconv.Itoa(id), nil, "")
					if res.status != http.StatusNotFound || res.header.Get("X-Cache") != want && want == hit {
						t.Errorf("unknown customer %d: %d %s, want 404 %s", id, res.status, res.header.Get("X-Cache"), want)
					}
				}
			}
		})
	}
	wg.Wait()
	n := 0
	distinct.Range(func(any, any) bool { n++; return true })
	if q := f.queries(); q != n {
		t.Errorf("%d reads of %d unknown customers made %d queries, want %d", 2*n, n, q, n)
	}
	rdb := testenv.Redis(t)
	ctx := context.Background()
	if touched := rdb.ZCard(ctx, f.ns+":_touched:"+jobs.OrdersByCustomer).Val(); touched > 0 {
		t.Errorf("the touched set holds %d keys, want none: unknown ids are not kept for an hour", touched)
	}
	var memory int64
	keys := rdb.Keys(ctx, f.ns+":*").Val()
	for _, k := range keys {
		memory += rdb.MemoryUsage(ctx, k).Val()
		if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("%s is kept for %s, want at most CACHE_NEGATIVE_TTL and as long again (a minute)", k, ttl)
		}
	}
	// An entry is 52 bytes of header and a body of 40; Redis adds about as much again per key.
	if perID := memory / int64(n); len(keys) > n || perID > 256 {
		t.Errorf("%d unknown ids left %d keys of %d bytes in Redis (%d a key), want at most one key of 256 bytes each",
			n, len(keys), memory, perID)
	}
	t.Logf("%d unknown ids: %d queries, %d keys in Redis, %d bytes (%d an id), each for a minute at most",
		n, f.queries(), len(keys), memory, memory/int64(n))
}

// testBadKeys asks for keys that cannot name a row: longer than 256 bytes, not UTF-8, with a
// control character, or text the key column's type cannot read. Each is a short 400, nothing
// is kept in Redis, no statement but the conversion reaches PostgreSQL, and nothing long is
// logged.
func testBadKeys(t *testing.T) {
	var log logBuffer
	f := newFixture(t, fixtureOptions{jobs: abuseJobs, logger: slog.New(slog.NewJSONHandler(&log,
		&slog.HandlerOptions{Level: slog.LevelDebug}))})
	long := strings.Repeat("x", 257)
	for _, path := range []string{
		"/v1/results/customers_by_city/" + long,
		"/v1/results/customers_by_city/" + strings.Repeat("%FF%FE", 1000),
		"/v1/results/customers_by_city/a%00b",
		"/v1/orders/count?customerid=" + strings.Repeat("0", 300) + "1",
		"/v1/orders/count?customerid=" + strings.Repeat("%FF", 1000),
		"/v1/results/orders_by_date/not-a-date",
		"/v1/results/orders_by_date/2023-02-30",
	} {
		log.Reset()
		res := f.get(path)
		if res.status != http.StatusBadRequest || len(res.body) > 512 {
			t.Errorf("%.80s: %d with %d bytes, want a 400 of at most 512", path, res.status, len(res.body))
		}
		if log.Len() > 2048 {
			t.Errorf("%.80s: %d bytes logged, want at most 2 KiB", path, log.Len())
		}
	}
	for _, job := range []string{"customers_by_city", "orders_by_date", jobs.OrdersByCustomer} {
		if keys := testenv.Keys(t, f.ns, job); len(keys) > 0 {
			t.Errorf("Redis holds keys of %s: %q", job, keys)
		}
	}
	// A key of the column's type is found by its index: the lookup compares in the column's
	// type, not in text (query.TestLookupPushedDown checks the plan).
	if res := f.get("/v1/results/orders_by_date/2004-01-31"); res.status != http.StatusOK {
		t.Errorf("a date: %d %s", res.status, res.body)
	}
}

// logBuffer is a log the api's goroutines write and the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

func (l *logBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

// testBypassStampede reads the credit overview 200 times at once with Redis down, PostgreSQL
// slowed so that the reads overlap: every read answers 200 from PostgreSQL, in a few queries
// (without coalescing, 200).
func testBypassStampede(t *testing.T) {
	f := newFixture(t, fixtureOptions{proxies: true, noLocal: true})
	f.rdProxy.Down()
	f.pgProxy.Delay(100 * time.Millisecond)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 200 {
		wg.Go(func() {
			<-start
			res := f.fetch(t, http.MethodGet, "/v1/credit", nil, "")
			if res.status != http.StatusOK || res.header.Get("X-Cache") != bypass {
				t.Errorf("with Redis down: %d %s, want 200 BYPASS", res.status, res.header.Get("X-Cache"))
			}
		})
	}
	close(start)
	wg.Wait()
	if q := f.queries(); q > 3 {
		t.Errorf("200 reads with Redis down made %d queries, want at most 3", q)
	}
	t.Logf("200 concurrent reads of /v1/credit with Redis down: %d queries", f.queries())
}

// testOverflowingOrder posts an order whose amounts fit but whose total does not: 422, and
// nothing written.
func testOverflowingOrder(t *testing.T) {
	f := newFixture(t, fixtureOptions{token: "t0ken"})
	w := testenv.NewWriter(t, f.dbURL, 1)
	before := w.Int("SELECT count(*) FROM orders")
	res := f.post("/v1/orders", "t0ken", `{"orderdate":"2023-03-10","customerid":42,"netamount":9999999999.99,"tax":9999999999.99}`)
	if res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "too large") {
		t.Errorf("an order of 2e10: %d %s, want 422 saying it is too large", res.status, res.body)
	}
	if after := w.Int("SELECT count(*) FROM orders"); after != before {
		t.Errorf("%d orders written", after-before)
	}
}

// testChunkedBody posts 64 KiB without a length: 413, as a body of that length gets.
func testChunkedBody(t *testing.T) {
	f := newFixture(t, fixtureOptions{token: "t0ken"})
	body := strings.Repeat(" ", 64<<10) + `{"orderdate":"2023-03-10","customerid":42,"netamount":1,"tax":0}`
	req, err := http.NewRequest(http.MethodPost, f.http.URL+"/v1/orders", io.MultiReader(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer t0ken")
	req.Header.Set("Content-Type", "application/json")
	res, err := f.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge || len(req.TransferEncoding) > 0 && req.TransferEncoding[0] != "chunked" {
		t.Errorf("64 KiB chunked: %d, want 413", res.StatusCode)
	}
}
