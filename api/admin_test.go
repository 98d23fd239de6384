package api

import (
	"net/http"
	"strings"
	"testing"
)

// adminOnly are the paths the admin listener serves and the public port does not.
var adminOnly = map[string]bool{"/status": true, "/v1/status": true, "/metrics": true}

// TestAdminListener: the metrics, the status page and what it reads, and Go's profiles are on the
// admin listener; the metrics, the status page and the profiles are not on the public port,
// which still serves the API and its probes.
func TestAdminListener(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	for path := range adminOnly {
		if res := f.get(path); res.status != http.StatusNotFound {
			t.Errorf("public GET %s: %d, want 404", path, res.status)
		}
		if res := f.adminGet(path); res.status != http.StatusOK {
			t.Errorf("admin GET %s: %d, want 200", path, res.status)
		}
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
		if res := f.get(path); res.status != http.StatusNotFound {
			t.Errorf("public GET %s: %d, want 404", path, res.status)
		}
		if res := f.adminGet(path); res.status != http.StatusOK {
			t.Errorf("admin GET %s: %d, want 200", path, res.status)
		}
	}
	for _, path := range []string{"/v1/jobs", "/v1/jobs/orders_total/runs", "/healthz"} {
		if res := f.adminGet(path); res.status != http.StatusOK {
			t.Errorf("admin GET %s: %d, want 200 (the status page reads it)", path, res.status)
		}
	}
	for _, path := range []string{"/v1/credit", "/v1/jobs", "/healthz", "/readyz", "/docs"} {
		if res := f.get(path); res.status != http.StatusOK {
			t.Errorf("public GET %s: %d, want 200", path, res.status)
		}
	}
	if res := f.adminGet("/metrics"); !strings.Contains(res.body, "warmcache_cache_requests_total") {
		t.Errorf("admin /metrics holds no warmcache metric:\n%.300s", res.body)
	}
}
