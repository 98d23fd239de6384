package invalidate

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

// whereJobs say where their values were computed (on the replica or the primary) and what was
// seen there; whole runs come every second, on the replica, a second behind.
const whereJobs = `
jobs:
  where_total:
    sql: SELECT pg_is_in_recovery() AS on_replica, count(*) AS orders FROM orders
    schedule: "@every 1s"
  where_by_customer:
    sql: SELECT customerid, pg_is_in_recovery() AS on_replica, count(*) AS orders FROM orders GROUP BY customerid
    key: "{customerid}"
    schedule: "@every 1s"
`

type seen struct {
	OnReplica bool  `json:"on_replica"`
	Orders    int64 `json:"orders"`
}

func (s *system) seen(path string, header http.Header) (seen, string) {
	s.t.Helper()
	req := testenv.NewRequest(s.t, http.MethodGet, s.api.URL+path, "", "")
	for k, v := range header {
		req.Header[k] = v
	}
	res := testenv.Fetch(s.t, http.DefaultClient, req)
	var v seen
	if err := json.Unmarshal([]byte(res.Body), &v); err != nil || res.Status != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", path, res.Status, res.Body)
	}
	return v, res.Header.Get("X-Cache")
}

// TestLaggingReplica: with every component reading a replica that applies commits a second late,
// the runs read the replica alone; after a write, the values it changes show within the lag (when
// the replica replays the write) and a second, read from the replica, and never go back to the
// old ones, though runs on the lagging replica keep coming every second.
func TestLaggingReplica(t *testing.T) {
	t.Parallel()
	s := newSystem(t, systemOptions{relays: 1, refreshers: 1, scheduler: true, jobs: whereJobs,
		replicaWait: 3 * time.Second})
	paths := []string{"/v1/results/where_total", "/v1/results/where_by_customer/7"}
	before := map[string]int64{}
	for _, p := range paths {
		v, _ := s.seen(p, nil)
		if !v.OnReplica {
			t.Fatalf("%s was computed on the primary, want the replica: %+v", p, v)
		}
		before[p] = v.Orders
	}
	_, position := s.postAt(7)
	at, err := query.ParsePosition(position)
	if err != nil {
		t.Fatal(err)
	}
	// The lag is the replica's: when it replays the write, which its apply delay (a second) and
	// the machine's load decide.
	replayed := make(chan time.Time, 1)
	go func() {
		for {
			if p, err := testenv.ReplayPosition(context.Background(), s.replica); err == nil && p >= at {
				replayed <- time.Now()
				return
			}
			time.Sleep(5 * time.Millisecond) // polling the replica, bounded by the test's deadline below
		}
	}()
	written := time.Now()
	for _, p := range paths {
		for {
			v, state := s.seen(p, nil)
			if v.Orders == before[p]+1 {
				if !v.OnReplica || state != "HIT" {
					t.Errorf("%s serves the write as %s, computed %+v; want a HIT computed on the replica", p, state, v)
				}
				break
			}
			if time.Since(written) > 30*time.Second {
				t.Fatalf("%s still serves %+v %s after the write", p, v, time.Since(written))
			}
			time.Sleep(5 * time.Millisecond) // polling the api, with a deadline
		}
	}
	shown := time.Now()
	lag := (<-replayed).Sub(written)
	late := shown.Sub(written) - lag
	t.Logf("the write showed %s after the replica replayed it", late.Round(time.Millisecond))
	if late > time.Second {
		t.Errorf("the write showed %s after the replica replayed it (%s after the write), want within a second",
			late.Round(time.Millisecond), lag.Round(time.Millisecond))
	}
	// Runs on the replica, a second behind, keep writing: none takes a value back.
	for until := time.Now().Add(3 * time.Second); time.Now().Before(until); {
		for _, p := range paths {
			if v, _ := s.seen(p, nil); v.Orders != before[p]+1 || !v.OnReplica {
				t.Fatalf("%s went back to %+v after serving %d orders", p, v, before[p]+1)
			}
		}
		time.Sleep(20 * time.Millisecond) // sampling for the length of three runs
	}
}

// TestReadYourWrites: a read sending the Warmcache-Position of a write gets a value that holds
// the write, at once, 100 times out of 100: through the in-process tier and Redis holding the
// value from before the write, with the warmer's refresh in flight. With a replica a second
// behind, such reads wait for the replica to replay the write (ten writes, a second each) and
// are computed there.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	for _, replica := range []bool{false, true} {
		t.Run("replica="+strconv.FormatBool(replica), func(t *testing.T) {
			t.Parallel()
			opts := systemOptions{relays: 1, refreshers: 1, jobs: whereJobs, localTTL: time.Minute}
			writes := 100
			if replica {
				opts.replicaWait, writes = 3*time.Second, 10
			}
			s := newSystem(t, opts)
			const customer = 11
			total, _ := s.seen("/v1/results/where_total", nil)
			mine, _ := s.seen("/v1/results/where_by_customer/"+strconv.Itoa(customer), nil)
			for i := range writes {
				body := `{"orderdate":"2026-11-21","customerid":` + strconv.Itoa(customer) + `,"netamount":1.00,"tax":0.10}`
				res := testenv.Post(t, s.api.URL+"/v1/orders", token, body)
				position := res.Header.Get("Warmcache-Position")
				if res.Status != http.StatusCreated || position == "" {
					t.Fatalf("POST /v1/orders: %d, Warmcache-Position %q", res.Status, position)
				}
				h := http.Header{"Warmcache-Position": {position}}
				for path, want := range map[string]int64{
					"/v1/results/where_total":                                 total.Orders + int64(i) + 1,
					"/v1/results/where_by_customer/" + strconv.Itoa(customer): mine.Orders + int64(i) + 1,
				} {
					v, _ := s.seen(path, h)
					if v.Orders < want {
						t.Fatalf("write %d at %s: %s read with its position serves %d orders, want %d", i+1, position, path, v.Orders, want)
					}
					if v.OnReplica != replica {
						t.Errorf("write %d: %s read with its position was computed with on_replica %t", i+1, path, v.OnReplica)
					}
				}
			}
			// A position that is not one is refused.
			for _, bad := range []string{"not/a/position", "zz"} {
				req := testenv.NewRequest(t, http.MethodGet, s.api.URL+"/v1/results/where_total", "", "")
				req.Header.Set("Warmcache-Position", bad)
				if res := testenv.Fetch(t, http.DefaultClient, req); res.Status != http.StatusBadRequest {
					t.Errorf("Warmcache-Position %q: %d %s, want 400", bad, res.Status, res.Body)
				}
			}
		})
	}
}
