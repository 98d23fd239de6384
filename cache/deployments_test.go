package cache_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

// TestRedisDeployments runs the store's whole surface against a real Redis Cluster of three
// masters and a real Sentinel deployment, as REDIS_URL names them.
func TestRedisDeployments(t *testing.T) {
	t.Parallel()
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		nodes := testenv.StartRedisCluster(t)
		exercise(t, fmt.Sprintf("redis://%s?addr=%s&addr=%s", nodes[0], nodes[1], nodes[2]))
		exercise(t, fmt.Sprintf("redis://%s?cluster=true", nodes[1]))
	})
	t.Run("sentinel", func(t *testing.T) {
		t.Parallel()
		sentinel := testenv.StartRedisSentinel(t, "mymaster")
		exercise(t, "redis://"+sentinel+"/0?master_name=mymaster")
	})
}

func exercise(t *testing.T, url string) {
	t.Helper()
	keys, _ := cache.NewKeys(testenv.Namespace(t))
	s := testenv.OpenStore(t, url, keys, cache.Options{})
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("%s: ping: %v", url, err)
	}
	// Watch hears the changes: from Redis's tracking through Sentinel, from the namespace's
	// channel on a Cluster.
	if cluster := !strings.Contains(url, "master_name"); s.TellsEveryChange() == cluster {
		t.Errorf("%s: TellsEveryChange %v on a Cluster %v", url, s.TellsEveryChange(), cluster)
	}
	w := watch(t, s, 10_000)
	if _, err := s.Put(ctx, "watched", item(t, "1", 1, `{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-w.changes:
		if c.Job != "watched" || !slices.Equal(c.Keys, []string{"1"}) {
			t.Errorf("%s: Watch told %+v, want key 1 of watched", url, c)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s: Watch told nothing of a write within 5 s", url)
	}
	// A bulk run over keys of many slots, then an older one, fenced off key by key.
	var batch []cache.Item
	for i := range 2500 {
		batch = append(batch, item(t, fmt.Sprint(i), 100, fmt.Sprintf(`{"n":%d}`, i)))
	}
	if n, err := s.PutRun(ctx, "orders_by_customer", batch); err != nil || n != 2500 {
		t.Fatalf("%s: bulk write: %d, %v", url, n, err)
	}
	// Fenced off whole (one server, Sentinel) or key by key (Cluster): nothing older lands.
	var older []cache.Item
	for i := range 10 {
		older = append(older, item(t, fmt.Sprint(i), 50, `{"n":"older"}`))
	}
	if n, err := s.PutRun(ctx, "orders_by_customer", older); n != 0 || err != nil && !errors.Is(err, cache.ErrFenced) {
		t.Errorf("%s: an older run wrote %d keys (%v)", url, n, err)
	}
	if got := body(t, s, "orders_by_customer", "3"); got != `{"n":3}` {
		t.Errorf("%s: key 3 holds %s after an older run", url, got)
	}
	if n, err := s.Put(ctx, "orders_by_customer", item(t, "7", 200, `{"n":"newer"}`)); err != nil || n != 1 {
		t.Errorf("%s: single write: %d, %v", url, n, err)
	}
	if got := body(t, s, "orders_by_customer", "7"); got != `{"n":"newer"}` {
		t.Errorf("%s: key 7 holds %s", url, got)
	}
	if got := body(t, s, "orders_by_customer", "2499"); got != `{"n":2499}` {
		t.Errorf("%s: key 2499 holds %s", url, got)
	}
	// A listing walks every master: each key once, in pages of about 300.
	if listed := listAll(t, s, "orders_by_customer", 300); len(listed) != 2500 {
		t.Errorf("%s: listed %d keys, want 2500", url, len(listed))
	}
	// Run records over several slots.
	for _, job := range []string{"a", "b", "c"} {
		if err := s.RecordRun(ctx, cache.Run{Job: job, Started: time.Now(), Keys: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if runs, err := s.Runs(ctx, "a", "b", "c", "never"); err != nil || len(runs) != 3 {
		t.Errorf("%s: runs %v, %v", url, runs, err)
	}
	// Leases and events.
	if ok, err := s.Lease(ctx, "j", "k", "me", time.Minute); err != nil || !ok {
		t.Errorf("%s: lease: %v %v", url, ok, err)
	}
	if ok, _ := s.Lease(ctx, "j", "k", "other", time.Minute); ok {
		t.Errorf("%s: a taken lease was given again", url)
	}
	if err := s.Release(ctx, "j", "k", "me"); err != nil {
		t.Error(err)
	}
	published := []query.Change{
		{ID: 1, Table: "orders", Columns: map[string]string{"customerid": "42"}, Position: 0x16B374D848},
		{ID: 2, Table: "products", Columns: map[string]string{}, Position: 7},
	}
	if err := s.Publish(ctx, published); err != nil {
		t.Fatal(err)
	}
	events, err := s.Consume(ctx, "g", "c", 10, 0, time.Minute)
	got := make([]query.Change, len(events))
	for i, e := range events {
		got[i] = e.Change
	}
	if err != nil || !reflect.DeepEqual(got, published) {
		t.Fatalf("%s: events %+v, %v; want %+v", url, got, err, published)
	}
	if err := s.Ack(ctx, "g", events); err != nil {
		t.Error(err)
	}
	if end, err := s.StreamEnd(ctx); err != nil || end != events[0].StreamID {
		t.Errorf("%s: the stream ends at %q, %v; want %s", url, end, err, events[0].StreamID)
	} else if handled, err := s.Handled(ctx, "g", end); err != nil || !handled {
		t.Errorf("%s: handled: %v, %v", url, handled, err)
	}
	if _, err := s.Get(ctx, "orders_by_customer", "nope"); !errors.Is(err, cache.ErrMiss) {
		t.Errorf("%s: get of a missing key: %v", url, err)
	}
	// What recovers: the consumer that read nothing since (idle over 0) goes, the servers say
	// who they are, the data set is marked, values are dropped one by one and all at once.
	if removed, err := s.RemoveIdleConsumers(ctx, "g", 0); err != nil || !slices.Equal(removed, []string{"c"}) {
		t.Errorf("%s: consumers removed: %v, %v", url, removed, err)
	}
	info, err := s.Info(ctx)
	if err != nil || len(info.RunIDs) == 0 || info.Policy == "" {
		t.Fatalf("%s: info %+v, %v", url, info, err)
	}
	ids := strings.Join(info.RunIDs, ",")
	for _, want := range []string{"", ids} {
		if prev, err := s.MarkDataSet(ctx, ids); err != nil || prev != want {
			t.Errorf("%s: mark of the data set replaced %q (%v), want %q", url, prev, err, want)
		}
	}
	if err := s.Drop(ctx, "orders_by_customer", []string{"3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "orders_by_customer", "3"); !errors.Is(err, cache.ErrMiss) {
		t.Errorf("%s: a dropped key: %v", url, err)
	}
	if err := s.DropAll(ctx, "orders_by_customer"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"7", "2499"} {
		if _, err := s.Get(ctx, "orders_by_customer", key); !errors.Is(err, cache.ErrMiss) {
			t.Errorf("%s: key %s after every key was dropped: %v", url, key, err)
		}
	}
}
