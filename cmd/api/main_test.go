package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/testenv"
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
			if res.StatusCode != 200 || res.Header.Get("X-Cache") != "MISS" {
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
