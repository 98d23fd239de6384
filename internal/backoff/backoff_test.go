package backoff

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestWait drives Wait on synctest's fake clock: how long it waits, and what it returns, for a
// dependency down all along, down then back, up all along, up with a moment down, and a process
// that stops.
func TestWait(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		up    func(elapsed time.Duration) bool // the dependency, by the time since Wait began
		stop  time.Duration                    // when stop is closed; 0 for never
		want  bool
		waits time.Duration
	}{
		{"down all along", func(time.Duration) bool { return false }, 0, true, 5 * time.Second},
		{"back after a second", func(e time.Duration) bool { return e >= time.Second }, 0, true, time.Second},
		{"up all along", func(time.Duration) bool { return true }, 0, true, 5 * time.Second},
		// Up when the wait began: the work failed with the dependency answering, as when its
		// replies are cut half-way, and a probe failing later on does not shorten the backoff.
		{"up, then down a moment", func(e time.Duration) bool { return e < 300*time.Millisecond || e > 500*time.Millisecond },
			0, true, 5 * time.Second},
		{"stopped meanwhile", func(time.Duration) bool { return false }, 2 * time.Second, false, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				began := time.Now()
				stop := make(chan struct{})
				if tc.stop > 0 {
					time.AfterFunc(tc.stop, func() { close(stop) })
				}
				got := Wait(t.Context(), stop, 5*time.Second, func(context.Context) bool { return tc.up(time.Since(began)) })
				if waited := time.Since(began); got != tc.want || waited != tc.waits {
					t.Errorf("Wait returned %v after %s, want %v after %s", got, waited, tc.want, tc.waits)
				}
			})
		})
	}
}
