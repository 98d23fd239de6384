package query_test

import (
	"context"
	"log/slog"
	"os"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

// TestMigrateMovesAnOlderInstallation: a database migrated by an older warmcache (migrations 1
// to 8 as they were, testdata/migrations-before-own-schema) has its objects in the user's schema
// (public), its triggers on orders and customers, a change waiting in its outbox and a claim. Migrate moves everything into warmcache's schema with its data: the waiting
// change is still there, named as changes now are; the claim is kept; the triggers record in the
// moved outbox; nothing of warmcache's is left in public, and the built-in totals still agree.
func TestMigrateMovesAnOlderInstallation(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	w := testenv.NewWriter(t, dbURL, 2)
	ctx := context.Background()
	// The dellstore2 tables as the older version left them: its migrations, from its own files.
	w.MustExec("DROP SCHEMA warmcache CASCADE", "DROP INDEX ix_orders_customer_totals")
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { sqlDB.Close() })
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, os.DirFS("testdata/migrations-before-own-schema"),
		goose.WithTableName("warmcache_migrations"), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Up(ctx); err != nil {
		t.Fatal(err)
	}
	w.MustExec(
		"INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-05-06', 7, 1, 0, 1)",
		"INSERT INTO warmcache_job_claims VALUES ('ns', 'orders_total', now(), 3, 'old', now())",
	)
	if n := w.Int("SELECT count(*) FROM public.warmcache_outbox WHERE tablename = 'orders'"); n != 1 {
		t.Fatalf("the older trigger recorded %d changes, want 1", n)
	}

	db := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 4})
	if err := db.Schema().Migrate(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if left := w.Int(`SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'warmcache%' AND relnamespace = 'public'::regnamespace)
		+ (SELECT count(*) FROM pg_proc WHERE proname LIKE 'warmcache%' AND pronamespace = 'public'::regnamespace)`); left != 0 {
		t.Errorf("%d objects of warmcache's left in public", left)
	}
	if n := w.Int("SELECT count(*) FROM warmcache.warmcache_job_claims WHERE runs = 3"); n != 1 {
		t.Errorf("the claim was not kept")
	}
	installed, err := db.Schema().InstalledDependencies(ctx)
	want := map[string][]string{"public.orders": {"customerid"}, "public.customers": {"customerid"}}
	if err != nil || !reflect.DeepEqual(installed, want) {
		t.Errorf("installed after the move: %v, %v; want %v", installed, err, want)
	}
	w.MustExec("UPDATE customers SET income = income + 1 WHERE customerid = 8")
	var got []query.Change
	if _, err := db.Outbox().Drain(ctx, 10, func(c []query.Change) error { got = c; return nil }); err != nil {
		t.Fatal(err)
	}
	wantChanges := []query.Change{
		{Table: "public.orders", Columns: map[string]string{"customerid": "7"}},
		{Table: "public.customers", Columns: map[string]string{"customerid": "8"}},
	}
	for i := range got {
		if got[i].Position <= 0 {
			t.Errorf("change %+v: no position", got[i])
		}
		got[i].ID, got[i].Position = 0, 0
	}
	if !reflect.DeepEqual(got, wantChanges) {
		t.Errorf("changes after the move: %+v, want %+v", got, wantChanges)
	}
	if err := db.Schema().InstallBuiltins(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Maintain(ctx, got); err != nil {
		t.Fatal(err)
	}
	for _, agg := range []query.Aggregate{query.OrdersTotalAggregate, query.CreditOverviewAggregate} {
		if s, err := db.Stream(ctx, agg, today, func(query.Row) error { return nil }); err != nil || s.Drift.Values != 0 {
			t.Errorf("the moved totals drifted: %+v, %v", s.Drift, err)
		}
	}
}
