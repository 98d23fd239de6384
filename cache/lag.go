package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/warmcache/warmcache/internal/recent"
)

// LagWindow is what one warmer measured of invalidation lag over a window of time: the time
// from each event's publication to its keys being written, as a histogram. Each warmer records
// one window every ten seconds or so, events or none, so that a window's absence says that no
// warmer handles events.
type LagWindow struct {
	Warmer string           `json:"warmer"`
	Start  time.Time        `json:"start"`
	End    time.Time        `json:"end"`
	Lag    recent.Histogram `json:"lag_seconds"`
}

// lagWindows is how many windows Redis keeps, of every warmer together: five minutes of ten
// seconds windows for four warmers.
const lagWindows = 120

// RecordLag adds w to the namespace's lag windows, which keep the last few minutes'.
func (s *Store) RecordLag(ctx context.Context, w LagWindow) error {
	b, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("encode lag window: %w", err)
	}
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	key := s.keys.Lag()
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, key, b)
		p.LTrim(ctx, key, 0, lagWindows-1)
		// Windows older than their readers look at go with the key when no warmer records.
		p.Expire(ctx, key, time.Hour)
		return nil
	})
	return s.failure(ctx, err)
}

// LagWindows returns the lag windows the warmers recorded lately, newest first.
func (s *Store) LagWindows(ctx context.Context) ([]LagWindow, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	raw, err := s.rdb.LRange(ctx, s.keys.Lag(), 0, -1).Result()
	if err != nil {
		return nil, s.failure(ctx, err)
	}
	windows := make([]LagWindow, 0, len(raw))
	for _, b := range raw {
		var w LagWindow
		if err := json.Unmarshal([]byte(b), &w); err != nil {
			return nil, fmt.Errorf("decode lag window: %w", err)
		}
		windows = append(windows, w)
	}
	return windows, nil
}
