package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// logLines collects a warmer's JSON log lines (its stderr), for a test to wait on events.
type logLines struct {
	mu      sync.Mutex
	partial []byte
	lines   []map[string]any
	raw     strings.Builder
	changed chan struct{} // closed and replaced at each new line
}

func newLogLines() *logLines { return &logLines{changed: make(chan struct{})} }

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.raw.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		var line map[string]any
		if json.Unmarshal(l.partial[:i], &line) == nil {
			l.lines = append(l.lines, line)
		}
		l.partial = l.partial[i+1:]
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// event matches a log line by its message and, optionally, attributes.
type event struct {
	msg   string
	attrs map[string]string
}

func (e event) matches(line map[string]any) bool {
	if line["msg"] != e.msg {
		return false
	}
	for k, v := range e.attrs {
		if s, _ := line[k].(string); s != v {
			return false
		}
	}
	return true
}

// count returns how many lines match e.
func (l *logLines) count(e event) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if e.matches(line) {
			n++
		}
	}
	return n
}

// await waits until n lines match e, and returns the n-th; it fails the test after within.
func (l *logLines) await(t *testing.T, e event, n int, within time.Duration) map[string]any {
	t.Helper()
	deadline := time.After(within)
	for {
		l.mu.Lock()
		seen := 0
		for _, line := range l.lines {
			if e.matches(line) {
				if seen++; seen == n {
					l.mu.Unlock()
					return line
				}
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no %d× %s %v within %s; log:\n%s", n, e.msg, e.attrs, within, l.String())
		}
	}
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}
