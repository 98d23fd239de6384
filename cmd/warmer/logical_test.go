package main

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/warmcache/warmcache/internal/testenv"
)

const logical = "CHANGE_CAPTURE=logical"

// installed says what warmcache has outside its schema: its triggers on users' tables, the
// database's replication slots, its publications.
func (s *system) installed() (triggers, slots, publications int64) {
	s.t.Helper()
	return s.sql.Int(`SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
			WHERE t.tgname LIKE 'warmcache%' AND c.relnamespace <> 'warmcache'::regnamespace`),
		s.sql.Int("SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"),
		s.sql.Int("SELECT count(*) FROM pg_publication")
}

// insertOrders inserts orders of customers, in SQL as another application would, from two
// writers until ctx ends, and counts them in n.
func (s *system) insertOrders(ctx context.Context, customers []int, n *atomic.Int64) *errgroup.Group {
	var g errgroup.Group
	for w := range 2 {
		g.Go(func() error {
			for i := w; ctx.Err() == nil; i += 2 {
				_, err := s.sql.Exec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-02-02', $1, 1, 0, 1)",
					customers[i%len(customers)])
				if err != nil {
					return err
				}
				n.Add(1)
			}
			return nil
		})
	}
	return &g
}

// awaitCount waits until n reaches at least want.
func awaitCount(t *testing.T, n *atomic.Int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("only %d orders written in 30s, want %d", n.Load(), want)
		}
		time.Sleep(5 * time.Millisecond) // polling the writers' count, with a deadline
	}
}

// TestLogicalCaptureLosesNothing: two warmers capture changes by logical decoding, one streaming
// the slot; writers insert orders in SQL while the streaming warmer is killed (SIGKILL). The
// other takes the slot over within seconds, and once the writes stop every count is right and
// stays right: no change was lost. No warmcache trigger is on users' tables.
func TestLogicalCaptureLosesNothing(t *testing.T) {
	t.Parallel()
	s := newSystem(t, everyHour, nil)
	s.startAPI()
	first := s.startWarmer(nil, logical)
	first.warmed(t)
	first.await(t, event{msg: "capture_streaming"}, 1, 30*time.Second)
	second := s.startWarmer(nil, logical)
	second.await(t, event{msg: "warmer_started"}, 1, 30*time.Second)
	if triggers, slots, publications := s.installed(); triggers != 0 || slots != 1 || publications != 1 {
		t.Fatalf("%d triggers on users' tables, %d slots, %d publications; want 0, 1, 1", triggers, slots, publications)
	}

	customers := []int{31, 32, 33, 34, 35, 36, 37, 38, 39, 40}
	ctx, stop := context.WithCancel(context.Background())
	var written atomic.Int64
	writers := s.insertOrders(ctx, customers, &written)
	awaitCount(t, &written, 100)
	first.kill()
	killed := time.Now()
	second.await(t, event{msg: "capture_streaming"}, 1, 10*time.Second)
	t.Logf("the second warmer streams the slot %s after the first was killed", time.Since(killed).Round(time.Millisecond))
	awaitCount(t, &written, written.Load()+100)
	stop()
	if err := writers.Wait(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	var all []counted
	for _, c := range customers {
		all = append(all, counts(c)...)
	}
	// The killed warmer's refreshes in flight are taken over once idle for ten seconds.
	took := s.recovered(all, stopped, 20*time.Second, time.Second)
	t.Logf("%d orders written; every count right %s after the last", written.Load(), took.Round(time.Millisecond))
}

// TestSwitchingCaptureLosesNothing: writes made while no warmer runs, just before each switch
// from triggers to logical decoding and back, all reach the cache; each switch leaves only what
// its way of capturing needs.
func TestSwitchingCaptureLosesNothing(t *testing.T) {
	t.Parallel()
	s := newSystem(t, everyHour, nil)
	s.startAPI()
	insert := func(customer int) {
		t.Helper()
		s.sql.MustExec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-02-02', " +
			strconv.Itoa(customer) + ", 1, 0, 1)")
	}
	w := s.startWarmer(nil)
	w.warmed(t)
	insert(41)
	s.recovered(counts(41), time.Now(), 5*time.Second, 0)
	w.term(t)
	insert(42) // in the outbox, by the triggers

	w = s.startWarmer(nil, logical)
	w.await(t, event{msg: "capture_streaming"}, 1, 30*time.Second)
	if triggers, slots, publications := s.installed(); triggers != 0 || slots != 1 || publications != 1 {
		t.Fatalf("after the switch to logical: %d triggers on users' tables, %d slots, %d publications; want 0, 1, 1",
			triggers, slots, publications)
	}
	s.recovered(counts(42), time.Now(), 5*time.Second, 0)
	insert(43)
	s.recovered(counts(43), time.Now(), 5*time.Second, 0)
	w.term(t)
	insert(44) // in the slot alone

	w = s.startWarmer(nil)
	w.await(t, event{msg: "warmer_started"}, 1, 30*time.Second)
	if triggers, slots, publications := s.installed(); triggers == 0 || slots != 0 || publications != 0 {
		t.Fatalf("after the switch back: %d triggers on users' tables, %d slots, %d publications; want some, 0, 0",
			triggers, slots, publications)
	}
	s.recovered(counts(44), time.Now(), 5*time.Second, 0)
	insert(45)
	s.recovered(counts(45), time.Now(), 5*time.Second, 0)
}

// TestUninstall: warmer uninstall removes what warmcache added outside its schema, and says what:
// after logical decoding, the slot, the publication, and the replica identity it set, back to
// what it was.
func TestUninstall(t *testing.T) {
	t.Parallel()
	s := newSystem(t, everyHour, nil)
	identity := func() string {
		return s.sql.Text("SELECT relreplident::text FROM pg_class WHERE oid = 'orders'::regclass")
	}
	before := identity()
	w := s.startWarmer(nil, logical)
	w.await(t, event{msg: "capture_streaming"}, 1, 30*time.Second)
	if got := identity(); got != "f" {
		t.Errorf("orders' replica identity is %q with logical decoding, want f (FULL): its key column is not its identity", got)
	}
	w.term(t)
	cmd := exec.Command(os.Args[0], "uninstall")
	cmd.Env = append(os.Environ(), append(s.environ(), testenv.RunMainEnv)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("warmer uninstall: %v\n%s", err, out)
	}
	for _, want := range []string{"removed the replication slot", "removed the publication warmcache",
		"removed the replica identity FULL of public.orders, back to DEFAULT"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("warmer uninstall said:\n%s\nwant a line with %q", out, want)
		}
	}
	if triggers, slots, publications := s.installed(); triggers != 0 || slots != 0 || publications != 0 || identity() != before {
		t.Errorf("after warmer uninstall: %d triggers, %d slots, %d publications, identity %q; want none and %q",
			triggers, slots, publications, identity(), before)
	}
}
