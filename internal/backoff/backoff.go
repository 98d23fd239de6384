// Package backoff waits between the attempts of work that failed because PostgreSQL or Redis did
// not answer: for the attempt's backoff, but no longer than until they answer again, and not at
// all once the process stops.
package backoff

import (
	"context"
	"time"
)

// ProbeInterval is how often a wait asks whether the dependencies answer again.
const ProbeInterval = 100 * time.Millisecond

// ProbeTimeout bounds one asking: a new connection on a loaded machine may take longer than
// ProbeInterval, and a probe that times out must not be taken for a dependency that is down.
const ProbeTimeout = time.Second

// Wait waits d before the next attempt. It asks probe at once whether the dependencies answer:
// when they do not (a server stopped, restarting, unreachable), the wait ends early as soon as
// probe, asked every ProbeInterval, finds them answering again: there is no point in waiting
// once they are back (a Redis restarted while writes were waiting must get them within the
// second). When they answer at once, the work failed with the dependencies up (out of
// connections, replies cut half-way): the wait lasts the whole backoff, whatever later probes
// say, so that a server failing that way is not hit sooner. Wait returns false when ctx ends or
// stop is closed first: a retry is not work in flight, and a process stopping does not wait for
// it.
func Wait(ctx context.Context, stop <-chan struct{}, d time.Duration, probe func(context.Context) bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	var ticks <-chan time.Time
	if !answers(ctx, probe) {
		ticker := time.NewTicker(ProbeInterval)
		defer ticker.Stop()
		ticks = ticker.C
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		case <-timer.C:
			return true
		case <-ticks:
			if answers(ctx, probe) {
				return true
			}
		}
	}
}

// answers asks probe once, within ProbeTimeout.
func answers(ctx context.Context, probe func(context.Context) bool) bool {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	return probe(ctx)
}

// Answering returns a probe, for Wait, that reports whether every one of pings succeeds: the
// Probe of each dependency the work needs, which asks over a connection of its own so that the
// state of a pool's connections does not decide it.
func Answering(pings ...func(context.Context) error) func(context.Context) bool {
	return func(ctx context.Context) bool {
		for _, ping := range pings {
			if ping(ctx) != nil {
				return false
			}
		}
		return true
	}
}
