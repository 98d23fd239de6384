package cache

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// AnnounceJobsFile records that process (a name unique to it: binary, host and pid) runs with
// the jobs file of digest, at now, and returns the digests the processes of the namespace
// announced within window of now, by process, its own included. Announcements older than that
// are of processes gone, and are removed.
func (s *Store) AnnounceJobsFile(ctx context.Context, process, digest string, now time.Time, window time.Duration) (map[string]string, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	key := s.keys.JobsFiles()
	var all *redis.MapStringStringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, process, digest+" "+strconv.FormatInt(now.UnixMilli(), 10))
		all = p.HGetAll(ctx, key)
		return nil
	})
	if err != nil {
		return nil, s.failure(ctx, err)
	}
	digests := map[string]string{}
	var gone []string
	for proc, value := range all.Val() {
		d, at, _ := strings.Cut(value, " ")
		ms, err := strconv.ParseInt(at, 10, 64)
		if err != nil || now.Sub(time.UnixMilli(ms)) > window {
			gone = append(gone, proc)
			continue
		}
		digests[proc] = d
	}
	if len(gone) > 0 {
		if err := s.rdb.HDel(ctx, key, gone...).Err(); err != nil {
			return nil, s.failure(ctx, err)
		}
	}
	return digests, nil
}
