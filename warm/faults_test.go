package warm

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// The bounds the warmer's fault tests hold a run to.
const (
	// runRedisTimeout and runPostgresTimeout are the warmer's timeouts (cache.Options.Timeout,
	// query.Options.Timeout and ConnectTimeout), shorter than their default of five seconds so
	// that the test is short.
	runRedisTimeout    = 300 * time.Millisecond
	runPostgresTimeout = 300 * time.Millisecond
	// runMargin is what a failing run may take beyond the timeout of the dependency at fault:
	// the rest of the run, the race detector, a loaded two-core machine. go-redis's own
	// defaults took 1.7 s for each write to a stopped Redis and 20 s to a black-holed one.
	runMargin = 900 * time.Millisecond
	// runBackoff is the scheduler's first pause before it runs a failed job again.
	runBackoff = 200 * time.Millisecond
)

// faultJobs are a keyed job of 2,000 values, which the rows of PostgreSQL reach in several
// batches, and a single-value job, both changed by a change of income.
const faultJobs = `
jobs:
  customer_income:
    schedule: "@hourly"
    ttl: 2h
    timeout: 5s
    sql: SELECT customerid, lastname, address1, city, income FROM customers WHERE customerid <= 2000
    key: "{customerid}"
  total_income:
    schedule: "@hourly"
    ttl: 2h
    timeout: 5s
    sql: SELECT count(*) AS customers, sum(income) AS income FROM customers
`

// TestRunsUnderFaults runs jobs on the scheduler while a fault of Redis or PostgreSQL lasts,
// and checks that every run fails within the timeout of the dependency at fault plus runMargin,
// that the scheduler runs the job again with growing pauses while the fault lasts, that no value is replaced but by a
// complete new value (a run cut short leaves each key at its old value or its new one), and that
// once the fault is lifted the next run writes every new value.
//
// The faults run three at a time, and not beside the package's other tests: their bounds are
// times, and the machine's two cores are shared.
func TestRunsUnderFaults(t *testing.T) {
	slots := make(chan struct{}, 3)
	for _, fl := range []struct {
		name        string
		dependency  string
		apply, lift func(p *testenv.Proxy)
	}{
		{"redis refuses connections", "redis", (*testenv.Proxy).Down, (*testenv.Proxy).Up},
		{"redis black-holed", "redis", (*testenv.Proxy).Hang, (*testenv.Proxy).Unhang},
		{"redis resets connections", "redis", (*testenv.Proxy).Reset, (*testenv.Proxy).Heal},
		// Replies of 2,000 bytes: the replies of a batch's writes are cut half-way.
		{"redis cuts replies", "redis", func(p *testenv.Proxy) { p.Cut(2000) }, (*testenv.Proxy).Heal},
		{"postgresql refuses connections", "postgresql", (*testenv.Proxy).Down, (*testenv.Proxy).Up},
		{"postgresql black-holed", "postgresql", (*testenv.Proxy).Hang, (*testenv.Proxy).Unhang},
		{"postgresql resets connections", "postgresql", (*testenv.Proxy).Reset, (*testenv.Proxy).Heal},
		// Replies of 50 KB: the rows of the keyed job are cut after a few of its batches.
		{"postgresql cuts replies", "postgresql", func(p *testenv.Proxy) { p.Cut(50_000) }, (*testenv.Proxy).Heal},
	} {
		t.Run(fl.name, func(t *testing.T) {
			t.Parallel()
			slots <- struct{}{}
			defer func() { <-slots }()
			w := newFaultWarmer(t)
			proxy := w.rdProxy
			if fl.dependency == "postgresql" {
				proxy = w.pgProxy
			}
			old := w.warm(w.store)
			want := w.change()

			fl.apply(proxy)
			done := w.runWithRetry()
			// Three failed runs of the keyed job: a cut reply may spare the single value.
			w.attempts.await(t, w.jobs[0].Name, 3)
			for job, values := range w.values(w.store) {
				for key, v := range values {
					if v != old[job][key] && v != want[job][key] {
						t.Fatalf("under the fault, %s %q holds %s, neither its old value %s nor its new one %s",
							job, key, v, old[job][key], want[job][key])
					}
				}
			}
			lifted := time.Now()
			fl.lift(proxy)
			bound := runRedisTimeout + runMargin
			if fl.dependency == "postgresql" {
				bound = runPostgresTimeout + runMargin
			}
			// The next run comes as soon as the dependency answers again, or after the pause the
			// failures so far have grown to.
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				w.attempts.check(t, bound, lifted)
				t.Fatal("no run succeeded within 30 s of the fault being lifted")
			}
			w.attempts.check(t, bound, lifted)
			for job, values := range w.values(w.store) {
				for key, v := range values {
					if v != want[job][key] {
						t.Fatalf("after the fault, %s %q holds %s, want %s", job, key, v, want[job][key])
					}
				}
			}
		})
	}
}

