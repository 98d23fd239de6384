package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warmcache/warmcache/jobs"
)

var builtins = []string{jobs.OrdersTotal, jobs.OrdersByCustomer, jobs.CreditByCustomer, jobs.CreditOverview}

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

// slowKeyed is a keyed job that takes a few seconds to run over dellstore2's 20,000 customers,
// each key holding the one value of the table knob: a test changes it, asks for a run, and
// kills the warmer half-way.
const slowKeyed = `jobs:
  orders_total: {enabled: false}
  orders_by_customer: {enabled: false}
  credit_by_customer: {enabled: false}
  credit_overview: {enabled: false}
  knob:
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT c.customerid, k.v FROM customers c CROSS JOIN knob k CROSS JOIN LATERAL (SELECT pg_sleep(0.0002)) s ORDER BY c.customerid
    key: "{customerid}"
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
// scheduled run (an hour away here).
func TestCrashedRunIsRedone(t *testing.T) {
	t.Parallel()
	for _, second := range []bool{true, false} {
		name := map[bool]string{true: "by a second replica", false: "by the warmer restarted"}[second]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, slowKeyed, nil)
			if _, err := s.sql.Exec("CREATE TABLE knob AS SELECT 1 AS v"); err != nil {
				t.Fatal(err)
			}
			first := s.startWarmer(nil)
			first.await(t, event{msg: "job_finished", attrs: map[string]string{"job": "knob"}}, 1, time.Minute)
			if _, err := s.sql.Exec("UPDATE knob SET v = 2"); err != nil {
				t.Fatal(err)
			}
			if err := s.db.RequestRun(t.Context(), s.ns, "knob"); err != nil {
				t.Fatal(err)
			}
			first.await(t, event{msg: "run_started_on_request", attrs: map[string]string{"job": "knob"}}, 1, 10*time.Second)
			var other *process
			if second {
				other = s.startWarmer(nil)
				other.await(t, event{msg: "warmer_started"}, 1, 30*time.Second)
			}
			for v, _ := s.rdb.Get(t.Context(), s.ns+":knob:1").Result(); !strings.Contains(v, `"v":2`); v, _ = s.rdb.Get(t.Context(), s.ns+":knob:1").Result() {
				time.Sleep(5 * time.Millisecond) // polling Redis for the run's first batch (the keys come in order)
			}
			first.kill()
			killed := time.Now()
			if n, all := s.knobValues(2); n == all {
				t.Fatalf("the run wrote all %d keys before it was killed: kill it earlier", all)
			} else {
				t.Logf("killed with %d keys of %d new", n, all)
			}
			from, bound := killed, 2*time.Second // the second replica looks every second
			if !second {
				other = s.startWarmer(nil)
				from, bound = logTime(t, other.await(t, event{msg: "warmer_started"}, 1, 30*time.Second)), time.Second
			}
			taken := logTime(t, other.await(t, event{msg: "run_taken_over", attrs: map[string]string{"job": "knob"}}, 1, time.Minute)).Sub(from)
			if taken > bound {
				t.Errorf("the run was taken over %s after the warmer died (or started again), want within %s", taken, bound)
			}
			other.await(t, event{msg: "job_finished", attrs: map[string]string{"job": "knob"}}, 1, time.Minute)
			if n, all := s.knobValues(2); n != all {
				t.Errorf("%d keys of %d hold the new value once the run was redone", n, all)
			}
			t.Logf("taken over %s after the kill (or the restart), redone %s after the kill", taken.Round(time.Millisecond),
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
