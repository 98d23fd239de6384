package invalidate

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
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
// callers: keys wait in a queue, and when a change does not fit (a run that changed most keys of
// a job) its whole job is purged instead; a purge that fails is retried, then counted.
type Purger struct {
	*baseservice.Archetype
	cfg     PurgeConfig
	keys    cache.Keys
	client  *http.Client
	queue   chan string
	retries []time.Duration
	metrics purgeMetrics

	mu      sync.Mutex
	whole   map[string]bool // jobs to purge whole: changes of theirs did not fit the queue
	wake    chan struct{}   // told when a job is added to whole
	repeats []repeat        // purges sent, to send again (repeatPurges)
}

// repeat is a batch of keys purged first at sent, to be purged again after repeatPurges[next].
type repeat struct {
	keys []string
	sent time.Time
	next int
}

// repeatPurges are the pauses after which a purge is sent again. An api replica's in-process
// tier drops a changed value some milliseconds after Redis holds the new one, when it hears of
// the change; a shared cache purged meanwhile may fetch the old value from the replica and keep
// it. Purged again, once every replica has surely heard, it fetches the new value.
var repeatPurges = []time.Duration{100 * time.Millisecond, time.Second}

// repeatTick is how often Run looks for purges due again.
const repeatTick = 20 * time.Millisecond

type purgeMetrics struct {
	requests  *prometheus.CounterVec
	keys      prometheus.Counter
	overflows prometheus.Counter
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
		whole:     map[string]bool{},
		wake:      make(chan struct{}, 1),
		retries:   []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second},
		metrics: purgeMetrics{
			requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "warmcache_purge_requests_total",
				Help: "Purge requests sent to downstream HTTP caches, by result: ok, retried (failed, to be tried again), failed (given up)."},
				[]string{"result"}),
			keys: prometheus.NewCounter(prometheus.CounterOpts{Name: "warmcache_purge_keys_total",
				Help: "Surrogate keys purged from downstream HTTP caches."}),
			overflows: prometheus.NewCounter(prometheus.CounterOpts{Name: "warmcache_purge_overflows_total",
				Help: "Surrogate keys that did not fit the queue of purges: their whole job was purged instead."}),
		},
	}
	reg.MustRegister(p.metrics.requests, p.metrics.keys, p.metrics.overflows)
	return p
}

// Invalidated queues the purge of an invalidation: the surrogate keys of its values, or of its
// whole job for an invalidation of every key and for the keys that do not fit the queue. It is the
// cache.Options.Invalidated of the warmer's store.
func (p *Purger) Invalidated(c cache.Invalidation) {
	if c.All {
		p.purgeWhole(c.Job)
	}
	for _, k := range c.Keys {
		select {
		case p.queue <- p.keys.Surrogate(c.Job, k):
		default:
			p.metrics.overflows.Inc()
			p.purgeWhole(c.Job)
		}
	}
}

// purgeWhole has the next batch purge job's every value.
func (p *Purger) purgeWhole(job string) {
	p.mu.Lock()
	p.whole[job] = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run purges what is queued until ctx ends, a batch at a time: whatever queued while the last
// batch was sent goes in the next request. Each batch is purged again after each pause of
// repeatPurges.
func (p *Purger) Run(ctx context.Context) {
	tick := time.NewTicker(repeatTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-p.queue:
			p.send(ctx, p.batch(k))
		case <-p.wake:
			p.send(ctx, p.batch(""))
		case <-tick.C:
			p.sendAgain(ctx)
		}
	}
}

// Drain purges what is queued now, and again after the pauses of repeatPurges, and returns: for
// a warmer about to exit (warmer --once).
func (p *Purger) Drain(ctx context.Context) {
	for batch := p.batch(""); len(batch) > 0; batch = p.batch("") {
		p.send(ctx, batch)
	}
	for p.sendAgain(ctx) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(repeatTick):
		}
	}
}

// batch returns the whole jobs to purge, first (unless empty) and what else is queued, up to
// purgeBatch keys.
func (p *Purger) batch(first string) []string {
	var batch []string
	p.mu.Lock()
	for job := range p.whole {
		batch = append(batch, p.keys.Surrogate(job, ""))
	}
	clear(p.whole)
	p.mu.Unlock()
	if first != "" {
		batch = append(batch, first)
	}
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

// send purges a batch of keys from every cache, and has it purged again later.
func (p *Purger) send(ctx context.Context, batch []string) {
	if len(batch) == 0 {
		return
	}
	p.purgeAll(ctx, batch)
	p.mu.Lock()
	p.repeats = append(p.repeats, repeat{keys: batch, sent: p.Time.Now()})
	p.mu.Unlock()
}

// sendAgain purges again the batches due, and reports whether any batch is still to be.
func (p *Purger) sendAgain(ctx context.Context) bool {
	now := p.Time.Now()
	var due []repeat
	p.mu.Lock()
	kept := p.repeats[:0]
	for _, r := range p.repeats {
		switch {
		case now.Sub(r.sent) < repeatPurges[r.next]:
			kept = append(kept, r)
		case r.next+1 < len(repeatPurges):
			due = append(due, r)
			kept = append(kept, repeat{keys: r.keys, sent: r.sent, next: r.next + 1})
		default:
			due = append(due, r)
		}
	}
	p.repeats = kept
	pending := len(kept) > 0
	p.mu.Unlock()
	for _, r := range due {
		p.purgeAll(ctx, r.keys)
	}
	return pending
}

// purgeAll purges a batch of keys from every cache.
func (p *Purger) purgeAll(ctx context.Context, batch []string) {
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