// faultWarmer is a warmer's runner reaching PostgreSQL and Redis through proxies, with the
// fault tests' timeouts, and a scheduler of the faultJobs.
type faultWarmer struct {
	t                *testing.T
	jobs             []jobs.Job
	arch             *baseservice.Archetype
	db               *query.DB    // direct, for the test
	store            *cache.Store // direct, for the test
	runner           *Runner      // through the proxies
	pgProxy, rdProxy *testenv.Proxy
	dbURL            string
	attempts         *attempts
}

func newFaultWarmer(t *testing.T) *faultWarmer {
	t.Helper()
	w := &faultWarmer{t: t, dbURL: testenv.NewDatabase(t), attempts: &attempts{}}
	redisURL := testenv.Get(t).RedisURL
	w.pgProxy = testenv.NewProxy(t, testenv.HostPort(t, w.dbURL))
	w.rdProxy = testenv.NewProxy(t, testenv.HostPort(t, redisURL))
	keys, err := cache.NewKeys(testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	open := func(dbURL, redisURL string, dbOpts query.Options, storeOpts cache.Options) (*query.DB, *cache.Store) {
		db := testenv.OpenDB(t, dbURL, dbOpts)
		store := testenv.OpenStore(t, redisURL, keys, storeOpts)
		return db, store
	}
	w.db, w.store = open(w.dbURL, redisURL, query.Options{MaxConns: 4}, cache.Options{})
	db, store := open(w.pgProxy.Through(w.dbURL), w.rdProxy.Through(redisURL),
		query.Options{MaxConns: 8, ConnectTimeout: runPostgresTimeout, Timeout: runPostgresTimeout},
		cache.Options{Timeout: runRedisTimeout})
	list := testenv.LoadJobs(t, faultJobs, time.Now())
	w.jobs = []jobs.Job{testenv.JobsByName(list)["customer_income"], testenv.JobsByName(list)["total_income"]}
	w.arch = baseservice.NewArchetype(slog.New(w.attempts))
	w.runner = NewRunner(w.arch, db, db, store, NewMetrics(prometheus.NewRegistry()))
	w.runner.batchSize = 100
	return w
}

// change raises every customer's income, and returns what the jobs' values then are, computed
// into a namespace of the test's own.
func (w *faultWarmer) change() map[string]map[string]string {
	w.t.Helper()
	testenv.NewWriter(w.t, w.dbURL, 1).MustExec("UPDATE customers SET income = income + 1")
	keys, _ := cache.NewKeys(testenv.Namespace(w.t))
	store := testenv.OpenStore(w.t, testenv.Get(w.t).RedisURL, keys, cache.Options{})
	return w.warm(store)
}

// warm runs the jobs into store, straight, not through the proxies, and returns their values.
func (w *faultWarmer) warm(store *cache.Store) map[string]map[string]string {
	w.t.Helper()
	r := NewRunner(baseservice.NewArchetype(slog.New(slog.DiscardHandler)), w.db, w.db, store, NewMetrics(prometheus.NewRegistry()))
	for _, job := range w.jobs {
		if _, err := r.Run(context.Background(), job, TriggerOnce, nil); err != nil {
			w.t.Fatal(err)
		}
	}
	return w.values(store)
}

// values returns the bodies of the jobs' values in store, by job and key.
func (w *faultWarmer) values(store *cache.Store) map[string]map[string]string {
	w.t.Helper()
	values := map[string]map[string]string{}
	for _, job := range w.jobs {
		keys := []string{""}
		if job.Keyed() {
			keys = keys[:0]
			for id := 1; id <= 2000; id++ {
				keys = append(keys, strconv.Itoa(id))
			}
		}
		values[job.Name] = map[string]string{}
		for _, key := range keys {
			e, err := store.Get(context.Background(), job.Name, key)
			if err != nil {
				w.t.Fatalf("%s %q: %v", job.Name, key, err)
			}
			values[job.Name][key] = string(e.Body)
		}
	}
	return values
}

// runWithRetry runs each job on a scheduler, again after failures, and returns a channel closed
// once every job has succeeded.
func (w *faultWarmer) runWithRetry() <-chan struct{} {
	s := NewScheduler(w.arch, w.jobs, w.runner, w.db.Runs(), "unused")
	s.backoff = runBackoff
	w.t.Cleanup(func() { s.Stop(context.Background()) })
	var running sync.WaitGroup
	for _, job := range w.jobs {
		running.Go(func() { s.runWithRetry(job, time.Now().Add(time.Minute), TriggerSchedule) })
	}
	done := make(chan struct{})
	go func() {
		running.Wait()
		close(done)
	}()
	return done
}

// attempts is a slog handler that records the runs of jobs as the runner logs them.
type attempts struct {
	mu   sync.Mutex
	runs []attempt
}

type attempt struct {
	job            string
	started, ended time.Time
	failed         bool
	duration       time.Duration
	err            string
}

func (a *attempts) Enabled(context.Context, slog.Level) bool { return true }
func (a *attempts) WithAttrs([]slog.Attr) slog.Handler       { return a }
func (a *attempts) WithGroup(string) slog.Handler            { return a }
func (a *attempts) Handle(_ context.Context, rec slog.Record) error {
	attrs := map[string]slog.Value{}
	rec.Attrs(func(at slog.Attr) bool {
		attrs[at.Key] = at.Value
		return true
	})
	job := attrs["job"].String()
	a.mu.Lock()
	defer a.mu.Unlock()
	switch rec.Message {
	case "job_started":
		a.runs = append(a.runs, attempt{job: job, started: rec.Time})
	case "job_failed", "job_finished":
		for i := len(a.runs) - 1; i >= 0; i-- {
			if r := &a.runs[i]; r.job == job {
				r.ended, r.failed = rec.Time, rec.Message == "job_failed"
				r.duration = time.Duration(attrs["duration_ms"].Int64()) * time.Millisecond
				if err, ok := attrs["error"]; ok {
					r.err = err.String()
				}
				break
			}
		}
	}
	return nil
}

// await waits until n runs of job have failed.
func (a *attempts) await(t *testing.T, job string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a.mu.Lock()
		failed := 0
		for _, r := range a.runs {
			if r.job == job && r.failed {
				failed++
			}
		}
		a.mu.Unlock()
		if failed >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d failed runs of %s within 20 s, want %d", failed, job, n)
		}
		time.Sleep(10 * time.Millisecond) // polling the log, with a deadline
	}
}

