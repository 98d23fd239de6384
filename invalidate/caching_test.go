package invalidate

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gregjones/httpcache"

	"github.com/warmcache/warmcache/internal/testenv"
)

// TestVarnishIsPurgedOfWrites puts a real Varnish, with the VCL warmcache ships, in front of the
// api: after an order, the customer's count and the total read through Varnish show the new
// value within a second, while an unrelated customer's count stays cached in Varnish (its hits
// keep rising: the purge left it alone).
func TestVarnishIsPurgedOfWrites(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 1, refreshers: 1, varnish: true})
	through := func(path string) (string, int) {
		t.Helper()
		res := testenv.HTTPGet(t, "http://"+s.varnish+path)
		if res.Status != http.StatusOK {
			t.Fatalf("GET %s through Varnish: %d", path, res.Status)
		}
		hits, _ := strconv.Atoi(res.Header.Get("X-Varnish-Hits"))
		return res.Body, hits
	}
	const customer, unrelated = 4242, 99
	changed := []struct{ path, job, key string }{
		{"/v1/orders/count?customerid=4242", "orders_by_customer", "4242"},
		{"/v1/orders/count", "orders_total", ""},
	}
	other := "/v1/orders/count?customerid=99"
	for _, path := range []string{changed[0].path, changed[1].path, other} {
		through(path)
		if _, hits := through(path); hits == 0 {
			t.Fatalf("%s: not cached by Varnish (s-maxage ignored?)", path)
		}
	}
	_, otherHits := through(other)
	s.post(customer)
	committed := time.Now()
	for _, k := range changed {
		want := s.sql(k.job, k.key)
		for {
			got, _ := through(k.path)
			if got == want {
				break
			}
			if time.Since(committed) > time.Second {
				t.Fatalf("%s through Varnish still %s a second after the write, want %s", k.path, got, want)
			}
			time.Sleep(5 * time.Millisecond) // polling Varnish, with a deadline
		}
	}
	t.Logf("the write showed through Varnish after %s", time.Since(committed).Round(time.Millisecond))
	if _, hits := through(other); hits <= otherHits {
		t.Errorf("customer %d's count was dropped from Varnish (hits %d, then %d): the purge was not exact", unrelated, otherHits, hits)
	}
}

// TestVarnishPassesReadsAtAPosition: Varnish holding a value, a read sending the position of a
// write made since goes through to the api, which answers with the write at once.
func TestVarnishPassesReadsAtAPosition(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 1, refreshers: 1, varnish: true})
	const path = "/v1/orders/count?customerid=5151"
	before := testenv.HTTPGet(t, "http://"+s.varnish+path)
	if res := testenv.HTTPGet(t, "http://"+s.varnish+path); res.Header.Get("X-Varnish-Hits") == "0" {
		t.Fatalf("%s: not cached by Varnish", path)
	}
	_, position := s.postAt(5151)
	req := testenv.NewRequest(t, http.MethodGet, "http://"+s.varnish+path, "", "")
	req.Header.Set("Warmcache-Position", position)
	res := testenv.Fetch(t, http.DefaultClient, req)
	if want := s.sql("orders_by_customer", "5151"); res.Body != want || res.Body == before.Body {
		t.Errorf("read at %s through Varnish: %s (hits %s), want %s", position, res.Body, res.Header.Get("X-Varnish-Hits"), want)
	}
}

// TestVarnishGetsWritesPastReplicasHearingLate: the api replica behind Varnish hears of changes
// 300 ms late, so that Varnish, purged at once, fetches the old value from the replica's memory
// again. The purge sent again a second later still brings the new value through Varnish.
func TestVarnishGetsWritesPastReplicasHearingLate(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 1, refreshers: 1, varnish: true, hearLate: 300 * time.Millisecond})
	const path = "/v1/orders/count?customerid=4646"
	s.awaitWatching(5 * time.Second)
	s.inMemory(key{path, "orders_by_customer", "4646"})
	before := s.through(path)
	if s.through(path) != before {
		t.Fatal("Varnish serves two values of one key before any write")
	}
	s.post(4646)
	committed := time.Now()
	want := s.sql("orders_by_customer", "4646")
	for {
		got := s.through(path)
		if got == want {
			break
		}
		if time.Since(committed) > 3*time.Second {
			t.Fatalf("%s through Varnish still %s 3 s after the write, want %s", path, got, want)
		}
		time.Sleep(5 * time.Millisecond) // polling Varnish, with a deadline
	}
	t.Logf("the write showed through Varnish after %s", time.Since(committed).Round(time.Millisecond))
}

// through reads a path through Varnish.
func (s *system) through(path string) string {
	s.t.Helper()
	body, _ := s.getFrom("http://"+s.varnish, path)
	return body
}

// TestBrowserSeesWritesWithinMaxAge reads through a caching HTTP client, as a browser would, with
// no purging: after a write, the client serves the new value at most HTTP_MAX_AGE after the api
// does, revalidating its copy with the ETag.
func TestBrowserSeesWritesWithinMaxAge(t *testing.T) {
	t.Parallel()
	const maxAge = time.Second
	s := newSystem(t, systemOptions{relays: 1, refreshers: 1, maxAge: maxAge})
	browser := &http.Client{Transport: httpcache.NewMemoryCacheTransport()}
	read := func(c *http.Client, path string) (body string, fromCache bool) {
		t.Helper()
		res := testenv.Fetch(t, c, testenv.NewRequest(t, http.MethodGet, s.api.URL+path, "", ""))
		return res.Body, res.Header.Get(httpcache.XFromCache) != ""
	}
	const path = "/v1/orders/count?customerid=777"
	read(browser, path)
	if _, cached := read(browser, path); !cached {
		t.Fatal("the caching client did not keep the answer: no freshness given to browsers?")
	}
	s.post(777)
	committed := time.Now()
	want := s.sql("orders_by_customer", "777")
	const slack = 300 * time.Millisecond // the polling's own period, on a loaded machine
	var atAPI time.Duration              // when the api served the new value
	for {
		if got, _ := read(http.DefaultClient, path); got == want && atAPI == 0 {
			atAPI = time.Since(committed)
		}
		if got, _ := read(browser, path); got == want {
			break
		}
		elapsed := time.Since(committed)
		if atAPI != 0 && elapsed > atAPI+maxAge+slack || elapsed > 5*time.Second {
			t.Fatalf("the browser still shows the old value %s after the write; the api served the new one after %s",
				elapsed.Round(time.Millisecond), atAPI)
		}
		time.Sleep(10 * time.Millisecond) // polling, with a deadline
	}
	t.Logf("new value at the api after %s, in the browser after %s (HTTP_MAX_AGE %s)", atAPI.Round(time.Millisecond),
		time.Since(committed).Round(time.Millisecond), maxAge)
}
