package invalidate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/warm"
)

// The api replicas' in-process tier is as fresh as Redis: these tests give it a LOCAL_CACHE_TTL
// of a minute, so that only the changes it is told of can keep it so.

// TestEveryReplicaDropsWhatChanges: with two api replicas serving from memory, a value changed
// by a write's refresh, and one changed by a scheduled run, is served by both replicas within
// 100 ms of Redis holding it, and from memory again after that.
func TestEveryReplicaDropsWhatChanges(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{apis: 2, localTTL: time.Minute, relays: 1, refreshers: 1, jobs: readmeJobs})
	s.awaitWatching(5 * time.Second)

	written := affected(4343)
	s.inMemory(written...)
	s.post(4343)
	s.visibleEverywhere(100*time.Millisecond, written...)
	s.inMemory(written...)

	scheduled := []key{{"/v1/results/orders_on_schedule", "orders_on_schedule", ""}}
	s.inMemory(scheduled...)
	s.exec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-03-07', 5, 10, 1, 11)")
	ran := make(chan error, 1)
	go func() { ran <- s.run("orders_on_schedule") }()
	s.visibleEverywhere(100*time.Millisecond, scheduled...)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	s.inMemory(scheduled...)
}

// TestReplicaThatLostChangesKeepsNothingOld kills the connection a replica hears the changes on
// (CLIENT KILL), and changes a value while the replica reconnects: the replica serves the new
// value within 100 ms of Redis holding it, never the old one after that, and serves from memory
// again once it hears the changes again.
func TestReplicaThatLostChangesKeepsNothingOld(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{localTTL: time.Minute, relays: 1, refreshers: 1})
	s.awaitWatching(5 * time.Second)
	k := affected(4545)[1]
	s.inMemory(k)
	old, _ := s.get(k.path)
	subscriptions, _ := sample(t, s.apis[0].metrics, "warmcache_local_cache_subscriptions_total")

	s.killSubscriber(s.apis[0].client)
	s.post(4545)
	lostFor := s.visibleEverywhere(100*time.Millisecond, k)
	// Read on until the replica has heard the changes again and serves from memory: never the
	// old value.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := s.get(k.path)
		if got == old {
			t.Fatalf("%s served its old value %s again after the new one", k.path, old)
		}
		n, _ := sample(t, s.apis[0].metrics, "warmcache_local_cache_subscriptions_total")
		before, _ := sample(t, s.apis[0].metrics, "warmcache_cache_hits_total", "tier", "memory")
		got, _ = s.get(k.path)
		after, _ := sample(t, s.apis[0].metrics, "warmcache_cache_hits_total", "tier", "memory")
		if got == old {
			t.Fatalf("%s served its old value %s again after the new one", k.path, old)
		}
		if n > subscriptions && after > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not serve from memory again within 5 s (subscriptions %v, then %v)", subscriptions, n)
		}
		time.Sleep(5 * time.Millisecond) // polling the replica, with a deadline
	}
	t.Logf("the replica served the new value %s after Redis held it", lostFor[0].Round(time.Microsecond))
}

// TestReplicasHearChangesNobodyTells: with a LOCAL_CACHE_TTL of a minute, changes no warmcache
// process announces reach every replica's tier all the same, within 100 ms: a value written by
// a warmer killed between its write and its announcement (here the bytes of another key, copied
// in Redis by hand), and an operator's DEL, after which the value is read through from
// PostgreSQL, where a write nobody relayed changed it. Redis itself tells the tier of every
// change to the namespace's values (CLIENT TRACKING), whoever makes it.
func TestReplicasHearChangesNobodyTells(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{apis: 2, localTTL: time.Minute})
	s.awaitWatching(5 * time.Second)
	written, other := affected(4646)[1], affected(4747)[1]
	s.inMemory(written, other)
	old, _ := s.get(written.path)
	rdb := testenv.Redis(t)
	ctx := context.Background()
	keys, err := cache.NewKeys(s.ns)
	if err != nil {
		t.Fatal(err)
	}

	copied, _ := s.get(other.path)
	if copied == old {
		t.Fatalf("customers 4646 and 4747 have the same value %s: the test cannot tell them apart", old)
	}
	if err := rdb.Copy(ctx, keys.Value(other.job, other.key), keys.Value(written.job, written.key), 0, true).Err(); err != nil {
		t.Fatal(err)
	}
	s.servedEverywhere(100*time.Millisecond, written.path, copied)

	s.exec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-03-07', 4646, 10, 1, 11)")
	if err := rdb.Del(ctx, keys.Value(written.job, written.key)).Err(); err != nil {
		t.Fatal(err)
	}
	s.servedEverywhere(100*time.Millisecond, written.path, s.sql(written.job, written.key))
}

// servedEverywhere waits until every replica serves want at path, failing past within.
func (s *system) servedEverywhere(within time.Duration, path, want string) {
	s.t.Helper()
	started := time.Now()
	for _, r := range s.apis {
		for {
			got, _ := s.getFrom(r.url, path)
			if got == want {
				break
			}
			if time.Since(started) > within {
				s.t.Fatalf("replica %s serves %s at %s %s after the change, want %s", r.client, got, path, time.Since(started), want)
			}
			time.Sleep(2 * time.Millisecond) // polling the replica, with a deadline
		}
	}
}

