package api

import (
	"cmp"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
)

// The bounds the fault tests hold the api to, as the README promises them ("When Redis or
// PostgreSQL is down").
const (
	// faultRedisTimeout is REDIS_TIMEOUT at its default.
	faultRedisTimeout = 100 * time.Millisecond
	// faultQueryTimeout is QUERY_TIMEOUT where PostgreSQL is at fault, shorter than its default
	// of five seconds so that the test is short.
	faultQueryTimeout = 500 * time.Millisecond
	// faultReaders read at once, each pausing readPause between reads: concurrent enough to
	// exhaust a pool of two, without taking the machine's two cores from the api.
	faultReaders = 4
	readPause    = 20 * time.Millisecond
	// faultMargin is what a read may take beyond the timeout of the dependency at fault and what
	// the same reads took while healthy (the slowest of them: their query, the race detector,
	// the machine's load at the time), for the variations of a two-core machine loaded with
	// other tests. On an idle machine a read must then answer within about 550 ms: a read that
	// retried its dials as go-redis does by default (1.7 s with Redis stopped) is well beyond.
	faultMargin = 400 * time.Millisecond
	// breakerFailures is how many failed calls in a row open a breaker.
	breakerFailures = 5
	// recoveryBound is how soon reads are served as before once a fault is lifted: the breaker
	// lets probes through two seconds after it opened, and two seconds later again when a probe
	// still fails (go-redis dials again within a second of a refused dial; a loaded machine
	// makes a probe late), and a second of margin.
	recoveryBound = 5 * time.Second
)

// fault is a way Redis or PostgreSQL can fail, applied to an api and lifted again.
type fault struct {
	name string
	// dependency is the dependency at fault: "redis" or "postgresql".
	dependency string
	// start returns an api set up for the fault, and the functions that apply and lift it.
	start func(t *testing.T) (f *fixture, apply, lift func())
	// everyCall is set when every call to the dependency fails while the fault lasts, so that
	// the breaker must open within breakerFailures reads of a single reader.
	everyCall bool
	// redisTimeout is the api's REDIS_TIMEOUT where it is not faultRedisTimeout.
	redisTimeout time.Duration
}

// connectRedisTimeout is REDIS_TIMEOUT where connecting costs more than a TCP handshake on
// loopback: a TLS handshake, or a DNS query, takes up to 100 ms under the race detector on a
// loaded machine, and must fit in it for Redis to be reached again once the fault is lifted.
const connectRedisTimeout = 300 * time.Millisecond

