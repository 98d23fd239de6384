package warm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// Source is what computing a job's values needs of PostgreSQL (query.DB): a key's row, or the
// rows of a batch of keys in one snapshot, at a WAL position or past it.
type Source interface {
	Lookup(ctx context.Context, agg query.Aggregate, p query.Params, key string, at int64) (query.Row, error)
	LookupMany(ctx context.Context, agg query.Aggregate, p query.Params, keys []string, at int64) (map[string]query.Row, int64, error)
}

var _ Source = (*query.DB)(nil)

// Compute computes job j's value at key from db, as of now, in a snapshot at WAL position at or
// past it (query.DB.LookupMany), as the entry to serve and store. A key without a row gives a
// negative entry carrying the job's not-found message. The api computes its misses this way.
// Errors wrap query's (ErrInvalidKey, ErrUnavailable), or the statement's own.
func Compute(ctx context.Context, db Source, j jobs.Job, key string, at int64, now time.Time) (cache.Entry, error) {
	row, err := db.Lookup(ctx, j.Aggregate, params(j, now), key, at)
	if errors.Is(err, query.ErrNotFound) {
		return NotFound(j, key, row.Position, now), nil
	}
	if err != nil {
		return cache.Entry{}, fmt.Errorf("compute %s %q: %w", j.Name, key, err)
	}
	return Entry(j, row.Key, row.Value, row.Position, now)
}

// ComputeMany computes job j's values at keys, canonical all (Aggregate.CanonicalKey), from db
// in one snapshot at WAL position at or past it and one statement, as of now: the items to
// store, a negative entry for each key without a row. A single-value job's one value is under
// the empty key, whatever keys say. The warmer refreshes the keys of a batch of changes this way,
// at the changes' position.
func ComputeMany(ctx context.Context, db Source, j jobs.Job, keys []string, at int64, now time.Time) ([]cache.Item, error) {
	if !j.Keyed() {
		keys = []string{""}
	}
	rows, position, err := db.LookupMany(ctx, j.Aggregate, params(j, now), keys, at)
	if err != nil {
		return nil, fmt.Errorf("compute %s (%d keys): %w", j.Name, len(keys), err)
	}
	items := make([]cache.Item, len(keys))
	for i, key := range keys {
		row, ok := rows[key]
		if !ok {
			items[i] = cache.Item{Key: key, Entry: NotFound(j, key, position, now)}
			continue
		}
		e, err := Entry(j, key, row.Value, row.Position, now)
		if err != nil {
			return nil, err
		}
		items[i] = cache.Item{Key: key, Entry: e}
	}
	return items, nil
}

// Entry returns the entry of job j's value at key computed at t from the snapshot at position:
// value's JSON, fresh and kept as j's lifetime says.
func Entry(j jobs.Job, key string, value any, position int64, t time.Time) (cache.Entry, error) {
	fresh, stale := j.Lifetime.Fresh(key, t)
	e, err := cache.NewEntry(value, position, t, fresh, stale)
	if err != nil {
		return cache.Entry{}, fmt.Errorf("encode the value of %q: %w", key, err)
	}
	return e, nil
}

// NotFound returns the negative entry of job j's key without a row, computed at t from the
// snapshot at position: the job's not-found message, fresh and kept as j's lifetime says of
// unknown keys.
func NotFound(j jobs.Job, key string, position int64, t time.Time) cache.Entry {
	fresh, stale := j.Lifetime.Unknown(t)
	return cache.NewNegativeEntry(j.NotFoundMessage(key), position, t, fresh, stale)
}

// params are the inputs of job j's query at now: the date in the job's time zone.
func params(j jobs.Job, now time.Time) query.Params {
	return query.Params{Today: query.DateOf(now.In(j.Lifetime.Location))}
}
