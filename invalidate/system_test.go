package invalidate

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/api"
	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

const token = "test-token"

// system is the product on a test database and namespace: an api, and the warmer's relay and
// refresher, over connections that may go through proxies the test cuts.
type system struct {
	t       *testing.T
	dbURL   string
	ns      string
	db      *query.DB    // direct, for the test
	store   *cache.Store // direct, for the test
	jobs    []jobs.Job
	api     *httptest.Server // the first replica's
	apis    []replica
	varnish string // Varnish's address in front of the api, with purging on
	rdProxy *testenv.Proxy
	pgProxy *testenv.Proxy
	// replica is the test database on the streaming replica, which every component reads
	// (DATABASE_REPLICA_URL) waiting up to replicaWait, when systemOptions.replicaWait is set.
	replica     string
	replicaWait time.Duration
}

// replica is an api replica, with its in-process tier on (LOCAL_CACHE_SIZE of 64 MiB).
type replica struct {
	url     string
	metrics *prometheus.Registry
	client  string // the name of its Redis connections
}

type systemOptions struct {
	proxies    bool          // the relay, refresher and api reach Redis and PostgreSQL through proxies
	apis       int           // api replicas; one by default
	localTTL   time.Duration // the replicas' LOCAL_CACHE_TTL; a second by default
	relays     int
	refreshers int
	jobs       string        // the jobs file's content; none by default
	maxAge     time.Duration // HTTP_MAX_AGE; 2 s by default
	varnish    bool          // Varnish in front of the api, purged by the refreshers
	// hearLate delays what Redis sends the api replicas, the changes they are told of among it,
	// by as much.
	hearLate time.Duration
	// database is the test's database; a copy of the dellstore2 template by default.
	database string
	// scheduler runs a warmer's scheduler, which takes the runs changes of every key request.
	scheduler bool
	// replicaWait, when set, has every component read the tests' streaming replica (a second
	// behind), waiting up to as much for it to replay past a position.
	replicaWait time.Duration
	// capture is CHANGE_CAPTURE: triggers by default; with logical, captures stream the slot
	// beside the relays.
	capture  string
	captures int
}

