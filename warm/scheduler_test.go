package warm

import (
	"context"
	"log/slog"
	"sync"
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

// replica is one warmer process's scheduler, with connections of its own.
type replica struct {
	sched   *Scheduler
	metrics *Metrics
}

func startReplicas(t *testing.T, n int, dbURL, namespace string, list []jobs.Job, logger *slog.Logger) []replica {
	t.Helper()
	var rs []replica
	for range n {
		db := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 8})
		keys, _ := cache.NewKeys(namespace)
		store := testenv.OpenStore(t, testenv.Get(t).RedisURL, keys, cache.Options{})
		m := NewMetrics(prometheus.NewRegistry())
		arch := baseservice.NewArchetype(logger)
		s := NewScheduler(arch, list, NewRunner(arch, db, db, store, m), db.Runs(), namespace)
		rs = append(rs, replica{sched: s, metrics: m})
	}
	for _, r := range rs {
		r.sched.Start()
		t.Cleanup(func() { r.sched.Stop(context.Background()) }) // before the connections close
	}
	return rs
}

// awaitRuns waits until the replicas ran each of jobs n times in all, failing the test past
// within, then stops them.
func awaitRuns(t *testing.T, rs []replica, n int, within time.Duration, jobs ...string) {
	t.Helper()
	started := time.Now()
	for _, job := range jobs {
		for totalRuns(rs, job) < n {
			if time.Since(started) > within {
				t.Fatalf("%s ran %d times in %s, want %d", job, totalRuns(rs, job), time.Since(started), n)
			}
			time.Sleep(20 * time.Millisecond) // polling the counters, with a deadline
		}
	}
	for _, r := range rs {
		r.sched.Stop(context.Background())
	}
}

func totalRuns(rs []replica, job string) int {
	n := 0.0
	for _, r := range rs {
		n += testutil.ToFloat64(r.metrics.runs.WithLabelValues(job, "success")) +
			testutil.ToFloat64(r.metrics.runs.WithLabelValues(job, "failure"))
	}
	return int(n)
}

// TestReplicasRunEachTickOnce starts three warmers with two quick jobs @every 1s: each tick runs
// once in all, not once per replica. (The jobs are quick so that a run ends within its tick on a
// loaded machine: what is tested is the claim of each tick, not the speed of a run.)
func TestReplicasRunEachTickOnce(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	ns := testenv.Namespace(t)
	list := testenv.LoadJobs(t, `
jobs:
  orders_total: {schedule: "@every 1s"}
  orders_by_customer: {enabled: false}
  credit_by_customer: {enabled: false}
  credit_overview: {enabled: false}
  ping:
    schedule: "@every 1s"
    sql: SELECT 1 AS one
`, time.Now())
	var enabled []string
	for _, j := range list {
		if j.Enabled {
			enabled = append(enabled, j.Name)
		}
	}
	started := time.Now()
	rs := startReplicas(t, 3, dbURL, ns, list, slog.New(slog.DiscardHandler))
	awaitRuns(t, rs, 10, 60*time.Second, enabled...)
	// One run at start, then one per whole second that passed.
	ticks := 1 + int(time.Since(started)/time.Second) + 1
	for _, job := range enabled {
		runs := totalRuns(rs, job)
		if runs > ticks {
			t.Errorf("%s ran %d times in %d ticks across 3 replicas: some ticks ran more than once", job, runs, ticks)
		}
		var per []int
		for _, r := range rs {
			per = append(per, int(testutil.ToFloat64(r.metrics.runs.WithLabelValues(job, "success"))))
		}
		t.Logf("%s: %d runs in %d ticks, per replica %v", job, runs, ticks, per)
	}
}

// runTracker is a slog handler that follows job_started and job_finished across replicas and
// remembers the most runs of one job in flight at once.
type runTracker struct {
	mu       sync.Mutex
	inFlight int
	most     int
	runs     int
}

func (r *runTracker) Enabled(context.Context, slog.Level) bool { return true }
func (r *runTracker) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *runTracker) WithGroup(string) slog.Handler            { return r }
func (r *runTracker) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch rec.Message {
	case "job_started":
		r.inFlight++
		r.runs++
		r.most = max(r.most, r.inFlight)
	case "job_finished", "job_failed":
		r.inFlight--
	}
	return nil
}

// TestSlowJobNeverOverlaps runs a job that takes longer than its interval on three replicas.
func TestSlowJobNeverOverlaps(t *testing.T) {
	t.Parallel()
	list := testenv.LoadJobs(t, testenv.BuiltinsNotWarmed+`
  slow:
    schedule: "@every 1s"
    sql: SELECT pg_sleep(1.5)::text AS slept
`, time.Now())
	tracker := &runTracker{}
	rs := startReplicas(t, 3, testenv.NewDatabase(t), testenv.Namespace(t), list, slog.New(tracker))
	awaitRuns(t, rs, 3, 30*time.Second, "slow")
	if tracker.most != 1 {
		t.Errorf("up to %d runs of one job at once, want 1", tracker.most)
	}
}

