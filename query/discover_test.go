package query_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

// TestDependencies asks PostgreSQL what statements of every shape read, on the metering schema:
// through a view, a CTE, a subquery and a plain join, with quoted mixed-case names; where each key
// column comes from; and how a changed row of each table names its keys.
func TestDependencies(t *testing.T) {
	t.Parallel()
	db := testenv.OpenDB(t, testenv.NewMeteringDatabase(t, 50, 500), query.Options{MaxConns: 2})
	exact := func(col string) *query.KeySource { return &query.KeySource{Column: col} }
	toAccount := func(key string) *query.KeySource {
		return &query.KeySource{Via: &query.Join{From: "account_id", Table: "metering.Accounts", Column: "account_id",
			Type: "integer", KeyColumn: key, Unique: true}}
	}
	for _, tc := range []struct {
		name, sql, key string
		want           []query.Dependency
	}{
		{"a single value reads its table", `SELECT count(*) AS n FROM metering."UsageEvents"`, "",
			[]query.Dependency{{Table: "metering.UsageEvents"}}},
		{"a CTE and a subquery, which the planner inlines", `WITH busy AS (SELECT account_id FROM metering."UsageEvents" GROUP BY 1 HAVING count(*) > 1)
			SELECT a.account_id, a."Region" FROM metering."Accounts" a WHERE a.account_id IN (SELECT account_id FROM busy)`,
			"{account_id}",
			[]query.Dependency{
				{Table: "metering.Accounts", Keys: []*query.KeySource{exact("account_id")}},
				{Table: "metering.UsageEvents", Keys: []*query.KeySource{exact("account_id")}},
			}},
		{"a materialized CTE", `WITH busy AS MATERIALIZED (SELECT account_id FROM metering."UsageEvents" GROUP BY 1 HAVING count(*) > 1)
			SELECT a.account_id, a."Region" FROM metering."Accounts" a JOIN busy b ON b.account_id = a.account_id`,
			"{account_id}",
			[]query.Dependency{
				{Table: "metering.Accounts", Keys: []*query.KeySource{exact("account_id")}},
				{Table: "metering.UsageEvents", Keys: []*query.KeySource{nil}}, // joined to the CTE's result, not to a table
			}},
		{"a view's key comes from the table behind it", `SELECT plan_id, count(*) AS accounts FROM metering."AccountPlans" GROUP BY 1`,
			"{plan_id}",
			[]query.Dependency{
				{Table: "metering.Accounts", Keys: []*query.KeySource{exact("plan_id")}},
				{Table: "metering.Plans", Keys: []*query.KeySource{exact("plan_id")}},
			}},
		{"a key through a join", `SELECT a.plan_id, sum(u.units) AS units FROM metering."UsageEvents" u
			JOIN metering."Accounts" a ON a.account_id = u.account_id GROUP BY 1`, "{plan_id}",
			[]query.Dependency{
				{Table: "metering.Accounts", Keys: []*query.KeySource{exact("plan_id")}},
				{Table: "metering.UsageEvents", Keys: []*query.KeySource{toAccount("plan_id")}},
			}},
		{"a computed key names no row", `SELECT date_trunc('week', "Day") AS week, count(*) AS n FROM metering."UsageEvents" GROUP BY 1`,
			"{week}",
			[]query.Dependency{{Table: "metering.UsageEvents", Keys: []*query.KeySource{nil}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agg, err := query.UserSQL(tc.sql, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			found, err := db.Dependencies(context.Background(), agg)
			if err != nil || !reflect.DeepEqual(found.Dependencies, tc.want) {
				t.Errorf("found %s, %v; want %s", describe(found.Dependencies), err, describe(tc.want))
			}
		})
	}
}

// describe writes dependencies for a test's message: pointers would print as addresses.
func describe(deps []query.Dependency) string {
	s := ""
	for _, d := range deps {
		s += d.Table + "["
		for _, k := range d.Keys {
			switch {
			case k == nil:
				s += "nil "
			case k.Via != nil:
				s += "via " + k.Via.Table + "." + k.Via.KeyColumn + " "
			default:
				s += k.Column + " "
			}
		}
		s += "] "
	}
	return s
}
