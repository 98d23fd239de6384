package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/query"
)

// Compute computes job's value at key from db, as of now, as the entry to serve and store. An
// unknown key gives a negative entry, a 404 body fresh for negativeTTL. The api computes its
// misses this way and the warmer the keys a write changed. Errors are query's
// (ErrInvalidKey, ErrUnavailable).
func Compute(ctx context.Context, db *query.DB, job Job, key string, now time.Time, negativeTTL time.Duration) (cache.Entry, error) {
	params := query.Params{Today: query.DateOf(now.In(job.Lifetime.Location))}
	row, err := db.Lookup(ctx, job.Aggregate, params, key)
	if errors.Is(err, query.ErrNotFound) {
		body, _ := json.Marshal(map[string]string{"error": notFoundMessage(job, key)})
		return cache.NewEntry(body, row.Version, now, now.Add(negativeTTL), true), nil
	}
	if err != nil {
		return cache.Entry{}, err
	}
	return job.entry(row, now)
}

// entry encodes one row computed at now, fresh for the job's lifetime.
func (j Job) entry(row query.Row, now time.Time) (cache.Entry, error) {
	body, err := json.Marshal(row.Value)
	if err != nil {
		return cache.Entry{}, fmt.Errorf("encode %s %q: %w", j.Name, row.Key, err)
	}
	fresh, _ := j.Lifetime.Times(now, row.Key)
	return cache.NewEntry(body, row.Version, now, fresh, false), nil
}

// Item is e as written to Redis under key: kept for its freshness and the job's grace, a
// negative entry only as long again as it is fresh.
func (j Job) Item(key string, e cache.Entry) (cache.Item, error) {
	b, err := e.MarshalBinary()
	if err != nil {
		return cache.Item{}, err
	}
	fresh := e.FreshUntil.Sub(e.ComputedAt)
	ttl := fresh + j.Lifetime.Grace
	if e.NotFound {
		ttl = 2 * fresh
	}
	return cache.Item{Job: j.Name, Key: key, Version: e.Version, Entry: b, TTL: max(ttl, time.Millisecond)}, nil
}

func notFoundMessage(job Job, key string) string {
	switch {
	case job.KeyTemplate == "{customerid}":
		return "customer " + key + " not found"
	case key == "":
		return "job " + job.Name + " has no value"
	}
	return "job " + job.Name + " has no value for key " + key
}
