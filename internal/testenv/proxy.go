package testenv

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
)

// Proxy is a toxiproxy TCP proxy running in the test process between the code under test and a
// server. Down cuts every connection and refuses new ones, as a crashed server would, without
// disturbing the other tests that share the server.
type Proxy struct {
	proxy *toxiproxy.Proxy
	t     testing.TB
}

// NewProxy starts a proxy to upstream (host:port) on a free loopback port.
func NewProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	p := &Proxy{proxy: toxiproxy.NewProxy(srv, t.Name(), "127.0.0.1:0", upstream), t: t}
	if err := p.proxy.Start(); err != nil {
		t.Fatalf("testenv: start proxy to %s: %v", upstream, err)
	}
	t.Cleanup(p.proxy.Stop)
	return p
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.proxy.Listen }

// Down cuts the connections through the proxy and refuses new ones.
func (p *Proxy) Down() { p.proxy.Stop() }

// Up accepts connections again, on the same address.
func (p *Proxy) Up() {
	p.t.Helper()
	if err := p.proxy.Start(); err != nil {
		p.t.Fatalf("testenv: restart proxy: %v", err)
	}
}

// Hang lets connections open but stops every byte from the server, as a hung server would.
func (p *Proxy) Hang() {
	p.t.Helper()
	p.addToxic(`{"name": "hang", "type": "timeout", "stream": "downstream", "attributes": {"timeout": 0}}`)
}

// Delay holds every byte from the server for d before passing it on, as a slow network would.
func (p *Proxy) Delay(d time.Duration) {
	p.t.Helper()
	p.addToxic(fmt.Sprintf(`{"name": "delay", "type": "latency", "stream": "downstream", "attributes": {"latency": %d}}`, d.Milliseconds()))
}

// Reset resets every connection (TCP RST) as soon as it sends a byte, as a server or a
// middlebox dropping connections would; Heal removes it.
func (p *Proxy) Reset() {
	p.addToxic(`{"name": "fault", "type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 0}}`)
}

// Cut closes each connection once the server has sent n bytes through it, in the middle of a
// reply; Heal removes it.
func (p *Proxy) Cut(n int) {
	p.addToxic(fmt.Sprintf(`{"name": "fault", "type": "limit_data", "stream": "downstream", "attributes": {"bytes": %d}}`, n))
}

// Heal removes the fault Reset or Cut put in.
func (p *Proxy) Heal() {
	p.t.Helper()
	p.removeToxic("fault")
}

// addToxic puts in the toxic described by JSON.
func (p *Proxy) addToxic(toxic string) {
	p.t.Helper()
	if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
		p.t.Fatalf("testenv: proxy: add %s: %v", toxic, err)
	}
}

// removeToxic removes the toxic called name.
func (p *Proxy) removeToxic(name string) {
	p.t.Helper()
	if err := p.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		p.t.Fatalf("testenv: proxy: remove toxic %s: %v", name, err)
	}
}

// Undelay removes the delay Delay put in.
func (p *Proxy) Undelay() {
	p.t.Helper()
	p.removeToxic("delay")
}

// Unhang lets bytes flow again. Connections that hung stay broken; new ones work.
func (p *Proxy) Unhang() {
	p.t.Helper()
	p.removeToxic("hang")
}

// Slow limits what the server sends through the proxy to rate KB/s, so that a long result
// takes long enough for a test to cut it off half-way.
func (p *Proxy) Slow(rate int) {
	p.t.Helper()
	p.addToxic(fmt.Sprintf(`{"name": "slow", "type": "bandwidth", "stream": "downstream", "attributes": {"rate": %d}}`, rate))
}

// Fast lifts the limit Slow set.
func (p *Proxy) Fast() {
	p.t.Helper()
	p.removeToxic("slow")
}

// Through returns rawURL with its host:port replaced by the proxy's.
func (p *Proxy) Through(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		p.t.Fatalf("testenv: %v", err)
	}
	u.Host = p.Addr()
	return u.String()
}

// HostPort returns the host:port of rawURL.
func HostPort(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return u.Host
}
