package testenv

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ReplicaOf returns the URL of the database of dbURL on the tests' streaming replica
// (TEST_REPLICA_URL: scripts/servers makes it with pg_basebackup and an apply delay of a
// second), once the replica has replayed everything the primary had when it was called. It fails
// the test when TEST_REPLICA_URL is not set or the replica does not catch up.
func ReplicaOf(t testing.TB, dbURL string) string {
	t.Helper()
	replica := os.Getenv("TEST_REPLICA_URL")
	if replica == "" {
		t.Fatal("testenv: TEST_REPLICA_URL is not set: run the tests with make test, which starts a streaming " +
			"replica of PostgreSQL and sets it (or set it to a replica of TEST_DATABASE_URL's server)")
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	r, err := url.Parse(replica)
	if err != nil {
		t.Fatal(err)
	}
	r.Path = u.Path
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	target := PrimaryPosition(t, dbURL)
	for {
		at, err := ReplayPosition(ctx, r.String())
		if err == nil && at >= target {
			return r.String()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testenv: the replica did not replay past %d within a minute (last error: %v)", target, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PrimaryPosition returns the primary's WAL position now, as warmcache reads it.
func PrimaryPosition(t testing.TB, dbURL string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var p int64
	if err := conn.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// ReplayPosition returns how far the replica of replicaURL has replayed.
func ReplayPosition(ctx context.Context, replicaURL string) (int64, error) {
	conn, err := pgx.Connect(ctx, replicaURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var p int64
	err = conn.QueryRow(ctx, "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint").Scan(&p)
	return p, err
}
