package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/warmcache/warmcache/api"
	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// system is warmcache as the recovery tests run it: warmer processes (this test binary run as
// the warmer, killed and signalled for real), an api in the test process with its in-process
// tier, a database of the test's own, and a Redis: the shared one, or one of the test's own that
// the test kills, restarts and fills.
type system struct {
	t        *testing.T
	dbURL    string
	redis    *testenv.RedisServer // nil on the shared Redis
	redisURL string
	ns       string
	jobsFile string
	db       *query.DB       // direct, for the test
	sql      *testenv.Writer // the test's own SQL
	rdb      *redis.Client
	api      string // the api's URL, once startAPI ran
}

// everyHour keeps the built-in jobs from running on their schedules while a test looks at what
// recovers by itself: they run at start, then an hour later.
const everyHour = `jobs:
  orders_total: {schedule: "@hourly", ttl: 2h}
  orders_by_customer: {schedule: "@hourly", ttl: 2h}
  credit_by_customer: {schedule: "@hourly", ttl: 2h}
  credit_overview: {schedule: "@hourly", ttl: 2h}
`

// newSystem sets up a database, a namespace and the jobs file; with redisConfig not nil, a
// Redis of the test's own with those configuration lines.
func newSystem(t *testing.T, jobsFile string, redisConfig []string) *system {
	t.Helper()
	s := &system{t: t, dbURL: testenv.NewDatabase(t), redisURL: testenv.Get(t).RedisURL, jobsFile: testenv.JobsFile(t, jobsFile)}
	if redisConfig != nil {
		s.redis = testenv.NewRedis(t, redisConfig...)
		s.redisURL = s.redis.URL()
		s.ns = "warmcache"
	} else {
		s.ns = testenv.Namespace(t)
	}
	s.db = testenv.OpenDB(t, s.dbURL, query.Options{MaxConns: 4})
	s.sql = testenv.NewWriter(t, s.dbURL, 2)
	opts, err := redis.ParseURL(s.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	s.rdb = redis.NewClient(opts)
	t.Cleanup(func() { s.rdb.Close() })
	return s
}

// environ is the warmer's and the api's environment.
func (s *system) environ(extra ...string) []string {
	return append([]string{"DATABASE_URL=" + s.dbURL, "REDIS_URL=" + s.redisURL, "CACHE_NAMESPACE=" + s.ns,
		"JOBS_FILE=" + s.jobsFile, "ADMIN_ADDR=127.0.0.1:0", "SHUTDOWN_TIMEOUT=30s"}, extra...)
}

// process is a warmer process.
type process struct {
	cmd    *exec.Cmd
	logs   *logLines
	exited chan error
}

// startWarmer starts a warmer process with extra settings and arguments, and stops it (SIGKILL)
// when the test ends if it still runs.
func (s *system) startWarmer(args []string, extra ...string) *process {
	s.t.Helper()
	p := &process{cmd: exec.Command(os.Args[0], args...), logs: newLogLines(), exited: make(chan error, 1)}
	// The race detector's runtime sleeps a second at exit unless told not to.
	p.cmd.Env = append(os.Environ(), append(s.environ(extra...), testenv.RunMainEnv,
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))...)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	s.t.Cleanup(func() {
		p.cmd.Process.Kill() //nolint:errcheck // gone already when the test stopped it
		<-p.exited           //nolint:errcheck // killed, or its status already checked
		if s.t.Failed() {
			s.t.Logf("warmer %d:\n%s", p.cmd.Process.Pid, p.logs)
		}
	})
	return p
}

// kill kills the warmer with SIGKILL, as a crash would.
func (p *process) kill() {
	p.cmd.Process.Kill() //nolint:errcheck // gone already at worst
}

// await waits for n lines matching e in the warmer's log.
func (p *process) await(t *testing.T, e event, n int, within time.Duration) map[string]any {
	t.Helper()
	return p.logs.await(t, e, n, within)
}

// metrics returns the warmer's /metrics.
func (p *process) metrics(t *testing.T) string {
	t.Helper()
	addr := p.await(t, event{msg: "warmer_started"}, 1, 30*time.Second)["admin_addr"].(string)
	return testenv.HTTPGet(t, "http://"+addr+"/metrics").Body
}

// warmed waits until the warmer's first runs of the built-in jobs finished.
func (p *process) warmed(t *testing.T) {
	t.Helper()
	for _, job := range []string{jobs.OrdersTotal, jobs.OrdersByCustomer, jobs.CreditByCustomer, jobs.CreditOverview} {
		p.await(t, event{msg: "job_finished", attrs: map[string]string{"job": job}}, 1, 60*time.Second)
	}
}

const token = "a-test-token-long-enough-for-any-check"

