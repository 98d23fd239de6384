package cache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/testenv"
	"github.com/warmcache/warmcache/query"
)

func newStore(t *testing.T) *cache.Store {
	t.Helper()
	return openStore(t, newKeys(t))
}

func newKeys(t *testing.T) cache.Keys {
	t.Helper()
	keys, err := cache.NewKeys(testenv.Namespace(t))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func openStore(t *testing.T, keys cache.Keys) *cache.Store {
	t.Helper()
	s := testenv.OpenStore(t, testenv.Get(t).RedisURL, keys, cache.Options{})
	return s
}

// item is body as key's entry, computed now from the snapshot of version, fresh for a minute and
// kept for an hour past that.
func item(t *testing.T, key string, version int64, body string) cache.Item {
	t.Helper()
	now := time.Now()
	e, err := cache.NewEntry(json.RawMessage(body), version, now, now.Add(time.Minute), now.Add(time.Hour+time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return cache.Item{Key: key, Entry: e}
}

func body(t *testing.T, s *cache.Store, job, key string) string {
	t.Helper()
	e, err := s.Get(context.Background(), job, key)
	if err != nil {
		t.Fatalf("get %s/%s: %v", job, key, err)
	}
	return string(e.Body)
}

// TestPutNeverReplacesNewerData is the guard against the stale-set race and against a warmer
// that lost its lock: an entry computed from an older snapshot never replaces a newer one.
func TestPutNeverReplacesNewerData(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	for _, step := range []struct {
		name    string
		version int64
		body    string
		written int
		want    string
	}{
		{"first write", 1000, `{"v":"first"}`, 1, `{"v":"first"}`},
		{"older snapshot is refused", 999, `{"v":"older"}`, 0, `{"v":"first"}`},
		{"same snapshot rewrites", 1000, `{"v":"again"}`, 1, `{"v":"again"}`},
		{"newer snapshot wins", 1001, `{"v":"newer"}`, 1, `{"v":"newer"}`},
		{"much older is refused", 1, `{"v":"ancient"}`, 0, `{"v":"newer"}`},
		{"versions compare as numbers, not text", 256, `{"v":"256"}`, 0, `{"v":"newer"}`},
	} {
		n, err := s.Put(ctx, "job", item(t, "k", step.version, step.body))
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := body(t, s, "job", "k"); n != step.written || got != step.want {
			t.Errorf("%s: wrote %d, key holds %s; want %d, %s", step.name, n, got, step.written, step.want)
		}
	}
}

func TestPutBatchAndTTL(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	s := openStore(t, keys)
	ctx := context.Background()
	var items []cache.Item
	for i := range 2500 {
		items = append(items, item(t, fmt.Sprint(i+1), 7, fmt.Sprintf(`{"customerid":%d}`, i+1)))
	}
	n, err := s.Put(ctx, "orders_by_customer", items...)
	if err != nil || n != len(items) {
		t.Fatalf("put %d items: wrote %d, %v", len(items), n, err)
	}
	if n, err := s.Put(ctx, "orders_total", item(t, "", 7, `{"count":1}`)); err != nil || n != 1 {
		t.Fatalf("put a single value: wrote %d, %v", n, err)
	}
	if got := body(t, s, "orders_by_customer", "2500"); got != `{"customerid":2500}` {
		t.Errorf("key 2500 holds %s", got)
	}
	if got := body(t, s, "orders_total", ""); got != `{"count":1}` {
		t.Errorf("single-value key holds %s", got)
	}
	if _, err := s.Get(ctx, "orders_by_customer", "2501"); !errors.Is(err, cache.ErrMiss) {
		t.Errorf("get of a key never written: %v, want ErrMiss", err)
	}
	// Redis keeps an entry for its freshness and grace: an hour and a minute, less jitter.
	ttl := pttl(t, keys.Value("orders_by_customer", "1"))
	if ttl <= time.Hour || ttl > time.Hour+time.Minute {
		t.Errorf("TTL %s: want freshness plus an hour of grace", ttl)
	}
}

func TestRuns(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	s := testenv.OpenStore(t, testenv.Get(t).RedisURL, keys, cache.Options{RunHistory: 3})
	ctx := context.Background()
	ok := cache.Run{Job: "a", Started: time.Unix(1000, 0).UTC(), Duration: 1500 * time.Millisecond, Keys: 20000,
		LastSuccess: time.Unix(1000, 0).UTC(), Trigger: "schedule"}
	if err := s.RecordRun(ctx, ok); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		failed := cache.Run{Job: "a", Started: time.Unix(int64(1060+60*i), 0).UTC(), Duration: time.Second,
			Error: "PostgreSQL was unavailable", Trigger: "retry"}
		if err := s.RecordRun(ctx, failed); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := s.Runs(ctx, "a", "never")
	if err != nil {
		t.Fatal(err)
	}
	got := runs["a"]
	if len(runs) != 1 || got.Error == "" || !got.Started.Equal(time.Unix(1240, 0)) ||
		!got.LastSuccess.Equal(ok.LastSuccess) || got.Duration != time.Second || got.Result() != "failure" {
		t.Errorf("runs = %+v: want the last failed run, keeping the last success", runs)
	}
	// The history keeps the last three runs, newest first, each with the last success.
	history, err := s.History(ctx, 0, "a", "never")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := history["never"]; ok || len(history) != 1 {
		t.Errorf("history of a job that never ran: %v", history["never"])
	}
	var starts []int64
	for _, r := range history["a"] {
		starts = append(starts, r.Started.Unix())
		if !r.LastSuccess.Equal(ok.LastSuccess) || r.Trigger != "retry" {
			t.Errorf("run %+v: want the first run's success and trigger retry", r)
		}
	}
	if !slices.Equal(starts, []int64{1240, 1180, 1120}) {
		t.Errorf("history starts %v, want [1240 1180 1120]", starts)
	}
	if n := testenv.Redis(t).LLen(ctx, keys.Runs("a")).Val(); n != 3 {
		t.Errorf("Redis holds %d runs of a, want 3", n)
	}
	if last, err := s.History(ctx, 2, "a"); err != nil || len(last["a"]) != 2 {
		t.Errorf("the last two runs: %v, %v", last, err)
	}
}

// listAll pages through a job's keys, count at a time, failing t on a key listed twice or a page
// much larger than asked.
func listAll(t *testing.T, s *cache.Store, job string, count int) map[string]bool {
	t.Helper()
	listed := map[string]bool{}
	for cursor, pages := "", 0; ; pages++ {
		keys, next, err := s.ListKeys(context.Background(), job, cursor, count)
		if err != nil {
			t.Fatalf("list %s from %q: %v", job, cursor, err)
		}
		if len(keys) > 2*count || pages > 1000 {
			t.Fatalf("page %d of %d keys, asked for %d", pages, len(keys), count)
		}
		for _, k := range keys {
			if listed[k] {
				t.Fatalf("key %s listed twice", k)
			}
			listed[k] = true
		}
		if next == "" {
			return listed
		}
		cursor = next
	}
}

func TestListKeys(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	var items []cache.Item
	for i := range 1000 {
		items = append(items, item(t, fmt.Sprint(i), 1, `{}`))
	}
	if _, err := s.Put(ctx, "job", items...); err != nil {
		t.Fatal(err)
	}
	// Neither a negative entry, nor another job's key, nor the single value of a job named alike
	// is one of the job's keys.
	now := time.Now()
	negative := cache.Item{Key: "unknown", Entry: cache.NewNegativeEntry("no such key", 1, now, now.Add(time.Minute), now.Add(time.Hour))}
	if _, err := s.Put(ctx, "job", negative); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "jobs", item(t, "1", 1, `{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "job", item(t, "", 1, `{}`)); err != nil {
		t.Fatal(err)
	}
	listed := listAll(t, s, "job", 100)
	if len(listed) != 1000 || listed["unknown"] || !listed["0"] || !listed["999"] {
		t.Errorf("listed %d keys (unknown: %v), want the 1000 with values", len(listed), listed["unknown"])
	}
	for _, bad := range []string{"not base64!", "bm90IGpzb24", "eyJuIjoibm8tc3VjaC1ub2RlIiwicCI6MX0"} {
		if _, _, err := s.ListKeys(ctx, "job", bad, 10); !errors.Is(err, cache.ErrInvalidCursor) {
			t.Errorf("cursor %q: %v, want ErrInvalidCursor", bad, err)
		}
	}
	if listed := listAll(t, s, "never", 1000); len(listed) != 0 {
		t.Errorf("a job without keys listed %v", listed)
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	keys, _ := cache.NewKeys("t")
	s := testenv.OpenStore(t, "redis://127.0.0.1:1/0?dial_timeout=1s", keys, cache.Options{})
	ctx := context.Background()
	if _, err := s.Get(ctx, "job", "k"); !errors.Is(err, cache.ErrUnavailable) {
		t.Errorf("get: %v, want ErrUnavailable", err)
	}
	if _, err := s.Put(ctx, "job", item(t, "k", 1, "{}")); !errors.Is(err, cache.ErrUnavailable) {
		t.Errorf("put: %v, want ErrUnavailable", err)
	}
}

// TestConcurrentGetsThroughAStall: reads of many callers at once each get their own key's value;
// while Redis's replies are held past the store's timeout, each fails with ErrUnavailable; and
// once they flow again, each read gets its own key's value again, none the late reply to a read
// that stopped waiting.
func TestConcurrentGetsThroughAStall(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	redisURL := testenv.Get(t).RedisURL
	proxy := testenv.NewProxy(t, testenv.HostPort(t, redisURL))
	s := testenv.OpenStore(t, proxy.Through(redisURL), keys, cache.Options{Timeout: 200 * time.Millisecond})
	ctx := context.Background()
	const n = 100
	var items []cache.Item
	for i := range n {
		items = append(items, item(t, fmt.Sprint(i), 1, fmt.Sprintf(`{"n":%d}`, i)))
	}
	if _, err := openStore(t, keys).PutRun(ctx, "job", items); err != nil {
		t.Fatal(err)
	}
	// readAll reads every key at once, and checks each read.
	readAll := func(check func(i int, e cache.Entry, err error)) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				e, err := s.Get(ctx, "job", fmt.Sprint(i))
				check(i, e, err)
			})
		}
		wg.Wait()
	}
	ownValue := func(when string) func(int, cache.Entry, error) {
		return func(i int, e cache.Entry, err error) {
			if want := fmt.Sprintf(`{"n":%d}`, i); err != nil || string(e.Body) != want {
				t.Errorf("key %d %s: %s, %v; want %s", i, when, e.Body, err, want)
			}
		}
	}
	readAll(ownValue("before the stall"))
	proxy.Delay(time.Second)
	readAll(func(i int, _ cache.Entry, err error) {
		if !errors.Is(err, cache.ErrUnavailable) {
			t.Errorf("key %d while Redis's replies are held: %v, want ErrUnavailable", i, err)
		}
	})
	proxy.Undelay()
	readAll(ownValue("after the stall"))
}

func TestOpenURLs(t *testing.T) {
	t.Parallel()
	keys, _ := cache.NewKeys("t")
	for url, ok := range map[string]bool{
		"redis://127.0.0.1:6379/0":                                              true,
		"rediss://user:secret@cache.example:6380/2":                             true,
		"redis://:pw@sentinel-1:26379/0?master_name=main&addr=sentinel-2:26379": true,
		"redis://node-1:6379?addr=node-2:6379&addr=node-3:6379":                 true,
		"redis://node-1:6379?cluster=true":                                      true,
		"http://127.0.0.1:6379":                                                 false,
		"redis://127.0.0.1:6379/0?bogus_option=1":                               false,
		"://": false,
	} {
		s, err := cache.Open(url, keys, cache.Options{})
		if (err == nil) != ok {
			t.Errorf("Open(%q): %v, want ok %v", url, err, ok)
		}
		if err == nil {
			s.Close()
		}
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	k, err := cache.NewKeys("warmcache")
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		k.Value("orders_total", ""):         "warmcache:orders_total",
		k.Value("orders_by_customer", "42"): "warmcache:orders_by_customer:42",
		k.Runs("orders_total"):              "warmcache:_runs:orders_total",
		k.Events():                          "warmcache:_events",
	} {
		if got != want {
			t.Errorf("key %q, want %q", got, want)
		}
	}
	for _, ns := range []string{"", "a:b", "with space", strings.Repeat("x", 65)} {
		if _, err := cache.NewKeys(ns); err == nil {
			t.Errorf("namespace %q accepted", ns)
		}
	}
}

func TestPutRunIsFencedByNewerRuns(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.PutRun(ctx, "job", []cache.Item{item(t, "a", 200, `{"run":"new"}`)}); err != nil {
		t.Fatal(err)
	}
	_, err := s.PutRun(ctx, "job", []cache.Item{item(t, "a", 100, `{"run":"old"}`), item(t, "b", 100, `{"run":"old"}`)})
	if !errors.Is(err, cache.ErrFenced) {
		t.Fatalf("older run's batch: %v, want ErrFenced", err)
	}
	if got := body(t, s, "job", "a"); got != `{"run":"new"}` {
		t.Errorf("key a holds %s after a fenced batch", got)
	}
	if _, err := s.Get(ctx, "job", "b"); !errors.Is(err, cache.ErrMiss) {
		t.Errorf("a fenced batch wrote key b: %v", err)
	}
	if n, err := s.PutRun(ctx, "job", []cache.Item{item(t, "b", 200, `{"run":"new"}`)}); err != nil || n != 1 {
		t.Errorf("the newest run's next batch: %d, %v", n, err)
	}
}

func TestPutRunLeavesNewerSingleKeyWritesAlone(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.Put(ctx, "job", item(t, "k", 300, `{"from":"recompute"}`)); err != nil {
		t.Fatal(err)
	}
	n, err := s.PutRun(ctx, "job", []cache.Item{item(t, "k", 250, `{"from":"run"}`), item(t, "l", 250, `{"from":"run"}`)})
	if err != nil || n != 1 {
		t.Fatalf("run batch: wrote %d, %v; want 1", n, err)
	}
	if got := body(t, s, "job", "k"); got != `{"from":"recompute"}` {
		t.Errorf("an older run replaced a newer recomputation: %s", got)
	}
	if n, err := s.PutRun(ctx, "job", []cache.Item{item(t, "k", 350, `{"from":"newer run"}`)}); err != nil || n != 1 {
		t.Fatalf("newer run: %d, %v", n, err)
	}
	if got := body(t, s, "job", "k"); got != `{"from":"newer run"}` {
		t.Errorf("a newer run did not replace an older recomputation: %s", got)
	}
}

// TestConcurrentWritersNeverGoBack races single-key writes of a newer snapshot against the
// batches of an older bulk run: whatever the interleaving, every recomputed key keeps its value.
func TestConcurrentWritersNeverGoBack(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	const keys = 3000
	done := make(chan error, 1)
	go func() {
		var batch []cache.Item
		for i := range keys {
			batch = append(batch, item(t, fmt.Sprint(i), 1000, `{"from":"run"}`))
			if len(batch) == 100 {
				if _, err := s.PutRun(ctx, "job", batch); err != nil {
					done <- err
					return
				}
				batch = nil
			}
		}
		done <- nil
	}()
	recomputed := map[string]bool{}
	for i := 0; i < keys; i += 7 {
		key := fmt.Sprint(i)
		if _, err := s.Put(ctx, "job", item(t, key, 2000, `{"from":"recompute"}`)); err != nil {
			t.Fatal(err)
		}
		recomputed[key] = true
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		key := fmt.Sprint(i)
		want := `{"from":"run"}`
		if recomputed[key] {
			want = `{"from":"recompute"}`
		}
		if got := body(t, s, "job", key); got != want {
			t.Fatalf("key %s holds %s, want %s", key, got, want)
		}
	}
}

func TestPutRunRefusesMixedSnapshots(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	_, err := s.PutRun(context.Background(), "job", []cache.Item{item(t, "a", 1, "{}"), item(t, "b", 2, "{}")})
	if err == nil {
		t.Fatal("a batch of two snapshots was written")
	}
	if _, err := s.Get(context.Background(), "job", "a"); !errors.Is(err, cache.ErrMiss) {
		t.Errorf("a refused batch wrote key a: %v", err)
	}
}

// pttl is the remaining lifetime of a key in Redis.
func pttl(t *testing.T, key string) time.Duration {
	t.Helper()
	d, err := testenv.Redis(t).PTTL(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// recorder is a Watcher that hands on what it is told: the invalidations, and the last ten
// subscriptions and losses (more are dropped rather than hold Watch up).
type recorder struct {
	subscribed chan struct{}
	changes    chan cache.Invalidation
	lost       chan error
}

func (r recorder) Subscribed()                      { sendOrDrop(r.subscribed, struct{}{}) }
func (r recorder) Lost(err error)                   { sendOrDrop(r.lost, err) }
func (r recorder) Invalidated(c cache.Invalidation) { r.changes <- c }

func sendOrDrop[T any](c chan T, v T) {
	select {
	case c <- v:
	default:
	}
}

// watch runs s.Watch until the test ends, and returns what it tells once it has subscribed
// (within 10 s); up to capacity invalidations wait to be read.
func watch(t *testing.T, s *cache.Store, capacity int) recorder {
	t.Helper()
	w := recorder{subscribed: make(chan struct{}, 10), changes: make(chan cache.Invalidation, capacity), lost: make(chan error, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, w)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-w.subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not subscribe within 10 s")
	}
	return w
}

// TestWatchHearsEveryChange: on a single server, Watch hears from Redis itself of every change
// to the namespace's values, whoever makes it: warmcache's writes (the same bytes again
// included), another client's SET and DEL, an expiry; not of the namespace's own records nor of
// another namespace's values. A FLUSHDB, which names no key, is a lost subscription, after which
// the next starts. (On a server of its own, which the FLUSHDB empties.)
func TestWatchHearsEveryChange(t *testing.T) {
	t.Parallel()
	keys, other := newKeys(t), newKeys(t)
	server := testenv.NewRedis(t)
	s := testenv.OpenStore(t, server.URL(), keys, cache.Options{})
	if !s.TellsEveryChange() {
		t.Fatal("a single server does not tell of every change")
	}
	w := watch(t, s, 100)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: server.Addr})
	t.Cleanup(func() { rdb.Close() })
	told := func(what string, want ...string) {
		t.Helper()
		var got []string
		for len(got) < len(want) {
			select {
			case c := <-w.changes:
				for _, k := range c.Keys {
					got = append(got, c.Job+"/"+k)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: told %q within 5 s, want %q", what, got, want)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: told %q, want %q", what, got, want)
		}
	}
	if _, err := s.Put(ctx, "job", item(t, "1", 1, `{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	told("a write", "job/1")
	if _, err := s.Put(ctx, "job", item(t, "1", 2, `{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	told("the same bytes again", "job/1")
	// Changes that must not be told come first: a key told after them shows none was.
	if err := s.RecordRun(ctx, cache.Run{Job: "job", Started: time.Now(), Keys: 1}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, other.Value("job", "1"), "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, keys.Value("single", ""), "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	told("another client's SET of a single value, after a run record and another namespace's value", "single/")
	if err := rdb.Del(ctx, keys.Value("job", "1")).Err(); err != nil {
		t.Fatal(err)
	}
	told("a DEL", "job/1")
	if err := rdb.Set(ctx, keys.Value("job", "2"), "x", time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	// A read past the key's TTL expires it, if Redis's own sampling has not yet.
	for deadline := time.Now().Add(5 * time.Second); rdb.Exists(ctx, keys.Value("job", "2")).Val() == 1; {
		if time.Now().After(deadline) {
			t.Fatal("a key of a millisecond still exists after 5 s")
		}
		time.Sleep(time.Millisecond) // until the TTL has passed, with a deadline
	}
	told("a SET, then its expiry", "job/2", "job/2")
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-w.lost:
		if !errors.Is(err, cache.ErrFlushed) {
			t.Errorf("after a FLUSHDB, the subscription was lost with %v, want ErrFlushed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a FLUSHDB was not a lost subscription")
	}
	select {
	case <-w.subscribed:
	case <-time.After(5 * time.Second):
		t.Fatal("no new subscription after a FLUSHDB")
	}
}

// TestWatchEndsWithItsContext: Watch returns once its context ends, also while it is told of
// changes more often than it pings (the api stops watching at shutdown while warmers write).
func TestWatchEndsWithItsContext(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	w := recorder{subscribed: make(chan struct{}, 10), changes: make(chan cache.Invalidation, 1000), lost: make(chan error, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, w)
	}()
	var version int64
	testenv.Every(t, 10*time.Millisecond, func(ctx context.Context) { // well within Watch's ping
		version++
		now := time.Now()
		e, _ := cache.NewEntry(version, version, now, now.Add(time.Minute), now.Add(time.Hour)) // an int always encodes
		_, _ = s.Put(ctx, "busy", cache.Item{Key: "1", Entry: e})
	})
	select {
	case <-w.subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not subscribe within 10 s")
	}
	select {
	case <-w.changes:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch was told of no write within 10 s")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return within 10 s of its context's end, writes going on")
	}
}

// TestWritesTellWhatChanged: single-key writes and bulk runs tell, on the namespace's channel
// (which Watch hears on a Cluster) and to Options.Invalidated alike, of every key whose value
// they changed or which held nothing, and of no other; a batch that changed more than a hundred
// keys tells of a change of its whole job.
func TestWritesTellWhatChanged(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	hooked := make(chan cache.Invalidation, 100)
	s := testenv.OpenStore(t, testenv.Get(t).RedisURL, keys, cache.Options{Invalidated: func(c cache.Invalidation) { hooked <- c }})
	ctx := context.Background()
	sub := testenv.Redis(t).Subscribe(ctx, keys.Changes())
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	messages := sub.Channel()
	told := func(what string, want ...string) {
		t.Helper()
		var fromHook, fromChannel []string
		for len(fromHook) < len(want) || len(fromChannel) < len(want) {
			select {
			case c := <-hooked:
				if c.All {
					fromHook = append(fromHook, "*")
				}
				fromHook = append(fromHook, c.Keys...)
			case m := <-messages:
				job, key, one := strings.Cut(m.Payload, ":")
				if job != "job" {
					t.Fatalf("%s: told %q on the channel, of another job", what, m.Payload)
				}
				if !one {
					key = "*"
				}
				fromChannel = append(fromChannel, key)
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: told %q (hook) and %q (channel) within 5 s, want %q", what, fromHook, fromChannel, want)
			}
		}
		if strings.Join(fromHook, ",") != strings.Join(want, ",") || strings.Join(fromChannel, ",") != strings.Join(want, ",") {
			t.Errorf("%s: told %q (hook) and %q (channel), want %q", what, fromHook, fromChannel, want)
		}
	}
	put := func(items ...cache.Item) {
		t.Helper()
		if _, err := s.Put(ctx, "job", items...); err != nil {
			t.Fatal(err)
		}
	}
	run := func(items ...cache.Item) {
		t.Helper()
		if _, err := s.PutRun(ctx, "job", items); err != nil {
			t.Fatal(err)
		}
	}
	put(item(t, "1", 1, `{"v":1}`), item(t, "2", 1, `{"v":2}`))
	told("new keys", "1", "2")
	put(item(t, "1", 2, `{"v":1}`), item(t, "2", 2, `{"v":"two"}`))
	told("one changed value", "2")
	run(item(t, "1", 3, `{"v":1}`), item(t, "2", 3, `{"v":"2"}`), item(t, "3", 3, `{"v":3}`))
	told("a run's changed and new keys", "2", "3")
	run(item(t, "1", 4, `{"v":1}`), item(t, "2", 4, `{"v":"2"}`), item(t, "3", 4, `{"v":3}`))
	put(item(t, "3", 5, `{"v":"last"}`))
	told("a run that changed nothing, then a write", "3")
	var many []cache.Item
	for i := range 101 {
		many = append(many, item(t, fmt.Sprint(i), 6, fmt.Sprintf(`{"v":"six %d"}`, i)))
	}
	run(many...)
	told("a run that changed 101 keys", "*")
}

// TestFullRedisRefusesWritesNotDeletions: a Redis over maxmemory with noeviction refuses every
// write, bulk, single or event, with ErrFull (a bulk run's transaction says only EXECABORT), and
// still deletes, and tells of what it deleted.
func TestFullRedisRefusesWritesNotDeletions(t *testing.T) {
	t.Parallel()
	server := testenv.NewRedis(t, "maxmemory-policy noeviction")
	s, err := cache.Open(server.URL(), newKeys(t), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	if _, err := s.PutRun(ctx, "j", []cache.Item{item(t, "1", 100, `{"n":1}`), item(t, "2", 100, `{"n":2}`)}); err != nil {
		t.Fatal(err)
	}
	changes := watch(t, s, 10)
	if out := server.CLI("CONFIG", "SET", "maxmemory", "1"); out != "OK" {
		t.Fatalf("CONFIG SET maxmemory: %s", out)
	}
	for what, err := range map[string]error{
		"bulk":   func() error { _, err := s.PutRun(ctx, "j", []cache.Item{item(t, "1", 200, `{"n":3}`)}); return err }(),
		"single": func() error { _, err := s.Put(ctx, "j", item(t, "1", 200, `{"n":3}`)); return err }(),
		"event":  s.Publish(ctx, []query.Change{{Table: "orders"}}),
	} {
		if !errors.Is(err, cache.ErrFull) || !strings.Contains(err.Error(), "OOM") {
			t.Errorf("%s write into a full Redis: %v, want ErrFull with Redis's words", what, err)
		}
	}
	if err := s.Drop(ctx, "j", []string{"1"}); err != nil {
		t.Fatalf("drop from a full Redis: %v", err)
	}
	if _, err := s.Get(ctx, "j", "1"); !errors.Is(err, cache.ErrMiss) {
		t.Errorf("a dropped key: %v", err)
	}
	if got := body(t, s, "j", "2"); got != `{"n":2}` {
		t.Errorf("a key not dropped holds %s", got)
	}
	if c := <-changes.changes; c.Job != "j" || len(c.Keys) != 1 || c.Keys[0] != "1" {
		t.Errorf("told %+v, want key 1 of j", c)
	}
}

// TestAnnounceJobsFile: each process's announcement is returned to every process until it is
// older than the window; then it is removed.
func TestAnnounceJobsFile(t *testing.T) {
	t.Parallel()
	s := openStore(t, newKeys(t))
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	if _, err := s.AnnounceJobsFile(ctx, "api/a", "aaaa", t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := s.AnnounceJobsFile(ctx, "warmer/b", "bbbb", t0.Add(30*time.Second), time.Minute)
	if err != nil || len(got) != 2 || got["api/a"] != "aaaa" || got["warmer/b"] != "bbbb" {
		t.Fatalf("within the window: %v, %v; want both", got, err)
	}
	got, err = s.AnnounceJobsFile(ctx, "warmer/b", "bbbb", t0.Add(2*time.Minute), time.Minute)
	if err != nil || len(got) != 1 || got["warmer/b"] != "bbbb" {
		t.Fatalf("past api/a's window: %v, %v; want warmer/b alone", got, err)
	}
	if got, _ := s.AnnounceJobsFile(ctx, "api/a", "aaaa", t0.Add(2*time.Minute), time.Minute); len(got) != 2 {
		t.Errorf("api/a back: %v, want both", got)
	}
}

// TestSweep: after a run from snapshot 20, the keys of the job its result does not hold, read
// from older snapshots, are groups whose rows are gone: Sweep deletes them, in batches of any
// size, and tells of them; the keys of the result (written by the run, or left at a newer
// value), those written since from newer snapshots, and the other jobs' values stay.
func TestSweep(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	s := openStore(t, keys)
	ctx := context.Background()
	told := make(chan cache.Invalidation, 10)
	s2 := testenv.OpenStore(t, testenv.Get(t).RedisURL, keys, cache.Options{Invalidated: func(c cache.Invalidation) { told <- c }})
	var old []cache.Item
	for i := range 2500 { // more than a batch of SCAN's
		old = append(old, item(t, fmt.Sprintf("gone%d", i), 10, `{"n":0}`))
	}
	if _, err := s.Put(ctx, "j", old...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRun(ctx, "j", []cache.Item{item(t, "kept", 20, `{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "j", item(t, "newer", 30, `{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "other", item(t, "gone1", 10, `{"n":3}`)); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	unknown := cache.Item{Key: "unknown", Entry: cache.NewNegativeEntry("no such key", 10, now, now.Add(time.Minute), now.Add(time.Hour))}
	if _, err := s.Put(ctx, "j", unknown); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "j", item(t, "held", 10, `{"n":4}`)); err != nil {
		t.Fatal(err)
	}
	var held cache.RunKeys
	held.Add("kept")
	held.Add("held") // in the result, though its value is older (its run's write skipped it)
	n, err := s2.Sweep(ctx, "j", 20, &held)
	if err != nil || n != 2500 {
		t.Fatalf("Sweep: %d, %v; want 2500 keys swept", n, err)
	}
	if got := listAll(t, s, "j", 100); !reflect.DeepEqual(got, map[string]bool{"kept": true, "newer": true, "held": true}) {
		t.Errorf("keys of j after the sweep: %v, want kept, newer and held", got)
	}
	// A key known to have no row stays so: the run, without it, confirms it.
	if e, err := s.Get(ctx, "j", "unknown"); err != nil || !e.NotFound {
		t.Errorf("the negative entry of j after the sweep: %+v, %v; want it kept", e, err)
	}
	if got := body(t, s, "other", "gone1"); got != `{"n":3}` {
		t.Errorf("another job's value: %q", got)
	}
	if c := <-told; c.Job != "j" || !c.All {
		t.Errorf("told %+v, want every key of j (too many to name)", c)
	}
}

// TestSweepOfTheNextRun: when the store swept the job's previous run, the next sweep looks only
// at the keys written one at a time since (a key no write of a store's made, planted by hand
// below, is then not found: the probe of which way the sweep went); when it cannot know where
// the keys not held are (another run wrote in between, even of the same snapshot; the previous
// result is not all held; a run of the store failed; the touched set was lost), it walks every
// key. Either way a key not held, read from an older snapshot, goes, and a newer one stays.
func TestSweepOfTheNextRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys := newKeys(t)
	s, other := openStore(t, keys), openStore(t, keys)
	rdb := testenv.Redis(t)
	// batch writes a batch of keys of the run of the job from the snapshot at position started
	// at, adding them to held; write writes a run of the job holding keys, and sweep sweeps it.
	batch := func(s *cache.Store, position int64, at time.Time, held *cache.RunKeys, keys ...string) {
		t.Helper()
		var items []cache.Item
		for _, k := range keys {
			e, err := cache.NewEntry(k, position, at, at.Add(time.Minute), at.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			items = append(items, cache.Item{Key: k, Entry: e})
			held.Add(k)
		}
		if _, err := s.PutRun(ctx, "j", items); err != nil {
			t.Fatalf("run at %d: %v", position, err)
		}
	}
	write := func(s *cache.Store, position int64, keys ...string) *cache.RunKeys {
		t.Helper()
		var held cache.RunKeys
		batch(s, position, time.Now(), &held, keys...)
		return &held
	}
	sweep := func(s *cache.Store, position int64, held *cache.RunKeys) {
		t.Helper()
		if _, err := s.Sweep(ctx, "j", position, held); err != nil {
			t.Fatalf("sweep of the run at %d: %v", position, err)
		}
	}
	run := func(s *cache.Store, position int64, keys ...string) { sweep(s, position, write(s, position, keys...)) }
	// plant copies a's entry, read at an older snapshot than any run below, to key, as no write
	// of a store makes it.
	plant := func(key string) {
		t.Helper()
		v, err := rdb.Get(ctx, keys.Value("j", "a")).Result()
		if err == nil {
			err = rdb.Set(ctx, keys.Value("j", key), v, time.Hour).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	want := func(when string, want ...string) {
		t.Helper()
		got := slices.Sorted(maps.Keys(listAll(t, s, "j", 100)))
		if !slices.Equal(got, want) {
			t.Errorf("%s: keys %v, want %v", when, got, want)
		}
	}
	run(s, 10, "a", "b", "c")
	plant("planted")
	run(s, 20, "a", "b", "c")
	want("a run after the one swept", "a", "b", "c", "planted")

	// A refresh since the run, and one from an older snapshot than the run's, written after it.
	_, err := s.Put(ctx, "j", item(t, "refreshed", 25, `{"n":1}`), item(t, "late", 15, `{"n":1}`))
	must(err)
	held := write(s, 30, "a", "b", "c")
	// A write during the run, from a newer snapshot: the touched set drops the older touches.
	_, err = s.Put(ctx, "j", item(t, "newer", 35, `{"n":2}`))
	must(err)
	sweep(s, 30, held)
	want("keys written one at a time since: the older goes", "a", "b", "c", "newer", "planted")

	write(other, 40, "a", "b", "c", "elsewhere")
	run(s, 50, "a", "b", "c")
	want("another run wrote in between", "a", "b", "c")

	plant("planted")
	write(other, 50, "a", "b", "c", "elsewhere")
	run(s, 55, "a", "b", "c")
	want("another run of the same snapshot wrote in between", "a", "b", "c")

	plant("planted")
	must(rdb.Del(ctx, keys.Touched("j")).Err())
	run(s, 57, "a", "b", "c")
	want("the touched set lost", "a", "b", "c")

	// The mark of a run from an older snapshot, written after the last run (a run that lost its
	// lock, writing key by key after its transactions failed).
	plant("planted")
	must(rdb.ZAdd(ctx, keys.Touched("j"), redis.Z{Score: 50, Member: "\xff\xfewarmcache run stalled"}).Err())
	run(s, 58, "a", "b", "c")
	want("an older run wrote since", "a", "b", "c")

	plant("planted")
	must(rdb.Del(ctx, keys.Fence("j")).Err())
	run(s, 59, "a", "b", "c")
	want("the fence lost", "a", "b", "c")

	// The fence and the touched set lost during a run (FLUSHDB, say), and a key written one at
	// a time meanwhile from an older snapshot.
	plant("planted")
	var held61 cache.RunKeys
	at := time.Now()
	batch(s, 61, at, &held61, "a", "b")
	must(rdb.Del(ctx, keys.Fence("j"), keys.Touched("j")).Err())
	_, err = s.Put(ctx, "j", item(t, "meanwhile", 20, `{"n":3}`))
	must(err)
	batch(s, 61, at, &held61, "c")
	sweep(s, 61, &held61)
	want("the fence lost during the run", "a", "b", "c")

	plant("planted")
	run(s, 65, "a", "b")
	want("the previous result not all held", "a", "b")

	plant("planted")
	write(s, 65, "a", "b", "failed") // of the same snapshot as the last swept, on another day
	run(s, 70, "a", "b")
	want("a run failed in between", "a", "b")

	plant("planted")
	run(s, 70, "a", "b")
	want("a run of the same snapshot", "a", "b", "planted")

	// The marks of runs no longer needed go: the touched set does not grow with the runs.
	for position := int64(80); position < 90; position++ {
		run(s, position, "a", "b")
	}
	if n, err := rdb.ZCard(ctx, keys.Touched("j")).Result(); err != nil || n > 2 {
		t.Errorf("the touched set holds %d members after ten runs (%v), want the last two runs' marks", n, err)
	}
}

// TestHandled: a group has handled the stream up to an entry once it has read past it and
// acknowledged every entry up to it; entries after it do not count.
func TestHandled(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	handled := func(stage, upTo string, want bool) {
		t.Helper()
		if got, err := s.Handled(ctx, "g", upTo); err != nil || got != want {
			t.Fatalf("%s: handled up to %s: %v, %v; want %v", stage, upTo, got, err, want)
		}
	}
	end, err := s.StreamEnd(ctx)
	if err != nil || end != "0-0" {
		t.Fatalf("end of no stream: %q, %v", end, err)
	}
	handled("no stream", end, true)
	changes := make([]query.Change, cache.ChangesPerEvent+1) // two entries
	for i := range changes {
		changes[i] = query.Change{ID: int64(i), Table: "orders", Columns: map[string]string{}}
	}
	if err := s.Publish(ctx, changes); err != nil {
		t.Fatal(err)
	}
	if end, err = s.StreamEnd(ctx); err != nil || end == "0-0" {
		t.Fatalf("end of two entries: %q, %v", end, err)
	}
	handled("no group", end, false)
	first, err := s.Consume(ctx, "g", "c", 1, 0, time.Minute)
	if err != nil || len(first) == 0 {
		t.Fatalf("consume: %d, %v", len(first), err)
	}
	handled("one entry read", end, false)
	second, err := s.Consume(ctx, "g", "c", 1, 0, time.Minute)
	if err != nil || len(second) == 0 || second[0].StreamID != end {
		t.Fatalf("consume the second: %+v, %v", second, err)
	}
	handled("both read, none acknowledged", end, false)
	if err := s.Ack(ctx, "g", second); err != nil {
		t.Fatal(err)
	}
	handled("the first pending", end, false)
	if err := s.Ack(ctx, "g", first); err != nil {
		t.Fatal(err)
	}
	handled("both acknowledged", end, true)
	if err := s.Publish(ctx, changes[:1]); err != nil {
		t.Fatal(err)
	}
	handled("an entry after", end, true)
	later, err := s.StreamEnd(ctx)
	if err != nil {
		t.Fatal(err)
	}
	handled("up to the entry after", later, false)
}
