package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrFenced reports that a run of the job from a newer snapshot has started: this run's values
// are older than ones already stored, so it must stop writing.
var ErrFenced = errors.New("cache: a newer run of this job has started")

// TouchedWindow is how long single-key writes are remembered at most for bulk runs to step
// around: a job's touched set expires when no key was touched for that long. A bulk run lasts
// less (jobs.Load refuses longer timeouts).
const TouchedWindow = time.Hour

// Item is an entry and the key of its job it is stored under (empty for a single-value job).
type Item struct {
	Key   string
	Entry Entry
}

// Two kinds of writers share the keys, and neither may replace a value from a newer snapshot
// with one from an older snapshot:
//
//   - Bulk runs (the warmer's scheduled jobs) write every key of a job from one snapshot. They
//     use plain SETs (with GET where the changed values are told) in MULTI/EXEC transactions,
//     at half the Redis CPU of a script that compares every key, guarded by two records WATCHed
//     for the length of each batch: the job's fence, the position of the newest bulk run, which
//     fences off older runs (a warmer that lost its lock, a replica further behind); and the
//     job's touched set, the keys written one at a time lately with their positions, which a
//     bulk run of an older snapshot leaves alone.
//   - Single-key writers (the API's read-through, the warmer's recomputation after a write) use
//     putIfNotOlder, which compares the key's stored position, and record the key as touched.
//
// Positions are WAL positions (Entry.Position), whichever server of the primary and its
// replicas each value was read from.
//
// A Redis Cluster cannot run a transaction over keys of many slots, so there every write goes
// through putIfNotOlder alone: slower, and just as safe.

// putIfNotOlder writes KEYS[1] = ARGV[1] with a TTL of ARGV[2] milliseconds unless the key holds
// an entry of the same format read at a higher position, and then, when KEYS[2] is given,
// records the key (ARGV[5]) in that touched set with score ARGV[6] (its position) or the job's
// fence KEYS[3] if that is higher, keeps the set for ARGV[7] milliseconds, and forgets the
// touches older than the fence: a bulk run older than the fence writes nothing, and a newer one
// would not step around them. A touch older than the fence is kept at the fence's score, not
// forgotten at once: the next run's sweep looks at the keys touched (Sweep). When the
// value it replaced had another ETag (or there was none), it publishes ARGV[4] on the channel
// ARGV[3], if one is given. It returns 0 if it did not write, 1 if it wrote the same value
// again, 2 if it wrote a changed one. Positions are compared byte by byte (they are big-endian),
// not with Lua's string comparison, which follows the server's locale.
var putIfNotOlder = redis.NewScript(`
local new = ARGV[1]
local cur = redis.call('GETRANGE', KEYS[1], 0, 51)
local same = #cur >= 10 and string.byte(cur, 1) == string.byte(new, 1)
local write = true
if same then
  for j = 3, 10 do
    local a, b = string.byte(new, j), string.byte(cur, j)
    if a ~= b then
      write = a > b
      break
    end
  end
end
if not write then
  return 0
end
redis.call('SET', KEYS[1], new, 'PX', ARGV[2])
if KEYS[2] then
  local fence = redis.call('GET', KEYS[3])
  local score = ARGV[6]
  if fence and tonumber(fence) > tonumber(score) then
    score = fence
  end
  redis.call('ZADD', KEYS[2], score, ARGV[5])
  if fence then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. fence)
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
if same and #cur == 52 and string.sub(cur, 35, 52) == string.sub(new, 35, 52) then
  return 1
end
if ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
return 2
`)

// Put writes entries of job computed one key at a time, each unless its key holds a newer entry,
// and records them as touched so that a bulk run of an older snapshot leaves them alone. Redis
// keeps each for its freshness and grace. The keys whose value changed are announced (Watch, and
// Options.Invalidated). It returns how many it wrote.
func (s *Store) Put(ctx context.Context, job string, items ...Item) (int, error) {
	return s.putEach(ctx, job, items, s.touching(touchAll), true)
}

// Fill is Put for values computed because a reader missed them (read-through), whose keys the
// reader chose: it records as touched the keys that have a row, not the negative entries. A
// reader may name any key, and the touched set, kept for an hour, would grow with every key a
// client makes up. A key without a row can only be newer than a bulk run's value if a write
// deleted its row, and the write's own refresh (Put) records that.
func (s *Store) Fill(ctx context.Context, job string, items ...Item) (int, error) {
	return s.putEach(ctx, job, items, s.touching(touchFound), true)
}

