package jobs

import (
	"reflect"
	"slices"
	"testing"

	"github.com/warmcache/warmcache/query"
)

// TestAffectedBy: what a change touches is the jobs' own declaration, for every built-in job.
func TestAffectedBy(t *testing.T) {
	t.Parallel()
	list, _, err := Load(writeJobs(t, `
jobs:
  top_products:
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT prod_id, sum(quantity) AS sold FROM orderlines GROUP BY prod_id
    key: "{prod_id}"
`), testDefaults, testNow)
	if err != nil {
		t.Fatal(err)
	}
	jobs := byName(list)
	customer42 := map[string]string{"customerid": "42"}
	type touched struct {
		keys []string
		all  bool
	}
	for _, tc := range []struct {
		name      string
		job       string
		table     string
		columns   map[string]string
		truncated bool
		want      touched
	}{
		{"an order touches the total", OrdersTotal, "orders", customer42, false, touched{nil, true}},
		{"a customer does not touch the total", OrdersTotal, "customers", customer42, false, touched{}},
		{"an order touches its customer's count", OrdersByCustomer, "orders", customer42, false, touched{[]string{"42"}, false}},
		{"a customer touches its own count", OrdersByCustomer, "customers", customer42, false, touched{[]string{"42"}, false}},
		{"an order without a customer touches no count", OrdersByCustomer, "orders", map[string]string{}, false, touched{}},
		{"a key in another spelling is canonical", CreditByCustomer, "orders", map[string]string{"customerid": "0042"}, false, touched{[]string{"42"}, false}},
		{"a value that is no key touches nothing", CreditByCustomer, "orders", map[string]string{"customerid": "x"}, false, touched{}},
		{"a customer touches the overview", CreditOverview, "customers", customer42, false, touched{nil, true}},
		{"an order touches the overview", CreditOverview, "orders", customer42, false, touched{nil, true}},
		{"another table touches nothing", CreditOverview, "products", nil, false, touched{}},
		{"a job declaring nothing is touched by nothing", "top_products", "orderlines", nil, false, touched{}},
		{"a truncate touches every key", OrdersByCustomer, "orders", nil, true, touched{nil, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, all := jobs[tc.job].AffectedBy(query.Change{Table: tc.table, Columns: tc.columns, Truncated: tc.truncated}, nil)
			if got := (touched{keys, all}); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s.AffectedBy(%s, %v) = %v, want %v", tc.job, tc.table, tc.columns, got, tc.want)
			}
		})
	}
}

func TestMessages(t *testing.T) {
	t.Parallel()
	jobs := byName(mustLoad(t))
	for got, want := range map[string]string{
		jobs[OrdersByCustomer].NotFoundMessage("7"):                          "customer 7 not found",
		jobs[CreditByCustomer].InvalidKeyMessage("x"):                        `"x" is not a customer id (a positive integer)`,
		Job{Name: "mine"}.NotFoundMessage(""):                                "job mine has no value",
		Job{Name: "mine"}.NotFoundMessage("a"):                               "job mine has no value for key a",
		Job{Name: "mine", KeyTemplate: "{prod_id}"}.InvalidKeyMessage("a:b"): `"a:b" is not a key of job mine ({prod_id}, at most 256 bytes)`,
	} {
		if got != want {
			t.Errorf("message %q, want %q", got, want)
		}
	}
}

func mustLoad(t *testing.T) []Job {
	t.Helper()
	list, _, err := Load("", testDefaults, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// TestAffectedThroughJoins: a job keyed by two columns of two tables (a region, from accounts,
// and a day, from usage events) is touched by a usage event at the key its account's region and
// its own day make, looked up through the join; without the lookup, at every key.
func TestAffectedThroughJoins(t *testing.T) {
	t.Parallel()
	agg, err := query.UserSQL(`SELECT a.region, u.day, sum(u.units) AS units FROM usage u JOIN accounts a USING (account_id) GROUP BY 1, 2`,
		"{region}/{day}")
	if err != nil {
		t.Fatal(err)
	}
	toRegion := &query.Join{From: "account_id", Table: "public.accounts", Column: "account_id", Type: "integer", KeyColumn: "region"}
	toDays := &query.Join{From: "account_id", Table: "public.usage", Column: "account_id", Type: "integer", KeyColumn: "day"}
	job := Job{Name: "usage", Aggregate: agg, KeyTemplate: "{region}/{day}", DependsOn: []Dependency{
		{Table: "public.usage", Keys: []*query.KeySource{{Via: toRegion}, {Column: "day"}}},
		{Table: "public.accounts", Keys: []*query.KeySource{{Column: "region"}, {Via: toDays}}},
	}}
	event := query.Change{Table: "public.usage", Columns: map[string]string{"account_id": "7", "day": "2026-11-03"}}
	moved := query.Change{Table: "public.accounts", Columns: map[string]string{"account_id": "7", "region": "eu"}}
	joins := Joins([]Job{job}, []query.Change{event, moved})
	if want := map[query.Join][]string{*toRegion: {"7"}, *toDays: {"7"}}; !reflect.DeepEqual(joins, want) {
		t.Errorf("joins to look up: %v, want %v", joins, want)
	}
	joined := Joined{*toRegion: {"7": {"us"}}, *toDays: {"7": {"2026-11-01", "2026-11-03"}}}
	for _, tc := range []struct {
		change query.Change
		joined Joined
		keys   []string
		all    bool
	}{
		{event, joined, []string{"us/2026-11-03"}, false},
		{moved, joined, []string{"eu/2026-11-01", "eu/2026-11-03"}, false},
		{event, Joined{}, nil, false}, // an account no longer there: no key
		{event, nil, nil, true},
	} {
		keys, all := job.AffectedBy(tc.change, tc.joined)
		if !slices.Equal(keys, tc.keys) || all != tc.all {
			t.Errorf("AffectedBy(%v, %v) = %v, %v; want %v, %v", tc.change, tc.joined, keys, all, tc.keys, tc.all)
		}
	}
}