// faults are the faults TestReadsUnderFaults applies.
func faults() []fault {
	proxied := func(dependency string, apply, lift func(p *testenv.Proxy)) func(t *testing.T) (*fixture, func(), func()) {
		return func(t *testing.T) (*fixture, func(), func()) {
			f := faultFixture(t, dependency, fixtureOptions{proxies: true})
			p := f.rdProxy
			if dependency == "postgresql" {
				p = f.pgProxy
			}
			return f, func() { apply(p) }, func() { lift(p) }
		}
	}
	var faults []fault
	for _, dep := range []string{"redis", "postgresql"} {
		faults = append(faults,
			fault{dep + " refuses connections", dep, proxied(dep, (*testenv.Proxy).Down, (*testenv.Proxy).Up), true, 0},
			fault{dep + " black-holed", dep, proxied(dep, (*testenv.Proxy).Hang, (*testenv.Proxy).Unhang), true, 0},
			fault{dep + " resets connections", dep, proxied(dep, (*testenv.Proxy).Reset, (*testenv.Proxy).Heal), true, 0},
			// A reply of Redis is cut after 2 bytes, within any reply; one of PostgreSQL after
			// 1,000, within the start of a connection or the rows of a query.
			fault{dep + " cuts replies", dep, proxied(dep, func(p *testenv.Proxy) { p.Cut(map[string]int{"redis": 2, "postgresql": 1000}[dep]) },
				(*testenv.Proxy).Heal), true, 0},
		)
	}
	return append(faults,
		fault{"redis stopped", "redis", func(t *testing.T) (*fixture, func(), func()) {
			srv := testenv.NewRedis(t)
			f := faultFixture(t, "redis", fixtureOptions{redisURL: "redis://" + srv.Addr + "/0"})
			return f, srv.Stop, srv.Start
		}, true, 0},
		fault{"redis TLS handshake hangs", "redis", func(t *testing.T) (*fixture, func(), func()) {
			srv := testenv.StartRedisTLS(t)
			p := testenv.NewProxy(t, srv.TLSAddr)
			f := faultFixture(t, "redis", fixtureOptions{redisURL: "rediss://" + p.Addr() + "/0?skip_verify=true",
				testRedisURL: "redis://" + srv.Addr + "/0", redisTimeout: connectRedisTimeout})
			return f, p.Hang, p.Unhang
		}, true, connectRedisTimeout},
		// Redis restarts while its name cannot be resolved: every connection must be made anew.
		fault{"redis name unresolvable", "redis", func(t *testing.T) (*fixture, func(), func()) {
			srv := testenv.NewRedis(t)
			dns := testenv.StartDNS(t, "redis.warmcache.test")
			_, port, _ := strings.Cut(srv.Addr, ":")
			f := faultFixture(t, "redis", fixtureOptions{redisURL: "redis://redis.warmcache.test:" + port + "/0",
				testRedisURL: "redis://" + srv.Addr + "/0", resolver: dns.Resolver(), redisTimeout: connectRedisTimeout})
			return f, func() { dns.Down(); srv.Stop(); srv.Start() }, dns.Up
		}, true, connectRedisTimeout},
		// Replies take most of the timeout, so that a pool of two connections cannot serve
		// four readers: the others wait for a connection, within the same timeout.
		fault{"redis pool exhausted", "redis", func(t *testing.T) (*fixture, func(), func()) {
			f := faultFixture(t, "redis", fixtureOptions{proxies: true, redisPool: 2})
			return f, func() { f.rdProxy.Delay(faultRedisTimeout * 3 / 4) }, f.rdProxy.Undelay
		}, false, 0},
		// Each statement's reply waits 200 ms, so that computations hold their turn among
		// MAX_QUERIES (2) longer than QUERY_TIMEOUT: the others wait for a turn, within it.
		fault{"postgresql pool exhausted", "postgresql", func(t *testing.T) (*fixture, func(), func()) {
			f := faultFixture(t, "postgresql", fixtureOptions{proxies: true, maxQueries: 2})
			return f, func() { f.pgProxy.Delay(200 * time.Millisecond) }, f.pgProxy.Undelay
		}, false, 0},
	)
}

// faultFixture is an api with the fault tests' timeouts. Where Redis is at fault, nothing is
// warmed: healthy reads compute their values, as reads failing over to PostgreSQL do, and
// PostgreSQL has QUERY_TIMEOUT's default to answer. Where PostgreSQL is, every customer's credit
// is warmed, to be served stale, and Redis has a second to answer. Neither is the fault under
// test: a slow read, the machine being loaded, would otherwise fail for the wrong reason.
func faultFixture(t *testing.T, dependency string, opts fixtureOptions) *fixture {
	t.Helper()
	opts.redisTimeout, opts.queryTimeout = cmp.Or(opts.redisTimeout, faultRedisTimeout), 5*time.Second
	if dependency == "postgresql" {
		opts.redisTimeout, opts.queryTimeout = time.Second, faultQueryTimeout
	}
	f := newFixture(t, opts)
	if dependency == "postgresql" {
		f.warm(jobs.CreditByCustomer)
	}
	return f
}

