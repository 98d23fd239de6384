package warm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// Store is what warming needs of Redis (cache.Store): a run's batches and its record, the
// server's counters (to tell evictions during a run), and a probe for the retries.
type Store interface {
	PutRun(ctx context.Context, job string, items []cache.Item) (int, error)
	Sweep(ctx context.Context, job string, position int64, held *cache.RunKeys) (int, error)
	RecordRun(ctx context.Context, run cache.Run) error
	Info(ctx context.Context) (cache.ServerInfo, error)
	Probe(ctx context.Context) error
}

var _ Store = (*cache.Store)(nil)

// Runner runs jobs: it streams a job's rows from PostgreSQL into Redis and records the run.
type Runner struct {
	*baseservice.Archetype
	db        *query.DB // where the aggregates are read (WARMER_DATABASE_URL)
	primary   *query.DB // where drifted figures are reseeded
	store     Store
	metrics   *Metrics
	batchSize int
	// Settle, when set, is how the check of the built-in totals waits for the changes in flight
	// before it calls figures drifted (invalidate.Settle); unset, it gives them a fixed time.
	Settle query.Settle
}

// NewRunner returns a Runner that reads aggregates from db and writes them to store; primary is
// the database the figures of incremental jobs are reseeded in, db itself unless db is a replica.
func NewRunner(arch *baseservice.Archetype, db, primary *query.DB, store Store, metrics *Metrics) *Runner {
	return &Runner{Archetype: arch, db: db, primary: primary, store: store, metrics: metrics, batchSize: 1000}
}

// Progress is told how many keys a run has written so far.
type Progress func(written int64)

// Trigger says why a job runs; the run's record keeps it.
type Trigger string

// The triggers of runs.
const (
	// TriggerSchedule is a run on the job's schedule, or at the warmer's start.
	TriggerSchedule Trigger = "schedule"
	// TriggerRetry is a run again after a failure of PostgreSQL or Redis.
	TriggerRetry Trigger = "retry"
	// TriggerRequest is a run asked for with POST /v1/jobs/{job}/run.
	TriggerRequest Trigger = "request"
	// TriggerOnce is a run of warmer --once.
	TriggerOnce Trigger = "once"
	// TriggerTakeover is a run redone because the warmer that ran it stopped before it ended.
	TriggerTakeover Trigger = "takeover"
)

// Run runs job once: the whole job, every key in one pass, and records the run, with why it ran,
// for GET /v1/jobs and the job's run history. progress, if not nil, follows the writes.
//
// A failed run never leaves a bad value behind. A single-value job writes its value only after
// its query has succeeded. A keyed job writes keys as rows arrive, so a run that fails half-way
// has replaced some keys with new, complete values and left the others at their previous ones:
// every key holds a value computed whole from one snapshot. And no write replaces a value from a
// newer snapshot (cache.Store.PutRun): a run overtaken by a newer one (a replica that lost its
// lock) stops with cache.ErrFenced, and keys recomputed since its snapshot are left alone.
//
// The record says what kind of failure a run met (failureOf), for anyone to read; the error
// itself, which may quote rows of the data, goes to the log only (job_failed).
func (r *Runner) Run(ctx context.Context, job jobs.Job, trigger Trigger, progress Progress) (cache.Run, error) {
	started := r.Time.Now()
	r.Logger.Info("job_started", "job", job.Name, "trigger", string(trigger))
	before, infoErr := r.store.Info(ctx)
	keys, err := r.warm(ctx, job, started, progress)
	if err == nil && infoErr == nil {
		err = r.evictions(ctx, before, keys)
	}
	run := cache.Run{Job: job.Name, Started: started, Duration: r.Time.Now().Sub(started), Keys: keys,
		Trigger: string(trigger)}
	if err != nil {
		run.Error = failureOf(job, err)
		r.Logger.Error("job_failed", "job", job.Name, "error", err, "keys", keys,
			"duration_ms", run.Duration.Milliseconds())
	} else {
		run.LastSuccess = started
		r.Logger.Info("job_finished", "job", job.Name, "keys", keys, "duration_ms", run.Duration.Milliseconds())
	}
	r.metrics.observe(job.Name, started, run.Duration, keys, err)
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if rerr := r.store.RecordRun(recordCtx, run); rerr != nil {
		r.Logger.Warn("job_run_not_recorded", "job", job.Name, "error", rerr)
	}
	return run, err
}

// errNoRow is the failure of a single-value job whose query returned nothing.
var errNoRow = errors.New("the job's query returned no row")

// failureOf says what kind of failure err is, for the run's public record: never the text of
// PostgreSQL's or Redis's errors, which may quote the data or name the servers.
func failureOf(job jobs.Job, err error) string {
	const details = "; the warmer's log has the details (job_failed)"
	statement, isStatement := query.Describe(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("timed out (the job's timeout is %s)", job.Timeout)
	case errors.Is(err, context.Canceled):
		return "cancelled: the warmer was stopping"
	case errors.Is(err, query.ErrUnavailable):
		return "PostgreSQL was unavailable" + details
	case errors.Is(err, cache.ErrUnavailable):
		return "Redis was unavailable" + details
	case errors.Is(err, ErrEvicted):
		return "Redis evicted keys to make room during the run: some of its values may be gone; give Redis more memory (README: Sizing Redis)"
	case errors.Is(err, cache.ErrFull):
		return "Redis is full (maxmemory): it refused the run's writes; give Redis more memory (README: Sizing Redis)"
	case errors.Is(err, cache.ErrFenced):
		return "stopped: a newer run of the job started elsewhere"
	case errors.Is(err, errNoRow):
		return errNoRow.Error()
	case isStatement:
		return "the query failed: " + statement + details
	}
	return "failed" + details
}

