package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/internal/testenv"
)

// TestConfigurationErrors gives each setting a bad value and expects exit status 2 and the
// exact message a user reads. Settings that need no server are checked before anything
// connects: PostgreSQL and Redis are then listeners that count connections. A user's SQL is
// confirmed by PostgreSQL itself: those cases run against the real one.
func TestConfigurationErrors(t *testing.T) {
	t.Parallel()
	pg, redis := testenv.NewListener(t), testenv.NewListener(t)
	servers := []string{"DATABASE_URL=postgres://warmcache@" + pg.Addr() + "/warmcache", "REDIS_URL=redis://" + redis.Addr() + "/0",
		"ADMIN_ADDR=127.0.0.1:0"}
	env := func(extra ...string) []string { return append(append([]string{}, servers...), extra...) }
	mine := "jobs:\n  mine:\n    schedule: '@hourly'\n    ttl: 2h\n"
	badStep := testenv.JobsFile(t, "jobs:\n  orders_total:\n    schedule: '*/61 * * * *'\n")
	badRange := testenv.JobsFile(t, "jobs:\n  orders_total:\n    schedule: '0 24 * * *'\n")
	notABool := testenv.JobsFile(t, "jobs:\n  orders_total:\n    enabled: yes please\n")
	update := testenv.JobsFile(t, mine+"    sql: UPDATE orders SET tax = 0 RETURNING orderid\n")
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		stderr  string
	}{
		{"migrate flag", []string{"--migrate"}, env(), "flag provided but not defined: -migrate"},
		{"no database url", []string{"migrate"}, nil, "configuration: DATABASE_URL: is not set (alias PG_SERVICE_URI)"},
		{"migrate with a bad url", []string{"migrate"}, []string{"DATABASE_URL=host=db port=x"},
			"configuration: DATABASE_URL: invalid port: not a PostgreSQL URL (postgres://user@host:5432/db?sslmode=require) or key=value string"},
		{"bad replica url", nil, env("WARMER_DATABASE_URL=postgres://r@db:port/x"),
			"configuration: DATABASE_REPLICA_URL: invalid port: not a PostgreSQL URL (postgres://user@host:5432/db?sslmode=require) or key=value string"},
		{"migrate not a boolean", nil, env("MIGRATE=maybe"), `configuration: MIGRATE: "maybe" is not true or false`},
		{"bad admin address", nil, env("ADMIN_ADDR=9091"), `configuration: ADMIN_ADDR: "9091" is not an address to listen on (host:port, :port)`},
		{"bad purge headers", nil, env("PURGE_URLS=http://127.0.0.1:1/", "PURGE_HEADERS=Fastly-Key"),
			`configuration: PURGE_HEADERS: "Fastly-Key" is not a list of name:value pairs separated by commas`},
		{"bad purge method", nil, env("PURGE_METHOD=PUR GE"), `configuration: PURGE_METHOD: "PUR GE" is not an HTTP method`},
		{"bad shutdown timeout", nil, env("SHUTDOWN_TIMEOUT=-1s"), "configuration: SHUTDOWN_TIMEOUT: -1s is not positive"},
		{"cron step", []string{"--once", "--jobs", badStep}, env(), "configuration: --jobs " + badStep +
			`: line 3: job orders_total: schedule: "*/61 * * * *": the minute field: the step of */61 is out of range (1 to 59 for 0-59) (fix: five fields ("*/5 * * * *"), six with seconds, or "@every 30s", "@hourly", "@daily")`},
		{"cron range", nil, env("JOBS_FILE=" + badRange), "configuration: JOBS_FILE=" + badRange +
			`: line 3: job orders_total: schedule: "0 24 * * *": the hour field: 24 is out of range (0 to 23) (fix: five fields ("*/5 * * * *"), six with seconds, or "@every 30s", "@hourly", "@daily")`},
		{"not a boolean", []string{"migrate", "--jobs", notABool}, env(), "configuration: --jobs " + notABool +
			`: line 3: job orders_total: enabled: "yes please" is not true or false`},
		{"a job that writes", []string{"--jobs", update}, env(), "configuration: --jobs " + update +
			": line 5: job mine: sql: must be a query (SELECT, WITH, VALUES or TABLE): a job only reads, and this statement starts with UPDATE"},
		{"job without once", []string{"--job", "x"}, env(), "--job goes with --once"},
		{"stray argument", []string{"warm"}, env(), `unexpected argument "warm" (warmer --help lists the flags)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := cli.Warmer(context.Background(), tc.args, tc.environ, &stdout, &stderr, run)
			if want := "warmer: " + tc.stderr + "\n"; status != 2 || !strings.HasSuffix(stderr.String(), want) {
				t.Errorf("status %d, want 2, and stderr ending\n%s\ngot\n%s", status, want, stderr.String())
			}
		})
	}
	if n := pg.Accepted() + redis.Accepted(); n != 0 {
		t.Errorf("%d connections were made to PostgreSQL or Redis with a bad configuration", n)
	}
}

// TestJobsConfirmedByPostgreSQL: what only PostgreSQL can tell of a user's SQL stops the warmer
// with exit status 2, naming the file, the job and the setting.
func TestJobsConfirmedByPostgreSQL(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	mine := "jobs:\n  mine:\n    schedule: '@hourly'\n    ttl: 2h\n"
	deletes := testenv.JobsFile(t, mine+"    sql: WITH gone AS (DELETE FROM orders RETURNING orderid) SELECT count(*) AS n FROM gone\n")
	locks := testenv.JobsFile(t, mine+"    sql: SELECT customerid FROM customers FOR SHARE\n    key: '{customerid}'\n")
	unknownTable := testenv.JobsFile(t, mine+"    sql: SELECT count(*) AS n FROM ordres\n")
	for _, tc := range []struct {
		name, file, stderr string
	}{
		{"a write in a WITH", deletes, ": job mine: sql: writes (a WITH holding INSERT, UPDATE, DELETE or MERGE): a job only reads"},
		{"a lock", locks, ": job mine: sql: locks rows (FOR UPDATE or FOR SHARE): a job only reads"},
		{"an unknown table", unknownTable, `: job mine: sql: ERROR: relation "ordres" does not exist (SQLSTATE 42P01)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := cli.Warmer(context.Background(), []string{"--once", "--jobs", tc.file}, testenv.Environ(t, dbURL), &stdout, &stderr, run)
			if want := "warmer: configuration: --jobs " + tc.file + tc.stderr + "\n"; status != 2 || !strings.HasSuffix(stderr.String(), want) {
				t.Errorf("status %d, want 2, and stderr ending\n%s\ngot\n%s", status, want, stderr.String())
			}
		})
	}
}

// TestRedisDatabaseMissing names REDIS_URL when the server has no database of its number.
func TestRedisDatabaseMissing(t *testing.T) {
	t.Parallel()
	testenv.CheckNoSuchRedisDatabase(t, "warmer", testenv.Entry(cli.Warmer, run), []string{"--once"}, testenv.Environ(t, testenv.NewDatabase(t)))
}

// TestHelpAndVersion: --help exits 0 and lists every setting; --version prints the version.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	testenv.CheckHelpAndVersion(t, "warmer", testenv.Entry(cli.Warmer, run), []string{"warmer migrate", "-once", "-no-migrate", "DATABASE_URL", "alias PG_SERVICE_URI",
		"WARMER_DATABASE_URL", "REDIS_URL", "ADMIN_ADDR", "alias METRICS_ADDR", "default :9091", "PURGE_HEADERS", "LOG_LEVEL", "CACHE_TTL"})
}
