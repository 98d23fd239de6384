package jobs

import (
	"reflect"
	"testing"
)

// TestAffectedBy: what a change touches is the jobs' own declaration, for every built-in job.
func TestAffectedBy(t *testing.T) {
	t.Parallel()
	list, err := Load(writeJobs(t, `
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
		name    string
		job     string
		table   string
		columns map[string]string
		want    touched
	}{
		{"an order touches the total", OrdersTotal, "orders", customer42, touched{nil, true}},
		{"a customer does not touch the total", OrdersTotal, "customers", customer42, touched{}},
		{"an order touches its customer's count", OrdersByCustomer, "orders", customer42, touched{[]string{"42"}, false}},
		{"a customer touches its own count", OrdersByCustomer, "customers", customer42, touched{[]string{"42"}, false}},
		{"an order without a customer touches no count", OrdersByCustomer, "orders", map[string]string{}, touched{}},
		{"a key in another spelling is canonical", CreditByCustomer, "orders", map[string]string{"customerid": "0042"}, touched{[]string{"42"}, false}},
		{"a value that is no key touches nothing", CreditByCustomer, "orders", map[string]string{"customerid": "x"}, touched{}},
		{"a customer touches the overview", CreditOverview, "customers", customer42, touched{nil, true}},
		{"an order touches the overview", CreditOverview, "orders", customer42, touched{nil, true}},
		{"another table touches nothing", CreditOverview, "products", nil, touched{}},
		{"a job declaring nothing is touched by nothing", "top_products", "orderlines", nil, touched{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, all := jobs[tc.job].AffectedBy(tc.table, tc.columns)
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
	list, err := Load("", testDefaults, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return list
}
