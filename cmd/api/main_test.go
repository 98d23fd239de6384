package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/invalidate"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

// TestMain lets the test binary run as the api itself, for the tests that signal a process.
func TestMain(m *testing.M) { testenv.RunMain(m, main) }

// environ is the api's environment, on a database of the test's own, listening on a free port.
func environ(t *testing.T, extra ...string) []string {
	t.Helper()
	return testenv.Environ(t, testenv.NewDatabase(t), append([]string{"LISTEN_ADDR=127.0.0.1:0"}, extra...)...)
}

// TestConfigurationErrors gives each setting a bad value and expects exit status 2 and the
// exact message a user reads. PostgreSQL and Redis are listeners that count connections: a
// configuration is checked whole before anything connects anywhere.
func TestConfigurationErrors(t *testing.T) {
	t.Parallel()
	pg, redis := testenv.NewListener(t), testenv.NewListener(t)
	badTTL := testenv.JobsFile(t, "jobs:\n  orders_total:\n    ttl: never\n")
	badStep := testenv.JobsFile(t, "# every minute past 61\njobs:\n  orders_total:\n    schedule: '*/61 * * * *'\n")
	notABool := testenv.JobsFile(t, "jobs:\n  credit_by_customer:\n    enabled: nope\n")
	misspelt := testenv.JobsFile(t, "jobs:\n  orders_total:\n    schedul: '@hourly'\n")
	anInsert := testenv.JobsFile(t, "jobs:\n  mine:\n    schedule: '@hourly'\n    sql: |\n      INSERT INTO orders DEFAULT VALUES RETURNING orderid\n")
	servers := []string{"DATABASE_URL=postgres://warmcache@" + pg.Addr() + "/warmcache", "REDIS_URL=redis://" + redis.Addr() + "/0"}
	env := func(extra ...string) []string { return append(slices.Clone(servers), extra...) }
	const token = "set a random token of at least 16 characters, such as: head -c 32 /dev/urandom | base64"
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		stderr  string
	}{
		{"no database url", nil, []string{servers[1]}, "DATABASE_URL: is not set (alias PG_SERVICE_URI)"},
		{"no redis url", nil, []string{servers[0]}, "REDIS_URL: is not set (alias VALKEY_SERVICE_URI)"},
		{"unparsable redis url", nil, env("REDIS_URL=redis://:pw@" + redis.Addr() + "x:y/0"),
			"REDIS_URL: not a valid URL (a password with @, / or : must be percent-encoded)"},
		{"bad database url", nil, env("DATABASE_URL=postgres://warmcache@" + pg.Addr() + "/warmcache?connect_timeout=soon"),
			"DATABASE_URL: invalid connect_timeout: not a PostgreSQL URL (postgres://user@host:5432/db?sslmode=require) or key=value string"},
		{"redis database not a number", nil, env("REDIS_URL=redis://" + redis.Addr() + "/zero"), `REDIS_URL: redis: invalid database number: "zero"`},
		{"bad ttl", nil, env("CACHE_TTL=forever"), `CACHE_TTL: "forever" is not a duration: write 90s, 10m, 2h, 1d or 1d12h, or a number of seconds`},
		{"ttl alias", nil, env("CACHE_TIMEOUT_SECONDS=0"), "CACHE_TTL: 0s is shorter than one second"},
		{"bad time zone", nil, env("TIMEZONE=Mars/Olympus"), `TIMEZONE: "Mars/Olympus" is not a known time zone (want an IANA name such as Europe/Paris)`},
		{"bad namespace", nil, env("CACHE_NAMESPACE=a:b"), `CACHE_NAMESPACE: namespace "a:b" must be 1 to 64 letters, digits, '_', '.' or '-'`},
		{"bad cache header", nil, env("CACHE_HEADER=X Cache"), `CACHE_HEADER: "X Cache" is not a header name`},
		{"bad redis timeout", nil, env("REDIS_TIMEOUT=soon"), `REDIS_TIMEOUT: "soon" is not a duration: write 90s, 10m, 2h, 1d or 1d12h, or a number of seconds`},
		{"max queries not a number", nil, env("MAX_QUERIES=many"), `MAX_QUERIES: "many" is not a whole number`},
		{"max queries out of range", nil, env("MAX_QUERIES=0"), "MAX_QUERIES: 0 is not between 1 and 1000"},
		{"bad local cache size", nil, env("LOCAL_CACHE_SIZE=64 megs"), `LOCAL_CACHE_SIZE: "64 megs" is not a size (a number of bytes, or with KiB, MiB, GiB, kB, MB, GB)`},
		{"bad local cache ttl", nil, env("LOCAL_CACHE_TTL=0s"), "LOCAL_CACHE_TTL: 0s is not positive"},
		{"bad listen address", nil, env("LISTEN_ADDR=nowhere:port"), `LISTEN_ADDR: "nowhere:port" is not an address to listen on (host:port, :port)`},
		{"bad purge url", nil, env("PURGE_URLS=varnish:6081"), `PURGE_URLS: "varnish:6081" is not an http:// or https:// URL`},
		{"bad CORS origin", nil, env("CORS_ORIGINS=https://ok.example,example.com/path"),
			`CORS_ORIGINS: "example.com/path" is not an origin (https://app.example.com, https://*.example.com or *)`},
		{"bad log format", nil, env("LOG_FORMAT=xml"), `LOG_FORMAT: "xml" is not json or text`},
		{"bad log level", nil, env("LOG_LEVEL=loud"), `LOG_LEVEL: "loud" is not one of debug, info, warn, error`},
		{"placeholder token", nil, env("API_TOKEN=CHANGE-ME"), `API_TOKEN: looks like a placeholder ("changeme"): ` + token},
		{"long placeholder token", nil, env("API_TOKEN=please-change-me-before-deploying"), `API_TOKEN: looks like a placeholder ("changeme"): ` + token},
		{"short token", nil, env("API_TOKEN=t0ken"), "API_TOKEN: is too short or too simple (5 characters): " + token},
		{"simple token", nil, env("API_TOKEN=aaaaaaaaaaaaaaaaaaaaaaaa"), "API_TOKEN: is too short or too simple (24 characters): " + token},
		{"jobs file from the flag", []string{"--jobs", badTTL}, env(),
			"--jobs " + badTTL + `: line 3: job orders_total: ttl: "never" is not a duration (90s, 10m, 2h, 1d), a number of seconds, end_of_day or end_of_week`},
		{"jobs file from the environment", nil, env("JOBS_FILE=" + badTTL),
			"JOBS_FILE=" + badTTL + `: line 3: job orders_total: ttl: "never" is not a duration (90s, 10m, 2h, 1d), a number of seconds, end_of_day or end_of_week`},
		{"jobs file missing", []string{"--jobs", "/nonexistent/jobs.yaml"}, env(), "--jobs /nonexistent/jobs.yaml: cannot be read: no such file or directory"},
		{"cron step out of range", []string{"--jobs", badStep}, env(),
			"--jobs " + badStep + `: line 4: job orders_total: schedule: "*/61 * * * *": the minute field: the step of */61 is out of range (1 to 59 for 0-59) (fix: five fields ("*/5 * * * *"), six with seconds, or "@every 30s", "@hourly", "@daily")`},
		{"not a boolean", []string{"--jobs", notABool}, env(), "--jobs " + notABool + `: line 3: job credit_by_customer: enabled: "nope" is not true or false`},
		{"misspelt setting", []string{"--jobs", misspelt}, env(), "--jobs " + misspelt +
			": line 3: job orders_total: schedul: is not a setting (a job has description, schedule, sql, key, depends_on, incremental, ttl, grace, jitter, timeout, enabled) (fix: write schedule)"},
		{"a job that writes", []string{"--jobs", anInsert}, env(), "--jobs " + anInsert +
			": line 4: job mine: sql: must be a query (SELECT, WITH, VALUES or TABLE): a job only reads, and this statement starts with INSERT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := cli.API(context.Background(), tc.args, tc.environ, &stdout, &stderr, run)
			if want := "api: configuration: " + tc.stderr + "\n"; status != 2 || stderr.String() != want {
				t.Errorf("status %d, want 2, and stderr\n%s\nwant\n%s", status, stderr.String(), want)
			}
		})
	}
	if n := pg.Accepted() + redis.Accepted(); n != 0 {
		t.Errorf("%d connections were made to PostgreSQL or Redis with a bad configuration", n)
	}
}