// touching says which keys a single-key write records in the touched set.
type touching int

const (
	touchNone  touching = iota
	touchFound          // the keys that have a row: not negative entries
	touchAll
)

// touching is t, or touchNone on a Cluster, where bulk runs write key by key and compare
// versions as single-key writes do.
func (s *Store) touching(t touching) touching {
	if s.cluster {
		return touchNone
	}
	return t
}

// putEach writes items through putIfNotOlder, pipelined, recording in the touched set the keys
// touch says and telling of the changed ones if tell is set.
func (s *Store) putEach(ctx context.Context, job string, items []Item, touch touching, tell bool) (int, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	if len(items) == 0 {
		return 0, nil
	}
	// Load the script once, so the pipelined EVALSHAs cannot fail with NOSCRIPT.
	if err := putIfNotOlder.Load(ctx, s.rdb).Err(); err != nil {
		return 0, s.failure(ctx, err)
	}
	cmds := make([]*redis.Cmd, len(items))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, it := range items {
			keys := []string{s.keys.Value(job, it.Key)}
			channel := ""
			if tell {
				channel = s.keys.Changes()
			}
			args := []any{it.Entry.marshal(), it.Entry.retention().Milliseconds(), channel, invalidationMessage(job, it.Key)}
			if touch == touchAll || touch == touchFound && !it.Entry.NotFound {
				keys = append(keys, s.keys.Touched(job), s.keys.Fence(job))
				args = append(args, it.Key, it.Entry.Position, TouchedWindow.Milliseconds())
			}
			cmds[i] = putIfNotOlder.EvalSha(ctx, p, keys, args...)
		}
		return nil
	})
	if err != nil {
		return 0, s.failure(ctx, err)
	}
	written := 0
	var changed []string
	for i, c := range cmds {
		switch n, _ := c.Int(); n {
		case 2:
			changed = append(changed, items[i].Key)
			fallthrough
		case 1:
			written++
		}
	}
	if tell && len(changed) > 0 && s.invalidated != nil { // putIfNotOlder told Redis
		s.invalidated(Invalidation{Job: job, Keys: changed})
	}
	return written, nil
}

