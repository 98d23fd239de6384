package cache

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Item is one entry to write.
type Item struct {
	Job, Key string
	// Entry is the entry's stored form (Entry.AppendBinary).
	Entry []byte
	// TTL is the lifetime of the Redis key: freshness plus grace.
	TTL time.Duration
}

// putIfNotOlder writes each KEYS[i] = ARGV[2i-1] with a TTL of ARGV[2i] milliseconds, unless the
// key holds an entry of the same format with a higher data version: a slow reader or a replica
// that lost its lock can never replace a newer value with an older one. It returns how many
// keys it wrote. Versions are compared byte by byte (they are big-endian), not with Lua's string
// comparison, which follows the server's locale.
var putIfNotOlder = redis.NewScript(`
local written = 0
for i = 1, #KEYS do
  local new = ARGV[2 * i - 1]
  local cur = redis.call('GETRANGE', KEYS[i], 0, 9)
  local write = #cur < 10 or string.byte(cur, 1) ~= string.byte(new, 1)
  if not write then
    write = true
    for j = 3, 10 do
      local a, b = string.byte(new, j), string.byte(cur, j)
      if a ~= b then
        write = a > b
        break
      end
    end
  end
  if write then
    redis.call('SET', KEYS[i], new, 'PX', ARGV[2 * i])
    written = written + 1
  end
end
return written
`)

// Put writes items, each unless its key holds a newer entry, and returns how many it wrote. On a
// single server or Sentinel the whole batch is one script call; on a Cluster, where one script
// may only touch keys of one slot, each key is its own call, pipelined.
func (s *Store) Put(ctx context.Context, items []Item) (int, error) {
	if len(items) == 0 {
		return 0, nil
	}
	if s.cluster {
		return s.putEach(ctx, items)
	}
	keys := make([]string, len(items))
	args := make([]any, 0, 2*len(items))
	for i, it := range items {
		keys[i] = s.keys.Value(it.Job, it.Key)
		args = append(args, it.Entry, it.TTL.Milliseconds())
	}
	n, err := putIfNotOlder.Run(ctx, s.rdb, keys, args...).Int()
	return n, translate(err)
}

func (s *Store) putEach(ctx context.Context, items []Item) (int, error) {
	// Load the script once, so the pipelined EVALSHAs cannot fail with NOSCRIPT.
	if err := putIfNotOlder.Load(ctx, s.rdb).Err(); err != nil {
		return 0, translate(err)
	}
	cmds := make([]*redis.Cmd, len(items))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, it := range items {
			cmds[i] = putIfNotOlder.EvalSha(ctx, p, []string{s.keys.Value(it.Job, it.Key)}, it.Entry, it.TTL.Milliseconds())
		}
		return nil
	})
	if err != nil {
		return 0, translate(err)
	}
	written := 0
	for _, c := range cmds {
		n, _ := c.Int()
		written += n
	}
	return written, nil
}
