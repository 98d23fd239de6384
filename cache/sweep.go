package cache

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
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
// previous run and no other run wrote since (the touched set, as this run's first write found it,
// holds the previous run's mark and no other: sweeps), they are among the keys of the previous
// result and the keys written one at a time since, which the touched set keeps: if the previous
// result's keys are all held, only the touched keys not held are looked at. Otherwise (the first
// run of a store, another run since, a touched set lost: it expires TouchedWindow after its last
// write; a Redis restarted or failed over) Sweep walks every key of the job, as DropAll does,
// with SCAN (which walks the whole keyspace, the other jobs' and namespaces' keys too: about a
// microsecond of Redis's time a key); the keys held are passed over in the warmer. Either way the
// keys not held are looked at 500 at a time by one script in Redis (in a Cluster, whose scripts
// take keys of one slot, one script a key).
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
	if !s.cluster {
		if info, err := serverInfo(ctx, s.rdb); err == nil { // else every key is walked
			servers = info.RunIDs
		}
	}
	var err error
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
//
// Each batch of a run adds the run's mark, a member no key can be, to the job's touched set,
// with the run's position as its score, and the run's first write reads the set (under WATCH,
// so that it is the set the write changes). A run of the job, of this warmer or another, that
// wrote after the run before leaves its mark there; so does the run before, whose mark the
// touched set keeps (the fence having risen to it, touches below it alone are trimmed) unless
// the set was lost (expired after TouchedWindow without a write, evicted, flushed).
type sweeps struct {
	mu   sync.Mutex
	id   string              // the store's, in its runs' marks
	runs map[string]runFound // by job: the newest run whose first write read the touched set
	last map[string]sweptRun // by job: the last run swept
}

// runFound is the touched set the first write of a run found, with the job's fence.
type runFound struct {
	mark     string
	position int64
	fence    int64
	keys     []string        // the set's keys: those written one at a time
	marks    map[string]bool // the set's runs' marks
	// reset is set when a later write of the run found the fence below the run's position: the
	// fence and the touched set were lost meanwhile (a FLUSHDB, an eviction), and what the first
	// write found says nothing of the writes since.
	reset bool
}

// sweptRun is a run Sweep swept.
type sweptRun struct {
	mark     string
	position int64
	hashes   []uint64        // of its result's keys, sorted
	servers  []string        // the run IDs of the Redis servers
	marks    map[string]bool // the runs' marks its first write found
}

// markPrefix starts the runs' marks: bytes no key read from PostgreSQL's text holds.
const markPrefix = "\xff\xfewarmcache run "

// mark returns the mark of the run from the snapshot at position started at at.
func (m *sweeps) mark(position int64, at time.Time) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.id == "" {
		m.id = strconv.FormatUint(rand.Uint64(), 36)
	}
	return fmt.Sprintf("%s%s %d %d", markPrefix, m.id, position, at.UnixNano())
}

// found reports whether the first write of the run of mark read job's touched set.
func (m *sweeps) found(job, mark string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runs[job].mark == mark
}

// wrote records the touched set and the fence the first write of the run of mark, from the
// snapshot at position, read.
func (m *sweeps) wrote(job, mark string, position, fence int64, touched []string) {
	r := runFound{mark: mark, position: position, fence: fence, marks: map[string]bool{}}
	for _, member := range touched {
		if strings.HasPrefix(member, markPrefix) {
			r.marks[member] = true
		} else {
			r.keys = append(r.keys, member)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runs == nil {
		m.runs = map[string]runFound{}
	}
	if m.runs[job].mark != mark {
		m.runs[job] = r
	}
}

// reset records that a write of the run of mark after its first found the job's fence below the
// run's position.
func (m *sweeps) reset(job, mark string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.runs[job]; ok && r.mark == mark {
		r.reset = true
		m.runs[job] = r
	}
}

// since returns the keys written one at a time to job's values since its previous run, when the
// values of job other than the keys of held can only be among them: when this store swept the
// job's previous run, on the same servers, that run's result is all held, and this run's first
// write found the fence at least at that run's position and, in the touched set, that run's mark
// and no mark of another run but those that run's first write found. It returns the keys the set
// held then. A key written one at a time after that, from a snapshot older than this run's, is
// scored at this run's position (the fence): the next run's sweep looks at it.
func (m *sweeps) since(job string, position int64, held *RunKeys, servers []string) ([]string, bool) {
	m.mu.Lock()
	r, last := m.runs[job], m.last[job]
	m.mu.Unlock()
	if servers == nil || last.hashes == nil || r.position != position || r.mark == last.mark || r.reset ||
		r.fence < last.position || !slices.Equal(servers, last.servers) {
		return nil, false
	}
	if !r.marks[last.mark] {
		return nil, false
	}
	for mark := range r.marks {
		if mark != last.mark && !last.marks[mark] {
			return nil, false // another run wrote since
		}
	}
	if !held.holdsAll(last.hashes) {
		return nil, false
	}
	return r.keys, true
}

// swept records that Sweep swept the run of job from the snapshot at position, holding held, on
// the servers of those run IDs (none when unknown, or on a Cluster, whose runs are always swept
// whole).
func (m *sweeps) swept(job string, position int64, held *RunKeys, servers []string) {
	hashes := slices.Clone(held.hashes)
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.runs[job]
	if servers == nil || r.position != position {
		delete(m.last, job) // not a run PutRun wrote
		return
	}
	if m.last == nil {
		m.last = map[string]sweptRun{}
	}
	m.last[job] = sweptRun{mark: r.mark, position: position, hashes: hashes, servers: servers, marks: r.marks}
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

// holdsAll reports whether k holds every hash of hashes (sorted); k is sorted.
func (k *RunKeys) holdsAll(hashes []uint64) bool {
	i := 0
	for _, h := range hashes {
		for i < len(k.hashes) && k.hashes[i] < h {
			i++
		}
		if i == len(k.hashes) || k.hashes[i] != h {
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