// startAPI runs an api in the test process, as the api binary does, with its in-process tier
// keeping values for a minute: only the changes it is told of keep it fresh.
func (s *system) startAPI() {
	s.t.Helper()
	db := testenv.OpenDB(s.t, s.dbURL, query.Options{MaxConns: 12, QuietWrites: true})
	keys, _ := cache.NewKeys(s.ns)
	store := testenv.OpenStore(s.t, s.redisURL, keys, cache.Options{ClientName: "warmcache-api", Timeout: 100 * time.Millisecond})
	list := testenv.LoadJobsFile(s.t, s.jobsFile, time.Now())
	cfg := api.Config{CacheHeader: "X-Cache", QueryTimeout: 5 * time.Second, MaxQueries: 8, LeaseWait: time.Second,
		Keys: keys, APIToken: token, MaxAge: 2 * time.Second, SurrogateKeyHeader: "Surrogate-Key",
		LocalCacheSize: 64 << 20, LocalCacheTTL: time.Minute}
	server := api.New(baseservice.NewArchetype(slog.New(slog.DiscardHandler)), cfg, store, db, list, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		server.Watch(ctx)
	}()
	hs := httptest.NewServer(server.Handler())
	s.api = hs.URL
	s.t.Cleanup(func() { // before the connections close
		hs.Close()
		cancel()
		<-watching
	})
}

// post creates an order of customer through the api.
func (s *system) post(customer int) {
	s.t.Helper()
	body := `{"orderdate":"2026-11-21","customerid":` + strconv.Itoa(customer) + `,"netamount":12.34,"tax":1.02}`
	if res := testenv.Post(s.t, s.api+"/v1/orders", token, body); res.Status != http.StatusCreated {
		s.t.Fatalf("POST /v1/orders: %d", res.Status)
	}
}

// read reads a path from the api.
func (s *system) read(path string) (body, cacheState string) {
	s.t.Helper()
	res := testenv.HTTPGet(s.t, s.api+path)
	return res.Body, res.Header.Get("X-Cache")
}

// counted is a path whose answer carries a count of orders, and the SQL that counts them.
type counted struct{ path, sql string }

// counts are the answers an order of customer changes that carry a count: the customer's and
// the total.
func counts(customer int) []counted {
	id := strconv.Itoa(customer)
	return []counted{
		{"/v1/orders/count?customerid=" + id, "SELECT count(*) FROM orders WHERE customerid = " + id},
		{"/v1/orders/count", "SELECT count(*) FROM orders"},
	}
}

var countPattern = regexp.MustCompile(`"count":(\d+)`)

// right reads c from the api and reports whether it serves the count SQL gives now.
func (s *system) right(c counted) (bool, string) {
	s.t.Helper()
	want := s.sql.Int(c.sql)
	body, state := s.read(c.path)
	m := countPattern.FindStringSubmatch(body)
	return m != nil && m[1] == strconv.FormatInt(want, 10), c.path + " serves " + body + " as " + state + ", SQL counts " + strconv.FormatInt(want, 10)
}

// recovered waits until every answer of cs is right, reading them in turn, and returns how long
// that took since from; then, for hold, it reads them on and fails at any wrong answer: once
// recovered, nothing old is served again.
func (s *system) recovered(cs []counted, from time.Time, within, hold time.Duration) time.Duration {
	s.t.Helper()
	for {
		wrong := ""
		for _, c := range cs {
			if ok, what := s.right(c); !ok {
				wrong = what
				break
			}
		}
		if wrong == "" {
			break
		}
		if time.Since(from) > within {
			s.t.Fatalf("%s after %s (the bound): %s", time.Since(from).Round(time.Millisecond), within, wrong)
		}
		time.Sleep(5 * time.Millisecond) // polling the api, with a deadline
	}
	took := time.Since(from)
	for end := time.Now().Add(hold); time.Now().Before(end); {
		for _, c := range cs {
			if ok, what := s.right(c); !ok {
				s.t.Fatalf("an old value is served again after recovering: %s", what)
			}
		}
	}
	return took
}

// keyCount counts the keys of job in Redis.
func (s *system) keyCount(job string) int {
	s.t.Helper()
	n := 0
	iter := s.rdb.Scan(context.Background(), 0, s.ns+":"+job+":*", 1000).Iterator()
	for iter.Next(context.Background()) {
		n++
	}
	if err := iter.Err(); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// term sends SIGTERM to the warmer and returns how long it took to exit, failing the test if it
// exits non-zero or not within a minute.
func (p *process) term(t *testing.T) time.Duration {
	t.Helper()
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("the warmer exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the warmer did not exit within a minute of SIGTERM")
	}
	return time.Since(signalled)
}
