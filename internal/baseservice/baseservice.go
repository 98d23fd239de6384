// Package baseservice holds what every long-lived part of warmcache is built with: the logger and
// the clock. A binary makes one Archetype and hands it to each service it wires, as river does;
// a test stubs the one clock and every service in it sees the same time.
package baseservice

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Archetype is the logger and the clock a service reads.
type Archetype struct {
	Logger *slog.Logger
	Time   *Clock
}

// NewArchetype returns an archetype logging to logger on the real clock.
func NewArchetype(logger *slog.Logger) *Archetype {
	return &Archetype{Logger: logger, Time: &Clock{}}
}

// Clock tells the time: the real time, or the time a test stubbed. Only TTL, age and schedule
// arithmetic reads it; timeouts and backoff waits run on the real clock.
type Clock struct {
	stub atomic.Pointer[time.Time]
}

// Now returns the stubbed time if there is one, else the current time.
func (c *Clock) Now() time.Time {
	if t := c.stub.Load(); t != nil {
		return *t
	}
	return time.Now()
}

// Stub makes Now return t until it is stubbed again.
func (c *Clock) Stub(t time.Time) { c.stub.Store(&t) }

// Advance moves a stubbed clock on by d.
func (c *Clock) Advance(d time.Duration) { c.Stub(c.Now().Add(d)) }
