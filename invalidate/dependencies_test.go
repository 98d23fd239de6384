package invalidate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/warm"
)

// readmeJobs are the jobs of the README's jobs file example that read orders and customers: one
// keyed and one single-value job whose dependencies PostgreSQL finds, an incremental one, and one
// that depends on nothing (depends_on: []), refreshed on its schedule.
const readmeJobs = `
jobs:
  orders_by_date:
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT orderdate, count(*) AS orders, sum(totalamount) AS revenue FROM orders GROUP BY orderdate
    key: "{orderdate}"
  high_income_customers:
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT count(*) AS customers, count(*) FILTER (WHERE income >= 80000) AS high_income FROM customers
  revenue_by_date:
    schedule: "@hourly"
    ttl: 2h
    incremental:
      table: orders
      group_by: orderdate
      count: orders
      sum: {revenue: totalamount}
  orders_on_schedule:
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT count(*) AS orders FROM orders
    depends_on: []
`

// TestUserJobsFollowTheirDependencies: a write by psql reaches the users' jobs that read the
// table, within a second and as HITs; a job whose depends_on is empty keeps its value until its
// schedule.
func TestUserJobsFollowTheirDependencies(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 1, refreshers: 1, jobs: readmeJobs})
	before, _ := s.get("/v1/results/orders_on_schedule")
	s.exec("INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount) VALUES ('2004-03-07', 5, 10, 1, 11)")
	s.exec("UPDATE customers SET income = 95000 WHERE customerid = 6")
	for _, k := range []struct{ path, job, key string }{
		{"/v1/results/orders_by_date/2004-03-07", "orders_by_date", "2004-03-07"},
		{"/v1/results/revenue_by_date/2004-03-07", "revenue_by_date", "2004-03-07"},
		{"/v1/results/high_income_customers", "high_income_customers", ""},
	} {
		s.waitServes(k.path, s.full(k.job)[k.key], time.Second)
	}
	// The batch that refreshed the others is done: a job depending on nothing was left alone.
	if after, state := s.get("/v1/results/orders_on_schedule"); after != before || state != "HIT" {
		t.Errorf("a job with depends_on: [] changed on a write: %s (%s), was %s", after, state, before)
	}
}

