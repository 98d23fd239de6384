package readthrough

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/warmcache/warmcache/cache"
)

type metrics struct {
	// memoryHits and redisHits split the hits by the tier that answered them.
	memoryHits, redisHits prometheus.Counter
	fallbacks             *prometheus.CounterVec
	breaker               *prometheus.GaugeVec
	breakerOpens          *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		// warmcache_job, not job: Prometheus's own target label is job.
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warmcache_fallback_queries_total",
			Help: "Values computed from PostgreSQL by the api, by warmcache_job and reason (miss, refresh, bypass).",
		}, []string{"warmcache_job", "reason"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warmcache_circuit_breaker_open",
			Help: "1 while the circuit breaker in front of a dependency (redis, postgresql) is open.",
		}, []string{"dependency"}),
		breakerOpens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warmcache_circuit_breaker_opens_total",
			Help: "Times the circuit breaker in front of a dependency opened, a failed probe reopening it included.",
		}, []string{"dependency"}),
	}
	hits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warmcache_cache_hits_total",
		Help: "Cached reads served fresh, by tier: memory (the api's in-process tier) or redis.",
	}, []string{"tier"})
	m.memoryHits, m.redisHits = hits.WithLabelValues("memory"), hits.WithLabelValues("redis")
	reg.MustRegister(m.fallbacks, m.breaker, m.breakerOpens, hits)
	return m
}

// breakerSettings opens a dependency's breaker after five failures in a row (or, over the last
// ten seconds, mostly failures among at least twenty), fails fast for two seconds, then lets a
// few requests probe it. The ten seconds roll by the second: with a window that restarts every
// ten seconds, failures on both sides of a restart would never add up to five in a row. Errors
// in ok are answers, not failures; a cancelled request says nothing about the dependency.
func (r *Reader[A]) breakerSettings(name string, unavailable error, ok ...error) gobreaker.Settings {
	return gobreaker.Settings{
		Name:         name,
		MaxRequests:  3,
		Interval:     10 * time.Second,
		BucketPeriod: time.Second,
		Timeout:      2 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= 5 || c.Requests >= 20 && c.TotalFailures*2 > c.Requests
		},
		IsSuccessful: func(err error) bool {
			if err == nil {
				return true
			}
			for _, e := range ok {
				if errors.Is(err, e) {
					return true
				}
			}
			return !errors.Is(err, unavailable) && !errors.Is(err, context.DeadlineExceeded)
		},
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			r.Logger.Warn("circuit_breaker", "dependency", name, "from", from.String(), "to", to.String())
			open := 0.0
			if to == gobreaker.StateOpen {
				open = 1
				r.metrics.breakerOpens.WithLabelValues(name).Inc()
			}
			r.metrics.breaker.WithLabelValues(name).Set(open)
		},
	}
}

// watchLog logs the tier's subscriptions as they come and go.
type watchLog struct {
	cache.Watcher
	logger *slog.Logger
}

func (w watchLog) Subscribed() {
	w.logger.Info("local_cache_watching")
	w.Watcher.Subscribed()
}

func (w watchLog) Lost(err error) {
	w.logger.Warn("local_cache_off", "reason", "lost the subscription to changes", "error", err)
	w.Watcher.Lost(err)
}
