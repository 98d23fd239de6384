package cache

import (
	"context"
)

// Wake tells the warmers' relays of the namespace that the outbox has new rows, so they drain it
// at once rather than at their next poll. The api calls it after its writes commit, which spare
// themselves PostgreSQL's notification (query.Options.QuietWrites).
func (s *Store) Wake(ctx context.Context) error {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	return s.failure(ctx, s.rdb.Publish(ctx, s.keys.Wake(), "").Err())
}

// Wakes returns a channel that receives a value after Wake is called in the namespace (several
// calls may come as one), until ctx ends, and each time the subscription starts: go-redis renews
// a subscription it loses, and the calls made meanwhile were missed (writes made while Redis was
// down, say), so the relay drains at once rather than at its next poll.
func (s *Store) Wakes(ctx context.Context) <-chan struct{} {
	sub := s.rdb.Subscribe(ctx, s.keys.Wake())
	wakes := make(chan struct{}, 1)
	go func() {
		defer sub.Close()
		messages := sub.ChannelWithSubscriptions() // a message, or a (re)subscription
		for {
			select {
			case <-ctx.Done():
				return
			case <-messages:
				select {
				case wakes <- struct{}{}:
				default: // one pending wake-up is enough
				}
			}
		}
	}()
	return wakes
}
