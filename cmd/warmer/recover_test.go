package main

import (
	"errors"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
)

var builtins = []string{jobs.OrdersTotal, jobs.OrdersByCustomer, jobs.CreditByCustomer, jobs.CreditOverview}

// runsSoFar counts the runs of each built-in job the warmer finished so far.
func (p *process) runsSoFar() map[string]int {
	n := map[string]int{}
	for _, job := range builtins {
		n[job] = p.logs.count(event{msg: "job_finished", attrs: map[string]string{"job": job}})
	}
	return n
}

// rewarmed waits until the warmer says Redis lost its data set (for reason) within a second of
// from, then until it ran every job once more than before (runs: runsSoFar before the loss),
// and returns how long that took since from.
func (p *process) rewarmed(t *testing.T, reason string, from time.Time, runs map[string]int) time.Duration {
	t.Helper()
	p.await(t, event{msg: "redis_data_lost", attrs: map[string]string{"reason": reason}}, 1, time.Second+time.Since(from))
	for _, job := range builtins {
		p.await(t, event{msg: "run_started_on_request", attrs: map[string]string{"job": job}}, 1, time.Second)
	}
	for _, job := range builtins {
		p.await(t, event{msg: "job_finished", attrs: map[string]string{"job": job}}, runs[job]+1, time.Minute)
	}
	return time.Since(from)
}

// TestRedisBackWithOldData: Redis killed and restarted from a snapshot taken before a write
// holds the write's old values, and misses the write made while it was down. The write made
// meanwhile shows within the second of Redis answering: the outbox drains at once, and the
// refresher retries as soon as Redis answers rather than at the end of its backoff. Within a
// second too, the warmer sees that Redis restarted and runs every job again, and once those
// runs end nothing old is served: the api, its in-process tier on, included.
func TestRedisBackWithOldData(t *testing.T) {
	t.Parallel()
	s := newSystem(t, everyHour, []string{})
	s.startAPI()
	w := s.startWarmer(nil)
	w.warmed(t)
	before, during := 19001, 19002 // late in the runs' order of keys
	for _, c := range append(counts(before), counts(during)...) {
		s.read(c.path) // into the api's memory
	}
	if out := s.redis.CLI("SAVE"); out != "OK" {
		t.Fatalf("SAVE: %s", out)
	}
	s.post(before)
	s.recovered(counts(before), time.Now(), 5*time.Second, 0)
	runs := w.runsSoFar()
	s.redis.Kill()
	s.post(during) // its change waits in the outbox
	s.redis.Start()
	back := time.Now()
	shown := s.recovered(counts(during)[:1], back, time.Second, 0)
	rewarmed := w.rewarmed(t, "restarted", back, runs)
	s.recovered(append(counts(before), counts(during)...), time.Now(), 0, time.Second)
	t.Logf("after Redis came back: the write made while it was down showed in %s, every job ran again in %s",
		shown.Round(time.Millisecond), rewarmed.Round(time.Millisecond))
}

// TestRedisBackEmpty: Redis restarted empty, or flushed, is warmed again at once, keys nobody
// reads included, rather than at the jobs' next scheduled runs (an hour away here).
func TestRedisBackEmpty(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		lose func(s *system)
	}{
		{"restarted empty", func(s *system) { s.redis.Kill(); s.redis.Start() }},
		{"flushed", func(s *system) {
			if out := s.redis.CLI("FLUSHALL"); out != "OK" {
				s.t.Fatalf("FLUSHALL: %s", out)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, everyHour, []string{})
			w := s.startWarmer(nil)
			w.warmed(t)
			// The runs requested at start (Redis had no mark yet) and the first ticks make one
			// run of each job: none is pending, and each job started once.
			pending, err := s.db.Runs().RequestedRuns(t.Context(), s.ns)
			if err != nil || len(pending) > 0 {
				t.Errorf("runs still requested after the first runs: %v (%v)", pending, err)
			}
			for _, job := range builtins {
				if n := w.logs.count(event{msg: "job_started", attrs: map[string]string{"job": job}}); n != 1 {
					t.Errorf("%s started %d times at start, want once", job, n)
				}
			}
			keyed := map[string]int{jobs.OrdersByCustomer: s.keyCount(jobs.OrdersByCustomer),
				jobs.CreditByCustomer: s.keyCount(jobs.CreditByCustomer)}
			runs := w.runsSoFar()
			tc.lose(s)
			rewarmed := w.rewarmed(t, "emptied", time.Now(), runs)
			for job, want := range keyed {
				if n := s.keyCount(job); n != want {
					t.Errorf("%s has %d keys once warmed again, want %d", job, n, want)
				}
			}
			for _, job := range []string{jobs.OrdersTotal, jobs.CreditOverview} {
				if n, err := s.rdb.Exists(t.Context(), s.ns+":"+job).Result(); err != nil || n != 1 {
					t.Errorf("%s is missing once warmed again (%v)", job, err)
				}
			}
			t.Logf("every job ran again %s after Redis lost the data set", rewarmed.Round(time.Millisecond))
		})
	}
}

