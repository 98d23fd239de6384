package recent

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHistogramWindows(t *testing.T) {
	t.Parallel()
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Buckets: []float64{.01, .1, 1}}, []string{"route"})
	for _, v := range []float64{.005, .005, .05} {
		vec.WithLabelValues("a").Observe(v)
	}
	before := ReadHistogram(vec)
	for _, v := range []float64{.02, .04, .06, .08} {
		vec.WithLabelValues("a").Observe(v)
	}
	vec.WithLabelValues("b").Observe(5) // past the last bound
	window := ReadHistogram(vec).Sub(before)
	if window.Count != 5 || math.Abs(window.Sum-5.2) > 1e-9 {
		t.Fatalf("window: %+v, want 5 observations summing 5.2", window)
	}
	// Four of five in (0.01, 0.1]: the median is 0.01 + 0.09 × 2.5/4.
	for q, want := range map[float64]float64{0.5: 0.01 + 0.09*2.5/4, 0.99: 1, 0.2: 0.01 + 0.09*1/4} {
		if got := window.Quantile(q); math.Abs(got-want) > 1e-9 {
			t.Errorf("quantile %v: %v, want %v", q, got, want)
		}
	}
	if got := window.Mean(); math.Abs(got-1.04) > 1e-9 {
		t.Errorf("mean %v, want 1.04", got)
	}
	if total := before.Add(window); total.Count != 8 || total.Counts[1] != 7 {
		t.Errorf("sum of the windows: %+v", total)
	}
	if empty := (Histogram{}); !math.IsNaN(empty.Quantile(0.5)) || !math.IsNaN(empty.Mean()) {
		t.Error("an empty histogram has a quantile")
	}
}

func TestCounters(t *testing.T) {
	t.Parallel()
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c"}, []string{"route", "result"})
	vec.WithLabelValues("/a", "HIT").Add(3)
	vec.WithLabelValues("/b", "HIT").Add(2)
	vec.WithLabelValues("/b", "MISS").Inc()
	got := ReadCounters(vec, "result")
	if len(got) != 2 || got["HIT"] != 5 || got["MISS"] != 1 {
		t.Errorf("counters by result: %v", got)
	}
}
