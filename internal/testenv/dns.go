package testenv

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNS is a DNS server in the test process, on a loopback UDP port, that resolves one name to
// 127.0.0.1. Down stops it answering, as a DNS server that is down or cut off: a lookup then
// waits until its resolver gives up.
type DNS struct {
	name dnsmessage.Name
	conn net.PacketConn
	down atomic.Bool
}

// StartDNS starts a DNS server that resolves host (such as "redis.warmcache.test") to
// 127.0.0.1, and stops it when the test ends.
func StartDNS(t testing.TB, host string) *DNS {
	t.Helper()
	name, err := dnsmessage.NewName(strings.TrimSuffix(host, ".") + ".")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := new(net.ListenConfig).ListenPacket(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &DNS{name: name, conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.serve()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return d
}

// Resolver returns a resolver that asks this server alone.
func (d *DNS) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, "udp", d.conn.LocalAddr().String())
	}}
}

// Down makes the server stop answering; Up makes it answer again.
func (d *DNS) Down() { d.down.Store(true) }

// Up makes the server answer again.
func (d *DNS) Up() { d.down.Store(false) }

func (d *DNS) serve() {
	buf := make([]byte, 512)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || d.down.Load() {
			continue
		}
		if answer, err := d.answer(buf[:n]); err == nil {
			d.conn.WriteTo(answer, from) //nolint:errcheck // the client asks again
		}
	}
}

// answer answers a query: 127.0.0.1 for an A record of the name, no record for its other types,
// and no such name for any other name.
func (d *DNS) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	h.Response, h.Authoritative, h.RecursionAvailable = true, true, true
	if !strings.EqualFold(q.Name.String(), d.name.String()) {
		h.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if h.RCode == dnsmessage.RCodeSuccess && q.Type == dnsmessage.TypeA {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 1}
		if err := b.AResource(rh, dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