// TestRedisDatabaseMissing names REDIS_URL when the server has no database of its number.
func TestRedisDatabaseMissing(t *testing.T) {
	t.Parallel()
	testenv.CheckNoSuchRedisDatabase(t, "api", testenv.Entry(cli.API, run), nil, environ(t))
}

// TestHelpAndVersion: --help exits 0 and lists every setting; --version prints the version; a
// stray argument exits 2.
func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	testenv.CheckHelpAndVersion(t, "api", testenv.Entry(cli.API, run), []string{"-jobs FILE", "DATABASE_URL", "alias PG_SERVICE_URI", "REDIS_URL", "API_TOKEN",
		"REDIS_TIMEOUT", "default 100ms", "LOCAL_CACHE_SIZE", "LOG_FORMAT", "TIMEZONE", "PURGE_URLS"})
	var stdout, unknown bytes.Buffer
	if status := cli.API(context.Background(), []string{"serve"}, nil, &stdout, &unknown, run); status != 2 ||
		unknown.String() != "api: unexpected argument \"serve\" (api --help lists the flags)\n" {
		t.Errorf("a stray argument: status %d, stderr %q", status, unknown.String())
	}
}

// TestSIGTERMFinishesRequestsInFlight starts the api as a process, sends a request that takes
// a second (a job whose query sleeps), signals the process while the request runs, and expects
// the request to be answered and the process to exit 0.
func TestSIGTERMFinishesRequestsInFlight(t *testing.T) {
	t.Parallel()
	env := environ(t)
	cmd, addr, _ := startProcess(t, env, "--jobs", testenv.JobsFile(t, "jobs:\n  slow:\n    schedule: '@hourly'\n    ttl: 2h\n    sql: SELECT pg_sleep(1)::text AS slept\n"))

	answered := make(chan error, 1)
	req := testenv.NewRequest(t, http.MethodGet, "http://"+addr+"/v1/results/slow", "", "")
	go func() {
		res, err := testenv.Do(nil, req)
		if err == nil && (res.Status != http.StatusOK || res.Header.Get("X-Cache") != "MISS") {
			err = &statusError{res.Status}
		}
		answered <- err
	}()
	// Wait until the request is in flight: the query shows in PostgreSQL's activity.
	waitForQuery(t, strings.TrimPrefix(env[0], "DATABASE_URL="), "pg_sleep")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Errorf("the request in flight at SIGTERM: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", err)
	}
}

