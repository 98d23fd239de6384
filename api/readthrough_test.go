package api

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/testenv"
)

func TestMissIsComputedStoredThenHit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{}) // nothing warmed
	first := f.get("/v1/customers/42/credit")
	second := f.get("/v1/customers/42/credit")
	if first.status != 200 || first.header.Get("X-Cache") != miss || second.header.Get("X-Cache") != hit {
		t.Fatalf("first %d %s, second %s: want MISS then HIT", first.status, first.header.Get("X-Cache"), second.header.Get("X-Cache"))
	}
	if first.body != second.body || first.header.Get("Etag") != second.header.Get("Etag") || !strings.Contains(first.body, `"customerid":42`) {
		t.Errorf("miss served %s, hit %s", first.body, second.body)
	}
	if f.queries() != 1 {
		t.Errorf("%d queries, want 1", f.queries())
	}
}

// TestUnknownIdsAreCachedToo: random ids cannot reach PostgreSQL at will.
func TestUnknownIdsAreCachedToo(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	for i := range 5 {
		res := f.get("/v1/orders/count?customerid=77777777")
		want := miss
		if i > 0 {
			want = hit
		}
		if res.status != 404 || res.header.Get("X-Cache") != want || !strings.Contains(res.body, "not found") {
			t.Fatalf("request %d: %d %s %s", i, res.status, res.header.Get("X-Cache"), res.body)
		}
	}
	if f.queries() != 1 {
		t.Errorf("five requests for an unknown id made %d queries, want 1", f.queries())
	}
	f.advance(31 * time.Second) // past the negative entry's freshness: asked again
	if res := f.get("/v1/orders/count?customerid=77777777"); res.status != 404 || res.header.Get("X-Cache") != miss {
		t.Errorf("after the negative TTL: %d %s", res.status, res.header.Get("X-Cache"))
	}
}

func TestValuesDueForRefreshAreRecomputed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.warm()
	f.advance(11 * time.Minute) // past the 10-minute TTL, within the hour of grace
	res := f.get("/v1/credit")
	now := f.arch.Time.Now().UTC().Format(http.TimeFormat)
	if res.status != 200 || res.header.Get("X-Cache") != miss || res.header.Get("Last-Modified") != now {
		t.Errorf("value due for refresh: %d %s computed %s, want a MISS computed now (%s)", res.status,
			res.header.Get("X-Cache"), res.header.Get("Last-Modified"), now)
	}
	if res := f.get("/v1/credit"); res.header.Get("X-Cache") != hit {
		t.Errorf("after the refresh: %s, want HIT", res.header.Get("X-Cache"))
	}
}

// TestColdKeyStampede sends 200 concurrent requests for one cold key: one PostgreSQL query in
// all, and with two api replicas at most two. Redis has two seconds to answer each read: 200
// reads at once on two cores, under the race detector, can wait for a pooled connection longer
// than the fixture's REDIS_TIMEOUT, and a read Redis answers too late is computed from
// PostgreSQL (BYPASS), which is not what this test counts (TestReadsUnderFaults is).
func TestColdKeyStampede(t *testing.T) {
	t.Parallel()
	for _, replicas := range []int{1, 2} {
		t.Run(itoa(replicas)+" replicas", func(t *testing.T) {
			t.Parallel()
			first := newFixture(t, fixtureOptions{redisTimeout: 2 * time.Second})
			fixtures := []*fixture{first}
			for range replicas - 1 {
				fixtures = append(fixtures, newFixture(t, fixtureOptions{dbURL: first.dbURL, ns: first.ns, redisTimeout: 2 * time.Second}))
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			results := make(chan response, 200)
			for i := range 200 {
				f := fixtures[i%len(fixtures)]
				wg.Go(func() {
					<-start
					results <- f.get("/v1/customers/4242/credit")
				})
			}
			close(start)
			wg.Wait()
			close(results)
			bodies := map[string]int{}
			for r := range results {
				if r.status != 200 {
					t.Fatalf("a request got %d %s", r.status, r.body)
				}
				bodies[r.body]++
			}
			queries := 0
			for _, f := range fixtures {
				queries += f.queries()
			}
			if len(bodies) != 1 || queries < 1 || queries > len(fixtures) {
				t.Errorf("200 requests over %d replicas made %d queries (want 1 to %d), served %d bodies",
					len(fixtures), queries, len(fixtures), len(bodies))
			}
			t.Logf("%d queries for 200 concurrent requests over %d replicas", queries, len(fixtures))
		})
	}
}

// TestRedisDown cuts Redis off: reads keep answering correctly from PostgreSQL without a 5xx
// (the in-process tier serves its values until it notices it lost the changes, at once when
// Redis closes its connections), and once Redis is back hits resume by themselves.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{proxies: true})
	f.warm()
	want := f.get("/v1/orders/count?customerid=19").body
	f.rdProxy.Down()
	for _, status := range f.awaitState("/v1/orders/count?customerid=19", bypass) {
		if status != 200 {
			t.Fatalf("a read got %d as Redis went down", status)
		}
	}
	for i := range 40 {
		res := f.get("/v1/orders/count?customerid=19")
		if res.status != 200 || res.header.Get("X-Cache") != bypass || res.body != want {
			t.Fatalf("request %d with Redis down: %d %s %s", i, res.status, res.header.Get("X-Cache"), res.body)
		}
	}
	if res := f.get("/v1/orders/count?customerid=88888888"); res.status != 404 || res.header.Get("X-Cache") != bypass {
		t.Errorf("unknown customer with Redis down: %d %s", res.status, res.header.Get("X-Cache"))
	}
	if res := f.get("/readyz"); res.status != 200 || !strings.Contains(res.body, `"redis":"unavailable"`) || !strings.Contains(res.body, "degraded") {
		t.Errorf("readyz with Redis down: %d %s", res.status, res.body)
	}
	f.rdProxy.Up()
	for _, status := range f.awaitState("/v1/orders/count?customerid=19", hit) {
		if status != 200 {
			t.Errorf("while Redis came back, a read got %d", status)
		}
	}
}

