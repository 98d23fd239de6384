package cache

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

// Drop deletes the values of job at keys (the empty key for a single-value job), and tells of
// their change: readers then compute them from PostgreSQL. A full Redis refuses writes but
// not deletions, so when the new value of a key cannot be written, the old one can still be
// kept from being served.
func (s *Store) Drop(ctx context.Context, job string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	call, cancel := s.bounded(ctx)
	defer cancel()
	values := make([]string, len(keys))
	for i, key := range keys {
		values[i] = s.keys.Value(job, key)
	}
	if err := unlinkEach(call, s.rdb, values); err != nil {
		return fmt.Errorf("drop values of %s: %w", job, s.failure(call, err))
	}
	return s.announce(ctx, job, keys)
}

// DropAll deletes every value of job, as Drop does, and tells that they all changed. It walks
// every key of the job, so it is not bounded by the store's timeout as a whole: each of its
// commands is, by the client's socket timeouts.
func (s *Store) DropAll(ctx context.Context, job string) error {
	// The keys of a keyed job, server by server: SCAN walks one server's keys (one master's of
	// a Cluster), which that server deletes.
	del := func(ctx context.Context, c redis.UniversalClient) error {
		return walk(ctx, c, s.keys.ValuePattern(job), func(keys []string) error { return unlinkEach(ctx, c, keys) })
	}
	err := s.rdb.Unlink(ctx, s.keys.Value(job, "")).Err() // a single-value job's
	if err != nil {
		return fmt.Errorf("drop every value of %s: %w", job, translate(err))
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return del(ctx, c) })
	} else {
		err = del(ctx, s.rdb)
	}
	if err != nil {
		return fmt.Errorf("drop every value of %s: %w", job, translate(err))
	}
	return s.InvalidateAll(ctx, job)
}

// walkCount is how many keys a call of walk's SCAN looks at: SCAN walks the whole keyspace, the
// other jobs' and namespaces' keys too, and 2,000 keys take a couple of milliseconds of Redis's
// time, so that the reads and writes of others (a write's refresh, the api's misses) wait that
// long at most behind a walk.
const walkCount = 2000

// walk calls fn with the keys of c that match pattern, a page of SCAN's at a time, and asks for
// the next page while fn handles one: a walk takes the SCANs' time in Redis, not that plus
// the time of the pages' handling. A key that stays all along is handed on at least once.
func walk(ctx context.Context, c redis.UniversalClient, pattern string, fn func(keys []string) error) error {
	pages := make(chan []string, 1)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(pages)
		var cursor uint64
		for {
			keys, next, err := c.Scan(gctx, cursor, pattern, walkCount).Result()
			if err != nil {
				return err
			}
			select {
			case pages <- keys:
			case <-gctx.Done():
				return gctx.Err()
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	})
	g.Go(func() error {
		for keys := range pages {
			if err := fn(keys); err != nil {
				return err
			}
		}
		return nil
	})
	return g.Wait()
}

// unlinkEach deletes keys, one command each: UNLINK of many keys needs them in one slot.
func unlinkEach(ctx context.Context, c redis.UniversalClient, keys []string) error {
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Unlink(ctx, k)
		}
		return nil
	})
	return err
}

// InvalidateAll tells that every value of jobs may have changed: whoever keeps copies (the apis'
// in-process tiers, downstream HTTP caches) drops them all. The warmer says so when Redis lost or
// rolled back its data set.
func (s *Store) InvalidateAll(ctx context.Context, jobs ...string) error {
	call, cancel := s.bounded(ctx)
	defer cancel()
	_, err := s.rdb.Pipelined(call, func(p redis.Pipeliner) error {
		for _, job := range jobs {
			p.Publish(call, s.keys.Changes(), job)
		}
		return nil
	})
	if err != nil {
		return s.failure(call, err)
	}
	if s.invalidated != nil {
		for _, job := range jobs {
			s.invalidated(Invalidation{Job: job, All: true})
		}
	}
	return nil
}

// olderThan deletes each of KEYS that holds a value (not a negative entry) read from a snapshot
// older than ARGV[1] (a WAL position, 8 bytes big-endian), or an entry of an older format than
// ARGV[2] (the byte), and returns the indexes (from 1) of those it deleted. A negative entry
// stays: its key has no row, which a run without the key confirms. Positions are compared as two
// 32-bit halves (struct.unpack, one call a key: the sweep reads every key of a job), each exact
// in Lua's numbers.
var olderThan = redis.NewScript(`
local hi, lo = struct.unpack('>I4I4', ARGV[1])
local format = string.byte(ARGV[2], 1)
local deleted = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GETRANGE', key, 0, 9)
  if #cur == 10 then
    local f, flags, h, l = struct.unpack('>BBI4I4', cur)
    if f < format or flags % 2 == 0 and (h < hi or h == hi and l < lo) then
      redis.call('UNLINK', key)
      deleted[#deleted + 1] = i
    end
  end
end
return deleted
`)

