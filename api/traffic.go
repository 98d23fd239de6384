package api

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/warmcache/warmcache/internal/recent"
)

// The status page's traffic: the api samples its own metrics every trafficStep and keeps
// trafficSamples of them, so that it can tell the hit ratio and served age of each window of the
// last five minutes. The cached reads themselves do nothing more than count, as they did.
const (
	trafficStep    = 10 * time.Second
	trafficSamples = 31
)

// trafficSample is the state of the cached reads' metrics at one time.
type trafficSample struct {
	at      time.Time
	results map[string]float64 // reads by result: HIT, MISS, STALE, BYPASS
	age     recent.Histogram
}

// traffic keeps the last samples, oldest first.
type traffic struct {
	mu      sync.Mutex
	samples []trafficSample
}

func (t *traffic) add(s trafficSample) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.samples = append(t.samples, s)
	if len(t.samples) > trafficSamples {
		t.samples = t.samples[len(t.samples)-trafficSamples:]
	}
}

func (t *traffic) snapshot() []trafficSample {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]trafficSample(nil), t.samples...)
}

// sample records the state of the cached reads' metrics now.
func (s *Server) sample() {
	s.traffic.add(trafficSample{at: s.Time.Now(), results: recent.ReadCounters(s.metrics.requests, "result"),
		age: recent.ReadHistogram(s.metrics.age)})
}

// Track samples the api's traffic for the status page every ten seconds until ctx ends.
func (s *Server) Track(ctx context.Context) {
	s.sample()
	tick := time.NewTicker(trafficStep)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.sample()
		}
	}
}

// trafficWindow is what the cached reads of a window of time were.
type trafficWindow struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Hits   float64   `json:"hits"`
	Misses float64   `json:"misses"`
	Stale  float64   `json:"stale"`
	Bypass float64   `json:"bypass"`
	// HitRatio is hits over all reads; absent without reads.
	HitRatio *float64 `json:"hit_ratio,omitempty"`
	// AgeMean and AgeP99 are the mean and 99th percentile of the served values' ages (since
	// they were computed), in seconds; the percentile is estimated from the histogram's buckets.
	AgeMean *float64 `json:"age_mean_seconds,omitempty"`
	AgeP99  *float64 `json:"age_p99_seconds,omitempty"`
}

func windowOf(from, to trafficSample) trafficWindow {
	d := func(result string) float64 { return to.results[result] - from.results[result] }
	w := trafficWindow{Start: from.at, End: to.at, Hits: d(hit), Misses: d(miss), Stale: d(stale), Bypass: d(bypass)}
	if all := w.Hits + w.Misses + w.Stale + w.Bypass; all > 0 {
		w.HitRatio = number(w.Hits / all)
	}
	age := to.age.Sub(from.age)
	w.AgeMean, w.AgeP99 = number(age.Mean()), number(age.Quantile(0.99))
	return w
}

// number is v for JSON: nil when v is not a number.
func number(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// trafficView is the traffic of the last minutes, window by window and in all.
type trafficView struct {
	StepSeconds float64         `json:"step_seconds"`
	Windows     []trafficWindow `json:"windows"`
	Total       *trafficWindow  `json:"total,omitempty"`
}

func (t *traffic) view() trafficView {
	samples := t.snapshot()
	v := trafficView{StepSeconds: trafficStep.Seconds(), Windows: []trafficWindow{}}
	for i := 1; i < len(samples); i++ {
		v.Windows = append(v.Windows, windowOf(samples[i-1], samples[i]))
	}
	if len(samples) > 1 {
		total := windowOf(samples[0], samples[len(samples)-1])
		v.Total = &total
	}
	return v
}