// PutRun writes a batch of a bulk run: entries of job, all read in one snapshot. It skips
// the keys written one at a time from a newer snapshot and returns how many it wrote, or
// ErrFenced when a run from a newer snapshot has started. When single-key writes keep changing
// the touched set under it, the batch falls back to comparing key by key, recording its keys in
// the touched set as single-key writes do. Where someone needs them (Options.Invalidated, or
// Watch on a Cluster), the keys whose value changed are announced once the batch is written, and
// so are the keys that held nothing: Redis may have lost a value (evicted, flushed) that copies
// still hold. Each batch leaves the run's mark in the job's touched set, and the run's first
// write reads the set, for Sweep.
func (s *Store) PutRun(ctx context.Context, job string, items []Item) (int, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	if len(items) == 0 {
		return 0, nil
	}
	position := items[0].Entry.Position
	for _, it := range items {
		if it.Entry.Position != position {
			return 0, fmt.Errorf("cache: a batch of job %s mixes snapshots %d and %d", job, position, it.Entry.Position)
		}
	}
	if s.cluster {
		return s.putEach(ctx, job, items, touchNone, true)
	}
	fence, touched := s.keys.Fence(job), s.keys.Touched(job)
	// Which values changed is for whoever keeps copies that Redis does not tell of: a purger of
	// HTTP caches (Options.Invalidated). The apis' tiers hear of every write from Redis itself
	// (off a Cluster, as here), and a SET with GET would cost Redis a quarter more, and the
	// warmer the old values' reading.
	tell := s.invalidated != nil
	mark := s.sweeps.mark(position, items[0].Entry.ComputedAt)
	written := 0
	var replaced []replacement // when telling
	for attempt := 0; ; attempt++ {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			var newest *redis.StringCmd
			var newer *redis.StringSliceCmd
			if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
				newest = p.Get(ctx, fence)
				newer = p.ZRangeByScore(ctx, touched, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(position, 10), Max: "+inf"})
				return nil
			}); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			current, err := newest.Int64()
			if err == nil && current > position {
				return ErrFenced
			}
			// The touched set as the run's first write finds it, for Sweep; read under WATCH, as
			// the write will find it.
			var found []string
			first := !s.sweeps.found(job, mark)
			if first {
				if found, err = tx.ZRange(ctx, touched, 0, -1).Result(); err != nil {
					return err
				}
			} else if current < position {
				s.sweeps.reset(job, mark)
			}
			skip := make(map[string]bool, len(newer.Val()))
			for _, k := range newer.Val() {
				skip[k] = true
			}
			written, replaced = 0, replaced[:0]
			cmds, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				// Raise the fence once per run, not in every batch: the writers of one run
				// would otherwise keep aborting each other's transactions.
				if current < position {
					p.Set(ctx, fence, position, 0)
				}
				// The run's mark (Sweep), in every batch: once there, adding it again changes
				// nothing, and aborts no other writer's transaction.
				p.ZAdd(ctx, touched, redis.Z{Score: float64(position), Member: mark})
				if first {
					// What is older than the fence goes, as putIfNotOlder trims it: the marks
					// of runs that wrote no more since, and touches that the fence's run saw.
					p.ZRemRangeByScore(ctx, touched, "-inf", "("+strconv.FormatInt(current, 10))
					p.PExpire(ctx, touched, TouchedWindow)
				}
				for _, it := range items {
					if skip[it.Key] {
						continue
					}
					written++
					key, value := s.keys.Value(job, it.Key), it.Entry.marshal()
					if !tell {
						p.Set(ctx, key, value, it.Entry.retention())
						continue
					}
					old := p.SetArgs(ctx, key, value, redis.SetArgs{TTL: it.Entry.retention(), Get: true})
					replaced = append(replaced, replacement{it.Key, value, old})
				}
				return nil
			})
			if errors.Is(err, redis.Nil) {
				err = nil // a key that held nothing
			}
			if err == nil && first {
				s.sweeps.wrote(job, mark, position, current, found)
			}
			return queuedError(err, cmds)
		}, fence, touched)
		switch {
		case errors.Is(err, redis.TxFailedErr) && attempt < 3:
			continue // a single-key write or another run came in between: look again
		case errors.Is(err, redis.TxFailedErr):
			if err := s.rdb.ZAdd(ctx, touched, redis.Z{Score: float64(position), Member: mark}).Err(); err != nil {
				return 0, s.failure(ctx, err)
			}
			// Recorded as touched, as single-key writes are: a run that lost its lock may write
			// so after a newer run, and the next run's sweep must see its keys (Sweep).
			return s.putEach(ctx, job, items, touchAll, true)
		case errors.Is(err, ErrFenced):
			return 0, err
		case err != nil:
			return 0, fmt.Errorf("write batch: %w", s.failure(ctx, err))
		}
		if !tell {
			return written, nil
		}
		var changed []string
		for _, r := range replaced {
			if old, err := r.old.Result(); errors.Is(err, redis.Nil) || err == nil && !sameValue(old, r.value) {
				changed = append(changed, r.key)
			}
		}
		if len(changed) > 0 {
			if err := s.announce(ctx, job, changed); err != nil {
				return written, fmt.Errorf("tell of changed values: %w", err)
			}
		}
		return written, nil
	}
}

// queuedError returns, for a transaction Redis discarded (EXECABORT), the error of the command
// it refused: the transaction's own error says only that there was one. Redis refuses every
// write of a transaction when it is full.
func queuedError(err error, cmds []redis.Cmder) error {
	if err == nil || !strings.HasPrefix(err.Error(), "EXECABORT") {
		return err
	}
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil && !errors.Is(cerr, redis.Nil) {
			return cerr
		}
	}
	return err
}

// replacement is a value a bulk run wrote, and what it replaced.
type replacement struct {
	key   string
	value []byte
	old   *redis.StatusCmd // with GET: the replaced entry
}

// sameValue reports whether the stored entry old has the value of the stored entry value: the
// same format and ETag, as putIfNotOlder compares them.
func sameValue(old string, value []byte) bool {
	return len(old) >= headerLen && len(value) >= headerLen && old[0] == value[0] &&
		old[offsetETag:headerLen] == string(value[offsetETag:headerLen])
}
