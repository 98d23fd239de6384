package testenv

import (
	"context"
	"testing"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/query"
)

// OpenDB opens a pool on the database of dbURL with opts, closed when the test ends.
func OpenDB(t testing.TB, dbURL string, opts query.Options) *query.DB {
	t.Helper()
	db, err := query.Open(context.Background(), dbURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// OpenStore opens a store on the Redis of redisURL with keys and opts, closed when the test
// ends.
func OpenStore(t testing.TB, redisURL string, keys cache.Keys, opts cache.Options) *cache.Store {
	t.Helper()
	s, err := cache.Open(redisURL, keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
