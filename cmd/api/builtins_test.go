package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

// TestBuiltinsOff: on a database without dellstore2's tables (the metering schema), the api
// starts with the built-in jobs off and says so; their routes and the order endpoints answer
// 404 with a JSON error saying the job is not configured, and the jobs of the jobs file are
// served. With builtins: true it refuses to start (2), naming the missing table.
func TestBuiltinsOff(t *testing.T) {
	t.Parallel()
	const token = "a-token-of-the-tests-0123456789"
	dbURL := testenv.NewMeteringDatabase(t, 50, 500)
	db := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 2})
	if err := db.Schema().Migrate(t.Context(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	env := testenv.Environ(t, dbURL, "LISTEN_ADDR=127.0.0.1:0", "API_TOKEN="+token,
		"JOBS_FILE="+testenv.JobsFile(t, testenv.MeteringJobs))
	addr, _, log := startAPIWithLog(t, env)
	if !strings.Contains(log.String(), `"msg":"builtins","on":false,"reason":"the database has no table orders"`) {
		t.Errorf("the log does not say the built-in jobs are off:\n%s", log.String())
	}
	for _, r := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/orders/count", ""},
		{http.MethodGet, "/v1/orders/count?customerid=7", ""},
		{http.MethodGet, "/count", ""},
		{http.MethodGet, "/v1/customers/7/credit", ""},
		{http.MethodGet, "/v1/credit", ""},
		{http.MethodGet, "/v1/orders/1", ""},
		{http.MethodPost, "/v1/orders", `{"orderdate":"2026-11-21","customerid":7,"netamount":5,"tax":0}`},
		{http.MethodPost, "/add/", `{"orderdate":"2026-11-21","customerid":7,"netamount":5,"tax":0}`},
	} {
		res := testenv.Fetch(t, nil, testenv.NewRequest(t, r.method, "http://"+addr+r.path, token, r.body))
		var body struct{ Error string }
		if err := json.Unmarshal([]byte(res.Body), &body); res.Status != http.StatusNotFound || err != nil ||
			!strings.Contains(body.Error, "is not configured") {
			t.Errorf("%s %s: %d %s, want 404 and a JSON error saying it is not configured", r.method, r.path, res.Status, res.Body)
		}
	}
	if res := testenv.HTTPGet(t, "http://"+addr+"/v1/results/usage_by_account/7"); res.Status != http.StatusOK ||
		!strings.Contains(res.Body, `"account_id":7`) {
		t.Errorf("a job of the jobs file: %d %s, want 200 and account 7's usage", res.Status, res.Body)
	}

	on := testenv.JobsFile(t, "builtins: true\n")
	status, log2 := runUntilStarted(t, testenv.Environ(t, dbURL, "LISTEN_ADDR=127.0.0.1:0", "JOBS_FILE="+on))
	if status != 2 || !strings.Contains(log2, "builtins: true, and the database has no table orders") {
		t.Errorf("builtins: true without dellstore2: status %d, want 2 naming orders:\n%s", status, log2)
	}
}
