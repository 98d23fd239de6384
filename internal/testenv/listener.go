package testenv

import (
	"net"
	"sync/atomic"
	"testing"
)

// Listener is a TCP listener on 127.0.0.1 that accepts connections, counts them and closes
// them: a server address for a test that must prove nothing connects to it.
type Listener struct {
	ln       net.Listener
	accepted atomic.Int64
}

// NewListener starts a Listener, closed when the test ends.
func NewListener(t testing.TB) *Listener {
	t.Helper()
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return l
}

// Addr is the listener's host:port.
func (l *Listener) Addr() string { return l.ln.Addr().String() }

// Accepted is how many connections it accepted.
func (l *Listener) Accepted() int64 { return l.accepted.Load() }