// TestSchedulerWarmsAtStart: a job due hourly still runs as the warmer starts.
func TestSchedulerWarmsAtStart(t *testing.T) {
	t.Parallel()
	list := testenv.LoadJobs(t, `
jobs:
  orders_total: {schedule: "@hourly", ttl: 2h}
  orders_by_customer: {enabled: false}
  credit_by_customer: {enabled: false}
  credit_overview: {enabled: false}
`, time.Now())
	rs := startReplicas(t, 2, testenv.NewDatabase(t), testenv.Namespace(t), list, slog.New(slog.DiscardHandler))
	awaitRuns(t, rs, 1, 20*time.Second, "orders_total") // the run at start
	if n := totalRuns(rs, "orders_total"); n != 1 {
		t.Errorf("two replicas starting together ran the job %d times, want once", n)
	}
}

// TestRunRequests: runs asked for outside the schedule (POST /v1/jobs/{job}/run) while the job
// runs on another replica wait for that run to end, then coalesce into one run, recorded.
func TestRunRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testenv.NewDatabase(t))
	ctx := context.Background()
	job := h.jobs[jobs.OrdersTotal]
	job.Enabled = false // no scheduled run: only the requested ones
	unlock := h.runElsewhere(t, job.Name)
	for range 5 {
		if err := h.db.Runs().RequestRun(ctx, h.ns, job.Name); err != nil {
			t.Fatal(err)
		}
	}
	events := make(chan string, 100)
	arch := baseservice.NewArchetype(slog.New(&eventHandler{events: events}))
	s := NewScheduler(arch, []jobs.Job{job}, NewRunner(arch, h.db, h.db, h.store, h.metrics), h.db.Runs(), h.ns)
	s.Start()
	awaitEvent(t, events, "run_request_deferred")
	released := time.Now()
	unlock()
	awaitEvent(t, events, "job_finished")
	s.Stop(ctx)
	runs, err := h.store.Runs(ctx, job.Name)
	if r := runs[job.Name]; err != nil || r.Keys != 1 || r.Error != "" || r.Started.Before(released) {
		t.Errorf("requested run %+v, %v: want one key written, started after the other run ended at %s", r, err, released)
	}
	if n := totalRuns([]replica{{s, h.metrics}}, job.Name); n != 1 {
		t.Errorf("five requests made %d runs, want one", n)
	}
	if pending, err := h.db.Runs().RequestedRuns(ctx, h.ns); err != nil || len(pending) != 0 {
		t.Errorf("requests still pending: %v, %v", pending, err)
	}
}

// runElsewhere takes job's lock, as another replica running it does, and returns what releases
// it.
func (h *harness) runElsewhere(t *testing.T, job string) (unlock func()) {
	t.Helper()
	unlock, locked, err := h.db.Runs().Lock(context.Background(), h.ns, job)
	if err != nil || !locked {
		t.Fatalf("lock: %v, %v", locked, err)
	}
	return unlock
}

// eventHandler is a slog handler that sends the message of each record to events, dropping
// what does not fit.
type eventHandler struct{ events chan<- string }

func (h *eventHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *eventHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *eventHandler) WithGroup(string) slog.Handler            { return h }
func (h *eventHandler) Handle(_ context.Context, rec slog.Record) error {
	select {
	case h.events <- rec.Message:
	default:
	}
	return nil
}

// awaitEvent waits up to 20 seconds for the log event named want.
func awaitEvent(t *testing.T, events <-chan string, want string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case got := <-events:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %s within 20 s", want)
		}
	}
}

// TestOnceWaitsForALockWithoutAConnection: warmer --once waits for a job another replica runs,
// and holds none of its pool's connections meanwhile (waiting on the lock in PostgreSQL would
// hold one: with a pool that small, nothing else could query).
func TestOnceWaitsForALockWithoutAConnection(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testenv.NewDatabase(t))
	ctx := context.Background()
	job := h.jobs[jobs.OrdersTotal]
	unlock := h.runElsewhere(t, job.Name)
	small := testenv.OpenDB(t, h.dbURL, query.Options{MaxConns: 1})
	done := make(chan error, 1)
	go func() {
		done <- Once(ctx, []jobs.Job{job}, NewRunner(h.arch, small, small, h.store, h.metrics), small.Runs(), h.ns,
			func(jobs.Job) Progress { return nil })
	}()
	waited := time.Now()
	for time.Since(waited) < time.Second {
		pingCtx, cancel := context.WithTimeout(ctx, time.Second)
		err := small.Ping(pingCtx)
		cancel()
		if err != nil {
			t.Fatalf("the pool of warmer --once cannot query while it waits for the lock: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("warmer --once ended (%v) while another replica held the job's lock", err)
		case <-time.After(50 * time.Millisecond): // a second of pings while it waits
		}
	}
	released := time.Now()
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	runs, err := h.store.Runs(ctx, job.Name)
	if r := runs[job.Name]; err != nil || r.Started.Before(released) {
		t.Errorf("run %+v, %v: want one that started after the other replica's run ended at %s", r, err, released)
	}
}
