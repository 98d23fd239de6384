package query_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

// today is a reference date after every card expiry of both data sets.
var today = query.Params{Today: query.Date{Year: 2026, Month: 11, Day: 21}}

func openDB(t *testing.T) *query.DB {
	t.Helper()
	db := testenv.OpenDB(t, testenv.NewDatabase(t), query.Options{MaxConns: 8})
	return db
}

// userSQL is query.UserSQL of a statement the test knows to be valid.
func userSQL(t *testing.T, sql, key string) query.Aggregate {
	t.Helper()
	agg, err := query.UserSQL(sql, key)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return agg
}

// lookup is the row of key in agg, today, which the test knows to be there.
func lookup(t *testing.T, db *query.DB, agg query.Aggregate, key string) query.Row {
	t.Helper()
	row, err := db.Lookup(context.Background(), agg, today, key, query.Latest)
	if err != nil {
		t.Fatalf("lookup %q: %v", key, err)
	}
	return row
}

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// streamAll collects every row of agg by key, as JSON.
func streamAll(t *testing.T, db *query.DB, agg query.Aggregate) map[string]string {
	t.Helper()
	rows := map[string]string{}
	_, err := db.Stream(context.Background(), agg, today, func(r query.Row) error {
		if _, dup := rows[r.Key]; dup {
			t.Errorf("key %q streamed twice", r.Key)
		}
		rows[r.Key] = marshal(t, r.Value)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestOrdersTotalOnDellstore2(t *testing.T) {
	t.Parallel()
	testenv.RequireDellstore2(t)
	db := openDB(t)
	row := lookup(t, db, query.OrdersTotalAggregate, "")
	if got, want := marshal(t, row.Value), `{"count":12000,"revenue":2567386.79}`; got != want {
		t.Errorf("orders_total = %s, want %s", got, want)
	}
	if row.Position == 0 {
		t.Error("lookup returned no snapshot version")
	}
}

// TestKeyedAggregatesAgree checks, for every customer, that the single-key lookup the API uses
// on a miss returns exactly what the warmer's streaming query wrote.
func TestKeyedAggregatesAgree(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	customers := customerIDs(t, db)
	for name, agg := range map[string]query.Aggregate{
		"orders_by_customer": query.OrdersByCustomerAggregate,
		"credit_by_customer": query.CreditByCustomerAggregate,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			streamed := streamAll(t, db, agg)
			if len(streamed) != len(customers) {
				t.Fatalf("streamed %d keys, want one per customer (%d)", len(streamed), len(customers))
			}
			for _, id := range customers {
				row := lookup(t, db, agg, id)
				if got := marshal(t, row.Value); row.Key != id || got != streamed[id] {
					t.Fatalf("customer %s: lookup gives key %q %s, stream gives %s", id, row.Key, got, streamed[id])
				}
			}
		})
	}
}

func TestOrdersByCustomerOnDellstore2(t *testing.T) {
	t.Parallel()
	testenv.RequireDellstore2(t)
	db := openDB(t)
	perCount := map[int64]int{}
	for key, body := range streamAll(t, db, query.OrdersByCustomerAggregate) {
		var v query.CustomerOrders
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		if strconv.FormatInt(v.CustomerID, 10) != key {
			t.Errorf("key %s holds customer %d", key, v.CustomerID)
		}
		perCount[v.Count]++
	}
	// The distribution the dellstore2 README verified, customers without orders included.
	want := map[int64]int{0: 11004, 1: 6549, 2: 1969, 3: 414, 4: 50, 5: 13, 6: 1}
	if marshal(t, perCount) != marshal(t, want) {
		t.Errorf("customers per order count = %v, want %v", perCount, want)
	}
	if got := marshal(t, lookup(t, db, query.OrdersByCustomerAggregate, "19887").Value); got != `{"customerid":19887,"count":6}` {
		t.Errorf("customer 19887: %s", got)
	}
}

func TestCreditOnDellstore2(t *testing.T) {
	t.Parallel()
	testenv.RequireDellstore2(t)
	db := openDB(t)
	c := lookup(t, db, query.CreditByCustomerAggregate, "19887").Value.(query.CustomerCredit)
	if c.Orders != 6 || c.TotalSpent.String() != "567.58" || c.AverageOrder.String() != "94.60" {
		t.Errorf("customer 19887: orders %d, spent %s, average %s; want 6, 567.58, 94.60",
			c.Orders, c.TotalSpent, c.AverageOrder)
	}
	if c.LastOrderDate == nil || c.LastOrderDate.Year != 2004 || !c.CardExpired {
		t.Errorf("customer 19887: last order %v, card expired %v", c.LastOrderDate, c.CardExpired)
	}

	o := lookup(t, db, query.CreditOverviewAggregate, "").Value.(query.CreditOverview)
	if o.All.Customers != 20000 || o.All.Orders != 12000 || o.All.TotalSpent.String() != "2567386.79" ||
		o.All.ExpiredCards != 20000 || o.All.AverageIncome.String() != "59666.00" {
		t.Errorf("overview over all customers = %+v", o.All)
	}
	perType := map[int64]int64{}
	for _, ct := range o.CardTypes {
		perType[ct.CardType] = ct.Customers
	}
	if want := map[int64]int64{1: 4043, 2: 3964, 3: 4011, 4: 4019, 5: 3963}; marshal(t, perType) != marshal(t, want) {
		t.Errorf("customers per card type = %v, want %v", perType, want)
	}
}

// TestCreditNeverCarriesSecrets checks every credit summary against the customer's full card
// number and password.
func TestCreditNeverCarriesSecrets(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	secrets := userSQL(t, "SELECT customerid, creditcard, password FROM customers", "{customerid}")
	cards := map[string]string{}
	_, err := db.Stream(context.Background(), secrets, today, func(r query.Row) error {
		var v struct{ Creditcard, Password string }
		if err := json.Unmarshal(r.Value.(json.RawMessage), &v); err != nil {
			return err
		}
		cards[r.Key] = v.Creditcard
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for key, body := range streamAll(t, db, query.CreditByCustomerAggregate) {
		card := cards[key]
		if card == "" || strings.Contains(body, card) || strings.Contains(body, "password") {
			t.Fatalf("customer %s: summary %s carries its card %q or a password", key, body, card)
		}
		if !strings.Contains(body, `"card_last4":"`+card[len(card)-4:]+`"`) {
			t.Fatalf("customer %s: summary %s lacks the card's last 4 digits", key, body)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	for _, tc := range []struct {
		name string
		key  string
		want error
	}{
		{"unknown customer", "99999999", query.ErrNotFound},
		{"not a number", "abc", query.ErrInvalidKey},
		{"negative", "-1", query.ErrInvalidKey},
		{"zero", "0", query.ErrInvalidKey},
		{"beyond integer", "2147483648", query.ErrInvalidKey},
		{"empty", "", query.ErrInvalidKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Lookup(context.Background(), query.CreditByCustomerAggregate, today, tc.key, query.Latest)
			if !errors.Is(err, tc.want) {
				t.Errorf("lookup %q: error %v, want %v", tc.key, err, tc.want)
			}
		})
	}
}

func TestStreamStopsOnCallbackError(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	stop := errors.New("stop here")
	calls := 0
	_, err := db.Stream(context.Background(), query.OrdersByCustomerAggregate, today, func(query.Row) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || errors.Is(err, query.ErrUnavailable) || calls != 10 {
		t.Errorf("stream returned %v after %d rows, want the callback's error after 10", err, calls)
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1 of the loopback interface.
	db := testenv.OpenDB(t, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2", query.Options{})
	if err := db.Ping(context.Background()); !errors.Is(err, query.ErrUnavailable) {
		t.Errorf("ping of a closed port: %v, want ErrUnavailable", err)
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	db := openDB(t) // the template is migrated already
	for range 2 {
		if err := db.Schema().Migrate(context.Background(), slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
	}
}

func customerIDs(t *testing.T, db *query.DB) []string {
	t.Helper()
	ids := userSQL(t, "SELECT customerid FROM customers ORDER BY customerid", "{customerid}")
	var keys []string
	if _, err := db.Stream(context.Background(), ids, today, func(r query.Row) error {
		keys = append(keys, r.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}