// TestSIGTERMDoesNotWaitOutRetries: with Redis unreachable, the runs fail and wait to be retried;
// SIGTERM ends those waits at once (nothing runs), instead of after SHUTDOWN_TIMEOUT (30 s).
func TestSIGTERMDoesNotWaitOutRetries(t *testing.T) {
	t.Parallel()
	s := newSystem(t, everyHour, []string{})
	s.redis.Kill()
	w := s.startWarmer(nil)
	for _, job := range builtins {
		w.await(t, event{msg: "job_retrying", attrs: map[string]string{"job": job}}, 1, 30*time.Second)
	}
	took := w.term(t)
	w.await(t, event{msg: "warmer_stopped"}, 1, 0)
	if took > time.Second {
		t.Errorf("the warmer took %s to exit after SIGTERM, with nothing running; want at most a second", took)
	}
	t.Logf("exit %s after SIGTERM", took.Round(time.Millisecond))
}

// TestDeadConsumersAreRemoved: a warmer killed leaves its consumer in the stream's consumer
// group; the others remove it once it has been idle, with nothing pending, for 30 s, and the
// live one still reads.
func TestDeadConsumersAreRemoved(t *testing.T) {
	t.Parallel()
	s := newSystem(t, everyHour, nil)
	dead, alive := s.startWarmer(nil), s.startWarmer(nil)
	consumers := func() []string {
		cs, err := s.rdb.XInfoConsumers(t.Context(), s.ns+":_events", "warmers").Result()
		if err != nil {
			return nil // no stream or group yet
		}
		var names []string
		for _, c := range cs {
			names = append(names, c.Name)
		}
		return names
	}
	of := func(p *process) string { return "/" + strconv.Itoa(p.cmd.Process.Pid) + "/" }
	has := func(names []string, p *process) bool {
		return slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, of(p)) })
	}
	// A consumer joins the group with the first events it reads: write until both read some.
	deadline := time.Now().Add(30 * time.Second)
	for names := consumers(); !has(names, dead) || !has(names, alive); names = consumers() {
		if time.Now().After(deadline) {
			t.Fatalf("consumers %v: want both warmers'", names)
		}
		s.sql.MustExec("UPDATE customers SET income = income + 1 WHERE customerid = 7")
		time.Sleep(50 * time.Millisecond) // polling Redis, with a deadline
	}
	dead.kill()
	killed := time.Now()
	for names := consumers(); has(names, dead); names = consumers() {
		if time.Since(killed) > 45*time.Second {
			t.Fatalf("consumers %v still hold the dead warmer's %s after %s", names, of(dead), time.Since(killed))
		}
		time.Sleep(100 * time.Millisecond) // polling Redis, with a deadline
	}
	s.sql.MustExec("UPDATE customers SET income = income + 1 WHERE customerid = 7")
	for names := consumers(); !has(names, alive); names = consumers() {
		if time.Since(killed) > time.Minute {
			t.Fatalf("consumers %v: the live warmer reads no more", names)
		}
		time.Sleep(50 * time.Millisecond) // polling Redis, with a deadline
	}
	t.Logf("the dead warmer's consumer was removed %s after it was killed", time.Since(killed).Round(time.Millisecond))
}