// ErrEvicted reports a run during which Redis evicted keys to make room: Redis is too small for
// the data set, and values the run wrote may be gone already.
var ErrEvicted = errors.New("redis evicted keys during the run")

// evictions fails a run during which Redis evicted keys: the run wrote its values, but cannot
// say they are in Redis. (Redis evicts under maxmemory with an evicting policy, silently.)
func (r *Runner) evictions(ctx context.Context, before cache.ServerInfo, written int64) error {
	after, err := r.store.Info(ctx)
	switch {
	case err != nil:
		return nil //nolint:nilerr // the run wrote; whether Redis kept it cannot be told now
	case !slices.Equal(after.RunIDs, before.RunIDs), after.EvictedKeys <= before.EvictedKeys:
		return nil // none, or Redis restarted meanwhile: the watcher of Redis (Recovery) has it warmed again
	}
	return fmt.Errorf("%w: %d keys while the run wrote %d (used_memory %d bytes, maxmemory %d, maxmemory-policy %s): "+
		"some of its values may be gone; give Redis more memory (README: Sizing Redis)",
		ErrEvicted, after.EvictedKeys-before.EvictedKeys, written, after.UsedMemory, after.MaxMemory, after.Policy)
}

// writers is how many batches are written to Redis at once: while Redis runs one batch, the
// next is on its way, so neither the network nor the encoding waits for the other.
const writers = 2

// warm streams job's rows into batches that other goroutines write to Redis, so that the Redis
// writes overlap the reading, then removes the keys of a keyed job its result no longer holds
// (cache.Store.Sweep). The channel holds a few batches: memory stays flat whatever the number of
// keys.
func (r *Runner) warm(ctx context.Context, job jobs.Job, started time.Time, progress Progress) (int64, error) {
	params := params(job, started)
	batches := make(chan []cache.Item, 4)
	var written atomic.Int64
	var position int64     // of the snapshot the rows were read in
	var held cache.RunKeys // the keys of the result, which the sweep passes over
	g, gctx := errgroup.WithContext(ctx)
	write := recovered(func() error {
		for batch := range batches {
			n, err := r.store.PutRun(gctx, job.Name, batch)
			if err != nil {
				return fmt.Errorf("write to redis: %w", err)
			}
			total := written.Add(int64(n))
			if progress != nil {
				progress(total)
			}
			if r.Logger.Enabled(gctx, slog.LevelDebug) {
				for _, it := range batch {
					r.Logger.Debug("key_written", "job", job.Name, "key", it.Key)
				}
			}
		}
		return nil
	})
	for range writers {
		g.Go(write)
	}
	g.Go(recovered(func() error {
		defer close(batches)
		send := func(batch []cache.Item) error {
			select {
			case batches <- batch:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		batch := make([]cache.Item, 0, r.batchSize)
		rows := 0
		streamed, err := r.db.Stream(gctx, job.Aggregate, params, func(row query.Row) error {
			if !job.Keyed() && rows > 0 {
				return nil // a single-value job is its first row
			}
			rows++
			if job.Keyed() {
				held.Add(row.Key)
			}
			e, err := Entry(job, row.Key, row.Value, row.Position, started)
			if err != nil {
				return fmt.Errorf("job %s: %w", job.Name, err)
			}
			if batch = append(batch, cache.Item{Key: row.Key, Entry: e}); len(batch) == r.batchSize {
				if err := send(batch); err != nil {
					return err
				}
				batch = make([]cache.Item, 0, r.batchSize)
			}
			return nil
		})
		switch {
		case err != nil:
			return fmt.Errorf("query: %w", err)
		case !job.Keyed() && rows == 0:
			return fmt.Errorf("query: %w", errNoRow)
		}
		if len(batch) > 0 {
			if err := send(batch); err != nil {
				return err
			}
		}
		if job.Aggregate.Incremental() {
			r.reportDrift(gctx, job, streamed.Drift)
		}
		position = streamed.Position
		return nil
	}))
	if err := g.Wait(); err != nil {
		return written.Load(), err
	}
	if job.Keyed() {
		// The keys of groups whose rows are gone are the run's to remove: it alone knows them.
		swept, err := r.store.Sweep(ctx, job.Name, position, &held)
		if err != nil {
			return written.Load(), fmt.Errorf("remove the keys the result no longer holds: %w", err)
		}
		if swept > 0 {
			r.Logger.Info("keys_swept", "job", job.Name, "keys", swept)
		}
	}
	return written.Load(), nil
}

// reportDrift reports the drift the check of an incremental job's maintained figures confirmed, and
// has them mended: the run itself writes the values computed in full, and the refreshes after it
// read figures that are right again.
func (r *Runner) reportDrift(ctx context.Context, job jobs.Job, found query.Drift) {
	drift, err := r.primary.Repair(ctx, job.Aggregate, found, r.Settle)
	if errors.Is(err, query.ErrUnsettled) {
		// Nothing is confirmed either way: the gauge keeps what the last check found.
		r.Logger.Warn("incremental_check_deferred", "job", job.Name, "found", found.Values, "reason", err.Error())
		return
	}
	r.metrics.drift.WithLabelValues(job.Name).Set(float64(drift.Values))
	switch {
	case err != nil:
		r.Logger.Error("incremental_repair_failed", "job", job.Name, "drift", drift.Values, "error", err)
	case drift.Values > 0:
		r.Logger.Error("incremental_drift", "job", job.Name, "values", drift.Values, "example", drift.Example,
			"repaired", true)
	}
}

// recovered turns a panic in f (a bug, or a user's SQL yielding something unexpected) into an
// error, so that the run is recorded and counted as a failure instead of crashing the warmer.
// errgroup does not recover panics of its goroutines.
func recovered(f func() error) func() error {
	return func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return f()
	}
}
