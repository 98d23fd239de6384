package cache

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
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
		iter := c.Scan(ctx, 0, s.keys.ValuePattern(job), 1000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) == 500 {
				if err := unlinkEach(ctx, c, batch); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return unlinkEach(ctx, c, batch)
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

// Sweep deletes the values of keyed job read from snapshots older than position, and tells of
// them as Drop does. After a full run from the snapshot at position, they are the keys its
// result no longer holds (a group whose rows are gone): the run wrote every key it holds at
// position, and refreshes since wrote theirs at newer ones. Negative entries stay: the run
// confirms their keys have no row, and deleting them would only make their next reads misses. Readers then compute them from
// PostgreSQL, which says they do not exist. It walks every key of the job, as DropAll does: a
// batch of SCAN's keys is looked at by one script, server-side (in a Cluster, whose scripts take
// keys of one slot, one script a key). It returns how many it deleted.
func (s *Store) Sweep(ctx context.Context, job string, position int64) (int, error) {
	arg := string(binary.BigEndian.AppendUint64(nil, uint64(position)))
	var swept []string
	prefix := s.keys.Value(job, "") + ":"
	check := func(ctx context.Context, c redis.UniversalClient, batch []string) error {
		if len(batch) == 0 {
			return nil
		}
		groups := [][]string{batch}
		if s.cluster {
			groups = groups[:0]
			for i := range batch {
				groups = append(groups, batch[i:i+1])
			}
		}
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
		// SCAN walks the whole keyspace, the other jobs' and namespaces' keys too: 2,000 keys a
		// call, a couple of milliseconds of Redis's time, so that the reads and writes of others
		// (a write's refresh, the api's misses) wait that long at most behind a sweep.
		iter := c.Scan(ctx, 0, s.keys.ValuePattern(job), 2000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) == 500 {
				if err := check(ctx, c, batch); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return check(ctx, c, batch)
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
