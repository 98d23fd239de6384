package cache

import (
	"context"
	"fmt"

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
