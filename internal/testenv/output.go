package testenv

import (
	"bytes"
	"regexp"
	"sync"
	"testing"
	"time"
)

// Output is what a process run in a test writes (its log): safe to read while it writes, and
// able to wait for a line.
type Output struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{}
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.notify != nil {
		close(o.notify)
		o.notify = nil
	}
	return o.buf.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Changed returns a channel closed at the next write.
func (o *Output) Changed() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.notify == nil {
		o.notify = make(chan struct{})
	}
	return o.notify
}

// WaitFor waits until what is written matches re, and returns the match and its groups. It
// fails the test when exited is closed first (the process ended) or after timeout.
func (o *Output) WaitFor(t testing.TB, re *regexp.Regexp, exited <-chan struct{}, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		changed := o.Changed()
		if m := re.FindStringSubmatch(o.String()); m != nil {
			return m
		}
		select {
		case <-exited:
			t.Fatalf("the process ended before writing %s; it wrote:\n%s", re, o.String())
		case <-deadline:
			t.Fatalf("nothing matched %s within %s; the process wrote:\n%s", re, timeout, o.String())
		case <-changed:
		}
	}
}