// TestRandomWritesLeaveEveryKeyRight makes 10,000 random writes from eight writers, some through
// the api and some straight in SQL: orders inserted, re-priced, moved to other customers and
// other days, deleted; customers added, deleted, their cards and incomes changed. Once they have
// reached the cache, every key of every job equals a fresh full computation, and the figures
// maintained for the incremental jobs did not drift.
func TestRandomWritesLeaveEveryKeyRight(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 2, refreshers: 2, jobs: readmeJobs})
	w := testenv.NewWriter(t, s.dbURL, 8)
	maxOrder := w.Int("SELECT max(orderid) FROM orders")
	var mu sync.Mutex
	var deleted []int // customers deleted: their keys must say so
	var g errgroup.Group
	for writer := range 8 {
		g.Go(func() error {
			r := rand.New(rand.NewPCG(uint64(writer), 10))
			for i := range 1250 {
				// Customers 19001 and above may be deleted; orders go to the others.
				customer, order := 1+r.IntN(19000), 1+r.Int64N(maxOrder)
				amount := fmt.Sprintf("%d.%02d", r.IntN(500), r.IntN(100))
				var err error
				switch op := r.IntN(100); {
				case op < 30:
					err = s.postOrder(customer, amount)
				case op < 45:
					var owner any = customer
					if op < 33 {
						owner = nil // an order without a customer still counts in the total
					}
					_, err = w.Exec(`INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount)
						VALUES (date '2004-01-01' + $1::int, $2, $3, 0, $3)`, r.IntN(366), owner, amount)
				case op < 55:
					_, err = w.Exec("UPDATE orders SET netamount = $2, totalamount = $2 + tax WHERE orderid = $1", order, amount)
				case op < 58:
					_, err = w.Exec("UPDATE orders SET netamount = netamount + 1, totalamount = totalamount + 1 WHERE customerid = $1", customer)
				case op < 68:
					_, err = w.Exec("UPDATE orders SET customerid = $2 WHERE orderid = $1", order, customer)
				case op < 73:
					_, err = w.Exec("UPDATE orders SET orderdate = orderdate + $2::int WHERE orderid = $1", order, r.IntN(61)-30)
				case op < 83:
					var income any = 20000 * (1 + r.IntN(5))
					if op < 75 {
						income = nil
					}
					_, err = w.Exec(`UPDATE customers SET creditcardtype = $2, income = $3,
						creditcardexpiration = $4 WHERE customerid = $1`,
						customer, 1+r.IntN(5), income, fmt.Sprintf("%d/%02d", 2005+r.IntN(6), 1+r.IntN(12)))
				case op < 93:
					_, err = w.Exec("DELETE FROM orders WHERE orderid = $1", order)
				case op < 98:
					_, err = w.Exec(`INSERT INTO customers (firstname, lastname, address1, city, country, region,
						creditcardtype, creditcard, creditcardexpiration, username, password, income)
						VALUES ('A', 'B', 'C', 'D', 'E', 1, $1, '4111111111111111', '2009/05', $2, 'pw', $3)`,
						1+r.IntN(5), fmt.Sprintf("writer%d_%d", writer, i), 20000*(1+r.IntN(5)))
				default:
					gone := 19001 + r.IntN(1000)
					if _, err = w.Exec("DELETE FROM customers WHERE customerid = $1", gone); err == nil {
						mu.Lock()
						deleted = append(deleted, gone)
						mu.Unlock()
					}
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	started := time.Now()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("10,000 writes in %s", time.Since(started).Round(time.Millisecond))
	s.outboxEmpty(30 * time.Second)
	s.awaitEveryKeyRight(deleted, 60*time.Second)

	// The scheduled runs check the maintained figures against the full computation.
	reg := prometheus.NewRegistry()
	runner := warm.NewRunner(baseservice.NewArchetype(discard()), s.db, s.db, s.store, warm.NewMetrics(reg))
	for _, job := range s.jobs {
		if !job.Aggregate.Incremental() {
			continue
		}
		if _, err := runner.Run(context.Background(), job, warm.TriggerOnce, nil); err != nil {
			t.Fatal(err)
		}
		if drift, ok := gauge(t, reg, "warmcache_incremental_drift", job.Name); !ok || drift != 0 {
			t.Errorf("%s: drift %v (reported: %v) after 10,000 writes, want 0", job.Name, drift, ok)
		}
	}
}

// gauge reads the value of a gauge of reg labelled with job.
func gauge(t *testing.T, reg *prometheus.Registry, name, job string) (float64, bool) {
	t.Helper()
	return sample(t, reg, name, "warmcache_job", job)
}

// sample reads the value of a counter or gauge of reg, with the label and value given if any.
func sample(t *testing.T, reg *prometheus.Registry, name string, label ...string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labelled := len(label) == 0
			for _, l := range m.GetLabel() {
				labelled = labelled || l.GetName() == label[0] && l.GetValue() == label[1]
			}
			if labelled {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// awaitEveryKeyRight waits until every key of every job that depends on tables (all but those
// refreshed on their schedules only) equals a fresh full computation in Redis:
// the full computation's keys hold its values, keys it no longer has (and deleted customers)
// hold negative entries, or nothing.
func (s *system) awaitEveryKeyRight(deleted []int, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		wrong := s.wrongKeys(deleted)
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d keys still wrong %s after the writes, such as %s", len(wrong), within, wrong[0])
		}
		time.Sleep(200 * time.Millisecond) // polling Redis, with a deadline
	}
}

func (s *system) wrongKeys(deleted []int) []string {
	var wrong []string
	for _, job := range s.jobs {
		if len(job.DependsOn) == 0 {
			continue // refreshed on its schedule only
		}
		full := s.full(job.Name)
		keys := []string{""}
		if job.Keyed() {
			keys = testenv.Keys(s.t, s.ns, job.Name)
			for k := range full {
				keys = append(keys, k)
			}
			if job.Name == jobs.OrdersByCustomer || job.Name == jobs.CreditByCustomer {
				for _, c := range deleted {
					keys = append(keys, fmt.Sprint(c))
				}
			}
			slices.Sort(keys)
			keys = slices.Compact(keys)
		}
		for _, key := range keys {
			e, err := s.store.Get(context.Background(), job.Name, key)
			want, exists := full[key]
			switch {
			case !exists && errors.Is(err, cache.ErrMiss):
				// A negative entry lapses after CACHE_NEGATIVE_TTL twice: gone is as good.
			case err != nil:
				wrong = append(wrong, fmt.Sprintf("%s %q: %v", job.Name, key, err))
			case !exists && !e.NotFound:
				wrong = append(wrong, fmt.Sprintf("%s %q holds %s, but has no value", job.Name, key, e.Body))
			case exists && (e.NotFound || string(e.Body) != want):
				wrong = append(wrong, fmt.Sprintf("%s %q holds %s, want %s", job.Name, key, e.Body, want))
			}
		}
	}
	return wrong
}

// full computes every value of a job in full now, by key, as the bodies the api serves.
func (s *system) full(name string) map[string]string {
	s.t.Helper()
	i := slices.IndexFunc(s.jobs, func(j jobs.Job) bool { return j.Name == name })
	job := s.jobs[i]
	values := map[string]string{}
	params := query.Params{Today: query.DateOf(time.Now().UTC())}
	_, err := s.db.Stream(context.Background(), job.Aggregate, params, func(r query.Row) error {
		if _, single := values[""]; single && !job.Keyed() {
			return nil
		}
		b, err := json.Marshal(r.Value)
		values[r.Key] = string(b)
		return err
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return values
}

// waitServes waits until the api serves want at path, as a HIT.
func (s *system) waitServes(path, want string, within time.Duration) {
	s.t.Helper()
	started := time.Now()
	for {
		got, state := s.get(path)
		if got == want && state == "HIT" {
			return
		}
		if time.Since(started) > within {
			s.t.Fatalf("%s serves %s (%s) %s after the write; want %s", path, got, state, within, want)
		}
		time.Sleep(2 * time.Millisecond) // polling the api, with a deadline
	}
}

// postOrder creates an order through the api; it may be called from any goroutine.
func (s *system) postOrder(customer int, amount string) error {
	body := fmt.Sprintf(`{"orderdate":"2004-06-%02d","customerid":%d,"netamount":%s,"tax":0}`, 1+customer%28, customer, amount)
	res, err := testenv.TryPost(s.api.URL+"/v1/orders", token, body)
	if err == nil && res.Status != http.StatusCreated {
		err = fmt.Errorf("POST /v1/orders %s: %d %s", strings.TrimSpace(body), res.Status, res.Body)
	}
	return err
}