// TestSIGTERMWhileValuesChange: the api exits on SIGTERM also while Redis tells it of changes
// all along, as a warmer's writes make them: it waits for its subscription to changes to end,
// which used to look at the stop only after a second without a change.
func TestSIGTERMWhileValuesChange(t *testing.T) {
	t.Parallel()
	env := environ(t)
	var ns string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "CACHE_NAMESPACE="); ok {
			ns = v
		}
	}
	cmd, _, admin := startProcess(t, env)
	rdb := testenv.Redis(t)
	changes := 0
	testenv.Every(t, 10*time.Millisecond, func(ctx context.Context) { // as a busy warmer changes values
		changes++
		rdb.Set(ctx, ns+":orders_total", changes, time.Minute) //nolint:errcheck // the api hears what arrives
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		res := testenv.HTTPGet(t, "http://"+admin+"/metrics")
		if strings.Contains(res.Body, "\nwarmcache_local_cache_watching 1\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the api's tier did not listen to changes within 10 s")
		}
		time.Sleep(20 * time.Millisecond) // polling the api's metrics, with a deadline
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the api did not exit within 10 s of SIGTERM, values changing all along")
	}
}

type statusError struct{ status int }

func (e *statusError) Error() string { return "answered " + strconv.Itoa(e.status) }

