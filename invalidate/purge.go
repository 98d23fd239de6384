package invalidate

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
)

// PurgeConfig says how downstream HTTP caches are told to drop a value: a request with Method to
// each of URLs, carrying the surrogate keys (cache.Keys.Surrogate) in the header KeyHeader,
// separated by spaces, and Headers besides (a CDN API's token). The defaults fit the Varnish
// VCL of deploy/varnish: PURGE with xkey-purge.
type PurgeConfig struct {
	URLs      []string
	Method    string
	KeyHeader string
	Headers   map[string]string
}

// Purger purges downstream HTTP caches of the values the warmer changed. It never blocks its
// callers: keys wait in a queue (those that do not fit are counted and dropped, their caches
// keeping them for s-maxage at most), and a purge that fails is retried, then counted.
type Purger struct {
	*baseservice.Archetype
	cfg     PurgeConfig
	keys    cache.Keys
	client  *http.Client
	queue   chan string
	retries []time.Duration
	metrics purgeMetrics
}

type purgeMetrics struct {
	requests *prometheus.CounterVec
	keys     prometheus.Counter
	dropped  prometheus.Counter
}

// purgeBatch is the most surrogate keys one purge request carries.
const purgeBatch = 100

// NewPurger returns a purger of the caches of cfg; reg receives its metrics.
func NewPurger(arch *baseservice.Archetype, cfg PurgeConfig, keys cache.Keys, reg prometheus.Registerer) *Purger {
	p := &Purger{
		Archetype: arch,
		cfg:       cfg,
		keys:      keys,
		client:    &http.Client{Timeout: 2 * time.Second},
		queue:     make(chan string, 10000),
		retries:   []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second},
		metrics: purgeMetrics{
			requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warmcache_purge_requests_total",
				Help: "Purge requests sent to downstream HTTP caches, by result: ok, retried (failed, to be tried again), failed (given up)."},
				[]string{"result"}),
			keys: prometheus.NewCounter(prometheus.CounterOpts{Name: "warmcache_purge_keys_total",
				Help: "Surrogate keys purged from downstream HTTP caches."}),
			dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "warmcache_purge_dropped_total",
				Help: "Surrogate keys not purged because the queue of purges was full."}),
		},
	}
	reg.MustRegister(p.metrics.requests, p.metrics.keys, p.metrics.dropped)
	return p
}

// Changed queues the purge of a change: the surrogate keys of its values, or of its whole job.
// It is the cache.Options.Changed of the warmer's store.
func (p *Purger) Changed(c cache.Change) {
	keys := c.Keys
	if c.All {
		keys = []string{""}
	}
	for _, k := range keys {
		select {
		case p.queue <- p.keys.Surrogate(c.Job, k):
		default:
			p.metrics.dropped.Inc()
		}
	}
}

// Run purges what is queued until ctx ends, a batch at a time: whatever queued while the last
// batch was sent goes in the next request.
func (p *Purger) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-p.queue:
			p.send(ctx, p.batch(k))
		}
	}
}

// Drain purges what is queued now and returns, for a warmer about to exit (warmer --once).
func (p *Purger) Drain(ctx context.Context) {
	for {
		select {
		case k := <-p.queue:
			p.send(ctx, p.batch(k))
		default:
			return
		}
	}
}

// batch returns first and what else is queued, up to purgeBatch keys.
func (p *Purger) batch(first string) []string {
	batch := []string{first}
	for len(batch) < purgeBatch {
		select {
		case k := <-p.queue:
			batch = append(batch, k)
		default:
			return batch
		}
	}
	return batch
}

// send purges a batch of keys from every cache.
func (p *Purger) send(ctx context.Context, batch []string) {
	for _, u := range p.cfg.URLs {
		p.purge(ctx, u, strings.Join(batch, " "))
	}
	p.metrics.keys.Add(float64(len(batch)))
}

// purge sends one purge to u, trying again after each pause of p.retries while it fails.
func (p *Purger) purge(ctx context.Context, u, keys string) {
	for attempt := 0; ; attempt++ {
		err := p.request(ctx, u, keys)
		if err == nil {
			p.metrics.requests.WithLabelValues("ok").Inc()
			return
		}
		if attempt == len(p.retries) || ctx.Err() != nil {
			p.metrics.requests.WithLabelValues("failed").Inc()
			p.Logger.Warn("purge_failed", "url", u, "keys", keys, "error", err)
			return
		}
		p.metrics.requests.WithLabelValues("retried").Inc()
		select {
		case <-ctx.Done():
		case <-time.After(p.retries[attempt]):
		}
	}
}

// request sends one purge request of keys to u.
func (p *Purger) request(ctx context.Context, u, keys string) error {
	req, err := http.NewRequestWithContext(ctx, p.cfg.Method, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set(p.cfg.KeyHeader, keys)
	for name, v := range p.cfg.Headers {
		req.Header.Set(name, v)
	}
	res, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) //nolint:errcheck // draining for reuse
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s", p.cfg.Method, u, res.Status)
	}
	return nil
}