// TestReadsUnderFaults applies each fault to Redis or PostgreSQL twice, first under one reader,
// then under faultReaders concurrent readers, and checks what they see:
//
//   - every read answers 200 within the timeout of the dependency at fault (REDIS_TIMEOUT or
//     QUERY_TIMEOUT), plus the slowest of the same reads before the fault, plus faultMargin: from
//     PostgreSQL (BYPASS) when Redis fails, stale from Redis (STALE) when PostgreSQL does, from
//     memory or Redis (HIT) where nothing is at fault;
//   - a value PostgreSQL must compute while it fails is a 503 with Retry-After, within as long;
//   - the dependency's breaker opens within breakerFailures reads of the one reader, and a probe
//     it lets through while the fault lasts fails without a read waiting longer;
//   - once the fault is lifted, reads are served as before within recoveryBound: HITs when
//     Redis was at fault, values computed afresh when PostgreSQL was.
//
// The faults run three at a time, and not beside the package's other tests: their bounds are
// times, and the machine's two cores are shared.
func TestReadsUnderFaults(t *testing.T) {
	slots := make(chan struct{}, 3)
	for _, fl := range faults() {
		t.Run(fl.name, func(t *testing.T) {
			t.Parallel()
			slots <- struct{}{}
			defer func() { <-slots }()
			f, apply, lift := fl.start(t)
			timeout := cmp.Or(fl.redisTimeout, faultRedisTimeout)
			if fl.dependency == "postgresql" {
				timeout = faultQueryTimeout
				// Every value is due for refresh: each read asks PostgreSQL.
				f.advance(11 * time.Minute)
			}
			for _, readers := range []int{1, faultReaders} {
				if readers == 1 && !fl.everyCall {
					continue // one reader cannot exhaust a pool
				}
				r := f.underFault(fl, readers, timeout, apply, lift)
				t.Logf("%s, %d readers: %d reads, slowest %s (bound %s); breaker opened after %d failed reads; served as before %s after the fault was lifted",
					fl.name, readers, len(r.reads), r.slowest().Round(time.Millisecond), r.bound.Round(time.Millisecond), r.failedBeforeOpen,
					r.recovered.Round(time.Millisecond))
			}
		})
	}
}

// faultRound is what readers saw while a fault was applied and lifted.
type faultRound struct {
	reads []timedRead
	// failedBeforeOpen counts the reads that met the fault before the breaker opened.
	failedBeforeOpen int
	// recovered is how long after the fault was lifted reads were served as before.
	recovered time.Duration
	// bound is what a read could take.
	bound time.Duration
}

type timedRead struct {
	path  string
	took  time.Duration
	state string
	res   response
}

func (r faultRound) slowest() time.Duration {
	var most time.Duration
	for _, read := range r.reads {
		most = max(most, read.took)
	}
	return most
}

