package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/internal/testenv"
)

// catalog lists what a database holds outside warmcache's schema and PostgreSQL's own: schemas,
// relations (tables, indexes, views, sequences), columns and functions, a line each.
const catalog = `
WITH theirs AS (SELECT oid, nspname FROM pg_namespace
                WHERE nspname NOT IN ('warmcache', 'pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\_%')
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
    SELECT 'schema ' || nspname AS line FROM theirs
    UNION ALL
    SELECT 'relation ' || t.nspname || '.' || c.relname || ' ' || c.relkind::text
    FROM pg_class c JOIN theirs t ON t.oid = c.relnamespace
    UNION ALL
    SELECT 'column ' || t.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN theirs t ON t.oid = c.relnamespace
    WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure FROM pg_proc p JOIN theirs t ON t.oid = p.pronamespace
) lines`

// TestAnyDatabase runs the warmer as a new user would on a database of their own, which holds
// none of dellstore2's tables: the metering schema, with the metering jobs file, which declares
// no dependencies. warmer migrate --dry-run says what it would do and does nothing; warmer
// migrate exits 0 and adds no schema, relation, index, column or function outside warmcache's
// schema, only its triggers on the three tables the jobs read; warmer --once warms the jobs;
// warmer check says what PostgreSQL found each job reads, how each table's changes refresh it
// (naming the join it can only run whole), and the indexes to create.
func TestAnyDatabase(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewMeteringDatabase(t, 200, 2000)
	w := testenv.NewWriter(t, dbURL, 1)
	file := testenv.JobsFile(t, testenv.MeteringJobs)
	warmer := func(args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		status := cli.Warmer(context.Background(), args, testenv.Environ(t, dbURL), &stdout, &stderr, run)
		return status, stdout.String(), stderr.String()
	}
	before := w.Text(catalog)

	status, stdout, stderr := warmer("migrate", "--dry-run", "--jobs", file)
	if status != 0 {
		t.Fatalf("migrate --dry-run: status %d:\n%s", status, stderr)
	}
	for _, want := range []string{
		"- apply migration 00001_aggregate_indexes.sql",
		"- apply migration 00009_changes_in_own_schema.sql",
		"- create the change-capture triggers on metering.Accounts, recording account_id, plan_id",
		"- create the change-capture triggers on metering.Plans, recording plan_id",
		"- create the change-capture triggers on metering.UsageEvents, recording Day, account_id",
	} {
		if !strings.Contains(stdout, want+"\n") {
			t.Errorf("migrate --dry-run does not say %q:\n%s", want, stdout)
		}
	}
	if w.Int("SELECT count(*) FROM pg_namespace WHERE nspname = 'warmcache'") != 0 || w.Text(catalog) != before {
		t.Fatal("migrate --dry-run changed the database")
	}

	if status, _, stderr := warmer("migrate", "--jobs", file); status != 0 ||
		!strings.Contains(stderr, `"msg":"builtins","on":false,"reason":"the database has no table orders"`) {
		t.Fatalf("migrate: status %d, want 0 and the built-in jobs off:\n%s", status, stderr)
	}
	if after := w.Text(catalog); after != before {
		t.Errorf("migrate changed the database outside schema warmcache:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := w.Text(`SELECT string_agg(tgrelid::regclass || ' ' || tgname, ', ' ORDER BY tgrelid::regclass::text, tgname) FROM pg_trigger
		WHERE NOT tgisinternal`); got != `metering."Accounts" warmcache_changes_delete, metering."Accounts" warmcache_changes_insert, `+
		`metering."Accounts" warmcache_changes_truncate, metering."Accounts" warmcache_changes_update, `+
		`metering."Plans" warmcache_changes_delete, metering."Plans" warmcache_changes_insert, `+
		`metering."Plans" warmcache_changes_truncate, metering."Plans" warmcache_changes_update, `+
		`metering."UsageEvents" warmcache_changes_delete, metering."UsageEvents" warmcache_changes_insert, `+
		`metering."UsageEvents" warmcache_changes_truncate, metering."UsageEvents" warmcache_changes_update` {
		t.Errorf("triggers after migrate: %s", got)
	}
	if status, stdout, _ := warmer("migrate", "--dry-run", "--jobs", file); status != 0 ||
		!strings.Contains(stdout, "- nothing: the database is up to date for these jobs") {
		t.Errorf("migrate --dry-run after migrate: status %d:\n%s", status, stdout)
	}

	if status, _, stderr := warmer("--once", "--no-migrate", "--jobs", file); status != 0 {
		t.Fatalf("--once: status %d:\n%s", status, stderr)
	}

	status, stdout, stderr = warmer("check", "--jobs", file)
	if status != 0 {
		t.Fatalf("check: status %d:\n%s", status, stderr)
	}
	if strings.Contains(stdout, "orders_total") {
		t.Errorf("check lists the built-in jobs, which are off here:\n%s", stdout)
	}
	for _, want := range []string{
		`(?m)^Built-in jobs: off`,
		`(?m)^usage_by_plan \(\{plan_id\}\):\n(  .*\n)*  metering\.UsageEvents +account_id +joined keys: plan_id of metering\.Accounts where account_id = the row's account_id$`,
		`(?m)^usage_by_plan \(\{plan_id\}\):\n(  .*\n)*  metering\.Plans +plan_id +exact keys`,
		`(?m)^usage_by_region_day \(\{region\}/\{day\}\):\n(  .*\n)*  metering\.Accounts +whole job: a change runs the job`,
		`(?m)^usage_by_region_day \(\{region\}/\{day\}\):\n(  .*\n)*  metering\.UsageEvents +Day, account_id +joined keys: Region of metering\.Accounts`,
		`(?m)^usage_by_region_day \(\{region\}/\{day\}\):\n(  .*\n)*  advice: CREATE INDEX ON "metering"\."UsageEvents" \("Day"\);`,
		`(?m)^total_units \(one value\):\n  metering\.UsageEvents +its one value`,
	} {
		if !regexp.MustCompile(want).MatchString(stdout) {
			t.Errorf("check does not say %s:\n%s", want, stdout)
		}
	}
}

// TestCheckREADMEJobs: warmer check against dellstore2 says what PostgreSQL finds the README's
// example jobs read: the key of each date from the changed order's own column, the customers
// table for the single value, nothing for the job whose depends_on is empty.
func TestCheckREADMEJobs(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "\n## Jobs\n")
	_, block, _ := strings.Cut(section, "```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	var stdout, stderr bytes.Buffer
	status := cli.Warmer(context.Background(), []string{"check", "--jobs", testenv.JobsFile(t, block)},
		[]string{"DATABASE_URL=" + testenv.NewDatabase(t)}, &stdout, &stderr, run)
	if status != 0 {
		t.Fatalf("check: status %d:\n%s", status, stderr.String())
	}
	for _, want := range []string{
		`(?m)^Built-in jobs: on`,
		`(?m)^orders_by_date \(\{orderdate\}\):\n  public\.orders +orderdate +exact keys`,
		`(?m)^high_income_customers \(one value\):\n  public\.customers +its one value`,
		`(?m)^top_products \(\{prod_id\}\):\n  depends on nothing: its schedule alone refreshes it`,
	} {
		if !regexp.MustCompile(want).MatchString(stdout.String()) {
			t.Errorf("check does not say %s:\n%s", want, stdout.String())
		}
	}
}

// TestWarnsWhatIsNotInstalled: a warmer started with --no-migrate on a database where warmer
// migrate has not run with its jobs says so at start, naming the table whose changes are not
// recorded and the built-in jobs' missing functions.
func TestWarnsWhatIsNotInstalled(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	w := testenv.NewWriter(t, dbURL, 1)
	w.MustExec("SELECT warmcache.warmcache_uninstall_changes('customers')",
		"DROP FUNCTION warmcache.warmcache_reconcile_totals(integer[], boolean)")
	var stderr bytes.Buffer
	status := cli.Warmer(context.Background(), []string{"--once", "--no-migrate", "--job", "orders_by_customer"},
		testenv.Environ(t, dbURL), &stderr, &stderr, run)
	for _, want := range []string{`"msg":"builtins_not_installed"`, `"msg":"dependencies_not_installed","table":"public.customers"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the warmer does not warn %s (status %d):\n%s", want, status, stderr.String())
		}
	}
}
