package warm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// harness is one warmer's worth of connections on a test database and namespace.
type harness struct {
	arch    *baseservice.Archetype
	ns      string
	dbURL   string
	db      *query.DB
	store   *cache.Store
	metrics *Metrics
	runner  *Runner
	jobs    map[string]jobs.Job
}

func newHarness(t *testing.T, dbURL string) *harness {
	t.Helper()
	db := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 8})
	ns := testenv.Namespace(t)
	keys, err := cache.NewKeys(ns)
	if err != nil {
		t.Fatal(err)
	}
	store := testenv.OpenStore(t, testenv.Get(t).RedisURL, keys, cache.Options{})
	list := testenv.LoadJobs(t, "", time.Now())
	m := NewMetrics(prometheus.NewRegistry())
	arch := baseservice.NewArchetype(slog.New(slog.DiscardHandler))
	return &harness{arch: arch, ns: ns, dbURL: dbURL, db: db, store: store, metrics: m,
		runner: NewRunner(arch, db, db, store, m), jobs: testenv.JobsByName(list)}
}

func (h *harness) entry(t *testing.T, job, key string) cache.Entry {
	t.Helper()
	e, err := h.store.Get(context.Background(), job, key)
	if err != nil {
		t.Fatalf("get %s %q: %v", job, key, err)
	}
	return e
}

