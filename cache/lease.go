package cache

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease takes the short lease that lets one process (of many api replicas) compute a missing
// value while the others wait for it. It reports whether owner got it; the lease lapses after
// ttl even if its owner dies.
func (s *Store) Lease(ctx context.Context, job, key, owner string, ttl time.Duration) (bool, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	ok, err := s.rdb.SetNX(ctx, s.keys.Lease(job, key), owner, ttl).Result()
	return ok, s.failure(ctx, err)
}

// releaseIfOwner deletes KEYS[1] if it still holds ARGV[1]: a lease that lapsed and was taken by
// another process is not ours to release.
var releaseIfOwner = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Release gives up owner's lease on a job's key.
func (s *Store) Release(ctx context.Context, job, key, owner string) error {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	return s.failure(ctx, releaseIfOwner.Run(ctx, s.rdb, []string{s.keys.Lease(job, key)}, owner).Err())
}
