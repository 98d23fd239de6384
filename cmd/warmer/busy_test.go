package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

// TestBusyWarmerStillShowsWrites: a warmer with more slow jobs running at once than its pool has
// connections, and sixteen requests to run one of them, still runs every job and shows a write
// within the second SPEC promises. (Each run once held a pooled connection for its lock while its
// query waited for another: such a warmer deadlocked, and a write took 45 s to show.)
func TestBusyWarmerStillShowsWrites(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	env := testenv.Environ(t, dbURL)
	ns := strings.TrimPrefix(env[2], "CACHE_NAMESPACE=")
	const slowJobs = 10 // the pools have 8 connections
	var file strings.Builder
	file.WriteString("jobs:\n")
	for i := range slowJobs {
		fmt.Fprintf(&file, "  slow%d:\n    schedule: '@every 2s'\n    sql: SELECT pg_sleep(0.5)::text AS slept\n", i)
	}
	logs := newLogLines()
	ctx, cancel := context.WithCancel(context.Background())
	jobsFile := testenv.JobsFile(t, file.String())
	done := make(chan int)
	go func() {
		done <- cli.Warmer(ctx, []string{"--jobs", jobsFile}, env, io.Discard, logs, run)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	store := testenv.NamespaceStore(t, ns)
	db := testenv.OpenDB(t, dbURL, query.Options{MaxConns: 16})

	logs.await(t, event{msg: "job_finished", attrs: map[string]string{"job": "orders_by_customer"}}, 1, 30*time.Second)
	var requests sync.WaitGroup
	for range 16 {
		requests.Go(func() {
			if err := db.Runs().RequestRun(context.Background(), ns, "slow0"); err != nil {
				t.Error(err)
			}
		})
	}
	requests.Wait()

	w := testenv.NewWriter(t, dbURL, 1)
	want := `"count":` + strconv.FormatInt(w.Int("SELECT count(*) FROM orders WHERE customerid = 42")+1, 10)
	w.MustExec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2026-01-01', 42, 1, 0, 1)")
	committed := time.Now()
	for {
		e, err := store.Get(context.Background(), "orders_by_customer", "42")
		if err == nil && strings.Contains(string(e.Body), want) {
			break
		}
		if time.Since(committed) > time.Second {
			t.Fatalf("the customer's count is %s a second after the write, want %s", e.Body, want)
		}
		time.Sleep(5 * time.Millisecond) // polling Redis, with a deadline
	}
	t.Logf("the write showed %s after its commit", time.Since(committed).Round(time.Millisecond))
	for i := range slowJobs {
		logs.await(t, event{msg: "job_finished", attrs: map[string]string{"job": "slow" + strconv.Itoa(i)}}, 1, 30*time.Second)
	}
}
