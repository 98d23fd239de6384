// Package backoff waits between the attempts of work that failed because PostgreSQL or Redis did
// not answer: for the attempt's backoff, but no longer than until they answer again, and not at
// all once the process stops.
package backoff

import (
	"context"
	"time"
)

// ProbeInterval is how often a wait asks whether the dependencies answer again, and how long
// each asking may take.
const ProbeInterval = 100 * time.Millisecond

// Wait waits d before the next attempt. It returns true early as soon as probe, asked every
// ProbeInterval, reports the dependencies answering after it found them not answering: the
// backoff spares a dependency that is down, and there is no point in waiting once it is back
// (a Redis restarted while writes were waiting must get them within the second). A dependency
// that answers all along but fails the work (out of connections, say) is waited for the whole
// backoff. Wait returns false when ctx ends or stop is closed first: a retry is not work in
// flight, and a process stopping does not wait for it.
func Wait(ctx context.Context, stop <-chan struct{}, d time.Duration, probe func(context.Context) bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	ticker := time.NewTicker(ProbeInterval)
	defer ticker.Stop()
	down := false
	for {
		select {
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		case <-timer.C:
			return true
		case <-ticker.C:
			probeCtx, cancel := context.WithTimeout(ctx, ProbeInterval)
			up := probe(probeCtx)
			cancel()
			if up && down {
				return true
			}
			down = down || !up
		}
	}
}

// Answering returns a probe, for Wait, that reports whether every one of pings succeeds: the
// Ping of each dependency the work needs.
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
