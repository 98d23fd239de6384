package invalidate

import (
	"context"
	"time"

	"github.com/warmcache/warmcache/query"
)

// Progress is what Settle needs of Redis (cache.Store): where the stream ends, and whether the
// warmers' group has handled it that far.
type Progress interface {
	StreamEnd(ctx context.Context) (string, error)
	Handled(ctx context.Context, group, upTo string) (bool, error)
}

// settlePoll is how often Settle looks again.
const settlePoll = 50 * time.Millisecond

// Settle returns how the check of the maintained totals waits for the changes in flight
// (query.Settle), in a warmer whose changes reach the warmers' group by this package: until
// every change committed before the moment is captured (query.DB.Captured; logical when the slot
// carries them), and the group has then handled every event on the stream. A refresher books
// an event's changes before it acknowledges it. A pipeline lagging by seconds under heavy
// writes so no longer looks like drift. It waits limit at most, and then reports the changes
// unsettled: a pipeline further behind has alarms of its own (the outbox's backlog, the slot's
// lag, the invalidation lag).
func Settle(db *query.DB, store Progress, logical bool, limit time.Duration) query.Settle {
	return func(outer context.Context, before query.Moment) (bool, error) {
		ctx, cancel := context.WithTimeout(outer, limit)
		defer cancel()
		tick := time.NewTicker(settlePoll)
		defer tick.Stop()
		end := ""
		for {
			// Errors are looked past: PostgreSQL or Redis down leaves the bound to end the wait.
			if end == "" {
				if captured, err := db.Captured(ctx, before, logical); err == nil && captured {
					if last, err := store.StreamEnd(ctx); err == nil {
						end = last
					}
				}
			}
			if end != "" {
				if handled, err := store.Handled(ctx, group, end); err == nil && handled {
					return true, nil
				}
			}
			select {
			case <-ctx.Done():
				return false, outer.Err() // no error when the bound ended the wait
			case <-tick.C:
			}
		}
	}
}