// TestWarmWritesWhatSQLSays runs every built-in job once and checks every key against the
// single-key SQL, which is written independently of the streaming SQL the warmer ran.
func TestWarmWritesWhatSQLSays(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testenv.NewDatabase(t))
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	h.arch.Time.Stub(now)
	var all []jobs.Job
	for _, name := range []string{jobs.OrdersTotal, jobs.OrdersByCustomer, jobs.CreditByCustomer, jobs.CreditOverview} {
		all = append(all, h.jobs[name])
	}
	if err := Once(ctx, all, h.runner, h.db.Runs(), h.ns, func(jobs.Job) Progress { return nil }); err != nil {
		t.Fatal(err)
	}
	params := query.Params{Today: query.DateOf(now)}
	customers := 0
	_, err := h.db.Stream(ctx, mustUserSQL(t, "SELECT customerid FROM customers", "{customerid}"), params, func(r query.Row) error {
		customers++
		for _, job := range []string{"orders_by_customer", "credit_by_customer"} {
			want, err := h.db.Lookup(ctx, h.jobs[job].Aggregate, params, r.Key, query.Latest)
			if err != nil {
				return err
			}
			wantBody, _ := json.Marshal(want.Value)
			e := h.entry(t, job, r.Key)
			if !bytes.Equal(e.Body, wantBody) || e.NotFound || e.Position <= 0 || !e.ComputedAt.Equal(now) {
				t.Fatalf("%s %s: stored %s (version %d, computed %s), SQL says %s", job, r.Key, e.Body, e.Position, e.ComputedAt, wantBody)
			}
			// Fresh for the TTL less at most the jitter; kept in Redis for the grace beyond.
			if e.FreshUntil.After(now.Add(10*time.Minute)) || e.FreshUntil.Before(now.Add(9*time.Minute)) ||
				!e.StaleUntil.Equal(e.FreshUntil.Add(time.Hour)) {
				t.Fatalf("%s %s: fresh until %s, kept until %s", job, r.Key, e.FreshUntil, e.StaleUntil)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := h.store.Runs(ctx, "orders_by_customer", "credit_by_customer", "orders_total")
	if err != nil {
		t.Fatal(err)
	}
	for job, want := range map[string]int64{"orders_by_customer": int64(customers), "credit_by_customer": int64(customers), "orders_total": 1} {
		if r := runs[job]; r.Keys != want || r.Error != "" || r.LastSuccess.IsZero() || r.Trigger != "once" {
			t.Errorf("%s run record %+v: want %d keys, no error", job, r, want)
		}
	}
}

func TestOrdersTotalOnDellstore2(t *testing.T) {
	t.Parallel()
	testenv.RequireDellstore2(t)
	h := newHarness(t, testenv.NewDatabase(t))
	if _, err := h.runner.Run(context.Background(), h.jobs["orders_total"], TriggerOnce, nil); err != nil {
		t.Fatal(err)
	}
	if got := string(h.entry(t, "orders_total", "").Body); got != `{"count":12000,"revenue":2567386.79}` {
		t.Errorf("orders_total = %s", got)
	}
}

// TestPostgresDownMidRun cuts PostgreSQL off after the first batch of a keyed run.
func TestPostgresDownMidRun(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	proxy := testenv.NewProxy(t, testenv.HostPort(t, dbURL))
	h := newHarness(t, proxy.Through(dbURL))
	ctx := context.Background()
	job := h.jobs["credit_by_customer"]
	total := h.jobs["orders_total"]

	first, err := h.runner.Run(ctx, job, TriggerOnce, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.runner.Run(ctx, total, TriggerOnce, nil); err != nil {
		t.Fatal(err)
	}
	before := h.entry(t, "orders_total", "")

	// Slowed down, the stream is still running when the first batch lands: the cut comes
	// half-way through the rows.
	proxy.Slow(200)
	var cut atomic.Bool
	failed, err := h.runner.Run(ctx, job, TriggerOnce, func(written int64) {
		if cut.CompareAndSwap(false, true) {
			proxy.Down()
		}
	})
	if !errors.Is(err, query.ErrUnavailable) || failed.Error == "" || failed.Keys >= first.Keys {
		t.Fatalf("run with PostgreSQL cut: %v, record %+v; want it failed part-way", err, failed)
	}
	if _, err := h.runner.Run(ctx, total, TriggerOnce, nil); err == nil {
		t.Fatal("orders_total ran with PostgreSQL down")
	}

	// Every key still holds a complete value: the previous run's or this one's.
	for i := 1; i <= int(first.Keys); i++ {
		var v query.CustomerCredit
		e := h.entry(t, "credit_by_customer", itoa(i))
		if err := json.Unmarshal(e.Body, &v); err != nil || v.CustomerID != int64(i) || v.CardLast4 == "" {
			t.Fatalf("customer %d holds %s after the failed run", i, e.Body)
		}
	}
	if after := h.entry(t, "orders_total", ""); !bytes.Equal(after.Body, before.Body) || after.Position != before.Position {
		t.Errorf("orders_total changed by a failed run: %s", after.Body)
	}
	runs, err := h.store.Runs(ctx, job.Name)
	if err != nil {
		t.Fatal(err)
	}
	if r := runs[job.Name]; r.Error == "" || !r.LastSuccess.Equal(first.Started) {
		t.Errorf("recorded run %+v: want the failure, keeping the last success %s", r, first.Started)
	}
	if n := testutil.ToFloat64(h.metrics.runs.WithLabelValues(job.Name, "failure")); n != 1 {
		t.Errorf("failures counted: %v, want 1", n)
	}

	proxy.Fast()
	proxy.Up()
	again, err := h.runner.Run(ctx, job, TriggerOnce, nil)
	if err != nil || again.Keys != first.Keys {
		t.Fatalf("run after PostgreSQL returned: %v, %d keys; want %d", err, again.Keys, first.Keys)
	}
}

// TestOlderRunNeverOverwrites shows the fencing: keys holding values of a newer snapshot (as a
// replica that took over would write) are left alone by a run that started earlier.
func TestOlderRunNeverOverwrites(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testenv.NewDatabase(t))
	ctx := context.Background()
	future := time.Now().Add(time.Hour).UnixMicro()
	job := h.jobs[jobs.OrdersByCustomer]
	var items []cache.Item
	for _, key := range []string{"1", "2", "3"} {
		e, err := Entry(job, key, map[string]bool{"newer": true}, future, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, cache.Item{Key: key, Entry: e})
	}
	if _, err := h.store.Put(ctx, job.Name, items...); err != nil {
		t.Fatal(err)
	}
	run, err := h.runner.Run(ctx, job, TriggerOnce, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"1", "2", "3"} {
		if got := string(h.entry(t, "orders_by_customer", key).Body); got != `{"newer":true}` {
			t.Errorf("key %s overwritten by an older snapshot: %s", key, got)
		}
	}
	if got := string(h.entry(t, "orders_by_customer", "4").Body); !strings.Contains(got, `"customerid":4`) {
		t.Errorf("key 4 holds %s", got)
	}
	if run.Keys != 20000-3 {
		t.Errorf("run counted %d keys written, want %d", run.Keys, 20000-3)
	}
}

func TestPanicIsAFailedRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testenv.NewDatabase(t))
	broken := h.jobs["orders_total"]
	broken.Aggregate = query.Aggregate{} // no SQL, no functions: it panics when run
	run, err := h.runner.Run(context.Background(), broken, TriggerOnce, nil)
	// The record says it failed; the panic, for the log only, is in the error.
	if err == nil || !strings.Contains(err.Error(), "panic") || !strings.HasPrefix(run.Error, "failed;") {
		t.Fatalf("panicking run: %v, record %+v", err, run)
	}
	if n := testutil.ToFloat64(h.metrics.runs.WithLabelValues("orders_total", "failure")); n != 1 {
		t.Errorf("failures counted: %v, want 1", n)
	}
}

func mustUserSQL(t *testing.T, sql, key string) query.Aggregate {
	t.Helper()
	agg, err := query.UserSQL(sql, key)
	if err != nil {
		t.Fatal(err)
	}
	return agg
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestFailureRecordKeepsTheDataOut: a run record, which GET /v1/jobs shows to anyone, says what
// kind of failure a run met; PostgreSQL's message, which quotes the row that failed, goes to the
// log only.
func TestFailureRecordKeepsTheDataOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testenv.NewDatabase(t))
	var log bytes.Buffer
	arch := baseservice.NewArchetype(slog.New(slog.NewJSONHandler(&syncWriter{w: &log}, nil)))
	runner := NewRunner(arch, h.db, h.db, h.store, h.metrics)
	job := h.jobs["orders_total"]
	job.Aggregate = mustUserSQL(t, "SELECT firstname::int AS n FROM customers ORDER BY customerid", "")
	run, err := runner.Run(context.Background(), job, TriggerRequest, nil)
	if err == nil {
		t.Fatal("a query casting names to integers succeeded")
	}
	const want = "the query failed: data exception (SQLSTATE 22P02); the warmer's log has the details (job_failed)"
	if run.Error != want || run.Trigger != "request" {
		t.Errorf("recorded error %q (trigger %s), want %q", run.Error, run.Trigger, want)
	}
	runs, err := h.store.Runs(context.Background(), job.Name)
	if err != nil || runs[job.Name].Error != want {
		t.Errorf("stored run %+v, %v", runs[job.Name], err)
	}
	if !strings.Contains(log.String(), `"msg":"job_failed"`) || !strings.Contains(log.String(), `invalid input syntax for type integer: \"`) {
		t.Errorf("the log lacks the failure's details: %s", log.String())
	}
}

