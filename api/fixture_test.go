package api

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

// fixture is an api on a test database and Redis namespace of its own, with a clock the test
// moves. With proxies set, the api reaches PostgreSQL and Redis through toxiproxy, so a test can
// cut them off; the test's own connections go direct.
type fixture struct {
	t       testing.TB
	srv     *Server
	http    *httptest.Server // the public port
	admin   *httptest.Server // the admin listener
	db      *query.DB        // direct, for the test
	store   *cache.Store     // direct, for the test
	jobs    []jobs.Job
	pgProxy *testenv.Proxy
	rdProxy *testenv.Proxy
	dbURL   string
	ns      string

	arch *baseservice.Archetype // the clock the test moves
	reg  *prometheus.Registry   // the api's metrics
}

type fixtureOptions struct {
	proxies bool
	token   string // API_TOKEN; empty refuses writes
	dbURL   string // share a database (two api replicas); a new one by default
	ns      string // share a namespace; a new one by default
	jobs    string // the jobs file's content; none by default
	logger  *slog.Logger
	// sharedMaxAge is the s-maxage shared caches get, as with PURGE_URLS set; none by default.
	sharedMaxAge time.Duration
	// noLocal turns the in-process tier off; it is on by default, as in the api binary.
	noLocal bool
	// accessLog receives a line per request (ACCESS_LOG), off by default.
	accessLog io.Writer
	// cors are the origins of CORS_ORIGINS; none by default.
	cors []string
	// redisTimeout is the api's REDIS_TIMEOUT (testRedisTimeout by default), queryTimeout its
	// QUERY_TIMEOUT (5 s by default), and redisPool the size of its Redis pool (64 by default,
	// as in the api binary).
	redisTimeout, queryTimeout time.Duration
	redisPool                  int
	// maxQueries is MAX_QUERIES, 8 by default.
	maxQueries int64
	// redisURL is where the api finds Redis (through the proxy, with proxies set), and
	// testRedisURL where the test does; both are the tests' Redis server by default, and the
	// second is the first by default. resolver resolves the api's Redis host.
	redisURL, testRedisURL string
	resolver               *net.Resolver
}

// testRedisTimeout is the fixture's REDIS_TIMEOUT: long enough that a healthy Redis, on a
// two-core machine running every package's tests under the race detector, is never taken for
// one that does not answer (a read past it is a BYPASS, which tests of hits and misses do not
// expect). The tests of Redis's faults set their own.
const testRedisTimeout = time.Second

// testMaxAge is the freshness the fixture's api gives every HTTP cache (HTTP_MAX_AGE).
const testMaxAge = 2 * time.Second

var testStart = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func newFixture(t testing.TB, opts fixtureOptions) *fixture {
	t.Helper()
	logger := cmp.Or(opts.logger, slog.New(slog.DiscardHandler))
	f := &fixture{t: t, dbURL: opts.dbURL, ns: opts.ns, arch: baseservice.NewArchetype(logger)}
	f.arch.Time.Stub(testStart)
	if f.dbURL == "" {
		f.dbURL = testenv.NewDatabase(t)
	}
	if f.ns == "" {
		f.ns = testenv.Namespace(t)
	}
	redisURL := cmp.Or(opts.redisURL, testenv.Get(t).RedisURL)
	apiDB, apiRedis := f.dbURL, redisURL
	if opts.proxies {
		f.pgProxy = testenv.NewProxy(t, testenv.HostPort(t, f.dbURL))
		f.rdProxy = testenv.NewProxy(t, testenv.HostPort(t, redisURL))
		apiDB, apiRedis = f.pgProxy.Through(f.dbURL), f.rdProxy.Through(redisURL)
	}
	keys, err := cache.NewKeys(f.ns)
	if err != nil {
		t.Fatal(err)
	}
	open := func(dbURL, redisURL string, storeOpts cache.Options) (*query.DB, *cache.Store) {
		db := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 20})
		store := testenv.OpenStore(t, redisURL, keys, storeOpts)
		return db, store
	}
	f.db, f.store = open(f.dbURL, cmp.Or(opts.testRedisURL, redisURL), cache.Options{})
	apiDBConn, apiStore := open(apiDB, apiRedis, cache.Options{Timeout: cmp.Or(opts.redisTimeout, testRedisTimeout),
		PoolSize: cmp.Or(opts.redisPool, 64), Resolver: opts.resolver})
	f.jobs = testenv.LoadJobs(t, opts.jobs, testStart)
	localSize := uint64(16 << 20)
	if opts.noLocal {
		localSize = 0
	}
	f.reg = prometheus.NewRegistry()
	var accessLog io.Writer
	if opts.accessLog != nil {
		accessLog = opts.accessLog
	}
	f.srv = New(f.arch, Config{CacheHeader: "X-Cache", QueryTimeout: cmp.Or(opts.queryTimeout, 5*time.Second),
		MaxQueries: cmp.Or(opts.maxQueries, 8), LeaseWait: 2 * time.Second, Keys: keys, APIToken: opts.token,
		MaxAge: testMaxAge, SharedMaxAge: opts.sharedMaxAge, SurrogateKeyHeader: "Surrogate-Key",
		LocalCacheSize: localSize, LocalCacheTTL: time.Second, CORSOrigins: opts.cors, AccessLog: accessLog},
		apiStore, apiDBConn, f.jobs, f.reg)
	watchCtx, stopWatching := context.WithCancel(context.Background())
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		f.srv.Watch(watchCtx)
	}()
	t.Cleanup(func() {
		stopWatching()
		<-watching
	})
	// The server of the api binary, with its limits.
	f.http = httptest.NewUnstartedServer(nil)
	f.http.Config = f.srv.HTTPServer()
	f.http.Start()
	t.Cleanup(f.http.Close)
	f.admin = httptest.NewServer(f.srv.AdminHandler())
	t.Cleanup(f.admin.Close)
	return f
}

