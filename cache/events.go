package cache

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/warmcache/warmcache/query"
)

// The namespace's Redis stream carries the changes of the outbox (query.Change), so that every
// warmer (and any other consumer) sees them.

// Delivery is a change read from the stream, with the id of its stream entry, which Ack takes.
type Delivery struct {
	StreamID string
	Change   query.Change
}

// columnField prefixes a recorded column's name in a stream entry of a change alone (as warmers
// before ChangesPerEvent wrote them), keeping it apart from the event's own fields whatever the
// column is called.
const columnField = "col:"

// streamLength bounds the stream. Entries are acknowledged within milliseconds; a longer backlog
// means no warmer has been reading for a long time, and the scheduled runs then refresh
// everything anyway.
const streamLength = 1_000_000

// ChangesPerEvent is the most changes one entry of the stream carries: a burst of writes costs
// Redis and the warmers an entry per hundred changes, not one per change.
const ChangesPerEvent = 100

// event is how a change is written in an entry's changes field, as JSON.
type event struct {
	ID        int64             `json:"i,omitempty"`
	Table     string            `json:"t"`
	Columns   map[string]string `json:"c,omitempty"`
	Truncated bool              `json:"x,omitempty"`
	Position  int64             `json:"p"`
}

// Publish appends changes to the stream, up to ChangesPerEvent an entry, in one round trip.
func (s *Store) Publish(ctx context.Context, changes []query.Change) error {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for chunk := range slices.Chunk(changes, ChangesPerEvent) {
			events := make([]event, len(chunk))
			for i, c := range chunk {
				events[i] = event{ID: c.ID, Table: c.Table, Columns: c.Columns, Truncated: c.Truncated, Position: c.Position}
			}
			b, err := json.Marshal(events)
			if err != nil {
				return err
			}
			p.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.Events(), MaxLen: streamLength, Approx: true, Values: []any{"changes", b}})
		}
		return nil
	})
	return s.failure(ctx, err)
}

// Consume reads up to count entries (of up to ChangesPerEvent changes each) for consumer of group, waiting up to block for some (not at
// all when block is 0: unlike Redis's BLOCK 0, never forever). It first takes over events another
// consumer read but has not acknowledged for idle (a consumer that died), then reads new ones.
// The group is created, at the stream's start, if missing.
func (s *Store) Consume(ctx context.Context, group, consumer string, count int, block, idle time.Duration) ([]Delivery, error) {
	// The read may wait for block, then has the store's time to answer.
	ctx, cancel := context.WithTimeoutCause(ctx, max(block, 0)+s.timeout, errTimedOut)
	defer cancel()
	if block <= 0 {
		block = -1 // go-redis leaves BLOCK out
	}
	stream := s.keys.Events()
	claimed, _, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: stream, Group: group, Consumer: consumer,
		MinIdle: idle, Start: "0-0", Count: int64(count)}).Result()
	if isNoGroup(err) {
		if err := s.rdb.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return nil, s.failure(ctx, err)
		}
		claimed, err = nil, nil
	}
	if err != nil {
		return nil, s.failure(ctx, err)
	}
	if len(claimed) > 0 {
		return decodeDeliveries(claimed), nil
	}
	streams, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: consumer,
		Streams: []string{stream, ">"}, Count: int64(count), Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, s.failure(ctx, err)
	}
	var deliveries []Delivery
	for _, st := range streams {
		deliveries = append(deliveries, decodeDeliveries(st.Messages)...)
	}
	return deliveries, nil
}

// Ack acknowledges the deliveries group has handled: their entries, whole.
func (s *Store) Ack(ctx context.Context, group string, deliveries []Delivery) error {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	if len(deliveries) == 0 {
		return nil
	}
	ids := make([]string, 0, len(deliveries))
	for _, d := range deliveries {
		if len(ids) == 0 || ids[len(ids)-1] != d.StreamID { // an entry's changes come together
			ids = append(ids, d.StreamID)
		}
	}
	return s.failure(ctx, s.rdb.XAck(ctx, s.keys.Events(), group, ids...).Err())
}