// syncWriter lets goroutines share a writer.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestRunsRemoveGroupsGone: after each run of a keyed job, Redis holds the keys of its result and
// none of a group whose rows went since the run before, whether that run or a refresh since
// wrote its key (the runs' sweeps, cache.Store.Sweep, walking every key or not).
func TestRunsRemoveGroupsGone(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	h := newHarness(t, dbURL)
	ctx := context.Background()
	db := testenv.NewWriter(t, dbURL, 1)
	job := testenv.JobsByName(testenv.LoadJobs(t, testenv.BuiltinsNotWarmed+`
  tally:
    schedule: "@hourly"
    sql: SELECT g, count(*) AS n FROM tally GROUP BY g
    key: "{g}"
`, time.Now()))["tally"]
	run := func(want ...string) {
		t.Helper()
		if _, err := h.runner.Run(ctx, job, TriggerSchedule, nil); err != nil {
			t.Fatal(err)
		}
		if keys := slices.Sorted(slices.Values(testenv.Keys(t, h.ns, job.Name))); !slices.Equal(keys, want) {
			t.Fatalf("keys after the run: %v; want %v", keys, want)
		}
	}
	db.MustExec("CREATE TABLE tally (g text NOT NULL); INSERT INTO tally VALUES ('a'), ('b'), ('b'), ('c')")
	run("a", "b", "c")
	db.MustExec("DELETE FROM tally WHERE g = 'c'")
	run("a", "b")
	run("a", "b")

	// A group that came and went between two runs, its key written by a refresh meanwhile.
	db.MustExec("INSERT INTO tally VALUES ('d')")
	row, err := h.db.Lookup(ctx, job.Aggregate, query.Params{}, "d", query.Latest)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Entry(job, "d", row.Value, row.Position, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Put(ctx, job.Name, cache.Item{Key: "d", Entry: e}); err != nil {
		t.Fatal(err)
	}
	db.MustExec("DELETE FROM tally WHERE g = 'd'")
	run("a", "b")
}
