// Package testenv gives tests real PostgreSQL and Redis servers and isolates tests from each
// other on them: each test gets a database of its own, cloned from a template that holds the
// dellstore2 data (the real dump when it is present, generated data of the same size otherwise)
// with warmcache's migrations applied, and a Redis key namespace of its own.
//
// The servers come from TEST_DATABASE_URL (a superuser URL) and TEST_REDIS_URL, which make test
// sets after starting them (scripts/servers); go test itself starts and installs nothing. Without
// them, or with a server that cannot be reached, a test fails; it never skips.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Servers are the URLs of the servers tests run against.
type Servers struct {
	// AdminURL is a PostgreSQL superuser URL, used to create and drop test databases.
	AdminURL string
	// RedisURL is a Redis URL; tests isolate themselves with key namespaces.
	RedisURL string
}

// Get returns the servers of TEST_DATABASE_URL and TEST_REDIS_URL. It fails the test, with a
// hint, when they are not set.
func Get(t testing.TB) Servers {
	t.Helper()
	s := Servers{AdminURL: os.Getenv("TEST_DATABASE_URL"), RedisURL: os.Getenv("TEST_REDIS_URL")}
	if s.AdminURL == "" || s.RedisURL == "" {
		t.Fatal("testenv: TEST_DATABASE_URL and TEST_REDIS_URL are not set: run the tests with make test, " +
			"which starts PostgreSQL and Redis and sets them (or set them to servers of your own)")
	}
	return s
}

// RepoRoot returns the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Dellstore2Dump returns the path of the real dellstore2 dump, from DELLSTORE2_DUMP or beside the
// repository in ../shared, and whether it exists.
func Dellstore2Dump() (string, bool) {
	path := os.Getenv("DELLSTORE2_DUMP")
	if path == "" {
		path = filepath.Join(RepoRoot(), "..", "shared", "data", "dellstore2", "dellstore2-normal-1.0.sql.gz")
	}
	_, err := os.Stat(path)
	return path, err == nil
}

// RequireDellstore2 is for tests that check the real data set's known figures. Without the dump
// they are skipped on a developer's machine and fail in CI (CI set), where the dump must be.
func RequireDellstore2(t testing.TB) {
	t.Helper()
	if path, ok := Dellstore2Dump(); !ok {
		if os.Getenv("CI") != "" {
			t.Fatalf("testenv: CI is set but the dellstore2 dump is missing at %s", path)
		}
		t.Skipf("the dellstore2 dump is not at %s; its known figures cannot be checked", path)
	}
}

// NewDatabase creates a database for this test, a copy of the template with the dellstore2 data
// and migrations, and drops it when the test ends. It returns the database's URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	tmpl, err := template(Get(t).AdminURL)
	if err != nil {
		t.Fatalf("testenv: template database: %v", err)
	}
	return newDatabase(t, "TEMPLATE "+tmpl)
}

// NewEmptyDatabase creates an empty database for this test and drops it when the test ends. It
// returns the database's URL.
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "")
}

func newDatabase(t testing.TB, options string) string {
	t.Helper()
	admin := Get(t).AdminURL
	name := fmt.Sprintf("wc_t_%d_%s", time.Now().Unix(), randomHex(4))
	ctx := context.Background()
	if err := adminExec(ctx, admin, fmt.Sprintf("CREATE DATABASE %s %s", name, options)); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		if err := adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

// Namespace returns a Redis key namespace of this test's own; its keys are deleted when the test
// ends.
func Namespace(t testing.TB) string {
	t.Helper()
	Get(t)
	ns := "t" + randomHex(6)
	t.Cleanup(func() { Clear(t, ns) })
	return ns
}

// Clear deletes every key of namespace ns.
func Clear(t testing.TB, ns string) {
	t.Helper()
	rdb := redisClient(t)
	defer rdb.Close()
	ctx := context.Background()
	var batch []string
	iter := rdb.Scan(ctx, 0, ns+":*", 1000).Iterator()
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 1000 {
			rdb.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rdb.Unlink(ctx, batch...)
	}
	if err := iter.Err(); err != nil {
		t.Errorf("testenv: clear namespace %s: %v", ns, err)
	}
}

// redisClient returns a client of the tests' Redis server, for its caller to close.
func redisClient(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(Get(t).RedisURL)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return redis.NewClient(opts)
}

func withDatabase(adminURL, name string) string {
	u, err := url.Parse(adminURL)
	if err != nil {
		panic(fmt.Sprintf("testenv: admin URL: %v", err))
	}
	u.Path = "/" + name
	return u.String()
}

func adminExec(ctx context.Context, adminURL, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Keys returns the keys of a job's values in namespace ns, without the prefix: the keys a keyed
// job has in Redis.
func Keys(t testing.TB, ns, job string) []string {
	t.Helper()
	rdb := redisClient(t)
	defer rdb.Close()
	ctx := context.Background()
	prefix := ns + ":" + job + ":"
	var keys []string
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val()[len(prefix):])
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("testenv: scan %s*: %v", prefix, err)
	}
	return keys
}

// Every calls f every d, with a context that ends with the test, until the test ends, and
// waits for the last call to return: a change the code under test keeps meeting, as a busy
// writer makes it.
func Every(t testing.TB, d time.Duration, f func(ctx context.Context)) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		stop()
		<-done
	})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			f(ctx)
			time.Sleep(d) // the pace of the changes, not a wait for one
		}
	}()
}
