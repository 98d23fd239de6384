package cache

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ServerInfo is what Redis says of itself (INFO), over every master of a Cluster.
type ServerInfo struct {
	// RunIDs identify the server processes that answer, sorted: a server that restarted, or a
	// replica promoted in its place, has another, and its data may be older than what was
	// written to it (a snapshot) or gone.
	RunIDs []string
	// EvictedKeys counts the keys the servers evicted, to make room, since they started.
	EvictedKeys int64
	// UsedMemory and MaxMemory are in bytes; MaxMemory is 0 without a limit.
	UsedMemory, MaxMemory int64
	// Policy is maxmemory-policy: what is evicted when the memory reaches MaxMemory.
	Policy string
}

// Info asks Redis what it says of itself.
func (s *Store) Info(ctx context.Context) (ServerInfo, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		i, err := serverInfo(ctx, s.rdb)
		return i, s.failure(ctx, err)
	}
	var (
		mu  sync.Mutex
		all ServerInfo
	)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		i, err := serverInfo(ctx, c)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		all.RunIDs = append(all.RunIDs, i.RunIDs...)
		all.EvictedKeys += i.EvictedKeys
		all.UsedMemory += i.UsedMemory
		all.MaxMemory += i.MaxMemory
		all.Policy = i.Policy
		return nil
	})
	slices.Sort(all.RunIDs)
	return all, s.failure(ctx, err)
}

func serverInfo(ctx context.Context, c redis.Cmdable) (ServerInfo, error) {
	// The default sections hold all of it; Redis before 7 takes at most one section.
	cmd := c.InfoMap(ctx)
	if err := cmd.Err(); err != nil {
		return ServerInfo{}, err
	}
	number := func(section, key string) int64 {
		n, _ := strconv.ParseInt(cmd.Item(section, key), 10, 64)
		return n
	}
	return ServerInfo{
		RunIDs:      []string{cmd.Item("Server", "run_id")},
		EvictedKeys: number("Stats", "evicted_keys"),
		UsedMemory:  number("Memory", "used_memory"),
		MaxMemory:   number("Memory", "maxmemory"),
		Policy:      cmd.Item("Memory", "maxmemory_policy"),
	}, nil
}

// MarkDataSet marks the namespace's data set as held by the servers id names (their run ids,
// say), and returns the mark it replaced: id itself when nothing changed, another id when Redis
// restarted with data that was saved earlier (or a replica took over), and "" when the data
// set is gone (Redis restarted empty, or was flushed) or was never marked. Of several warmers
// seeing one change, only the first gets the old mark.
func (s *Store) MarkDataSet(ctx context.Context, id string) (string, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	key := s.keys.DataSet()
	cur, err := s.rdb.Get(ctx, key).Result()
	switch {
	case err == nil && cur == id:
		return cur, nil
	case err != nil && !errors.Is(err, redis.Nil):
		return "", s.failure(ctx, err)
	}
	prev, err := s.rdb.SetArgs(ctx, key, id, redis.SetArgs{Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return prev, s.failure(ctx, err)
}
