package query_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

// TestMaintainedTotalsUnderRacingWrites races orders of a few customers against changes of
// those customers' cards, while the changes are maintained as they come, out of order with the
// writes: once the last changes are maintained, the figures of both totals equal the full
// computation.
func TestMaintainedTotalsUnderRacingWrites(t *testing.T) {
	t.Parallel()
	db, w := testenv.NewDB(t, 8, 8)
	ctx := context.Background()
	maintain := func() error {
		_, err := db.Outbox().Drain(ctx, 50, func(changes []query.Change) error { _, err := db.Maintain(ctx, changes); return err })
		return err
	}
	var g errgroup.Group
	for writer := range 8 {
		g.Go(func() error {
			r := rand.New(rand.NewPCG(uint64(writer), 3))
			for range 300 {
				customer := 1 + r.IntN(4)
				var err error
				switch writer % 4 {
				case 0:
					_, err = w.Exec("UPDATE customers SET creditcardtype = $2, creditcardexpiration = $3 WHERE customerid = $1",
						customer, 1+r.IntN(5), fmt.Sprintf("20%02d/%02d", 8+r.IntN(4), 1+r.IntN(12)))
				case 1:
					_, err = w.Exec("UPDATE orders SET customerid = $2 WHERE orderid = (SELECT max(orderid) FROM orders WHERE customerid = $1)",
						customer, 1+r.IntN(4))
				case 2:
					err = maintain() // a warmer, taking the changes as they come
				default:
					_, err = w.Exec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-02-02', $1, 1, 0, 1)", customer)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for n := 1; n > 0; {
		var err error
		if n, err = db.Outbox().Drain(ctx, 500, func(changes []query.Change) error { _, err := db.Maintain(ctx, changes); return err }); err != nil {
			t.Fatal(err)
		}
	}
	for _, agg := range []query.Aggregate{query.OrdersTotalAggregate, query.CreditOverviewAggregate} {
		s, err := db.Stream(ctx, agg, today, func(query.Row) error { return nil })
		if err != nil || s.Drift.Values != 0 {
			t.Errorf("maintained figures drifted: %+v, %v", s.Drift, err)
		}
	}
}

// TestTotalsDriftIsConfirmedAndMended: a change the warmers never hear of (written with
// warmcache's triggers disabled) makes the figures drift; the check confirms it, books the
// customer afresh, and a second check finds nothing.
func TestTotalsDriftIsConfirmedAndMended(t *testing.T) {
	t.Parallel()
	db, w := testenv.NewDB(t, 4, 2)
	ctx := context.Background()
	w.MustExec(
		"ALTER TABLE orders DISABLE TRIGGER USER",
		"UPDATE orders SET totalamount = totalamount + 1, netamount = netamount + 1 WHERE customerid = 11",
		"INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-02-02', NULL, 1, 0, 1)",
		"ALTER TABLE orders ENABLE TRIGGER USER",
	)
	s, err := db.Stream(ctx, query.OrdersTotalAggregate, today, func(query.Row) error { return nil })
	if err != nil || s.Drift.Values == 0 {
		t.Fatalf("the check found %+v, %v; want a drift", s.Drift, err)
	}
	confirmed, err := db.Repair(ctx, query.OrdersTotalAggregate, s.Drift, nil)
	if err != nil || confirmed.Values != 2 || !strings.Contains(confirmed.Example, "customer") {
		t.Errorf("repair confirmed %+v, %v; want customer 11 and the orders without a customer", confirmed, err)
	}
	for _, agg := range []query.Aggregate{query.OrdersTotalAggregate, query.CreditOverviewAggregate} {
		if s, err := db.Stream(ctx, agg, today, func(query.Row) error { return nil }); err != nil || s.Drift.Values != 0 {
			t.Errorf("after the repair: %+v, %v", s.Drift, err)
		}
	}
}

// TestUserIncremental: a user's incremental job is maintained by its triggers, its drift found
// by the check of a full run and mended by a reseed, and its installation removed when the job
// goes; declarations the product cannot maintain exactly are refused, naming the column.
func TestUserIncremental(t *testing.T) {
	t.Parallel()
	db, w := testenv.NewDB(t, 4, 2)
	ctx := context.Background()
	for _, spec := range []query.IncrementalSpec{
		{Table: "orders", GroupBy: "orderdate", Count: "orders", Sums: []query.Sum{{Name: "revenue", Column: "totalamount"}}},
		{Table: "orderlines", Sums: []query.Sum{{Name: "units", Column: "quantity"}}},
	} {
		agg, err := query.Incremental("mine", spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Schema().InstallIncremental(ctx, "mine", spec); err != nil {
			t.Fatal(err)
		}
		check := func(when string, drifted bool) {
			t.Helper()
			s, err := db.Stream(ctx, agg, today, func(query.Row) error { return nil })
			if err != nil || (s.Drift.Values > 0) != drifted {
				t.Errorf("%s: %s: drift %+v, %v; want drifted %v", spec.Table, when, s.Drift, err, drifted)
			}
		}
		w.MustExec(
			"INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-05-06', 7, 1, 0, 1)",
			"UPDATE orders SET orderdate = orderdate + 1, totalamount = totalamount + 2 WHERE orderid % 10 = 3",
			"DELETE FROM orders WHERE orderid % 10 = 4",
			"UPDATE orderlines SET quantity = quantity + 1 WHERE orderlineid = 1",
		)
		check("after writes", false)
		row, err := db.Lookup(ctx, agg, today, map[bool]string{true: "2004-05-06", false: ""}[spec.GroupBy != ""], query.Latest)
		if err != nil || row.Value == nil {
			t.Fatalf("lookup: %+v, %v", row, err)
		}
		// A write the triggers miss, as with triggers disabled for a bulk load.
		w.MustExec(
			"ALTER TABLE "+spec.Table+" DISABLE TRIGGER USER",
			"DELETE FROM "+spec.Table+" WHERE "+map[bool]string{true: "orderid", false: "orderlineid"}[spec.GroupBy != ""]+" % 10 = 5",
			"ALTER TABLE "+spec.Table+" ENABLE TRIGGER USER",
		)
		check("after a write the triggers missed", true)
		if _, err := db.Repair(ctx, agg, query.Drift{Values: 1}, nil); err != nil {
			t.Fatal(err)
		}
		check("after the reseed", false)
	}
	if err := db.Schema().UninstallIncrementalExcept(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := w.Int("SELECT count(*) FROM pg_class WHERE relname LIKE 'warmcache_sum_%'"); n != 0 {
		t.Errorf("%d tables of maintained figures left after their job went", n)
	}
	if n := w.Int("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'warmcache_sum_%'"); n != 0 {
		t.Errorf("%d triggers left after their job went", n)
	}
	for _, tc := range []struct {
		spec query.IncrementalSpec
		want string
	}{
		{query.IncrementalSpec{Table: "nowhere", Count: "n"}, "no table nowhere"},
		{query.IncrementalSpec{Table: "orders", GroupBy: "customerid", Count: "n"}, "customerid may be NULL"},
		{query.IncrementalSpec{Table: "orders", Sums: []query.Sum{{Name: "s", Column: "nothing"}}}, "no column nothing"},
		{query.IncrementalSpec{Table: "customers", Sums: []query.Sum{{Name: "s", Column: "lastname"}}}, "lastname is character varying"},
	} {
		if err := db.Schema().CheckIncremental(ctx, tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("check of %+v: %v, want an error mentioning %q", tc.spec, err, tc.want)
		}
	}
}
