package query_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/warmcache/warmcache/query"
)

func TestUserSQLKeyedByTemplate(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	agg := userSQL(t, `
		SELECT p.category, p.prod_id, p.price, o.orderdate AS first_sold
		FROM products p JOIN LATERAL (SELECT min(orderdate) AS orderdate FROM orderlines l
		                              WHERE l.prod_id = p.prod_id) o ON true
		WHERE p.prod_id <= 50;`, "c{category}:p{prod_id}")
	if err := db.Check(context.Background(), agg); err != nil {
		t.Fatalf("check: %v", err)
	}
	streamed := streamAll(t, db, agg)
	if len(streamed) != 50 {
		t.Fatalf("streamed %d rows, want 50", len(streamed))
	}
	for key, body := range streamed {
		row := lookup(t, db, agg, key)
		if got := marshal(t, row.Value); got != body || row.Key != key {
			t.Fatalf("lookup %q = %q %s, stream gave %s", key, row.Key, got, body)
		}
		var v struct {
			Category  int             `json:"category"`
			ProdID    int             `json:"prod_id"`
			Price     json.RawMessage `json:"price"`
			FirstSold *query.Date     `json:"first_sold"`
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if !strings.HasPrefix(key, "c") || !strings.Contains(key, ":p") || !strings.Contains(string(v.Price), ".") {
			t.Fatalf("key %q, body %s", key, body)
		}
	}
	if _, err := db.Lookup(context.Background(), agg, today, "c1:p999999", query.Latest); !errors.Is(err, query.ErrNotFound) {
		t.Errorf("lookup of a missing key: %v, want ErrNotFound", err)
	}
	if _, err := db.Lookup(context.Background(), agg, today, "nonsense", query.Latest); !errors.Is(err, query.ErrInvalidKey) {
		t.Errorf("lookup of a key the template cannot make: %v, want ErrInvalidKey", err)
	}
}

func TestUserSQLSingleValue(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	agg := userSQL(t, "SELECT count(*) AS customers, max(income) AS top_income, 'x''y' AS quoted FROM customers", "")
	if got := marshal(t, lookup(t, db, agg, "").Value); got != `{"customers":20000,"top_income":100000,"quoted":"x'y"}` {
		t.Errorf("single value = %s", got)
	}
}

func TestUserSQLRefusals(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	for _, tc := range []struct {
		name, sql, key, want string
		checked              bool // read as a job's SQL, and refused when PostgreSQL checks it
	}{
		{"empty", " ; ", "", "empty", false},
		{"two statements", "SELECT 1; SELECT 2", "", "one statement", false},
		{"template without column", "SELECT 1 AS a", "static", "names no", false},
		{"bad column name", "SELECT 1 AS a", "{a b}", "not a column", false},
		{"unbalanced", "SELECT 1 AS a", "{a}}", "brace", false},
		{"an insert", "INSERT INTO categories VALUES (99, 'x') RETURNING category", "", "starts with INSERT", false},
		{"an update after comments", "-- counts\n/* all */ (UPDATE orders SET tax = 0 RETURNING orderid)", "", "starts with UPDATE", false},
		{"a call", "CALL refresh()", "", "starts with CALL", false},
		{"a table created from a query", "CREATE TABLE x AS SELECT 1 AS a", "", "starts with CREATE", false},
		{"syntax", "SELECT 1 +", "", "syntax", true},
		{"a write in a WITH", "WITH gone AS (DELETE FROM orders RETURNING orderid) SELECT count(*) AS n FROM gone", "", "writes", true},
		{"a lock", "SELECT customerid FROM customers FOR UPDATE", "{customerid}", "locks rows", true},
		{"unknown table", "SELECT * FROM nowhere", "", "nowhere", true},
		{"missing key column", "SELECT customerid FROM customers", "{prod_id}", "prod_id", true},
	} {
		agg, err := query.UserSQL(tc.sql, tc.key)
		refusal := "error"
		if tc.checked {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			refusal, err = "check error", db.Check(context.Background(), agg)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %s %v, want one mentioning %q", tc.name, refusal, err, tc.want)
		}
	}
	// A function that writes passes both checks; the READ ONLY transaction stops it.
	writes := userSQL(t, "SELECT nextval(pg_get_serial_sequence('orders', 'orderid')) AS n", "")
	if err := db.Check(context.Background(), writes); err != nil {
		t.Fatalf("check: %v", err)
	}
	if _, err := db.Stream(context.Background(), writes, today, func(query.Row) error { return nil }); err == nil ||
		!strings.Contains(err.Error(), "read-only transaction") {
		t.Errorf("a job's write ran (%v): jobs must run read-only", err)
	}
}

func TestUserSQLNullKey(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	_, err := db.Stream(context.Background(), userSQL(t, "SELECT NULL::int AS id", "{id}"), today, func(query.Row) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "NULL") {
		t.Errorf("stream of a NULL key: %v, want an error naming NULL", err)
	}
}

func FuzzKeyTemplate(f *testing.F) {
	for _, s := range []string{"{a}", "c{a}:p{b}", "{a}{b}", "x", "{", "{a", "a}", "{{a}}", "{a}-{b}-{c}"} {
		f.Add(s, "c1:p2")
	}
	f.Fuzz(func(t *testing.T, tmpl, key string) {
		agg, err := query.UserSQL("SELECT 1 AS a, 2 AS b, 3 AS c", tmpl)
		if err != nil {
			return
		}
		canon, err := agg.CanonicalKey(key)
		if err != nil && !errors.Is(err, query.ErrInvalidKey) {
			t.Fatalf("template %q, key %q: %v", tmpl, key, err)
		}
		switch {
		case !agg.Keyed && (err != nil || canon != ""):
			t.Fatalf("single-value job: key %q gave %q, %v; want it ignored", key, canon, err)
		case agg.Keyed && err == nil && canon != key:
			t.Fatalf("template %q: key %q canonicalised to %q", tmpl, key, canon)
		}
	})
}
