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

// params are the inputs of the job's query at now: the date in the job's time zone.
func (j Job) params(now time.Time) query.Params {
	return query.Params{Today: query.DateOf(now.In(j.Lifetime.Location))}
}
