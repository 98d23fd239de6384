package testenv

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Writer writes to a test database as another application would, knowing nothing of warmcache.
// A statement that deadlocks or cannot be serialized is retried, as such an application's must.
type Writer struct {
	t    testing.TB
	pool *pgxpool.Pool
}

// NewWriter connects a Writer to the database at dbURL, with up to conns connections.
func NewWriter(t testing.TB, dbURL string, conns int32) *Writer {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = conns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &Writer{t: t, pool: pool}
}

// Exec runs a statement and returns how many rows it changed. It may be called from any
// goroutine.
func (w *Writer) Exec(sql string, args ...any) (int64, error) {
	for {
		tag, err := w.pool.Exec(context.Background(), sql, args...)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001") {
			continue // deadlock_detected, serialization_failure
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", sql, err)
		}
		return tag.RowsAffected(), nil
	}
}

// MustExec runs statements in turn, failing the test at the first that fails; it is for the
// test's own goroutine.
func (w *Writer) MustExec(stmts ...string) {
	w.t.Helper()
	for _, stmt := range stmts {
		if _, err := w.Exec(stmt); err != nil {
			w.t.Fatal(err)
		}
	}
}

// Int returns the integer a query yields, failing the test on an error.
func (w *Writer) Int(sql string, args ...any) int64 {
	w.t.Helper()
	var n int64
	if err := w.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		w.t.Fatalf("testenv: %s: %v", sql, err)
	}
	return n
}

// Text returns the text a query yields, failing the test on an error.
func (w *Writer) Text(sql string, args ...any) string {
	w.t.Helper()
	var s string
	if err := w.pool.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		w.t.Fatalf("testenv: %s: %v", sql, err)
	}
	return s
}
