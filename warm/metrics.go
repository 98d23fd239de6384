package warm

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/jobs"
)

// Metrics are the warmer's Prometheus metrics.
type Metrics struct {
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	keys        *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	interval    *prometheus.GaugeVec
	drift       *prometheus.GaugeVec
}

// NewMetrics registers the job metrics on reg. Their label is warmcache_job, not job: job is the
// label Prometheus gives every series of a target, which a metric's own would collide with.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warmcache_job_runs_total",
			Help: "jobs.Job runs by warmcache_job and result (success or failure).",
		}, []string{"warmcache_job", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "warmcache_job_duration_seconds",
			Help: "Duration of job runs.",
			// 5 ms to the longest timeout, written out: computed buckets carry float noise
			// (0.015000000000000001) into every series name a dashboard shows.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"warmcache_job"}),
		keys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warmcache_job_keys_written_total",
			Help: "Keys written to Redis by job runs.",
		}, []string{"warmcache_job"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warmcache_job_last_success_timestamp_seconds",
			Help: "Unix time of the start of the last successful run of each job.",
		}, []string{"warmcache_job"}),
		interval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warmcache_job_interval_seconds",
			Help: "The longest gap between two scheduled runs of each enabled job: a job whose last success is older than twice this has stopped refreshing.",
		}, []string{"warmcache_job"}),
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warmcache_incremental_drift",
			Help: "Values of an incremental job whose maintained figures differed from the full computation at its last run (0: none).",
		}, []string{"warmcache_job"}),
	}
	reg.MustRegister(m.runs, m.duration, m.keys, m.lastSuccess, m.interval, m.drift)
	return m
}

// Declare publishes the jobs' intervals and starts their counters at zero: a counter that
// appears only at its first failure shows no increase to rate() or increase(), and an alert on
// failures would miss it.
func (m *Metrics) Declare(list []jobs.Job, now time.Time) {
	for _, job := range list {
		if !job.Enabled {
			continue
		}
		m.interval.WithLabelValues(job.Name).Set(job.Schedule.MaxInterval(now).Seconds())
		m.runs.WithLabelValues(job.Name, "success")
		m.runs.WithLabelValues(job.Name, "failure")
		m.keys.WithLabelValues(job.Name)
	}
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
