package invalidate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
)

// TestEveryWriteBecomesVisible makes 100 orders through the api, one after the other: each is
// visible on every key it changes within a second, served as a HIT.
func TestEveryWriteBecomesVisible(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 1, refreshers: 1})
	var took []time.Duration
	for i := range 100 {
		customer := 1 + (i*7919)%20000
		s.post(customer)
		took = append(took, s.waitVisible(customer, time.Second))
	}
	slices.Sort(took)
	t.Logf("write to visible on all four keys: p50 %s, p99 %s, max %s", took[50], took[98], took[99])
}

// TestWritesOfOtherApplications: an INSERT through psql, which knows nothing of warmcache, is
// visible within two seconds; so are an UPDATE moving an order and a DELETE.
func TestWritesOfOtherApplications(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 1, refreshers: 1})
	s.exec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2026-11-21', 77, 10, 1, 11)")
	s.waitVisible(77, 2*time.Second)
	s.exec("UPDATE orders SET customerid = 78 WHERE orderid = (SELECT max(orderid) FROM orders)")
	s.waitVisible(77, 2*time.Second)
	s.waitVisible(78, 2*time.Second)
	s.exec("DELETE FROM orders WHERE orderid = (SELECT max(orderid) FROM orders)")
	s.waitVisible(78, 2*time.Second)
	s.exec("UPDATE customers SET income = income + 1000 WHERE customerid = 79")
	s.waitVisible(79, 2*time.Second)
}

// TestRedisDownDuringAWrite: the write succeeds, its change waits in the outbox, and the keys
// reflect it once Redis is back.
func TestRedisDownDuringAWrite(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{proxies: true, relays: 1, refreshers: 1})
	s.rdProxy.Down()
	s.post(4321)
	s.post(4322)
	s.rdProxy.Up()
	s.waitVisible(4321, 10*time.Second)
	s.waitVisible(4322, 10*time.Second)
}

// TestRelayDiesMidDrain: a relay that took changes from the outbox and died before publishing
// them (its connection to PostgreSQL cut while Redis hangs) leaves them for another relay.
func TestRelayDiesMidDrain(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{refreshers: 1})
	// The doomed relay reaches PostgreSQL and Redis through proxies of its own. Redis hangs, so
	// the relay holds the rows it took, unpublished, until PostgreSQL is cut off under it.
	pg := testenv.NewProxy(t, testenv.HostPort(t, s.dbURL))
	rd := testenv.NewProxy(t, testenv.HostPort(t, testenvRedis(t)))
	rd.Hang()
	db, store := s.open(pg.Through(s.dbURL), rd.Through(testenvRedis(t)))
	stop := s.start(NewRelay(baseservice.NewArchetype(discard()), db, store, s.jobs, prometheus.NewRegistry()).Run)
	s.exec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2026-11-21', 555, 10, 1, 11)")
	s.outboxLocked(5 * time.Second)
	pg.Down()
	stop()
	// A healthy relay finds the rows still there.
	db, store = s.open(s.dbURL, testenvRedis(t))
	s.start(NewRelay(baseservice.NewArchetype(discard()), db, store, s.jobs, prometheus.NewRegistry()).Run)
	s.waitVisible(555, 10*time.Second)
	s.outboxEmpty(5 * time.Second)
}

// TestRelaysDrainTogether: three relays drain one outbox; every change is published, none is
// lost, the outbox ends empty.
func TestRelaysDrainTogether(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 3})
	var g errgroup.Group
	g.SetLimit(8)
	for i := range 300 {
		g.Go(func() error {
			s.exec(fmt.Sprintf("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2026-11-21', %d, 1, 0, 1)", 1+i))
			return nil
		})
	}
	g.Wait() //nolint:errcheck // exec fails the test itself
	s.outboxEmpty(10 * time.Second)
	seen := map[string]bool{}
	for {
		events, err := s.store.Consume(context.Background(), "audit", "auditor", 1000, 0, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			seen[e.Change.Columns["customerid"]] = true
		}
	}
	for i := 1; i <= 300; i++ {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("the change of customer %d was never published", i)
		}
	}
}

