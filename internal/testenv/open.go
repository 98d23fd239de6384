package testenv

import (
	"context"
	"testing"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/query"
)

// OpenDB opens a pool on the database of dbURL with opts, closed when the test ends. Its changes
// of orders and customers keep the built-in totals (query.DB.UseBuiltins), as the warmer's do
// where the built-in jobs are on; on a database without them, nothing.
func OpenDB(t testing.TB, dbURL string, opts query.Options) *query.DB {
	t.Helper()
	db, err := query.Open(context.Background(), dbURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	db.UseBuiltins()
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

// NamespaceStore opens a store on the tests' Redis in namespace ns, closed when the test ends.
func NamespaceStore(t testing.TB, ns string) *cache.Store {
	t.Helper()
	keys, err := cache.NewKeys(ns)
	if err != nil {
		t.Fatal(err)
	}
	return OpenStore(t, Get(t).RedisURL, keys, cache.Options{})
}

// NewDB creates a database for this test (NewDatabase) and opens on it a pool of conns
// connections, for the code under test, and a Writer of writers connections, for the test's
// own writes, as another application's.
func NewDB(t testing.TB, conns, writers int32) (*query.DB, *Writer) {
	t.Helper()
	dbURL := NewDatabase(t)
	return OpenDB(t, dbURL, query.Options{MaxConns: conns}), NewWriter(t, dbURL, writers)
}