// apiStarted is the api's line once it listens, with its address and its admin listener's.
var apiStarted = regexp.MustCompile(`"msg":"api_started","addr":"([^"]+)","admin_addr":"([^"]+)"`)

// startProcess starts this test binary as the api, with env and args, and returns it, its
// address and its admin listener's once it started; it is killed when the test ends, if it
// still runs.
func startProcess(t *testing.T, env []string, args ...string) (cmd *exec.Cmd, addr, admin string) {
	t.Helper()
	cmd = exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), env...), testenv.RunMainEnv)
	lines := testenv.StartLogged(t, cmd)
	t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck // already gone when the test passes
	m := lines.Await(apiStarted)
	if m == nil {
		t.Fatal("the api did not start")
	}
	return cmd, m[1], m[2]
}

// waitForQuery waits until a statement containing text runs in the database at dbURL.
func waitForQuery(t *testing.T, dbURL, text string) {
	t.Helper()
	ctx := context.Background()
	db := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 1})
	active, err := query.UserSQL(`SELECT count(*) AS n FROM pg_stat_activity
		WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
		  AND query LIKE '%`+text+`%'`, "")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		row, err := db.Lookup(ctx, active, query.Params{}, "", query.Latest)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := json.Marshal(row.Value); string(b) != `{"n":0}` {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no statement with %q ran within 10 s", text)
		}
		time.Sleep(20 * time.Millisecond) // polling PostgreSQL's activity, with a deadline
	}
}

// TestKilledAfterCommit kills the api with SIGKILL the moment it answers a write: the change was
// recorded in the write's own transaction, so the warmer still delivers it.
func TestKilledAfterCommit(t *testing.T) {
	t.Parallel()
	env := environ(t, "API_TOKEN=t0ken-for-the-kill-test")
	dbURL := strings.TrimPrefix(env[0], "DATABASE_URL=")
	ns := strings.TrimPrefix(env[2], "CACHE_NAMESPACE=")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	store := startWarmerParts(t, ctx, dbURL, ns)

	cmd, addr, _ := startProcess(t, env)
	res := testenv.Post(t, "http://"+addr+"/v1/orders", "t0ken-for-the-kill-test", `{"orderdate":"2026-11-21","customerid":3137,"netamount":5,"tax":0}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("POST: %d", res.Status)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait() //nolint:errcheck // killed

	want := ordersOf(t, dbURL, 3137)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if e, err := store.Get(ctx, "orders_by_customer", "3137"); err == nil && string(e.Body) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the order of a killed api never reached the cache")
		}
		time.Sleep(10 * time.Millisecond) // polling Redis, with a deadline
	}
}

// startWarmerParts runs the warmer's relay and refresher in this process until ctx ends, and
// returns a store on the namespace.
func startWarmerParts(t *testing.T, ctx context.Context, dbURL, ns string) *cache.Store {
	t.Helper()
	db := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 8})
	store := testenv.NamespaceStore(t, ns)
	list, err := warm.Resolve(context.Background(), db, testenv.LoadJobs(t, "", time.Now())) // the built-in jobs
	if err != nil {
		t.Fatal(err)
	}
	arch := baseservice.NewArchetype(slog.New(slog.DiscardHandler))
	relay := invalidate.NewRelay(arch, db, store, list, prometheus.NewRegistry())
	refresher := invalidate.NewRefresher(arch, db, store, list, ns, prometheus.NewRegistry())
	var running sync.WaitGroup
	running.Go(func() { relay.Run(ctx) })
	running.Go(func() { refresher.Run(ctx) })
	t.Cleanup(running.Wait) // before the connections close
	return store
}

// ordersOf is what orders_by_customer should hold for customer, by SQL.
func ordersOf(t *testing.T, dbURL string, customer int) string {
	t.Helper()
	db := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 1})
	row, err := db.Lookup(context.Background(), query.OrdersByCustomerAggregate, query.Params{}, strconv.Itoa(customer), query.Latest)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(row.Value)
	return string(b)
}
