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
