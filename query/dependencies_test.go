package query_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

// TestInstallDependencies: the changes of a declared table are recorded with its declared
// columns; a table no longer declared stops being recorded; triggers of others stay.
func TestInstallDependencies(t *testing.T) {
	t.Parallel()
	db, w := testenv.NewDB(t, 4, 2)
	ctx := context.Background()
	// Another application's trigger, which warmcache must never touch.
	w.MustExec(
		"CREATE TABLE audit (n int)",
		"CREATE FUNCTION audit_lines() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit VALUES (1); RETURN NULL; END $$",
		"CREATE TRIGGER audit_lines AFTER INSERT ON orderlines FOR EACH STATEMENT EXECUTE FUNCTION audit_lines()",
	)
	want := map[string][]string{"public.orders": {"customerid", "orderdate"}, "public.customers": {"customerid"}, "public.orderlines": {}}
	if err := db.Schema().InstallDependencies(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Schema().InstalledDependencies(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("installed %v, %v; want %v", got, err, want)
	}
	changes := func() []query.Change {
		t.Helper()
		var got []query.Change
		_, err := db.Outbox().Drain(ctx, 100, func(c []query.Change) error { got = c; return nil })
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	changes() // what the template's data set left behind, if anything
	w.MustExec(
		"INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-05-06', 7, 1, 0, 1)",
		"INSERT INTO orderlines (orderlineid, orderid, prod_id, quantity, orderdate) VALUES (100, 1, 2, 3, '2004-05-06')",
	)
	got := changes()
	wantChanges := []query.Change{
		{Table: "public.orders", Columns: map[string]string{"customerid": "7", "orderdate": "2004-05-06"}},
		{Table: "public.orderlines", Columns: map[string]string{}},
	}
	for i := range got {
		if got[i].Position <= 0 {
			t.Errorf("change %+v: no position", got[i])
		}
		got[i].ID, got[i].Position = 0, 0
	}
	if !reflect.DeepEqual(got, wantChanges) {
		t.Errorf("changes recorded: %+v, want %+v", got, wantChanges)
	}
	// orderlines is no longer declared: warmcache stops recording it, the audit goes on.
	delete(want, "public.orderlines")
	if err := db.Schema().InstallDependencies(ctx, want); err != nil {
		t.Fatal(err)
	}
	w.MustExec("INSERT INTO orderlines (orderlineid, orderid, prod_id, quantity, orderdate) VALUES (101, 1, 2, 3, '2004-05-06')")
	if got := changes(); len(got) != 0 {
		t.Errorf("a table no longer declared is still recorded: %+v", got)
	}
	if n := w.Int("SELECT count(*) FROM audit"); n != 2 {
		t.Errorf("the other application's trigger ran %d times, want 2", n)
	}
	if got, _ := db.Schema().InstalledDependencies(ctx); !slices.Equal(slices.Sorted(maps.Keys(got)), []string{"public.customers", "public.orders"}) {
		t.Errorf("installed after the removal: %v", got)
	}
}

func TestColumns(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	cols, err := db.Schema().Columns(context.Background(), "orders")
	if err != nil || cols["totalamount"] != (query.Column{Type: "numeric(12,2)", NotNull: true}) ||
		cols["customerid"] != (query.Column{Type: "integer"}) {
		t.Errorf("orders' columns: %v, %v", cols, err)
	}
	if _, err := db.Schema().Columns(context.Background(), "nowhere"); !errors.Is(err, query.ErrNotFound) {
		t.Errorf("columns of a missing table: %v, want ErrNotFound", err)
	}
}

// TestUserLookupIsPushedDown: the lookup of given keys of a user's keyed job compares the key in
// its column's type, so PostgreSQL applies it where the rows are read, below the aggregate,
// rather than aggregating every row first; a statement that prevents it is told apart, and a
// key the column's type cannot hold is refused.
func TestUserLookupIsPushedDown(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	for _, tc := range []struct {
		sql    string
		pushed bool
	}{
		{"SELECT orderdate, count(*) AS orders, sum(totalamount) AS revenue FROM orders GROUP BY orderdate", true},
		{"SELECT orderdate, count(*) AS orders FROM orders GROUP BY orderdate ORDER BY orderdate LIMIT 100000", false},
	} {
		agg := userSQL(t, tc.sql, "{orderdate}")
		pushed, plan, err := db.LookupPushedDown(context.Background(), agg)
		if err != nil || pushed != tc.pushed {
			t.Errorf("%s: pushed down %v, %v; want %v; plan:\n%s", tc.sql, pushed, err, tc.pushed, plan)
		}
		if tc.pushed && !strings.Contains(plan, "orderdate = ANY") {
			t.Errorf("%s: the plan does not compare the key where orders are read:\n%s", tc.sql, plan)
		}
		if _, err := db.Lookup(context.Background(), agg, today, "not a date", query.Latest); !errors.Is(err, query.ErrInvalidKey) {
			t.Errorf("lookup of a key that is no date: %v, want ErrInvalidKey", err)
		}
	}
}
