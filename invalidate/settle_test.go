package invalidate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/query"
)

// TestDriftCheckWaitsForChangesInFlight: the check of the built-in totals, with the warmers'
// pipeline stopped for longer than it used to give a change in flight, calls nothing drifted
// until the pipeline has booked the changes made before it looked, then confirms only the real
// drift (figures changed behind the warmers' back); stopped past the check's bound, the check is
// put off. With triggers and with logical decoding.
func TestDriftCheckWaitsForChangesInFlight(t *testing.T) {
	t.Parallel()
	for _, capture := range []string{query.CaptureTriggers, query.CaptureLogical} {
		t.Run(capture, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t, systemOptions{capture: capture})
			s.exec("UPDATE warmcache.warmcache_customer_totals SET orders = orders + 1 WHERE customerid = 11")
			s.exec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-02-02', 12, 1, 0, 1)")

			// A bound that ends before the pipeline runs puts the check off, mending nothing.
			logical := capture == query.CaptureLogical
			short := Settle(s.db, s.store, logical, time.Second)
			if d, err := s.db.Repair(context.Background(), query.OrdersTotalAggregate, query.Drift{Values: 2}, short); !errors.Is(err, query.ErrUnsettled) {
				t.Fatalf("with the pipeline stopped past the bound, the check gave %+v, %v; want it put off", d, err)
			}

			type result struct {
				drift query.Drift
				err   error
			}
			done := make(chan result, 1)
			go func() {
				settle := Settle(s.db, s.store, logical, 30*time.Second)
				d, err := s.db.Repair(context.Background(), query.OrdersTotalAggregate, query.Drift{Values: 2}, settle)
				done <- result{d, err}
			}()
			// Longer than the fixed two seconds the check gave changes in flight before.
			select {
			case r := <-done:
				t.Fatalf("the check ended with the change of customer 12 not yet booked: %+v, %v", r.drift, r.err)
			case <-time.After(3 * time.Second):
			}

			arch := baseservice.NewArchetype(discard())
			db, store := s.open(s.dbURL, testenvRedis(t))
			if capture == query.CaptureLogical {
				s.start(NewCapture(arch, db, store, s.jobs, prometheus.NewRegistry()).Run)
			} else {
				s.start(NewRelay(arch, db, store, s.jobs, prometheus.NewRegistry()).Run)
			}
			s.start(NewRefresher(arch, db, store, s.jobs, s.ns, prometheus.NewRegistry()).Run)
			select {
			case r := <-done:
				if r.err != nil || r.drift.Values != 1 || !strings.Contains(r.drift.Example, "customer 11:") {
					t.Errorf("the check confirmed %+v, %v; want customer 11 alone", r.drift, r.err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the check did not end within 20 s of the pipeline's start")
			}
		})
	}
}