func (f *fixture) advance(d time.Duration) { f.arch.Time.Advance(d) }

// warm runs the built-in jobs, or the ones named, once, as the warmer would, at the fixture's
// time.
func (f *fixture) warm(names ...string) {
	f.t.Helper()
	list := f.jobs
	if len(names) > 0 {
		list = slices.DeleteFunc(slices.Clone(list), func(j jobs.Job) bool { return !slices.Contains(names, j.Name) })
	}
	r := warm.NewRunner(f.arch, f.db, f.db, f.store, warm.NewMetrics(prometheus.NewRegistry()))
	if err := warm.Once(context.Background(), list, r, f.db.Runs(), f.ns, func(jobs.Job) warm.Progress { return nil }); err != nil {
		f.t.Fatal(err)
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (f *fixture) do(method, path string, header http.Header) response {
	f.t.Helper()
	return f.fetch(f.t, method, path, header, "")
}

// post sends body with the bearer token, if any.
func (f *fixture) post(path, token, body string) response {
	f.t.Helper()
	header := http.Header{"Content-Type": {"application/json"}}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	return f.fetch(f.t, http.MethodPost, path, header, body)
}

// fetch makes a request of the public port, failing t (a fuzz target's own) on a transport
// error.
func (f *fixture) fetch(t testing.TB, method, path string, header http.Header, body string) response {
	t.Helper()
	return f.fetchAt(t, f.http, method, path, header, body)
}

// adminGet gets path from the admin listener.
func (f *fixture) adminGet(path string) response {
	f.t.Helper()
	return f.fetchAt(f.t, f.admin, http.MethodGet, path, nil, "")
}

// fetchAt makes a request of srv.
func (f *fixture) fetchAt(t testing.TB, srv *httptest.Server, method, path string, header http.Header, body string) response {
	t.Helper()
	req := testenv.NewRequest(t, method, srv.URL+path, "", body)
	for k, v := range header {
		req.Header[k] = v
	}
	return responseOf(testenv.Fetch(t, srv.Client(), req))
}

func responseOf(r testenv.Response) response {
	return response{status: r.Status, header: r.Header, body: r.Body}
}

func (f *fixture) get(path string) response {
	f.t.Helper()
	return f.do(http.MethodGet, path, nil)
}

// queries is how many values this api computed from PostgreSQL.
func (f *fixture) queries() int {
	return int(f.counter("warmcache_fallback_queries_total"))
}

// counter returns the sum of the api's counters called name whose labels hold every pair of
// labels given (name, value, name, value...).
func (f *fixture) counter(name string, labels ...string) float64 {
	f.t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	total := 0.0
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
	samples:
		for _, m := range family.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
					return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}) {
					continue samples
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

func (f *fixture) entry(job, key string) cache.Entry {
	f.t.Helper()
	e, err := f.store.Get(context.Background(), job, key)
	if err != nil {
		f.t.Fatalf("get %s %s: %v", job, key, err)
	}
	return e
}

func itoa(i int) string { return strconv.Itoa(i) }

// awaitState reads path until it answers 200 with the hit header at state, for up to 15 s (a
// breaker closes two seconds after its dependency returns), and returns the statuses of the
// answers before that one.
func (f *fixture) awaitState(path, state string) []int {
	f.t.Helper()
	var before []int
	deadline := time.Now().Add(15 * time.Second)
	for {
		res := f.get(path)
		if res.status == 200 && res.header.Get("X-Cache") == state {
			return before
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: still %d %s after 15 s, want 200 %s", path, res.status, res.header.Get("X-Cache"), state)
		}
		before = append(before, res.status)
		time.Sleep(50 * time.Millisecond) // polling for the breaker to close, with a deadline
	}
}
