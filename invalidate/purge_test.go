package invalidate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
)

// TestPurgerPurgesWholeJobsOnOverflow: a change too large for the queue of purges is not lost:
// the keys that fit are purged one by one, and the job of those that did not, whole; a change of
// every key of a job purges the job. Each purge is sent again after the pauses of repeatPurges.
func TestPurgerPurgesWholeJobsOnOverflow(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var purged []string
	cdn := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		purged = append(purged, strings.Fields(r.Header.Get("xkey-purge"))...)
	}))
	t.Cleanup(cdn.Close)
	keys, _ := cache.NewKeys("ns")
	p := NewPurger(baseservice.NewArchetype(discard()), PurgeConfig{URLs: []string{cdn.URL}, Method: "PURGE",
		KeyHeader: "xkey-purge"}, keys, prometheus.NewRegistry())
	p.queue = make(chan string, 2)
	p.Invalidated(cache.Invalidation{Job: "a", Keys: []string{"1", "2", "3", "4"}})
	p.Invalidated(cache.Invalidation{Job: "b", Keys: []string{"9"}})
	p.Invalidated(cache.Invalidation{Job: "c", All: true})
	p.Drain(context.Background())
	slices.Sort(purged)
	want := []string{"ns:a", "ns:a:1", "ns:a:2", "ns:b", "ns:c"}
	if got := slices.Compact(slices.Clone(purged)); !slices.Equal(got, want) || len(purged) != len(want)*(1+len(repeatPurges)) {
		t.Errorf("purged %q, want %q, each %d times", purged, want, 1+len(repeatPurges))
	}
}
