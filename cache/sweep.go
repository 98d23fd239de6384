package cache

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
)

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
// no row, and deleting them would only make their next reads misses. It returns how many it
// deleted.
//
// Where the keys not held can be is what decides its cost. When this store swept the job's
// previous run, and no run came in between (sweeps.since says when that is sure), they are
// among the keys of the previous result and the keys written one at a time since (the touched
// set): if the previous result's keys are all held, only the touched keys not held are looked
// at. Otherwise Sweep walks every key of the job, as DropAll does, with SCAN (which walks the
// whole keyspace, the other jobs' and namespaces' keys too: about a microsecond of Redis's time a
// key); the keys held are passed over in the warmer. Either way the keys not held are looked at
// 500 at a time by one script in Redis (in a Cluster, whose scripts take keys of one slot, one
// script a key).
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
	notHeld := func(keys []string) []string {
		var batch []string
		for _, k := range keys {
			if !held.has(strings.TrimPrefix(k, prefix)) {
				batch = append(batch, k)
			}
		}
		return batch
	}
	walkAll := func(ctx context.Context, c redis.UniversalClient) error {
		if err := olderThan.Load(ctx, c).Err(); err != nil {
			return err
		}
		return walk(ctx, c, s.keys.ValuePattern(job), func(keys []string) error { return check(ctx, c, notHeld(keys)) })
	}
	var servers []string // the run IDs of the Redis servers: a restart or a failover changes them
	var err error
	if !s.cluster {
		var info ServerInfo
		info, err = serverInfo(ctx, s.rdb)
		servers = info.RunIDs
	}
	if err == nil {
		switch touched, known := s.sweeps.since(job, position, held, servers); {
		case known:
			values := make([]string, len(touched))
			for i, k := range touched {
				values[i] = s.keys.Value(job, k)
			}
			if err = olderThan.Load(ctx, s.rdb).Err(); err == nil {
				err = check(ctx, s.rdb, notHeld(values))
			}
		case s.cluster:
			var mu sync.Mutex
			err = s.rdb.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
				mu.Lock() // swept is shared
				defer mu.Unlock()
				return walkAll(ctx, c)
			})
		default:
			err = walkAll(ctx, s.rdb)
		}
	}
	if err != nil {
		s.sweeps.forget(job)
		return len(swept), fmt.Errorf("sweep the values of %s: %w", job, translate(err))
	}
	s.sweeps.swept(job, position, held, servers)
	if len(swept) == 0 {
		return 0, nil
	}
	return len(swept), s.announce(ctx, job, swept)
}

// sweeps is what a store remembers of the bulk runs it writes, for Sweep to know where the keys a
// run no longer holds can be. It is safe for use by several goroutines at once.
type sweeps struct {
	mu     sync.Mutex
	starts map[string]runStart // by job: the newest run PutRun wrote
	last   map[string]sweptRun // by job: the last run swept
}

// runStart is what the first batches of a bulk run found in Redis.
type runStart struct {
	position int64
	at       time.Time // when the run started: its entries' ComputedAt
	// from is the fence the run raised, the position of the run before it, or the run's own
	// position if another run of the same snapshot raised it.
	from int64
	// touched are the keys of the touched set when the run raised the fence, from which the
	// touches older than the run go at the next single-key write.
	touched []string
	// after is set when a run of the job that this store wrote before it was not swept (it
	// failed): its writes may hold keys neither run holds.
	after bool
}

// sweptRun is a run Sweep swept.
type sweptRun struct {
	position int64
	at       time.Time
	keys     *RunKeys
	servers  []string // the run IDs of the Redis servers, which a restart or a failover changes
}

// started records that a batch of the run from the snapshot at position, started at at, found
// the job's fence at fence, and the touched set holding touched when it raised the fence.
func (m *sweeps) started(job string, position int64, at time.Time, fence int64, touched []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.starts == nil {
		m.starts = map[string]runStart{}
	}
	r, ok := m.starts[job]
	if !ok || r.position != position || !r.at.Equal(at) { // the run's first batch
		last := m.last[job]
		unswept := ok && (!last.at.Equal(r.at) || last.position != r.position)
		r = runStart{position: position, at: at, from: fence, after: unswept}
	}
	if fence < position { // this batch raised the fence; another may have recorded the run first
		r.from, r.touched = fence, touched
	}
	m.starts[job] = r
}

// since returns the keys written one at a time to job's values since its previous run, when the
// values of job other than the keys of held can only be among them: when this store swept the
// job's previous run, on the same servers, that run's result is all held, and no other run of
// the job wrote since (the fence went from that run's position to this one's, or stayed there,
// the snapshot the same). They are the keys the touched set held when this run raised the fence:
// it keeps those written since the fence rose to the previous run's position, for TouchedWindow
// after the last (the previous run started less than that ago). Those written from older
// snapshots than this run's after it raised the fence are not seen (the touched set drops them
// at once), nor are the keys of a failed run of the previous run's snapshot from elsewhere, on
// another day (Today): such keys go at their TTL, as the values of a lost refresh do.
func (m *sweeps) since(job string, position int64, held *RunKeys, servers []string) ([]string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, last := m.starts[job], m.last[job]
	if servers == nil || last.keys == nil || r.position != position || r.after || r.from != last.position ||
		time.Since(last.at) >= TouchedWindow || !slices.Equal(servers, last.servers) || !last.keys.within(held) {
		return nil, false
	}
	return r.touched, true
}

// swept records that Sweep swept the run of job from the snapshot at position, holding held, on
// the servers of those run IDs (none on a Cluster, whose runs are always swept whole).
func (m *sweeps) swept(job string, position int64, held *RunKeys, servers []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.starts[job]
	if servers == nil || r.position != position {
		delete(m.last, job) // not a run PutRun wrote
		return
	}
	if m.last == nil {
		m.last = map[string]sweptRun{}
	}
	m.last[job] = sweptRun{position: position, at: r.at, keys: held, servers: servers}
}

// forget forgets the last run of job swept: the next is swept whole.
func (m *sweeps) forget(job string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.last, job)
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

// within reports whether every key of k is in o; both are sorted.
func (k *RunKeys) within(o *RunKeys) bool {
	i := 0
	for _, h := range k.hashes {
		for i < len(o.hashes) && o.hashes[i] < h {
			i++
		}
		if i == len(o.hashes) || o.hashes[i] != h {
			return false
		}
	}
	return true
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
