// Package recent tells what a process's own Prometheus metrics say about the last minutes: it
// reads counters and histograms, all their series summed, into values that subtract and add, so
// that a process can keep a few snapshots and show, say, the hit ratio of each of the last ten
// seconds windows without adding anything to the path it measures.
package recent

import (
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Histogram is a histogram's state: the upper bounds of its buckets, the cumulative count of
// observations at or below each, and the count and sum of all of them.
type Histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Count  uint64    `json:"count"`
	Sum    float64   `json:"sum"`
}

// ReadHistogram reads c, a histogram or a vector of histograms with the same buckets, every
// series summed.
func ReadHistogram(c prometheus.Collector) Histogram {
	var h Histogram
	for _, m := range collect(c) {
		mh := m.GetHistogram()
		if mh == nil {
			continue
		}
		var series Histogram
		for _, b := range mh.GetBucket() {
			series.Bounds = append(series.Bounds, b.GetUpperBound())
			series.Counts = append(series.Counts, b.GetCumulativeCount())
		}
		series.Count, series.Sum = mh.GetSampleCount(), mh.GetSampleSum()
		h = h.Add(series)
	}
	return h
}

// ReadCounters reads c, a vector of counters, summed by the value of label.
func ReadCounters(c prometheus.Collector, label string) map[string]float64 {
	sums := map[string]float64{}
	for _, m := range collect(c) {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				sums[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	return sums
}

func collect(c prometheus.Collector) []*dto.Metric {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var out []*dto.Metric
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			out = append(out, &d)
		}
	}
	return out
}

// Add returns the observations of h and o together. A histogram without buckets takes the
// other's; histograms of different buckets keep h's counts only.
func (h Histogram) Add(o Histogram) Histogram {
	if len(h.Bounds) == 0 {
		return o.clone()
	}
	sum := h.clone()
	sum.Count += o.Count
	sum.Sum += o.Sum
	if sameBounds(h, o) {
		for i := range sum.Counts {
			sum.Counts[i] += o.Counts[i]
		}
	}
	return sum
}

// Sub returns the observations of h since prev, an earlier state of the same histogram.
func (h Histogram) Sub(prev Histogram) Histogram {
	d := h.clone()
	if !sameBounds(h, prev) || prev.Count > h.Count {
		return d // prev is of another histogram, or the process restarted
	}
	d.Count -= prev.Count
	d.Sum -= prev.Sum
	for i := range d.Counts {
		d.Counts[i] -= prev.Counts[i]
	}
	return d
}

func (h Histogram) clone() Histogram {
	h.Bounds = append([]float64(nil), h.Bounds...)
	h.Counts = append([]uint64(nil), h.Counts...)
	return h
}

func sameBounds(a, b Histogram) bool {
	return slices.Equal(a.Bounds, b.Bounds) && len(a.Counts) == len(b.Counts)
}

// Mean is the mean observation; NaN without any.
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	return h.Sum / float64(h.Count)
}

// Quantile estimates the q-quantile of the observations as PromQL's histogram_quantile does:
// by linear interpolation within the bucket it falls in, the first bucket starting at zero.
// Past the last bound it is the last bound. NaN without observations.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 || len(h.Bounds) == 0 {
		return math.NaN()
	}
	rank := q * float64(h.Count)
	lower, below := 0.0, uint64(0)
	for i, bound := range h.Bounds {
		if float64(h.Counts[i]) >= rank {
			in := h.Counts[i] - below
			if in == 0 {
				return bound
			}
			return lower + (bound-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = bound, h.Counts[i]
	}
	return h.Bounds[len(h.Bounds)-1]
}