// StreamEnd returns the id of the stream's last entry, "0-0" when it has none.
func (s *Store) StreamEnd(ctx context.Context) (string, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	last, err := s.rdb.XRevRangeN(ctx, s.keys.Events(), "+", "-", 1).Result()
	if err != nil {
		return "", s.failure(ctx, err)
	}
	if len(last) == 0 {
		return "0-0", nil
	}
	return last[0].ID, nil
}

// handledScript reports whether group (ARGV[1]) has acknowledged every entry of the stream
// KEYS[1] up to id ARGV[2]: read past it, and none of them pending. In one script, so that
// nothing moves between the two looks.
var handledScript = redis.NewScript(`
if ARGV[2] == '0-0' then return 1 end
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then return 0 end
for _, g in ipairs(groups) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == ARGV[1] then
    local ms, seq = string.match(f['last-delivered-id'], '(%d+)-(%d+)')
    local wms, wseq = string.match(ARGV[2], '(%d+)-(%d+)')
    ms, seq, wms, wseq = tonumber(ms), tonumber(seq), tonumber(wms), tonumber(wseq)
    if ms < wms or (ms == wms and seq < wseq) then return 0 end
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', ARGV[2], 1)
    if #pending > 0 then return 0 end
    return 1
  end
end
return 0
`)

// Handled reports whether group has handled (acknowledged) every entry of the stream up to the
// one with id upTo (StreamEnd).
func (s *Store) Handled(ctx context.Context, group, upTo string) (bool, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	handled, err := handledScript.Run(ctx, s.rdb, []string{s.keys.Events()}, group, upTo).Int()
	return handled == 1, s.failure(ctx, err)
}

// removeIdle removes from group (ARGV[1]) of the stream KEYS[1] the consumers idle for ARGV[2]
// milliseconds or longer with no event pending, and returns their names. In one script, so
// that no consumer reads an event between the look and the removal: removing a consumer drops
// the events pending for it.
var removeIdle = redis.NewScript(`
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['idle'] >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    table.insert(removed, f['name'])
  end
end
return removed
`)

// RemoveIdleConsumers removes from group the consumers idle for idle or longer with no event
// pending, and returns their names: consumers that died, whose pending events another took over
// (Consume). A consumer removed is added back by its next read.
func (s *Store) RemoveIdleConsumers(ctx context.Context, group string, idle time.Duration) ([]string, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	removed, err := removeIdle.Run(ctx, s.rdb, []string{s.keys.Events()}, group, idle.Milliseconds()).StringSlice()
	if err != nil && (isNoGroup(err) || strings.Contains(err.Error(), "no such key")) {
		return nil, nil // no stream or group yet
	}
	return removed, s.failure(ctx, err)
}

// decodeDeliveries reads the changes of entries: a changes field (ChangesPerEvent at most), or,
// from warmers before it, a change an entry, whose position is unknown (the primary has it).
func decodeDeliveries(msgs []redis.XMessage) []Delivery {
	deliveries := make([]Delivery, 0, len(msgs))
	for _, m := range msgs {
		if b, ok := m.Values["changes"].(string); ok {
			var events []event
			if err := json.Unmarshal([]byte(b), &events); err == nil {
				for _, e := range events {
					c := query.Change{ID: e.ID, Table: e.Table, Columns: e.Columns, Truncated: e.Truncated, Position: e.Position}
					if c.Columns == nil {
						c.Columns = map[string]string{}
					}
					deliveries = append(deliveries, Delivery{StreamID: m.ID, Change: c})
				}
			}
			continue
		}
		c := query.Change{Table: str(m.Values["table"]), Columns: map[string]string{},
			Truncated: str(m.Values["truncated"]) == "1", Position: query.Latest}
		c.ID, _ = strconv.ParseInt(str(m.Values["change"]), 10, 64)
		for field, v := range m.Values {
			if col, ok := strings.CutPrefix(field, columnField); ok {
				c.Columns[col] = str(v)
			}
		}
		deliveries = append(deliveries, Delivery{StreamID: m.ID, Change: c})
	}
	return deliveries
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func isNoGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOGROUP") }
