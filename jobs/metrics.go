package jobs

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the warmer's Prometheus metrics.
type Metrics struct {
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	keys        *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	drift       *prometheus.GaugeVec
}

// NewMetrics registers the job metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warmcache_job_runs_total",
			Help: "Job runs by job and result (success or failure).",
		}, []string{"job", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "warmcache_job_duration_seconds",
			Help:    "Duration of job runs.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 10), // 5 ms to about 100 s
		}, []string{"job"}),
		keys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warmcache_job_keys_written_total",
			Help: "Keys written to Redis by job runs.",
		}, []string{"job"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warmcache_job_last_success_timestamp_seconds",
			Help: "Unix time of the start of the last successful run of each job.",
		}, []string{"job"}),
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warmcache_incremental_drift",
			Help: "Values of an incremental job whose maintained figures differed from the full computation at its last run (0: none).",
		}, []string{"job"}),
	}
	reg.MustRegister(m.runs, m.duration, m.keys, m.lastSuccess, m.drift)
	return m
}

func (m *Metrics) observe(job string, started time.Time, d time.Duration, keys int64, err error) {
	result := "success"
	if err != nil {
		result = "failure"
	} else {
		m.lastSuccess.WithLabelValues(job).Set(float64(started.UnixNano()) / 1e9)
	}
	m.runs.WithLabelValues(job, result).Inc()
	m.duration.WithLabelValues(job).Observe(d.Seconds())
	m.keys.WithLabelValues(job).Add(float64(keys))
}