func newSystem(t *testing.T, opts systemOptions) *system {
	t.Helper()
	if opts.database == "" {
		opts.database = testenv.NewDatabase(t)
	}
	s := &system{t: t, dbURL: opts.database, ns: testenv.Namespace(t), replicaWait: opts.replicaWait}
	if opts.replicaWait > 0 {
		s.replica = testenv.ReplicaOf(t, s.dbURL)
	}
	redisURL := testenv.Get(t).RedisURL
	dbURL := s.dbURL
	if opts.proxies {
		s.pgProxy = testenv.NewProxy(t, testenv.HostPort(t, s.dbURL))
		s.rdProxy = testenv.NewProxy(t, testenv.HostPort(t, redisURL))
		dbURL, redisURL = s.pgProxy.Through(s.dbURL), s.rdProxy.Through(redisURL)
	}
	s.db, s.store = s.open(s.dbURL, testenv.Get(t).RedisURL)
	// As the warmer does at start: migrate, keep the built-in jobs where their tables are, find
	// the tables the jobs depend on, record their changes, maintain the jobs' figures.
	ctx := context.Background()
	if err := s.db.Schema().Migrate(ctx, discard()); err != nil {
		t.Fatal(err)
	}
	list := testenv.LoadJobs(t, opts.jobs, time.Now())
	missing, err := s.db.Schema().Missing(ctx, query.BuiltinTables)
	if err != nil {
		t.Fatal(err)
	}
	if on, _ := jobs.BuiltinsAuto.Decide(missing); !on {
		list = jobs.WithoutBuiltins(list)
	}
	if s.jobs, err = warm.Resolve(ctx, s.db, list); err != nil {
		t.Fatal(err)
	}
	if err := warm.Install(context.Background(), s.db, s.jobs, cmp.Or(opts.capture, query.CaptureTriggers)); err != nil {
		t.Fatal(err)
	}
	if s.replica != "" {
		testenv.ReplicaOf(t, s.dbURL) // the replica has what was installed
	}
	arch := baseservice.NewArchetype(discard())
	runner := warm.NewRunner(arch, s.db, s.db, s.store, warm.NewMetrics(prometheus.NewRegistry()))
	if err := warm.Once(context.Background(), s.jobs, runner, s.db.Runs(), s.ns, func(jobs.Job) warm.Progress { return nil }); err != nil {
		t.Fatal(err)
	}
	if opts.scheduler {
		sched := warm.NewScheduler(arch, s.jobs, runner, s.db.Runs(), s.ns)
		sched.Start()
		t.Cleanup(func() { sched.Stop(context.Background()) })
	}
	keys, _ := cache.NewKeys(s.ns)
	apiCfg := api.Config{CacheHeader: "X-Cache", QueryTimeout: 5 * time.Second, MaxQueries: 8, LeaseWait: time.Second,
		Keys: keys, APIToken: token, MaxAge: cmp.Or(opts.maxAge, 2*time.Second), SurrogateKeyHeader: "Surrogate-Key",
		LocalCacheSize: 64 << 20, LocalCacheTTL: cmp.Or(opts.localTTL, time.Second)}
	var purger *Purger
	if opts.varnish {
		apiCfg.SharedMaxAge = 10 * time.Minute // as with PURGE_URLS set
	}
	apiRedisURL := redisURL
	if opts.hearLate > 0 {
		late := testenv.NewProxy(t, testenv.HostPort(t, testenv.Get(t).RedisURL))
		late.Delay(opts.hearLate)
		apiRedisURL = late.Through(testenv.Get(t).RedisURL)
	}
	for i := range max(opts.apis, 1) {
		r := replica{metrics: prometheus.NewRegistry(), client: fmt.Sprintf("%s-api-%d", s.ns, i)}
		// As the api binary does: its writes wake the relays through Redis, not PostgreSQL.
		apiDB, apiStore := s.openWith(query.Options{MaxConns: 10, ConnectTimeout: time.Second, QuietWrites: true},
			cache.Options{ClientName: r.client}, dbURL, apiRedisURL)
		server := api.New(arch, apiCfg, apiStore, apiDB, s.jobs, r.metrics)
		s.start(server.Watch)
		hs := httptest.NewServer(server.Handler())
		t.Cleanup(hs.Close)
		r.url = hs.URL
		s.apis = append(s.apis, r)
		if i == 0 {
			s.api = hs
		}
	}
	if opts.varnish {
		s.varnish = testenv.StartVarnish(t, strings.TrimPrefix(s.api.URL, "http://"))
		purger = NewPurger(arch, PurgeConfig{URLs: []string{"http://" + s.varnish + "/"}, Method: "PURGE",
			KeyHeader: "xkey-purge"}, keys, prometheus.NewRegistry())
		s.start(purger.Run)
	}
	for range opts.relays {
		db, store := s.open(dbURL, redisURL)
		s.start(NewRelay(arch, db, store, s.jobs, prometheus.NewRegistry()).Run)
	}
	for range opts.captures {
		db, store := s.open(dbURL, redisURL)
		s.start(NewCapture(arch, db, store, s.jobs, prometheus.NewRegistry()).Run)
	}
	for range opts.refreshers {
		var storeOpts cache.Options
		if purger != nil {
			storeOpts.Invalidated = purger.Invalidated
		}
		db, store := s.openWith(query.Options{MaxConns: 10, ConnectTimeout: time.Second}, storeOpts, dbURL, redisURL)
		s.start(NewRefresher(arch, db, store, s.jobs, s.ns, prometheus.NewRegistry()).Run)
	}
	return s
}

func (s *system) open(dbURL, redisURL string) (*query.DB, *cache.Store) {
	s.t.Helper()
	return s.openWith(query.Options{MaxConns: 10, ConnectTimeout: time.Second}, cache.Options{}, dbURL, redisURL)
}

func (s *system) openWith(opts query.Options, storeOpts cache.Options, dbURL, redisURL string) (*query.DB, *cache.Store) {
	s.t.Helper()
	if s.replica != "" {
		opts.ReplicaURL, opts.ReplicaWait = s.replica, s.replicaWait
	}
	db := testenv.OpenDB(s.t, dbURL, opts)
	keys, _ := cache.NewKeys(s.ns)
	storeOpts.Timeout = 2 * time.Second
	store := testenv.OpenStore(s.t, redisURL, keys, storeOpts)
	return db, store
}

// start runs a component until the test ends, and waits for it to return.
func (s *system) start(run func(context.Context)) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	// Registered after the component's connections were opened, so it runs before they close.
	s.t.Cleanup(stop)
	return stop
}

// post creates an order through the api.
func (s *system) post(customer int) int64 {
	s.t.Helper()
	id, _ := s.postAt(customer)
	return id
}

// postAt creates an order through the api, and returns its id and the Warmcache-Position of its
// commit.
func (s *system) postAt(customer int) (int64, string) {
	s.t.Helper()
	body := `{"orderdate":"2026-11-21","customerid":` + strconv.Itoa(customer) + `,"netamount":12.34,"tax":1.02}`
	res := testenv.Post(s.t, s.api.URL+"/v1/orders", token, body)
	var created struct{ OrderID int64 }
	if err := json.Unmarshal([]byte(res.Body), &created); err != nil || res.Status != http.StatusCreated {
		s.t.Fatalf("POST /v1/orders: %d %v", res.Status, err)
	}
	return created.OrderID, res.Header.Get("Warmcache-Position")
}

