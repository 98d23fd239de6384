package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/internal/testenv"
)

// TestMain lets the test binary run as the warmer itself, for the tests that signal a process.
func TestMain(m *testing.M) { testenv.RunMain(m, main) }

// TestExitStatus holds each command to the exit status its --help documents: 0 on success, 1 on
// a failure, 2 for bad usage or configuration, 3 when PostgreSQL or Redis cannot be reached.
func TestExitStatus(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	empty := testenv.NewEmptyDatabase(t)
	badCron := testenv.JobsFile(t, "jobs:\n  orders_total:\n    schedule: '61 * * * *'\n")
	badSQL := testenv.JobsFile(t, "jobs:\n  mine:\n    schedule: '@hourly'\n    ttl: 2h\n    sql: SELECT nothing FROM nowhere\n")
	mine := "jobs:\n  mine:\n    schedule: '@hourly'\n    ttl: 2h\n    sql: SELECT customerid, count(*) AS n FROM orders GROUP BY 1\n    key: '{customerid}'\n"
	unknownTable := testenv.JobsFile(t, mine+"    depends_on: {ordres: customerid}\n")
	// The result's column renamed, the table's taken for it.
	unknownColumn := testenv.JobsFile(t, "jobs:\n  mine:\n    schedule: '@hourly'\n    ttl: 2h\n"+
		"    sql: SELECT customerid AS customer_id, count(*) AS n FROM orders GROUP BY 1\n"+
		"    key: '{customer_id}'\n    depends_on: {orders: customer_id}\n")
	notTheKey := testenv.JobsFile(t, mine+"    depends_on: {orders: orderid}\n")
	floatSum := testenv.JobsFile(t, "jobs:\n  mine:\n    schedule: '@hourly'\n    ttl: 2h\n    incremental: {table: orders, sum: {n: orderdate}}\n")
	builtinsOn := testenv.JobsFile(t, "builtins: true\n")
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		status  int
		stderr  string
	}{
		{"once", []string{"--once"}, testenv.Environ(t, dbURL), 0, "job_finished"},
		{"once one job", []string{"--once", "--job", "orders_total"}, testenv.Environ(t, dbURL), 0, `"job":"orders_total"`},
		{"once unknown job", []string{"--once", "--job", "nope"}, testenv.Environ(t, dbURL), 2, "nope"},
		// PostgreSQL or Redis down is 3: a Kubernetes Job or a script retries later.
		{"once with the database down", []string{"--once", "--no-migrate"},
			testenv.Environ(t, "postgres://x@127.0.0.1:1/x?connect_timeout=1"), 3, "postgresql unavailable"},
		{"once, migrating, with the database down", []string{"--once"},
			testenv.Environ(t, "postgres://x@127.0.0.1:1/x?connect_timeout=1"), 3, "postgresql unavailable"},
		{"migrate with the database down", []string{"migrate"},
			testenv.Environ(t, "postgres://x@127.0.0.1:1/x?connect_timeout=1"), 3, "postgresql unavailable"},
		{"once with Redis down", []string{"--once"}, append(testenv.Environ(t, dbURL), "REDIS_URL=redis://127.0.0.1:1/0"), 3,
			"redis unavailable"},
		{"check with the database down", []string{"check"},
			testenv.Environ(t, "postgres://x@127.0.0.1:1/x?connect_timeout=1"), 0, ""},
		{"bad cron", []string{"--once", "--jobs", badCron}, testenv.Environ(t, dbURL), 2, "orders_total: schedule"},
		{"bad sql", []string{"--once", "--jobs", badSQL}, testenv.Environ(t, dbURL), 2, "job mine: sql"},
		{"depends on an unknown table", []string{"--once", "--jobs", unknownTable}, testenv.Environ(t, dbURL), 2, "job mine: depends_on: no table ordres"},
		{"depends on an unknown column", []string{"--once", "--jobs", unknownColumn}, testenv.Environ(t, dbURL), 2,
			"job mine: depends_on: table public.orders has no column customer_id"},
		{"depends on a column that is not the key", []string{"--once", "--jobs", notTheKey}, testenv.Environ(t, dbURL), 2,
			"job mine: depends_on: orders.orderid"},
		{"sums what does not add up", []string{"--once", "--jobs", floatSum}, testenv.Environ(t, dbURL), 2,
			"job mine: incremental: column orders.orderdate is date"},
		{"migrate refuses a bad jobs file", []string{"migrate", "--jobs", unknownColumn}, []string{"DATABASE_URL=" + dbURL}, 2,
			"customer_id"},
		{"bad ttl", []string{"--once"}, testenv.Environ(t, dbURL, "CACHE_TTL=forever"), 2, "CACHE_TTL"},
		{"no run history", []string{"--once"}, testenv.Environ(t, dbURL, "RUN_HISTORY=0"), 2, "RUN_HISTORY: 0 is not between 1 and 1000"},
		{"bad time zone", []string{"--once"}, testenv.Environ(t, dbURL, "TIMEZONE=Mars/Olympus"), 2, "TIMEZONE"},
		{"bad redis url", []string{"--once"}, testenv.Environ(t, dbURL, "REDIS_URL=http://x"), 2, "REDIS_URL"},
		{"bad database url", []string{"--once"}, testenv.Environ(t, "postgres://x@127.0.0.1:notaport/x"), 2, "DATABASE_URL"},
		{"no redis url", []string{"--once"}, []string{"DATABASE_URL=" + dbURL}, 2, "REDIS_URL"},
		{"bad namespace", []string{"--once"}, testenv.Environ(t, dbURL, "CACHE_NAMESPACE=a:b"), 2, "CACHE_NAMESPACE"},
		{"job without once", []string{"--job", "x"}, testenv.Environ(t, dbURL), 2, "--job goes with --once"},
		{"stray argument", []string{"warm"}, testenv.Environ(t, dbURL), 2, "unexpected argument"},
		{"migrate", []string{"migrate"}, []string{"PG_SERVICE_URI=" + dbURL}, 0, "migrate_started"},
		// Any database: the built-in jobs are off where their tables are not, unless the file
		// insists.
		{"migrate without dellstore2", []string{"migrate"}, []string{"DATABASE_URL=" + empty}, 0,
			`"msg":"builtins","on":false,"reason":"the database has no table orders"`},
		{"built-ins asked for without dellstore2", []string{"migrate", "--jobs", builtinsOn}, []string{"DATABASE_URL=" + empty}, 2,
			"builtins: true, and the database has no table orders"},
		{"migrate without url", []string{"migrate"}, nil, 2, "DATABASE_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			status := cli.Warmer(context.Background(), tc.args, tc.environ, &stderr, &stderr, run)
			if status != tc.status || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("warmer %v: status %d, want %d mentioning %q; stderr:\n%s", tc.args, status, tc.status, tc.stderr, stderr.String())
			}
		})
	}
}