// slowKeyed is a keyed job that takes a few seconds to run over dellstore2's 20,000 customers,
// each key holding the one value of the table knob: a test changes it, asks for a run, and
// kills the warmer half-way. The rows come in the customers' order, every eighth after a sleep (a
// volatile function in the select list runs after the sort, as rows stream out), so that the
// run writes its batches over seconds. A change of knob alone refreshes it not: the test's runs are its
// requests'.
const slowKeyed = testenv.BuiltinsNotWarmed + `
  knob:
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT c.customerid, k.v FROM (SELECT customerid, pg_sleep(CASE WHEN customerid % 8 = 0 THEN 0.0002 ELSE 0 END) FROM customers ORDER BY customerid) c CROSS JOIN knob k
    key: "{customerid}"
    depends_on: []
`

// knobValues counts the knob job's keys holding v, and all of them.
func (s *system) knobValues(v int) (holding, all int) {
	s.t.Helper()
	ctx := s.t.Context()
	var keys []string
	iter := s.rdb.Scan(ctx, 0, s.ns+":knob:*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		s.t.Fatal(err)
	}
	want := `"v":` + strconv.Itoa(v)
	for chunk := range slices.Chunk(keys, 1000) {
		values, err := s.rdb.MGet(ctx, chunk...).Result()
		if err != nil {
			s.t.Fatal(err)
		}
		for _, v := range values {
			if str, _ := v.(string); strings.Contains(str, want) {
				holding++
			}
		}
	}
	return holding, len(keys)
}

// TestCrashedRunIsRedone: a warmer killed half-way through a keyed run leaves its keys half old,
// half new. The run is taken over within a second or two, by a second replica as soon as the
// dead one's lock goes, or by the warmer restarted, as it starts, rather than at the job's next
// scheduled run (an hour away here); a warmer --once killed likewise.
func TestCrashedRunIsRedone(t *testing.T) {
	t.Parallel()
	finished := event{msg: "job_finished", attrs: map[string]string{"job": "knob"}}
	for _, tc := range []struct {
		name   string
		once   bool // the run killed is warmer --once's, not a replica's
		second bool // a second replica runs beside it; else the warmer killed is started again
	}{
		{"by a second replica", false, true},
		{"by the warmer restarted", false, false},
		{"of warmer --once, by a replica", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, slowKeyed, nil)
			s.sql.MustExec("CREATE TABLE knob AS SELECT 1 AS v")
			var first, other *process
			if tc.once {
				other = s.startWarmer(nil)
				other.await(t, finished, 1, time.Minute)
				s.sql.MustExec("UPDATE knob SET v = 2")
				first = s.startWarmer([]string{"--once", "--job", "knob"})
			} else {
				first = s.startWarmer(nil)
				first.await(t, finished, 1, time.Minute)
				s.sql.MustExec("UPDATE knob SET v = 2")
				if err := s.db.Runs().RequestRun(t.Context(), s.ns, "knob"); err != nil {
					t.Fatal(err)
				}
				first.await(t, event{msg: "run_started_on_request", attrs: map[string]string{"job": "knob"}}, 1, 10*time.Second)
				if tc.second {
					other = s.startWarmer(nil)
					other.await(t, event{msg: "warmer_started"}, 1, 30*time.Second)
				}
			}
			begun := time.Now()
			for v, _ := s.rdb.Get(t.Context(), s.ns+":knob:1").Result(); !strings.Contains(v, `"v":2`); v, _ = s.rdb.Get(t.Context(), s.ns+":knob:1").Result() {
				if time.Since(begun) > 30*time.Second {
					t.Fatalf("the run wrote no batch within 30 s: key 1 holds %q", v)
				}
				time.Sleep(5 * time.Millisecond) // polling Redis for the run's first batch (the keys come in order), with a deadline
			}
			first.kill()
			killed := time.Now()
			if n, all := s.knobValues(2); n == all {
				t.Fatalf("the run wrote all %d keys before it was killed: kill it earlier", all)
			} else {
				t.Logf("killed with %d keys of %d new", n, all)
			}
			from, bound := killed, 2*time.Second // the second replica looks every second
			if !tc.second {
				other = s.startWarmer(nil)
				from, bound = logTime(t, other.await(t, event{msg: "warmer_started"}, 1, 30*time.Second)), time.Second
			}
			runs := other.logs.count(finished)
			taken := logTime(t, other.await(t, event{msg: "run_taken_over", attrs: map[string]string{"job": "knob"}}, 1, time.Minute)).Sub(from)
			if taken > bound {
				t.Errorf("the run was taken over %s after the warmer died (or started again), want within %s", taken, bound)
			}
			other.await(t, finished, runs+1, time.Minute)
			if n, all := s.knobValues(2); n != all {
				t.Errorf("%d keys of %d hold the new value once the run was redone", n, all)
			}
			t.Logf("%s: taken over %s after the kill (or the restart), redone %s after the kill", tc.name, taken.Round(time.Millisecond),
				time.Since(killed).Round(time.Millisecond))
		})
	}
}