// get reads a path from the api (its first replica).
func (s *system) get(path string) (body, cacheState string) {
	s.t.Helper()
	return s.getFrom(s.api.URL, path)
}

// getFrom reads a path from the api at url.
func (s *system) getFrom(url, path string) (body, cacheState string) {
	s.t.Helper()
	res := testenv.HTTPGet(s.t, url+path)
	return res.Body, res.Header.Get("X-Cache")
}

// affected are the keys an order of customer changes, as api paths with the job and key.
func affected(customer int) []struct{ path, job, key string } {
	id := strconv.Itoa(customer)
	return []struct{ path, job, key string }{
		{"/v1/orders/count", "orders_total", ""},
		{"/v1/orders/count?customerid=" + id, "orders_by_customer", id},
		{"/v1/customers/" + id + "/credit", "credit_by_customer", id},
		{"/v1/credit", "credit_overview", ""},
	}
}

// sql computes what a key should hold now, from PostgreSQL: computed in full, not from the
// figures the warmers maintain (which is what is under test).
func (s *system) sql(job, key string) string {
	s.t.Helper()
	for _, j := range s.jobs {
		if j.Name == job && j.Aggregate.Incremental() && !j.Keyed() {
			return s.full(job)[key]
		}
		if j.Name == job {
			e, err := warm.Compute(context.Background(), s.db, j, key, query.Latest, time.Now())
			if err != nil {
				s.t.Fatal(err)
			}
			return string(e.Body)
		}
	}
	s.t.Fatalf("no job %s", job)
	return ""
}

// waitVisible waits until every key an order of customer changes serves what SQL says, and
// returns how long that took.
func (s *system) waitVisible(customer int, within time.Duration) time.Duration {
	s.t.Helper()
	started := time.Now()
	for _, k := range affected(customer) {
		want := s.sql(k.job, k.key)
		for {
			got, state := s.get(k.path)
			if got == want {
				if state != "HIT" {
					s.t.Fatalf("%s serves the new value as %s, want HIT", k.path, state)
				}
				break
			}
			if time.Since(started) > within {
				s.t.Fatalf("%s still serves %s %.0f ms after the write; SQL says %s", k.path, got,
					float64(time.Since(started).Microseconds())/1000, want)
			}
			time.Sleep(2 * time.Millisecond) // polling the api, with a deadline
		}
	}
	return time.Since(started)
}

// exec runs a statement as another application would, bypassing the api.
func (s *system) exec(sql string) {
	s.t.Helper()
	var stderr bytes.Buffer
	cmd := testenv.Psql(s.dbURL, "-c", sql)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("psql -c %q: %v %s", sql, err, stderr.String())
	}
}

// outboxEmpty waits until the outbox holds nothing.
func (s *system) outboxEmpty(within time.Duration) {
	s.t.Helper()
	s.awaitCount("the outbox's rows", "SELECT count(*) AS n FROM warmcache_outbox", 0, within)
}

// count runs sql, a statement yielding one count called n, on the primary.
func (s *system) count(sql string) int64 {
	s.t.Helper()
	agg, err := query.UserSQL(sql, "")
	if err != nil {
		s.t.Fatal(err)
	}
	row, err := s.db.Lookup(context.Background(), agg, query.Params{}, "", query.Latest)
	if err != nil {
		s.t.Fatal(err)
	}
	b, _ := json.Marshal(row.Value)
	var v struct{ N int64 }
	if err := json.Unmarshal(b, &v); err != nil {
		s.t.Fatal(err)
	}
	return v.N
}

// awaitCount waits until sql's count (count) is want.
func (s *system) awaitCount(what, sql string, want int64, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := s.count(sql)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: %d after %s, want %d", what, n, within, want)
		}
		time.Sleep(10 * time.Millisecond) // polling, with a deadline
	}
}

func testenvRedis(t *testing.T) string { return testenv.Get(t).RedisURL }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func promRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

// outboxLocked waits until a relay holds the outbox's rows in its transaction: none is left for
// another relay to take.
func (s *system) outboxLocked(within time.Duration) {
	s.t.Helper()
	free, _ := query.UserSQL(`SELECT (SELECT count(*) FROM warmcache_outbox) AS rows,
		(SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
		 WHERE a.datname = current_database() AND a.state = 'idle in transaction') AS holders`, "")
	deadline := time.Now().Add(within)
	for {
		row, err := s.db.Lookup(context.Background(), free, query.Params{}, "", query.Latest)
		if err != nil {
			s.t.Fatal(err)
		}
		var v struct{ Rows, Holders int }
		b, _ := json.Marshal(row.Value)
		json.Unmarshal(b, &v) //nolint:errcheck // the statement's own columns
		if v.Rows > 0 && v.Holders > 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no relay took the outbox's rows within %s (%s)", within, b)
		}
		time.Sleep(10 * time.Millisecond) // polling PostgreSQL, with a deadline
	}
}