// TestSIGTERMFinishesTheRunInFlight starts the warmer as a process with a job that takes two
// seconds, signals it while the job runs, and expects the run to finish and the exit to be 0.
func TestSIGTERMFinishesTheRunInFlight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, timeout, want string
	}{
		{"within the bound", "30s", "job_finished"},
		{"past the bound", "500ms", "job_failed"}, // cancelled, recorded, and still exit 0
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			jobsFile := testenv.JobsFile(t, testenv.BuiltinsNotWarmed+`
  slow:
    schedule: "@every 1s"
    sql: SELECT pg_sleep(2)::text AS slept
`)
			cmd := exec.Command(os.Args[0], "--jobs", jobsFile)
			cmd.Env = append(os.Environ(), testenv.Environ(t, testenv.NewDatabase(t), testenv.RunMainEnv,
				"SHUTDOWN_TIMEOUT="+tc.timeout)...)
			lines := testenv.StartLogged(t, cmd)
			t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck // already gone when the test passes
			var log strings.Builder
			for lines.Scan() {
				log.WriteString(lines.Text() + "\n")
				if strings.Contains(lines.Text(), `"msg":"job_started"`) {
					break
				}
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			for lines.Scan() {
				log.WriteString(lines.Text() + "\n")
			}
			if err := cmd.Wait(); err != nil || !strings.Contains(log.String(), tc.want) || !strings.Contains(log.String(), "warmer_stopped") {
				t.Errorf("after SIGTERM: %v; want exit 0 after %s; log:\n%s", err, tc.want, log.String())
			}
		})
	}
}

// TestDaemonWarms runs the daemon in process until its first runs land, then stops it.
func TestDaemonWarms(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	env := testenv.Environ(t, dbURL)
	ns := strings.TrimPrefix(env[2], "CACHE_NAMESPACE=")
	jobsFile := testenv.JobsFile(t, "jobs:\n  orders_total: {schedule: '@every 1s'}\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- cli.Warmer(ctx, []string{"--jobs", jobsFile}, env, &bytes.Buffer{}, &bytes.Buffer{}, run)
	}()

	store := testenv.NamespaceStore(t, ns)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if e, err := store.Get(context.Background(), "orders_total", ""); err == nil && strings.Contains(string(e.Body), `"count":`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon wrote no orders_total")
		}
		time.Sleep(50 * time.Millisecond) // polling Redis, with a deadline
	}
	cancel()
	if status := <-done; status != 0 {
		t.Errorf("daemon exit status %d after its context ended, want 0", status)
	}
}