// TestRefresherTakesOverFromADeadOne: events a warmer read but never acknowledged are taken over
// by another.
func TestRefresherTakesOverFromADeadOne(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 1})
	s.exec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2026-11-21', 999, 10, 1, 11)")
	s.outboxEmpty(5 * time.Second)
	// A warmer reads the event and dies before writing anything.
	if events, err := s.store.Consume(context.Background(), group, "dead-warmer", 10, time.Second, time.Hour); err != nil || len(events) == 0 {
		t.Fatalf("the dead warmer read %v, %v", events, err)
	}
	db, store := s.open(s.dbURL, testenvRedis(t))
	r := NewRefresher(baseservice.NewArchetype(discard()), db, store, s.jobs, s.ns, promRegistry())
	r.idle = 100 * time.Millisecond
	s.start(r.Run)
	s.waitVisible(999, 10*time.Second)
}

// TestInterleavedReadsAndWrites runs 1,000 reads and writes from eight goroutines; once the
// writes have settled, every cached value equals what SQL says.
func TestInterleavedReadsAndWrites(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 2, refreshers: 2})
	customers := []int{3, 17, 256, 1024, 4242, 9999, 15000, 19999}
	var g errgroup.Group
	var mu sync.Mutex
	writes := 0
	for w := range 8 {
		g.Go(func() error {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range 125 {
				c := customers[r.IntN(len(customers))]
				if r.IntN(4) == 0 {
					s.post(c)
					mu.Lock()
					writes++
					mu.Unlock()
					continue
				}
				k := affected(c)[r.IntN(4)]
				if body, _ := s.get(k.path); body == "" {
					return fmt.Errorf("empty answer for %s", k.path)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	s.outboxEmpty(10 * time.Second)
	for _, c := range customers {
		s.waitVisible(c, 10*time.Second)
	}
	// Directly in Redis as well: every key of every customer written.
	for _, c := range customers {
		for _, k := range affected(c) {
			e, err := s.store.Get(context.Background(), k.job, k.key)
			if err != nil {
				t.Fatal(err)
			}
			if want := s.sql(k.job, k.key); string(e.Body) != want {
				t.Errorf("%s %s holds %s, SQL says %s", k.job, k.key, e.Body, want)
			}
		}
	}
	t.Logf("%d writes among 1,000 operations", writes)
}

// TestChangeOfEveryKeyRequestsARun: a keyed job whose every key a change touches (it depends on
// the table without naming a column) is not recomputed key by key; a run of it is requested.
func TestChangeOfEveryKeyRequestsARun(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 1})
	var list []jobs.Job
	for _, j := range s.jobs {
		if j.Name == jobs.OrdersByCustomer {
			j.DependsOn = []jobs.Dependency{{Table: "public.orders"}}
			list = append(list, j)
		}
	}
	db, store := s.open(s.dbURL, testenvRedis(t))
	s.start(NewRefresher(baseservice.NewArchetype(discard()), db, store, list, s.ns, promRegistry()).Run)
	s.exec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2026-11-21', 5, 10, 1, 11)")
	deadline := time.Now().Add(10 * time.Second)
	for {
		requested, err := s.db.Runs().RequestedRuns(context.Background(), s.ns)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(requested, []string{jobs.OrdersByCustomer}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs requested: %v, want %s", requested, jobs.OrdersByCustomer)
		}
		time.Sleep(10 * time.Millisecond) // polling PostgreSQL, with a deadline
	}
}

// TestRefresherRecordsLag: every ten seconds a warmer records in Redis what it measured of the
// lag of the events it handled, for the api's status page.
func TestRefresherRecordsLag(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 1})
	db, store := s.open(s.dbURL, testenvRedis(t))
	arch := baseservice.NewArchetype(discard())
	arch.Time.Stub(time.Now()) // its values fresh by the real clock the api reads them with
	s.start(NewRefresher(arch, db, store, s.jobs, s.ns, promRegistry()).Run)
	s.post(1234)
	s.waitVisible(1234, 10*time.Second)
	arch.Time.Advance(lagWindow)
	deadline := time.Now().Add(10 * time.Second)
	for {
		windows, err := s.store.LagWindows(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(windows) > 0 {
			w := windows[0]
			if w.Lag.Count < 1 || w.Warmer == "" || !w.End.Equal(arch.Time.Now()) || w.Lag.Quantile(0.99) > 10 {
				t.Fatalf("lag window %+v: want the write's event, measured within seconds", w)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no lag window recorded within 10 s of its end")
		}
		time.Sleep(20 * time.Millisecond) // polling Redis, with a deadline
	}
}
