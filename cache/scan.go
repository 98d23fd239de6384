package cache

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrInvalidCursor reports a listing cursor that ListKeys did not make, or that names a Redis
// Cluster node the cluster no longer has.
var ErrInvalidCursor = errors.New("cache: invalid cursor")

// scanCalls bounds the SCAN calls of one page: in a Redis holding much besides the job's keys,
// a page may come back short, or empty, with a cursor to go on from.
const scanCalls = 16

// cursor is where a listing goes on: a position of SCAN on one server (on a Cluster, on the
// master Node; the masters are walked in the order of their addresses).
type cursor struct {
	Node string `json:"n,omitempty"`
	Pos  uint64 `json:"p"`
}

// ListKeys returns a page of the keys a keyed job holds values for, about count of them (SCAN
// may give a few more, or fewer), and the cursor of the next page: empty at the end. It never
// runs KEYS: it SCANs the job's key pattern, so a page costs Redis a bounded amount of work
// whatever the number of keys. Keys written or dropped during a listing may be listed or not; a
// key that stays is listed at least once. Negative entries (keys without a row) are left out. On
// a Redis Cluster the listing walks the masters one after another; a resharding during a
// listing may skip or repeat keys, and a cursor naming a master that left is ErrInvalidCursor.
func (s *Store) ListKeys(ctx context.Context, job, from string, count int) (keys []string, next string, err error) {
	cur, err := decodeCursor(from)
	if err != nil {
		return nil, "", err
	}
	nodes, clients, err := s.scanNodes(ctx)
	if err != nil {
		return nil, "", err
	}
	at := 0 // a listing starts on the first server
	if from != "" {
		at = slices.Index(nodes, cur.Node)
	}
	if at < 0 {
		return nil, "", fmt.Errorf("%w: no node %s", ErrInvalidCursor, cur.Node)
	}
	prefix := s.keys.Value(job, "")
	var found []string
	for calls := 0; calls < scanCalls && len(found) < count; calls++ {
		call, cancel := s.bounded(ctx) // each SCAN has the store's time: a page makes several
		page, pos, err := clients[at].Scan(call, cur.Pos, prefix+":*", int64(count-len(found))).Result()
		cancel()
		if err != nil {
			return nil, "", s.failure(call, err)
		}
		found = append(found, page...)
		cur.Pos = pos
		if pos == 0 {
			if at++; at == len(nodes) {
				break // the last server is done: so is the listing
			}
		}
	}
	if keys, err = s.positive(ctx, found, len(prefix)+1); err != nil {
		return nil, "", err
	}
	if at < len(nodes) {
		cur.Node = nodes[at]
		next = encodeCursor(cur)
	}
	return keys, next, nil
}

// scanNodes returns the servers to SCAN, by address, and their clients: the server itself, or a
// Cluster's masters.
func (s *Store) scanNodes(ctx context.Context) ([]string, []redis.Cmdable, error) {
	cluster, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return []string{""}, []redis.Cmdable{s.rdb}, nil
	}
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	var mu sync.Mutex
	byAddr := map[string]*redis.Client{}
	err := cluster.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		byAddr[c.Options().Addr] = c
		return nil
	})
	if err != nil {
		return nil, nil, s.failure(ctx, err)
	}
	addrs := make([]string, 0, len(byAddr))
	for a := range byAddr {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	clients := make([]redis.Cmdable, len(addrs))
	for i, a := range addrs {
		clients[i] = byAddr[a]
	}
	return addrs, clients, nil
}

// positive returns the keys, less their first skip bytes, that hold values rather than negative
// entries, reading each entry's first two bytes only.
func (s *Store) positive(ctx context.Context, keys []string, skip int) ([]string, error) {
	if len(keys) == 0 {
		return []string{}, nil
	}
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	heads := make([]*redis.StringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			heads[i] = p.GetRange(ctx, k, 0, offsetFlags)
		}
		return nil
	})
	if err != nil {
		return nil, s.failure(ctx, err)
	}
	out := make([]string, 0, len(keys))
	for i, k := range keys {
		head := heads[i].Val()
		if len(head) == offsetFlags+1 && head[offsetFlags]&flagNotFound == 0 {
			out = append(out, k[skip:])
		}
	}
	return out, nil
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c) // a struct of a string and a number always encodes
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return cursor{}, fmt.Errorf("%w: %q", ErrInvalidCursor, s)
	}
	return c, nil
}