// underFault has readers read random customers' credit, healthy at first, then applies fl,
// waits until the dependency's breaker has opened and a probe has failed, lifts the fault, waits
// until reads are served as before, and checks every read against timeout, the timeout of the
// dependency at fault: each may take that, what the slowest of the same reads took while
// healthy, and faultMargin.
func (f *fixture) underFault(fl fault, readers int, timeout time.Duration, apply, lift func()) faultRound {
	t := f.t
	t.Helper()
	opens := func() float64 { return f.counter("warmcache_circuit_breaker_opens_total", "dependency", fl.dependency) }
	var (
		mu      sync.Mutex
		round   faultRound
		applied time.Time // zero until the fault is applied, and again once it is lifted
	)
	opened := opens()
	read := func(path string) timedRead {
		closed := opens() == opened
		mu.Lock()
		during := !applied.IsZero()
		mu.Unlock()
		started := time.Now()
		res := f.tryGet(path)
		r := timedRead{path: path, took: time.Since(started), state: res.header.Get("X-Cache"), res: res}
		mu.Lock()
		defer mu.Unlock()
		if during && closed && r.state == failedState(fl.dependency) {
			round.failedBeforeOpen++
		}
		round.reads = append(round.reads, r)
		return r
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopping sync.Once
	stopReaders := func() {
		stopping.Do(func() {
			close(stop)
			wg.Wait()
		})
	}
	defer stopReaders() // also when the test fails half-way
	// Customers are read in turn from a random one on, most for the first time, so that the
	// in-process tier, which holds what was read, does not answer for Redis. Customer 20000 is
	// the test's own.
	next := make(chan int)
	go func() {
		for i := rand.IntN(19999); ; i++ {
			select {
			case next <- 1 + i%19999:
			case <-stop:
				return
			}
		}
	}()
	for range readers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case id := <-next:
					read("/v1/customers/" + strconv.Itoa(id) + "/credit")
				}
				select {
				case <-stop:
					return
				case <-time.After(readPause): // pacing the load, not waiting for anything
				}
			}
		})
	}
	count := func(ok func(timedRead) bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range round.reads {
			if ok(r) {
				n++
			}
		}
		return n
	}
	// Healthy reads compute their values, as reads under the fault do.
	f.await("healthy reads", 20*time.Second, func() bool { return count(func(timedRead) bool { return true }) >= 20 })
	mu.Lock()
	healthy := len(round.reads)
	took := make([]time.Duration, healthy)
	for i, r := range round.reads {
		took[i] = r.took
	}
	mu.Unlock()
	machine := slices.Max(took)
	bound := timeout + machine + faultMargin

	apply()
	mu.Lock()
	applied = time.Now()
	mu.Unlock()
	failed := func(r timedRead) bool { return r.state == failedState(fl.dependency) }
	if fl.everyCall {
		// The breaker opens, then a probe it lets through fails and reopens it.
		f.await("the "+fl.dependency+" breaker to open", 10*time.Second, func() bool { return opens() >= opened+1 })
		f.await("a failed probe", 10*time.Second, func() bool { return opens() >= opened+2 })
	} else {
		// Some calls fail, not all: the readers read for as long as a probe would take.
		f.await("reads under the fault", 10*time.Second, func() bool { return count(failed) >= 50 })
	}
	// A value PostgreSQL must compute while it fails is a 503, within the bound too.
	if fl.dependency == "postgresql" {
		testenv.Redis(t).Del(t.Context(), f.ns+":credit_by_customer:20000")
		r := read("/v1/customers/20000/credit")
		if r.res.status != http.StatusServiceUnavailable || r.res.header.Get("Retry-After") == "" || r.took > bound {
			t.Errorf("a value nothing holds, %s: %d (Retry-After %q) in %s, want 503 with Retry-After within %s",
				fl.name, r.res.status, r.res.header.Get("Retry-After"), r.took, bound)
		}
	}
	mu.Lock()
	applied = time.Time{}
	mu.Unlock()
	lifted := time.Now()
	lift()
	f.await("reads served as before", recoveryBound+2*time.Second, func() bool {
		r := read("/v1/customers/20000/credit")
		return r.state == hit || fl.dependency == "postgresql" && r.state == miss
	})
	round.recovered = time.Since(lifted)
	stopReaders()

	if round.recovered > recoveryBound {
		t.Errorf("%s, %d readers: reads were served as before %s after the fault was lifted, want within %s",
			fl.name, readers, round.recovered, recoveryBound)
	}
	if readers == 1 && fl.everyCall && round.failedBeforeOpen > breakerFailures {
		t.Errorf("%s: the breaker opened after %d failed reads, want at most %d", fl.name, round.failedBeforeOpen, breakerFailures)
	}
	if n := count(failed); n == 0 {
		t.Errorf("%s, %d readers: no read was answered %s", fl.name, readers, failedState(fl.dependency))
	}
	for _, r := range round.reads[healthy:] {
		if r.path == "/v1/customers/20000/credit" && r.res.status == http.StatusServiceUnavailable {
			continue // checked above
		}
		if r.res.status != http.StatusOK || !slices.Contains([]string{hit, miss, stale, bypass}, r.state) || r.took > bound {
			t.Errorf("%s, %d readers: %s answered %d %s in %s, want 200 within %s (healthy reads took up to %s)",
				fl.name, readers, r.path, r.res.status, r.state, r.took, bound, machine)
		}
	}
	round.bound = bound
	return round
}

// tryGet reads path as fetch does, from any goroutine: a transport error is an answer of status
// 0, which the checks then report.
func (f *fixture) tryGet(path string) response {
	req, err := http.NewRequest(http.MethodGet, f.http.URL+path, nil)
	if err != nil {
		return response{header: http.Header{}, body: err.Error()}
	}
	res, err := testenv.Do(f.http.Client(), req)
	if err != nil && res.Status == 0 { // a body cut short is an answer too, as far as it was read
		return response{header: http.Header{}, body: err.Error()}
	}
	return responseOf(res)
}

// failedState is the hit header of a read that met a fault of dependency.
func failedState(dependency string) string {
	if dependency == "redis" {
		return bypass
	}
	return stale
}

// await polls ok until it holds, failing the test after within.
func (f *fixture) await(what string, within time.Duration, ok func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			f.t.Fatalf("no %s within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond) // polling, with a deadline
	}
}