// logTime is the time of a log line.
func logTime(t *testing.T, line map[string]any) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, line["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// exitStatus waits for a warmer run with --once to exit, and returns its status.
func (p *process) exitStatus(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(2 * time.Minute):
		t.Fatal("warmer --once still runs after two minutes")
		return -1
	}
}

// TestFullRedis: a Redis that reached maxmemory is not silent. With an evicting policy, a run
// during which Redis evicted keys fails and says so, and the evictions are counted and logged.
// With noeviction, a write's values, which Redis refuses to store, are served from PostgreSQL
// within the second, not the old ones from Redis (Redis still deletes them); a bulk run says
// Redis is full; and once Redis has room again, hits resume.
func TestFullRedis(t *testing.T) {
	t.Parallel()
	t.Run("allkeys-lru", func(t *testing.T) {
		t.Parallel()
		s := newSystem(t, everyHour, []string{"maxmemory 4mb", "maxmemory-policy allkeys-lru"})
		once := s.startWarmer([]string{"--once"})
		if status := once.exitStatus(t); status != 1 || !strings.Contains(once.logs.String(), "redis evicted keys during the run") {
			t.Fatalf("warmer --once exit status %d, want 1 saying Redis evicted keys; log:\n%s", status, once.logs)
		}
		w := s.startWarmer(nil)
		w.await(t, event{msg: "redis_evicted_keys"}, 1, 30*time.Second)
		if m := regexp.MustCompile(`(?m)^warmcache_redis_evicted_keys_total (\d+)`).FindStringSubmatch(w.metrics(t)); m == nil || m[1] == "0" {
			t.Errorf("warmcache_redis_evicted_keys_total: %v, want a count", m)
		}
	})
	t.Run("noeviction", func(t *testing.T) {
		t.Parallel()
		s := newSystem(t, everyHour, []string{"maxmemory-policy noeviction"})
		s.startAPI()
		w := s.startWarmer(nil)
		w.warmed(t)
		customer := 4242
		for _, c := range counts(customer) {
			s.read(c.path) // into the api's memory
		}
		// Full: its memory over maxmemory, whatever the clients' buffers take or give back.
		if out := s.redis.CLI("CONFIG", "SET", "maxmemory", "1mb"); out != "OK" {
			t.Fatalf("CONFIG SET maxmemory: %s", out)
		}
		s.post(customer)
		took := s.recovered(counts(customer), time.Now(), time.Second, time.Second)
		t.Logf("with Redis full, a write's values were served from PostgreSQL %s after it", took.Round(time.Millisecond))

		once := s.startWarmer([]string{"--once", "--job", jobs.OrdersTotal})
		if status := once.exitStatus(t); status != 1 || !strings.Contains(once.logs.String(), "redis is full") {
			t.Fatalf("warmer --once exit status %d, want 1 saying Redis is full; log:\n%s", status, once.logs)
		}

		if out := s.redis.CLI("CONFIG", "SET", "maxmemory", "0"); out != "OK" {
			t.Fatalf("CONFIG SET maxmemory: %s", out)
		}
		roomy := time.Now()
		for _, c := range counts(customer) {
			for ok, _ := s.right(c); ; ok, _ = s.right(c) {
				if _, state := s.read(c.path); ok && state == "HIT" {
					break
				}
				if time.Since(roomy) > 5*time.Second {
					t.Fatalf("%s is not a HIT 5 s after Redis has room again", c.path)
				}
				time.Sleep(10 * time.Millisecond) // polling the api, with a deadline
			}
		}
	})
}
