package jobs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warmcache/warmcache/query"
)

var (
	testNow      = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	testDefaults = Defaults{TTL: 10 * time.Minute, Grace: time.Hour, NegativeTTL: 30 * time.Second, Timeout: time.Minute, Location: time.UTC}
)

func writeJobs(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jobs.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func byName(list []Job) map[string]Job {
	m := map[string]Job{}
	for _, j := range list {
		m[j.Name] = j
	}
	return m
}

func TestLoadWithoutFile(t *testing.T) {
	t.Parallel()
	list, _, err := Load("", testDefaults, testNow)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, j := range list {
		got[j.Name] = j.Schedule.String() + " " + j.Lifetime.Policy.String()
		if !j.Builtin || !j.Enabled || j.Timeout != time.Minute || j.Lifetime.Grace != time.Hour {
			t.Errorf("%s: %+v", j.Name, j)
		}
	}
	want := map[string]string{
		"orders_total": "@every 1m0s 10m0s", "orders_by_customer": "@every 5m0s 10m0s",
		"credit_by_customer": "@every 5m0s 10m0s", "credit_overview": "@every 1m0s 10m0s",
	}
	if len(got) != len(want) {
		t.Fatalf("jobs %v, want %v", got, want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
}

// A short CACHE_TTL alone (the tutorials' CACHE_TIMEOUT_SECONDS=30) must still start: the
// built-in jobs then refresh at half the TTL.
func TestShortDefaultTTLShortensBuiltinSchedules(t *testing.T) {
	t.Parallel()
	d := testDefaults
	d.TTL = 30 * time.Second
	list, _, err := Load("", d, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range list {
		if j.Schedule.String() != "@every 15s" {
			t.Errorf("%s runs %s, want @every 15s", j.Name, j.Schedule)
		}
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	path := writeJobs(t, `
jobs:
  orders_total:
    schedule: "*/30 * * * * *"
    ttl: 2m
  credit_by_customer:
    enabled: false
  top_products:
    description: Units sold per product.
    schedule: "@hourly"
    sql: |
      SELECT prod_id, sum(quantity) AS sold FROM orderlines GROUP BY prod_id
    key: "{prod_id}"
    ttl: end_of_day
    grace: 2h
    jitter: 30
    timeout: 90s
  store_stats:
    schedule: "0 3 * * *"
    sql: SELECT count(*) AS products FROM products
    ttl: 25h
`)
	list, _, err := Load(path, testDefaults, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 6 || list[4].Name != "top_products" || list[5].Name != "store_stats" {
		t.Fatalf("jobs in order: %v", names(list))
	}
	jobs := byName(list)
	if j := jobs["orders_total"]; j.Schedule.String() != "*/30 * * * * *" || j.Lifetime.Policy.String() != "2m0s" {
		t.Errorf("orders_total override: %s %s", j.Schedule, j.Lifetime.Policy)
	}
	if jobs["credit_by_customer"].Enabled {
		t.Error("credit_by_customer enabled: false was ignored")
	}
	tp := jobs["top_products"]
	if !tp.Keyed() || tp.Builtin || tp.Lifetime.Policy.String() != "end_of_day" || tp.Lifetime.Grace != 2*time.Hour ||
		tp.Lifetime.Jitter != 30*time.Second || tp.Timeout != 90*time.Second || tp.Description == "" {
		t.Errorf("top_products: %+v", tp)
	}
	if jobs["store_stats"].Keyed() {
		t.Error("store_stats has no key template but is keyed")
	}
}

func names(list []Job) []string {
	var n []string
	for _, j := range list {
		n = append(n, j.Name)
	}
	return n
}

// aUserJob is the start of a user's job, for the refusals of settings that follow it.
const aUserJob = "jobs:\n  x:\n    schedule: '@hourly'\n    ttl: 2h\n    sql: SELECT 1 AS a, 2 AS b\n"

// TestLoadRefuses checks that every bad setting stops start-up with a message naming the job
// and the setting.
func TestLoadRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"bad cron", "jobs:\n  orders_total:\n    schedule: '61 * * * *'\n", []string{"orders_total", "schedule"}},
		{"bad ttl", "jobs:\n  orders_total:\n    ttl: forever\n", []string{"orders_total", "ttl"}},
		{"ttl shorter than interval", "jobs:\n  orders_total:\n    schedule: '@every 10m'\n    ttl: 5m\n",
			[]string{"orders_total", "ttl", "before the next refresh"}},
		{"ttl shorter than the weekend", "jobs:\n  x:\n    schedule: '0 9 * * 1-5'\n    sql: SELECT 1 AS a\n    ttl: 24h\n",
			[]string{"job x", "ttl", "72h"}},
		{"calendar ttl on a weekly job", "jobs:\n  x:\n    schedule: '0 0 * * 1'\n    sql: SELECT 1 AS a\n    ttl: end_of_day\n",
			[]string{"job x", "ttl"}},
		{"jitter as long as the ttl", "jobs:\n  orders_total:\n    jitter: 10m\n", []string{"orders_total", "jitter"}},
		{"bad grace", "jobs:\n  orders_total:\n    grace: later\n", []string{"orders_total", "grace"}},
		{"tiny timeout", "jobs:\n  orders_total:\n    timeout: 10ms\n", []string{"orders_total", "timeout"}},
		{"built-in sql", "jobs:\n  orders_total:\n    sql: SELECT 1\n", []string{"orders_total", "sql"}},
		{"user job without sql", "jobs:\n  mine:\n    schedule: '@hourly'\n", []string{"mine", "sql"}},
		{"user job without schedule", "jobs:\n  mine:\n    sql: SELECT 1 AS a\n", []string{"mine", "schedule"}},
		{"bad key template", "jobs:\n  mine:\n    schedule: '@every 1m'\n    sql: SELECT 1 AS a\n    key: '{a'\n", []string{"mine", "brace"}},
		{"misspelt field", "jobs:\n  orders_total:\n    schedul: '@hourly'\n", []string{"orders_total", "schedul"}},
		{"unknown top-level field", "job:\n  orders_total: {}\n", []string{"job"}},
		{"bad job name", "jobs:\n  Orders-Total:\n    schedule: '@hourly'\n", []string{"Orders-Total"}},
		{"reserved job name", "jobs:\n  _run:\n    schedule: '@hourly'\n", []string{"_run"}},
		{"duplicate", "jobs:\n  mine:\n    sql: SELECT 1 AS a\n  mine:\n    sql: SELECT 2 AS a\n", []string{"mine"}},
		{"not a mapping", "jobs: [a, b]\n", []string{"mapping"}},
		{"a single value depending on a column", aUserJob + "    depends_on: {orders: customerid}\n",
			[]string{"job x", "depends_on", "single-value"}},
		{"a column that is not the key", aUserJob + "    key: '{a}'\n    depends_on: {orders: customerid}\n",
			[]string{"job x", "depends_on", "key column is a"}},
		{"a column of a key of two columns", aUserJob + "    key: '{a}:{b}'\n    depends_on: {orders: a}\n",
			[]string{"job x", "depends_on", "one column"}},
		{"a table that is no name", aUserJob + "    depends_on: [Orders]\n", []string{"job x", "depends_on", "Orders"}},
		{"depends_on neither list nor mapping", aUserJob + "    depends_on: orders\n", []string{"job x", "depends_on"}},
		{"a built-in's dependencies", "jobs:\n  orders_total:\n    depends_on: [orders]\n", []string{"orders_total", "depends_on"}},
		{"incremental with sql", "jobs:\n  x:\n    schedule: '@hourly'\n    ttl: 2h\n    sql: SELECT 1\n    incremental: {table: orders, count: n}\n",
			[]string{"job x", "incremental", "no sql"}},
		{"incremental without a table", "jobs:\n  x:\n    schedule: '@hourly'\n    ttl: 2h\n    incremental: {count: n}\n",
			[]string{"job x", "incremental", "table"}},
		{"incremental without figures", "jobs:\n  x:\n    schedule: '@hourly'\n    ttl: 2h\n    incremental: {table: orders}\n",
			[]string{"job x", "incremental", "count or a sum"}},
		{"not yaml", "jobs: {\n", []string{"line 1"}},
		{"not a boolean", "jobs:\n  orders_total:\n    enabled: maybe\n", []string{`line 3: job orders_total: enabled: "maybe" is not true or false`}},
		{"a list for text", "jobs:\n  orders_total:\n    ttl: [1m]\n", []string{"line 3: job orders_total: ttl: must be text"}},
		{"a setting twice", "jobs:\n  orders_total:\n    ttl: 1m\n    ttl: 2m\n", []string{"line 4: job orders_total: ttl is set twice"}},
		{"an insert", "jobs:\n  x:\n    schedule: '@hourly'\n    sql: INSERT INTO orders DEFAULT VALUES\n", []string{"line 4: job x: sql: must be a query"}},
		{"an unknown incremental setting", "jobs:\n  x:\n    schedule: '@hourly'\n    incremental: {table: orders, cnt: n}\n",
			[]string{"line 4: job x: incremental: cnt is not a setting"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Load(writeJobs(t, tc.yaml), testDefaults, testNow)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), testDefaults, testNow); err == nil {
		t.Error("a missing jobs file was accepted")
	}
}

func FuzzLoad(f *testing.F) {
	f.Add("jobs:\n  orders_total:\n    schedule: '@every 30s'\n")
	f.Add("jobs:\n  x:\n    schedule: '0 9 * * 1-5'\n    sql: SELECT 1 AS a\n    key: '{a}'\n    ttl: end_of_week\n")
	f.Fuzz(func(t *testing.T, yaml string) {
		path := filepath.Join(t.TempDir(), "jobs.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		list, _, err := Load(path, testDefaults, testNow)
		if err != nil {
			return
		}
		for _, j := range list {
			if j.Schedule.Next(testNow).IsZero() || j.Timeout <= 0 || !j.Lifetime.Policy.Covers(j.Schedule.MaxInterval(testNow)) {
				t.Fatalf("accepted an invalid job %+v", j)
			}
		}
	})
}

// TestREADMEJobsFile loads the jobs file the README shows, with the default settings, and checks
// what it says of the jobs' dependencies.
func TestREADMEJobsFile(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, jobsSection, _ := strings.Cut(string(readme), "\n## Jobs\n")
	_, block, _ := strings.Cut(jobsSection, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	list, _, err := Load(writeJobs(t, block), testDefaults, testNow)
	if err != nil {
		t.Fatalf("the README's jobs file: %v", err)
	}
	jobs := byName(list)
	for name, want := range map[string][]Dependency{
		"orders_by_date":        nil, // found by PostgreSQL
		"high_income_customers": nil,
		"revenue_by_date":       {{Table: "orders", Keys: []*query.KeySource{{Column: "orderdate"}}}},
		"top_products":          nil, // depends_on: []
	} {
		if got := jobs[name].DependsOn; !reflect.DeepEqual(got, want) {
			t.Errorf("%s depends on %v, want %v", name, got, want)
		}
	}
	if !jobs["top_products"].DependsOnSet || jobs["orders_by_date"].DependsOnSet {
		t.Error("top_products's depends_on: [] is not told from orders_by_date's none")
	}
	if jobs["revenue_by_date"].Incremental == nil || !jobs["revenue_by_date"].Aggregate.Incremental() {
		t.Error("revenue_by_date is not incremental")
	}
}

// TestLoadReportsEveryError: a file with several mistakes is refused with all of them, each with
// its line and what to write instead, not only the first.
func TestLoadReportsEveryError(t *testing.T) {
	t.Parallel()
	_, _, err := Load(writeJobs(t, `jobs:
  nightly:
    schedule: "0 25 * * *"
    sql: SELECT 1 AS a
  hourly:
    schedule: "@hourly"
    ttl: 30m
    sql: SELECT 1 AS a
  orders_total:
    schedul: "@every 1m"
  Top-Products:
    schedule: "@daily"
`), testDefaults, testNow)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"line 3: job nightly: schedule:",
		"line 7: job hourly: ttl: 30m0s is shorter than the longest gap between runs",
		"(fix: ttl: 2h or longer",
		"line 10: job orders_total: schedul: is not a setting",
		"(fix: write schedule)",
		`line 11: job name "Top-Products"`,
		"(fix: call it top_products)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 4 {
		t.Errorf("%d errors, want 4:\n%v", n, err)
	}
}

// TestTTLFromSchedule: a job without a ttl keeps CACHE_TTL where its values outlive the gaps
// between runs, and gets twice the longest gap where they would not, so that a schedule alone is
// a valid job; a ttl in days is read.
func TestTTLFromSchedule(t *testing.T) {
	t.Parallel()
	list, _, err := Load(writeJobs(t, `jobs:
  hourly:
    schedule: "@hourly"
    sql: SELECT 1 AS a
  frequent:
    schedule: "@every 1m"
    sql: SELECT 1 AS a
  weekly:
    schedule: "0 6 * * 1"
    ttl: 8d
    sql: SELECT 1 AS a
  daily:
    schedule: "@daily"
    ttl: 1d
    sql: SELECT 1 AS a
`), testDefaults, testNow)
	if err != nil {
		t.Fatal(err)
	}
	jobs := byName(list)
	for name, want := range map[string]struct {
		ttl     string
		derived bool
	}{
		"hourly": {"2h0m0s", true}, "frequent": {"10m0s", false}, "weekly": {"192h0m0s", false}, "daily": {"24h0m0s", false},
	} {
		j := jobs[name]
		if got := j.Lifetime.Policy.String(); got != want.ttl || j.TTLFromSchedule != want.derived {
			t.Errorf("%s: ttl %s (from the schedule: %v), want %s (%v)", name, got, j.TTLFromSchedule, want.ttl, want.derived)
		}
	}
}