// check checks each job's runs: each failed within bound, each begun while the fault lasted (it
// was lifted at lifted) came after a pause at least as long as the scheduler's backoff,
// doubling, and the last one succeeded. A run begun after the fault was lifted may come
// sooner: the scheduler retries as soon as the dependency answers again.
func (a *attempts) check(t *testing.T, bound time.Duration, lifted time.Time) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	byJob := map[string][]attempt{}
	for _, r := range a.runs {
		byJob[r.job] = append(byJob[r.job], r)
	}
	for job, runs := range byJob {
		var summary []string
		for i, r := range runs {
			summary = append(summary, fmt.Sprintf("%s after %s", map[bool]string{true: "failed", false: "succeeded"}[r.failed],
				r.duration.Round(time.Millisecond)))
			if r.failed {
				summary = append(summary, "("+r.err+")")
			}
			if r.failed && r.duration > bound {
				t.Errorf("%s: run %d failed after %s, want within %s (%s)", job, i+1, r.duration, bound, r.err)
			}
			if i > 0 && r.started.Before(lifted) {
				pause, want := r.started.Sub(runs[i-1].ended), runBackoff<<(i-1)
				if pause < want*9/10 {
					t.Errorf("%s: run %d started %s after run %d failed, want a pause of %s", job, i+1, pause, i, want)
				}
			}
		}
		if len(runs) == 0 || runs[len(runs)-1].failed {
			t.Errorf("%s: the last run failed", job)
		}
		t.Logf("%s: %v", job, summary)
	}
}