// key is a path of the api, with the job and key it reads.
type key = struct{ path, job, key string }

// awaitWatching waits until every replica's tier watches the changes.
func (s *system) awaitWatching(within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for _, r := range s.apis {
		for {
			if on, _ := sample(s.t, r.metrics, "warmcache_local_cache_watching"); on == 1 {
				break
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("replica %s does not watch the changes after %s", r.client, within)
			}
			time.Sleep(5 * time.Millisecond) // polling the replica, with a deadline
		}
	}
}

// inMemory reads keys from every replica until each serves them from its in-process tier.
func (s *system) inMemory(keys ...key) {
	s.t.Helper()
	for _, r := range s.apis {
		for _, k := range keys {
			deadline := time.Now().Add(5 * time.Second)
			for {
				before, _ := sample(s.t, r.metrics, "warmcache_cache_hits_total", "tier", "memory")
				s.getFrom(r.url, k.path)
				if after, _ := sample(s.t, r.metrics, "warmcache_cache_hits_total", "tier", "memory"); after > before {
					break
				}
				if time.Now().After(deadline) {
					s.t.Fatalf("replica %s does not serve %s from memory", r.client, k.path)
				}
			}
		}
	}
}

// visibleEverywhere waits until Redis holds, and every replica serves as a HIT, what SQL says
// each key holds, and fails if a replica served it later than within after Redis held it. It
// returns the longest such delay of each key.
func (s *system) visibleEverywhere(within time.Duration, keys ...key) []time.Duration {
	s.t.Helper()
	want := make([]string, len(keys))
	for i, k := range keys {
		want[i] = s.sql(k.job, k.key)
	}
	inRedis := make([]time.Time, len(keys))
	served := make([][]time.Time, len(keys))
	for i := range keys {
		served[i] = make([]time.Time, len(s.apis))
	}
	started := time.Now()
	deadline := started.Add(5 * time.Second)
	for pending := len(keys) * (1 + len(s.apis)); pending > 0; {
		for i, k := range keys {
			if inRedis[i].IsZero() && s.stored(k.job, k.key) == want[i] {
				inRedis[i] = time.Now()
				pending--
			}
			for j, r := range s.apis {
				if !served[i][j].IsZero() {
					continue
				}
				if got, state := s.getFrom(r.url, k.path); got == want[i] {
					if state != "HIT" {
						s.t.Fatalf("replica %s serves the new value of %s as %s, want HIT", r.client, k.path, state)
					}
					served[i][j] = time.Now()
					pending--
				}
			}
		}
		if time.Now().After(deadline) {
			var report []string
			for i, k := range keys {
				line := fmt.Sprintf("%s: in Redis %s", k.path, since(started, inRedis[i]))
				for j, at := range served[i] {
					line += fmt.Sprintf(", at %s %s", s.apis[j].client, since(started, at))
				}
				report = append(report, line)
			}
			s.t.Fatalf("the new values are not everywhere after 5 s:\n%s", strings.Join(report, "\n"))
		}
	}
	late := make([]time.Duration, len(keys))
	for i, k := range keys {
		for j, at := range served[i] {
			late[i] = max(late[i], at.Sub(inRedis[i]))
			if d := at.Sub(inRedis[i]); d > within {
				s.t.Errorf("replica %s served the new value of %s %s after Redis held it, want within %s",
					s.apis[j].client, k.path, d.Round(time.Millisecond), within)
			}
		}
	}
	return late
}

// since says when at was, after started, or "never".
func since(started, at time.Time) string {
	if at.IsZero() {
		return "never"
	}
	return "after " + at.Sub(started).Round(time.Millisecond).String()
}

// stored is the body Redis holds for job's key, or "" if none.
func (s *system) stored(job, key string) string {
	s.t.Helper()
	e, err := s.store.Get(context.Background(), job, key)
	if errors.Is(err, cache.ErrMiss) {
		return ""
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return string(e.Body)
}

// run runs a job as the warmer's schedule does.
func (s *system) run(job string) error {
	for _, j := range s.jobs {
		if j.Name == job {
			runner := warm.NewRunner(baseservice.NewArchetype(discard()), s.db, s.db, s.store, warm.NewMetrics(prometheus.NewRegistry()))
			return warm.Once(context.Background(), []jobs.Job{j}, runner, s.db.Runs(), s.ns, func(jobs.Job) warm.Progress { return nil })
		}
	}
	return fmt.Errorf("no job %s", job)
}

// killSubscriber closes the connection on which the Redis client named client hears the
// changes, as a failing network or an operator's CLIENT KILL would.
func (s *system) killSubscriber(client string) {
	s.t.Helper()
	rdb := testenv.Redis(s.t)
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		s.t.Fatal(err)
	}
	for line := range strings.Lines(list) {
		fields := map[string]string{}
		for f := range strings.FieldsSeq(line) {
			name, value, _ := strings.Cut(f, "=")
			fields[name] = value
		}
		if fields["name"] == client && fields["sub"] != "0" {
			if err := rdb.ClientKillByFilter(context.Background(), "ID", fields["id"]).Err(); err != nil {
				s.t.Fatal(err)
			}
			return
		}
	}
	s.t.Fatalf("no subscriber named %s in CLIENT LIST", client)
}