// TestPostgresDown cuts PostgreSQL off: warmed keys still answer, STALE once past freshness;
// a key nothing holds gets 503 with Retry-After; PostgreSQL back, the pool heals.
func TestPostgresDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{proxies: true})
	f.warm()
	f.pgProxy.Down()
	if res := f.get("/v1/customers/5/credit"); res.status != 200 || res.header.Get("X-Cache") != hit {
		t.Errorf("fresh key with PostgreSQL down: %d %s", res.status, res.header.Get("X-Cache"))
	}
	f.advance(30 * time.Minute) // past freshness, within grace
	for range 10 {
		res := f.get("/v1/customers/5/credit")
		if res.status != 200 || res.header.Get("X-Cache") != stale || !strings.HasPrefix(res.header.Get("Cache-Control"), "public, max-age=0, stale-if-error=") {
			t.Fatalf("stale key with PostgreSQL down: %d %s %s", res.status, res.header.Get("X-Cache"), res.header.Get("Cache-Control"))
		}
	}
	res := f.get("/v1/customers/notwarmed/credit")
	if res.status != 400 {
		t.Errorf("a malformed id with PostgreSQL down: %d, want 400", res.status)
	}
	testenv.Clear(t, f.ns)
	res = f.get("/v1/customers/5/credit")
	if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" || !strings.Contains(res.body, `"error"`) {
		t.Errorf("nothing to serve, PostgreSQL down: %d %q %s", res.status, res.header.Get("Retry-After"), res.body)
	}
	f.pgProxy.Up()
	f.awaitState("/v1/customers/5/credit", miss) // the breaker closes and the pool heals
}

// TestRedisHung: a Redis that accepts connections but never answers costs each read at most
// the Redis timeout, then nothing once the breaker opens; reads answer from PostgreSQL. The
// in-process tier answers until it finds its subscription lost (a ping unanswered), then stops.
func TestRedisHung(t *testing.T) {
	t.Parallel()
	for _, noLocal := range []bool{true, false} {
		t.Run(fmt.Sprintf("local tier %v", !noLocal), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOptions{proxies: true, noLocal: noLocal})
			f.warm()
			f.get("/v1/customers/3/credit")
			want := f.get("/v1/customers/3/credit").body // from memory, with the tier
			f.rdProxy.Hang()
			for i := range 20 {
				res := f.get("/v1/customers/3/credit")
				state := res.header.Get("X-Cache")
				if res.status != 200 || res.body != want || state != bypass && (noLocal || state != hit) {
					t.Fatalf("request %d with Redis hung: %d %s %s", i, res.status, state, res.body)
				}
			}
			f.awaitState("/v1/customers/3/credit", bypass) // the tier, too, has stopped
			f.rdProxy.Unhang()
			f.awaitState("/v1/customers/3/credit", hit)
		})
	}
}
