package seed_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/seed"
)

func TestTablesAreDeterministic(t *testing.T) {
	t.Parallel()
	first, second := seed.Dellstore2.Tables(), seed.Dellstore2.Tables()
	for i := range first {
		a, b := seed.Sample(first[i], 500), seed.Sample(second[i], 500)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("table %s differs between two generations of the same scale", first[i].Name)
		}
	}
	other := seed.Dellstore2
	other.Seed = 2
	if reflect.DeepEqual(seed.Sample(seed.Dellstore2.Tables()[3], 50), seed.Sample(other.Tables()[3], 50)) {
		t.Error("another seed generated the same customers")
	}
}

// scalar runs a one-row, one-column statement and returns the column as JSON text.
func scalar(t *testing.T, db *query.DB, sql string) string {
	t.Helper()
	agg, err := query.UserSQL("SELECT ("+sql+") AS v", "")
	if err != nil {
		t.Fatal(err)
	}
	row, err := db.Lookup(context.Background(), agg, query.Params{}, "", query.Latest)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var v struct{ V json.RawMessage }
	if err := json.Unmarshal(row.Value.(json.RawMessage), &v); err != nil {
		t.Fatal(err)
	}
	return string(v.V)
}

func TestLoadAtDellstore2Scale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.OpenDB(t, testenv.NewEmptyDatabase(t), query.Options{MaxConns: 4})
	counts, err := seed.Load(ctx, db, seed.Dellstore2, false, func(string, int64) {})
	if err != nil {
		t.Fatal(err)
	}
	for table, want := range map[string]int64{"customers": 20000, "orders": 12000, "products": 10000,
		"inventory": 10000, "categories": 16, "reorder": 0} {
		if counts[table] != want {
			t.Errorf("%s has %d rows, want %d", table, counts[table], want)
		}
	}
	if n := counts["orderlines"]; n < 12000 || n > 9*12000 || n != counts["cust_hist"] {
		t.Errorf("orderlines %d and cust_hist %d: want equal, 1 to 9 per order", n, counts["cust_hist"])
	}

	// Checks of shape against the real data set's figures (its README), with room for chance.
	for _, c := range []struct{ name, sql, want string }{
		{"cust_hist agrees with orders", `SELECT count(*) FROM cust_hist h JOIN orders o USING (orderid)
			WHERE h.customerid <> o.customerid`, "0"},
		{"orderlines agree with orders", `SELECT count(*) FROM orderlines l JOIN orders o USING (orderid)
			WHERE l.orderdate <> o.orderdate`, "0"},
		{"lines per order", `SELECT min(n) = 1 AND max(n) = 9 FROM (SELECT count(*) n FROM orderlines GROUP BY orderid) x`, "true"},
		{"orders per month", `SELECT bool_and(n = 1000) FROM (SELECT count(*) n FROM orders GROUP BY date_trunc('month', orderdate)) x`, "true"},
		{"customers with orders", `SELECT count(DISTINCT customerid) BETWEEN 8700 AND 9300 FROM orders`, "true"},
		{"total is net plus tax", `SELECT count(*) FROM orders WHERE totalamount <> netamount + tax`, "0"},
		{"net amounts", `SELECT min(netamount) > 0 AND max(netamount) <= 400 FROM orders`, "true"},
		{"distinct 16-digit cards", `SELECT count(DISTINCT creditcard) = 20000 AND bool_and(creditcard ~ '^[1-9][0-9]{15}$') FROM customers`, "true"},
		{"half in the US", `SELECT count(*) FILTER (WHERE region = 1 AND country = 'US' AND state IS NOT NULL) FROM customers`, "10000"},
		{"card types", `SELECT bool_and(n BETWEEN 3700 AND 4300) AND count(*) = 5 FROM (SELECT count(*) n FROM customers GROUP BY creditcardtype) x`, "true"},
		{"expiry format", `SELECT bool_and(creditcardexpiration ~ '^20(0[89]|1[0-2])/(0[1-9]|1[0-2])$') FROM customers`, "true"},
		{"sequences", `SELECT (SELECT last_value FROM orders_orderid_seq) = 12000 AND (SELECT last_value FROM customers_customerid_seq) = 20000`, "true"},
	} {
		if got := scalar(t, db, c.sql); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestLoadRefusesExistingTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.OpenDB(t, testenv.NewDatabase(t), query.Options{MaxConns: 4})
	before := scalar(t, db, "SELECT count(*) FROM orders")
	small := seed.Scale{Customers: 10, Orders: 10, Products: 10, Year: 2020, Seed: 1}
	_, err := seed.Load(ctx, db, small, false, func(string, int64) {})
	if err == nil || !strings.Contains(err.Error(), "already exist") {
		t.Fatalf("load over existing tables: %v, want a refusal", err)
	}
	if after := scalar(t, db, "SELECT count(*) FROM orders"); after != before {
		t.Errorf("a refused load changed orders from %s to %s rows", before, after)
	}
	if _, err := seed.Load(ctx, db, small, true, func(string, int64) {}); err != nil {
		t.Fatalf("load with drop: %v", err)
	}
	if got := scalar(t, db, "SELECT count(*) FROM orders"); got != "10" {
		t.Errorf("after load with drop, orders has %s rows, want 10", got)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]seed.Scale{
		"no customers":    {Customers: 0, Orders: 1, Products: 1, Year: 2004},
		"negative orders": {Customers: 1, Orders: -1, Products: 1, Year: 2004},
		"no products":     {Customers: 1, Orders: 1, Products: 0, Year: 2004},
		"year":            {Customers: 1, Orders: 1, Products: 1, Year: 20004},
	} {
		if s.Validate() == nil {
			t.Errorf("%s: scale %+v accepted", name, s)
		}
	}
}
