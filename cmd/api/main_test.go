package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/invalidate"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// TestMain lets the test binary run as the api itself, for the tests that signal a process.
func TestMain(m *testing.M) {
	if os.Getenv("API_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func environ(t *testing.T, extra ...string) []string {
	t.Helper()
	return append([]string{"DATABASE_URL=" + testenv.NewDatabase(t), "REDIS_URL=" + testenv.Get(t).RedisURL,
		"CACHE_NAMESPACE=" + testenv.Namespace(t), "LISTEN_ADDR=127.0.0.1:0"}, extra...)
}

func TestConfigurationErrors(t *testing.T) {
	t.Parallel()
	badJobs := filepath.Join(t.TempDir(), "jobs.yaml")
	if err := os.WriteFile(badJobs, []byte("jobs:\n  orders_total:\n    ttl: never\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		stderr  string
	}{
		{"no database url", nil, []string{"REDIS_URL=redis://127.0.0.1:1"}, "DATABASE_URL"},
		{"no redis url", nil, []string{"DATABASE_URL=postgres://x@127.0.0.1/x"}, "REDIS_URL"},
		{"bad cache header", nil, environ(t, "CACHE_HEADER=X Cache"), "CACHE_HEADER"},
		{"bad redis timeout", nil, environ(t, "REDIS_TIMEOUT=soon"), "REDIS_TIMEOUT"},
		{"bad max queries", nil, environ(t, "MAX_QUERIES=0"), "MAX_QUERIES"},
		{"bad local cache size", nil, environ(t, "LOCAL_CACHE_SIZE=64 megs"), "LOCAL_CACHE_SIZE"},
		{"bad local cache ttl", nil, environ(t, "LOCAL_CACHE_TTL=0s"), "LOCAL_CACHE_TTL"},
		{"bad listen address", nil, environ(t, "LISTEN_ADDR=nowhere:port"), "LISTEN_ADDR"},
		{"bad jobs file", []string{"--jobs", badJobs}, environ(t), "orders_total: ttl"},
		{"bad log format", nil, environ(t, "LOG_FORMAT=xml"), "LOG_FORMAT"},
		{"stray argument", []string{"serve"}, environ(t), "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if status := cli(context.Background(), tc.args, tc.environ, &stderr); status != 2 || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("status %d, want 2 mentioning %q; stderr:\n%s", status, tc.stderr, stderr.String())
			}
		})
	}
}

// TestSIGTERMFinishesRequestsInFlight starts the api as a process, sends a request that takes
// a second (a job whose query sleeps), signals the process while the request runs, and expects
// the request to be answered and the process to exit 0.
func TestSIGTERMFinishesRequestsInFlight(t *testing.T) {
	t.Parallel()
	jobsFile := filepath.Join(t.TempDir(), "jobs.yaml")
	if err := os.WriteFile(jobsFile, []byte("jobs:\n  slow:\n    schedule: '@hourly'\n    ttl: 2h\n    sql: SELECT pg_sleep(1)::text AS slept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := environ(t, "API_TEST_RUN_MAIN=1")
	cmd := exec.Command(os.Args[0], "--jobs", jobsFile)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck // already gone when the test passes
	lines := bufio.NewScanner(stderr)
	var addr string
	for addr == "" && lines.Scan() {
		if m := regexp.MustCompile(`"msg":"api_started","addr":"([^"]+)"`).FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatal("the api did not start")
	}
	go io.Copy(io.Discard, stderr) //nolint:errcheck // draining the log

	answered := make(chan error, 1)
	go func() {
		res, err := http.Get("http://" + addr + "/v1/results/slow")
		if err == nil {
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK || res.Header.Get("X-Cache") != "MISS" {
				err = &statusError{res.Status}
			}
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

type statusError struct{ status string }

func (e *statusError) Error() string { return "answered " + e.status }

// waitForQuery waits until a statement containing text runs in the database at dbURL.
func waitForQuery(t *testing.T, dbURL, text string) {
	t.Helper()
	ctx := context.Background()
	db, err := query.Open(ctx, dbURL, query.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	active, err := query.UserSQL(`SELECT count(*) AS n FROM pg_stat_activity
		WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
		  AND query LIKE '%`+text+`%'`, "")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		row, err := db.Lookup(ctx, active, query.Params{}, "")
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
	env := environ(t, "API_TEST_RUN_MAIN=1", "API_TOKEN=t0ken")
	dbURL := strings.TrimPrefix(env[0], "DATABASE_URL=")
	ns := strings.TrimPrefix(env[2], "CACHE_NAMESPACE=")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	store := startWarmerParts(t, ctx, dbURL, ns)

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) //nolint:errcheck // killed already
	lines := bufio.NewScanner(stderr)
	var addr string
	for addr == "" && lines.Scan() {
		if m := regexp.MustCompile(`"msg":"api_started","addr":"([^"]+)"`).FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
		}
	}
	go io.Copy(io.Discard, stderr) //nolint:errcheck // draining the log
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/orders",
		strings.NewReader(`{"orderdate":"2026-11-21","customerid":3137,"netamount":5,"tax":0}`))
	req.Header.Set("Authorization", "Bearer t0ken")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %s", res.Status)
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
	db, err := query.Open(ctx, dbURL, query.Options{MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := cache.NewKeys(ns)
	store, err := cache.Open(testenv.Get(t).RedisURL, keys, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := jobs.Load("", jobs.Defaults{TTL: time.Hour, Grace: time.Hour, NegativeTTL: time.Minute, Timeout: time.Minute,
		Location: time.UTC}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	arch := baseservice.NewArchetype(slog.New(slog.DiscardHandler))
	relay := invalidate.NewRelay(arch, db, store, list)
	refresher := invalidate.NewRefresher(arch, db, store, list, ns, prometheus.NewRegistry())
	var running sync.WaitGroup
	running.Go(func() { relay.Run(ctx) })
	running.Go(func() { refresher.Run(ctx) })
	t.Cleanup(func() {
		running.Wait()
		store.Close()
		db.Close()
	})
	return store
}

// ordersOf is what orders_by_customer should hold for customer, by SQL.
func ordersOf(t *testing.T, dbURL string, customer int) string {
	t.Helper()
	db, err := query.Open(context.Background(), dbURL, query.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	row, err := db.Lookup(context.Background(), query.OrdersByCustomerAggregate, query.Params{}, strconv.Itoa(customer))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(row.Value)
	return string(b)
}