// Sweep deletes the values of keyed job that a run from the snapshot at position no longer
// holds (a group whose rows are gone), and tells of them as Drop does: the keys of the job not
// in held, the run's result, read from older snapshots. Refreshes since the run's snapshot wrote
// theirs at newer positions, which stay. So do negative entries: the run confirms their keys have
// no row, and deleting them would only make their next reads misses.
//
// It walks every key of the job, as DropAll does, with SCAN (which walks the whole keyspace,
// the other jobs' and namespaces' keys too); the keys held are passed over in the warmer, and
// only the others are looked at, 500 at a time by one script in Redis (in a Cluster, whose
// scripts take keys of one slot, one script a key), so that a run whose result holds every key
// it held before costs Redis the SCAN alone. It returns how many it deleted.
func (s *Store) Sweep(ctx context.Context, job string, position int64, held *RunKeys) (int, error) {
	held.sort()
	arg := string(binary.BigEndian.AppendUint64(nil, uint64(position)))
	var swept []string
	prefix := s.keys.Value(job, "") + ":"
	check := func(ctx context.Context, c redis.UniversalClient, batch []string) error {
		if len(batch) == 0 {
			return nil
		}
		size := 500 // keys a script: a millisecond or so of Redis's time
		if s.cluster {
			size = 1
		}
		groups := slices.Collect(slices.Chunk(batch, size))
		cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, keys := range groups {
				olderThan.EvalSha(ctx, p, keys, arg, string(rune(formatVersion)))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, cmd := range cmds {
			deleted, _ := cmd.(*redis.Cmd).Int64Slice()
			for _, j := range deleted {
				swept = append(swept, strings.TrimPrefix(groups[i][j-1], prefix))
			}
		}
		return nil
	}
	sweep := func(ctx context.Context, c redis.UniversalClient) error {
		if err := olderThan.Load(ctx, c).Err(); err != nil {
			return err
		}
		return walk(ctx, c, s.keys.ValuePattern(job), func(keys []string) error {
			var batch []string
			for _, k := range keys {
				if !held.has(strings.TrimPrefix(k, prefix)) {
					batch = append(batch, k)
				}
			}
			return check(ctx, c, batch)
		})
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu.Lock() // swept is shared
			defer mu.Unlock()
			return sweep(ctx, c)
		})
	} else {
		err = sweep(ctx, s.rdb)
	}
	if err != nil {
		return len(swept), fmt.Errorf("sweep the values of %s: %w", job, translate(err))
	}
	if len(swept) == 0 {
		return 0, nil
	}
	return len(swept), s.announce(ctx, job, swept)
}

// RunKeys are the keys of a run's result, for Sweep to pass over: 64-bit hashes of them, 8
// bytes a key whatever its length, so that a run of a million keys keeps them in 8 MB. A key of
// the job that is not in the result but shares the hash of one that is (about one chance in
// 10^13 at a million keys) is not swept, and goes when Redis's TTL ends it. The zero RunKeys
// holds none; it is not safe for use by several goroutines at once.
type RunKeys struct {
	hashes []uint64 // sorted by sort
	// starts[b] is the index of the first hash whose top 16 bits are b or more, once sorted:
	// a lookup searches the few hashes of its bucket (15 at a million keys), not all of them.
	starts []int32
}

// Add adds key to the set.
func (k *RunKeys) Add(key string) {
	k.hashes = append(k.hashes, xxhash.Sum64String(key))
	k.starts = nil
}

// Len returns how many keys were added.
func (k *RunKeys) Len() int { return len(k.hashes) }

// sort readies the set for has.
func (k *RunKeys) sort() {
	if k == nil || k.starts != nil {
		return
	}
	slices.Sort(k.hashes)
	k.starts = make([]int32, 1<<16+1)
	i := 0
	for b := range k.starts {
		for i < len(k.hashes) && k.hashes[i]>>48 < uint64(b) {
			i++
		}
		k.starts[b] = int32(i)
	}
}

// has reports whether key was added; the set is sorted.
func (k *RunKeys) has(key string) bool {
	if k == nil {
		return false
	}
	h := xxhash.Sum64String(key)
	_, found := slices.BinarySearch(k.hashes[k.starts[h>>48]:k.starts[h>>48+1]], h)
	return found
}
