package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/query"
)

// Compute computes the job's value at key from db, as of now, as the entry to serve and store. A
// key without a row gives a negative entry carrying the job's not-found message. The api computes
// its misses this way and the warmer the keys a write changed. Errors wrap query's
// (ErrInvalidKey, ErrUnavailable), or the statement's own.
func (j Job) Compute(ctx context.Context, db *query.DB, key string, now time.Time) (cache.Entry, error) {
	row, err := db.Lookup(ctx, j.Aggregate, j.params(now), key)
	if errors.Is(err, query.ErrNotFound) {
		return j.Lifetime.NotFound(j.NotFoundMessage(key), row.Version, now), nil
	}
	if err != nil {
		return cache.Entry{}, fmt.Errorf("compute %s %q: %w", j.Name, key, err)
	}
	return j.Lifetime.Entry(row.Key, row.Value, row.Version, now)
}

// ComputeMany computes the job's values at keys, canonical all (Aggregate.CanonicalKey), from db
// in one snapshot and one statement, as of now: the items to store, a negative entry for each key
// without a row. A single-value job's one value is under the empty key, whatever keys say. The
// warmer refreshes the keys of a batch of changes this way.
func (j Job) ComputeMany(ctx context.Context, db *query.DB, keys []string, now time.Time) ([]cache.Item, error) {
	if !j.Keyed() {
		keys = []string{""}
	}
	rows, version, err := db.LookupMany(ctx, j.Aggregate, j.params(now), keys)
	if err != nil {
		return nil, fmt.Errorf("compute %s (%d keys): %w", j.Name, len(keys), err)
	}
	items := make([]cache.Item, len(keys))
	for i, key := range keys {
		row, ok := rows[key]
		if !ok {
			items[i] = cache.Item{Key: key, Entry: j.Lifetime.NotFound(j.NotFoundMessage(key), version, now)}
			continue
		}
		e, err := j.Lifetime.Entry(key, row.Value, row.Version, now)
		if err != nil {
			return nil, err
		}
		items[i] = cache.Item{Key: key, Entry: e}
	}
	return items, nil
}

// params are the inputs of the job's query at now: the date in the job's time zone.
func (j Job) params(now time.Time) query.Params {
	return query.Params{Today: query.DateOf(now.In(j.Lifetime.Location))}
}
