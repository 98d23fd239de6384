package testenv

import (
	"context"
	_ "embed"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

//go:embed metering.sql
var meteringSQL string

// MeteringJobs is a jobs file over the metering schema (NewMeteringDatabase) whose jobs declare
// no depends_on: PostgreSQL finds what they read. A keyed job; a keyed job over a view and a
// join, whose key comes from a table a changed usage event only joins; a job keyed by two
// columns of two tables; a single value.
const MeteringJobs = `
jobs:
  usage_by_account:
    schedule: "@every 1h"
    sql: |
      SELECT a.account_id, count(u.event_id) AS events, COALESCE(sum(u.units), 0) AS units
      FROM metering."Accounts" a LEFT JOIN metering."UsageEvents" u ON u.account_id = a.account_id
      GROUP BY a.account_id
    key: "{account_id}"
  usage_by_plan:
    schedule: "@every 1h"
    sql: |
      SELECT ap.plan_id, ap.plan_name, count(*) AS events, sum(u.units) AS units
      FROM metering."AccountPlans" ap JOIN metering."UsageEvents" u ON u.account_id = ap.account_id
      GROUP BY ap.plan_id, ap.plan_name
    key: "{plan_id}"
  usage_by_region_day:
    schedule: "@every 1h"
    sql: |
      SELECT a."Region" AS region, u."Day" AS day, count(*) AS events, sum(u.units) AS units
      FROM metering."UsageEvents" u JOIN metering."Accounts" a USING (account_id)
      GROUP BY 1, 2
    key: "{region}/{day}"
  total_units:
    schedule: "@every 1h"
    sql: SELECT count(*) AS events, COALESCE(sum(units), 0) AS units FROM metering."UsageEvents"
`

// NewMeteringDatabase creates a database for this test holding only the metering schema, unlike
// dellstore2's (testenv/metering.sql): accounts accounts over five plans, and events usage
// events. It returns the database's URL.
func NewMeteringDatabase(t testing.TB, accounts, events int) string {
	t.Helper()
	dbURL := NewEmptyDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sql := strings.NewReplacer(":accounts", strconv.Itoa(accounts), ":events", strconv.Itoa(events)).Replace(meteringSQL)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("testenv: metering schema: %v", err)
	}
	return dbURL
}
