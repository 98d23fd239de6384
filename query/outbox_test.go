package query_test

import (
	"context"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

// TestOutboxBacklog: the backlog counts the rows no relay took and ages the oldest.
func TestOutboxBacklog(t *testing.T) {
	t.Parallel()
	db, w := testenv.NewDB(t, 2, 1)
	ctx := context.Background()
	if _, err := db.Outbox().Drain(ctx, 1_000_000, func([]query.Change) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if b, err := db.Outbox().Backlog(ctx); err != nil || b != (query.Backlog{}) {
		t.Fatalf("empty outbox: backlog %+v, %v; want none", b, err)
	}
	w.MustExec(
		"INSERT INTO warmcache.warmcache_outbox (tablename, created_at) VALUES ('public.orders', now() - interval '90 seconds')",
		"INSERT INTO warmcache.warmcache_outbox (tablename) VALUES ('public.customers')",
	)
	b, err := db.Outbox().Backlog(ctx)
	if err != nil || b.Rows != 2 || b.Oldest < 90*time.Second || b.Oldest > 10*time.Minute {
		t.Fatalf("backlog %+v, %v; want 2 rows, the oldest 90 s old", b, err)
	}
}

// TestOnChangeTakesABurstAtOnce: the notifications that arrive while fn runs are taken together
// by the next call, which sees every commit they tell of, so a burst of 200 writes (each
// notifying, as other applications' writes do) costs the relay a few drains, not 200. A
// notification after the burst is still heard.
func TestOnChangeTakesABurstAtOnce(t *testing.T) {
	t.Parallel()
	db, w := testenv.NewDB(t, 2, 1)
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan int, 1000)
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		n := 0
		db.Outbox().OnChange(ctx, time.Minute, nil, func(context.Context) {
			n++
			calls <- n
			if n == 2 {
				<-release // the first notification's call holds while the burst comes
			}
		}, nil)
	}()
	t.Cleanup(func() { cancel(); <-done })
	next := func(within time.Duration) (int, bool) {
		select {
		case n := <-calls:
			return n, true
		case <-time.After(within):
			return 0, false
		}
	}
	if _, ok := next(10 * time.Second); !ok { // the call at start, once it listens
		t.Fatal("no call at start")
	}
	notify := func() { w.MustExec("SELECT pg_notify('warmcache_outbox', '')") }
	notify()
	if n, ok := next(10 * time.Second); !ok || n != 2 {
		t.Fatalf("the first notification made call %d (%v), want 2", n, ok)
	}
	for range 199 {
		notify()
	}
	close(release)
	// The calls the burst makes, until none comes for a second (the poll is a minute away).
	last := 2
	for {
		n, ok := next(time.Second)
		if !ok {
			break
		}
		last = n
	}
	if last > 10 {
		t.Errorf("a burst of 200 notifications made %d calls, want a few", last-1)
	}
	notify()
	if _, ok := next(10 * time.Second); !ok {
		t.Error("a notification after the burst made no call")
	}
}
