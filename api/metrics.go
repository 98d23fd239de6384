package api

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/readthrough"
)

// The values of the hit header, and of the result label of warmcache_cache_requests_total:
// what readthrough answered a read with.
const (
	hit    = readthrough.Hit
	miss   = readthrough.Miss
	stale  = readthrough.Stale
	bypass = readthrough.Bypass
)

type metrics struct {
	mu        sync.Mutex                                          // held to add to observers
	observers atomic.Pointer[map[durationKey]prometheus.Observer] // resolved once each; never changed, replaced

	requests *prometheus.CounterVec
	age      *prometheus.HistogramVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warmcache_cache_requests_total",
			Help: "Cached reads by route and result: HIT, MISS, STALE or BYPASS.",
		}, []string{"route", "result"}),
		age: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "warmcache_served_age_seconds",
			Help: "Age of the values served (since they were computed).",
			// 600 is the default CACHE_TTL: the alert on values served past their TTL reads the
			// share of reads above it exactly, with no interpolation across a wider bucket.
			Buckets: []float64{1, 5, 15, 60, 120, 300, 600, 900, 1800, 3600, 4 * 3600, 24 * 3600},
		}, []string{"route"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "warmcache_http_request_duration_seconds",
			Help:    "HTTP request latency by route, method and status.",
			Buckets: []float64{.0002, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "code"}),
	}
	reg.MustRegister(m.requests, m.age, m.duration)
	m.observers.Store(&map[durationKey]prometheus.Observer{})
	return m
}

// methodLabel is a request's method as a label: a method HTTP defines, or OTHER. A client can
// send any token as its method, and a label keeps every value it is given, for ever. (The route
// label is the route's pattern, never the path asked for, and the status one of the api's.)
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

type durationKey struct {
	route, method string
	status        int
}

// durationOf returns the latency observer of a route, method and status, resolving the labels
// the first time only. Requests look it up without a lock: the map is replaced, not changed.
func (m *metrics) durationOf(route, method string, status int) prometheus.Observer {
	if o, ok := (*m.observers.Load())[durationKey{route, method, status}]; ok {
		return o
	}
	return m.addDuration(durationKey{route, method, status})
}

func (m *metrics) addDuration(key durationKey) prometheus.Observer {
	m.mu.Lock()
	defer m.mu.Unlock()
	observers := maps.Clone(*m.observers.Load())
	o := m.duration.WithLabelValues(key.route, key.method, strconv.Itoa(key.status))
	observers[key] = o
	m.observers.Store(&observers)
	return o
}

// routeMetrics are one route's cache counters, resolved once rather than per request.
type routeMetrics struct {
	results map[string]prometheus.Counter
	age     prometheus.Observer
}

func (m *metrics) forRoute(route string) routeMetrics {
	rm := routeMetrics{results: map[string]prometheus.Counter{}, age: m.age.WithLabelValues(route)}
	for _, r := range []string{hit, miss, stale, bypass} {
		rm.results[r] = m.requests.WithLabelValues(route, r)
	}
	return rm
}
