package readthrough_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/readthrough"
)

func newLocal(t *testing.T, size uint64) *readthrough.Local[string] {
	t.Helper()
	l := readthrough.NewLocal[string](size, time.Minute, []string{"a", "b"}, time.Now, prometheus.NewRegistry())
	l.Subscribed()
	return l
}

func fresh() time.Time { return time.Now().Add(time.Hour) }

// TestLocalDropsWhatChanges: a change drops its keys and no other, a job's change all of its
// keys, and a value read from Redis before a change of its key, or of its job, is not kept after
// it, even once the tier no longer remembers the change.
func TestLocalDropsWhatChanges(t *testing.T) {
	t.Parallel()
	l := newLocal(t, 1<<20)
	for _, k := range []string{"1", "2"} {
		l.Set("a", k, l.Token(), "v"+k, 10, fresh())
	}
	l.Set("b", "1", l.Token(), "b1", 10, fresh())
	if v, ok := l.Get("a", "1"); !ok || v != "v1" {
		t.Fatalf("a/1: %q %v", v, ok)
	}
	l.Invalidated(cache.Invalidation{Job: "a", Keys: []string{"1"}})
	if _, ok := l.Get("a", "1"); ok {
		t.Error("a/1 served after its change")
	}
	if _, ok := l.Get("a", "2"); !ok {
		t.Error("a/2 dropped by a change of a/1")
	}
	l.Invalidated(cache.Invalidation{Job: "a", All: true})
	if _, ok := l.Get("a", "2"); ok {
		t.Error("a/2 served after a change of every key of a")
	}
	if _, ok := l.Get("b", "1"); !ok {
		t.Error("b/1 dropped by a change of job a")
	}
	l.Invalidated(cache.Invalidation{Job: "b", Keys: []string{"2", "1"}})
	if _, ok := l.Get("b", "1"); ok {
		t.Error("b/1 served after its change")
	}
	token := l.Token()
	l.Invalidated(cache.Invalidation{Job: "a", All: true})
	l.Set("a", "6", token, "old", 10, fresh())
	if _, ok := l.Get("a", "6"); ok {
		t.Error("a value read before its job's change was kept")
	}
	// Read from Redis, then the key changes, then the reader keeps what it read: refused.
	token = l.Token()
	l.Invalidated(cache.Invalidation{Job: "a", Keys: []string{"3"}})
	l.Set("a", "3", token, "old", 10, fresh())
	if _, ok := l.Get("a", "3"); ok {
		t.Error("a value read before its key's change was kept")
	}
	// So many changes after the read that the tier forgot the key's.
	token = l.Token()
	l.Invalidated(cache.Invalidation{Job: "a", Keys: []string{"4"}})
	for i := range 200_000 {
		l.Invalidated(cache.Invalidation{Job: "b", Keys: []string{fmt.Sprint(i)}})
	}
	l.Set("a", "4", token, "old", 10, fresh())
	if _, ok := l.Get("a", "4"); ok {
		t.Error("a value read before its key's change was kept once the change was forgotten")
	}
	l.Set("a", "5", l.Token(), "new", 10, fresh())
	if _, ok := l.Get("a", "5"); !ok {
		t.Error("a value read after every change was not kept")
	}
}

// TestLocalServesOnlyWhileWatching: before its subscription and from its loss until the next,
// the tier serves nothing, and a new subscription starts it empty.
func TestLocalServesOnlyWhileWatching(t *testing.T) {
	t.Parallel()
	l := readthrough.NewLocal[string](1<<20, time.Minute, []string{"a"}, time.Now, prometheus.NewRegistry())
	l.Set("a", "1", l.Token(), "v", 10, fresh())
	if _, ok := l.Get("a", "1"); ok {
		t.Error("served before its subscription")
	}
	l.Subscribed()
	token := l.Token()
	l.Set("a", "1", token, "v", 10, fresh())
	l.Lost(nil)
	if _, ok := l.Get("a", "1"); ok {
		t.Error("served after its subscription was lost")
	}
	l.Set("a", "2", token, "read before the loss", 10, fresh())
	l.Subscribed()
	for _, k := range []string{"1", "2"} {
		if _, ok := l.Get("a", k); ok {
			t.Errorf("a/%s served after the subscription came back: the tier must start empty", k)
		}
	}
}

func TestLocalExpiry(t *testing.T) {
	t.Parallel()
	l := readthrough.NewLocal[string](1<<20, 50*time.Millisecond, []string{"a"}, time.Now, prometheus.NewRegistry())
	l.Subscribed()
	l.Set("a", "short", l.Token(), "v", 10, time.Now().Add(20*time.Millisecond))
	l.Set("a", "long", l.Token(), "v", 10, fresh())
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, short := l.Get("a", "short")
		_, long := l.Get("a", "long")
		if !short && !long {
			return // its freshness, then the tier's lifetime, ended them
		}
		if time.Now().After(deadline) {
			t.Fatalf("still held after 5 s: short %v, long %v", short, long)
		}
		time.Sleep(10 * time.Millisecond) // polling the tier, with a deadline
	}
}

// TestLocalKeepsNothingReadBeforeARacingChange keeps a value read before a change while the
// change is told, at the same time, many times over: once both are done, the value is never
// served.
func TestLocalKeepsNothingReadBeforeARacingChange(t *testing.T) {
	t.Parallel()
	l := newLocal(t, 1<<20)
	for i := range 20_000 {
		key := fmt.Sprint(i)
		token := l.Token()
		var wg sync.WaitGroup
		wg.Go(func() { l.Set("a", key, token, "read before the change", 10, fresh()) })
		wg.Go(func() { l.Invalidated(cache.Invalidation{Job: "a", Keys: []string{key}}) })
		wg.Wait()
		if v, ok := l.Get("a", key); ok {
			t.Fatalf("key %s serves %q after its change", key, v)
		}
	}
}
