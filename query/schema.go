package query

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

var (
	//go:embed migrations/*.sql
	migrations embed.FS

	//go:embed dellstore2.sql
	dellstore2Tables string

	//go:embed dellstore2_finish.sql
	dellstore2Finish string
)

// dellstore2TableNames are the tables of the sample schema, in the order they can be dropped.
var dellstore2TableNames = []string{
	"cust_hist", "orderlines", "orders", "customers", "inventory", "products", "categories", "reorder",
}

// migrationLockID keys the advisory lock that serializes concurrent migrations (several warmer
// replicas starting at once). It is "warmcach" in ASCII.
const migrationLockID = 0x7761726d63616368

// Migrate applies the product's own schema additions (indexes, the outbox and its triggers) to
// the dellstore2 schema. Every migration is idempotent and recorded in
// warmcache_migrations; concurrent calls wait for each other on an advisory lock.
func (v Schema) Migrate(ctx context.Context, logger *slog.Logger) error {
	db := v.db
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	store, err := database.NewStore(database.DialectPostgres, "warmcache_migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(db.pool)
	defer sqlDB.Close()
	provider, err := goose.NewProvider("", sqlDB, fsys,
		goose.WithStore(store), goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", translate(err))
	}
	for _, r := range results {
		logger.Info("migration_applied", "version", r.Source.Version, "file", r.Source.Path,
			"duration", r.Duration)
	}
	return nil
}

// CreateDellstore2 creates the empty dellstore2 tables, without keys and indexes. With drop set
// it first drops the tables that exist; otherwise it fails if any exists, so that nothing is
// lost by accident.
func (v Schema) CreateDellstore2(ctx context.Context, drop bool) error {
	db := v.db
	// translate also what beginning the transaction met: a server that cannot be reached.
	return translate(pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if drop {
			for _, table := range dellstore2TableNames {
				if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+table+" CASCADE"); err != nil {
					return translate(err)
				}
			}
			if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS warmcache_migrations"); err != nil {
				return translate(err)
			}
		}
		rows, _ := tx.Query(ctx, `SELECT tablename FROM pg_tables
			WHERE schemaname = current_schema() AND tablename = ANY($1) ORDER BY 1`, dellstore2TableNames)
		existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return translate(err)
		}
		if len(existing) > 0 {
			return fmt.Errorf("tables %v already exist; drop them first (the generator's --drop)", existing)
		}
		_, err = tx.Exec(ctx, dellstore2Tables)
		return translate(err)
	}))
}

// FinishDellstore2 adds the keys, indexes and foreign keys of dellstore2 after loading, moves
// the serial sequences past the loaded ids, and analyzes the tables.
func (v Schema) FinishDellstore2(ctx context.Context) error {
	db := v.db
	if _, err := db.pool.Exec(ctx, dellstore2Finish); err != nil {
		return translate(err)
	}
	// VACUUM sets the visibility map, which index-only scans of the aggregates depend on.
	if _, err := db.pool.Exec(ctx, "VACUUM (ANALYZE)"); err != nil {
		return translate(err)
	}
	return nil
}

// RowSource yields the rows Copy writes. It has the method set of pgx.CopyFromSource.
type RowSource interface {
	Next() bool
	Values() ([]any, error)
	Err() error
}

// Copy bulk-loads rows into table with PostgreSQL's COPY protocol and returns how many it wrote.
func (v Schema) Copy(ctx context.Context, table string, columns []string, src RowSource) (int64, error) {
	db := v.db
	n, err := db.pool.CopyFrom(ctx, pgx.Identifier{table}, columns, src)
	if err != nil {
		return n, fmt.Errorf("copy into %s: %w", table, translate(err))
	}
	return n, nil
}

// Counts returns the number of rows of each dellstore2 table.
func (v Schema) Counts(ctx context.Context) (map[string]int64, error) {
	db := v.db
	counts := make(map[string]int64, len(dellstore2TableNames))
	for _, table := range dellstore2TableNames {
		var n int64
		if err := db.pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", table, translate(err))
		}
		counts[table] = n
	}
	return counts, nil
}

// EnsureDatabase creates the database that url names, if it does not exist, by connecting to the
// server's maintenance database "postgres" with the same credentials.
func EnsureDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return translate(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return translate(err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return translate(err)
}

// HasDellstore2 reports whether the orders and customers tables exist.
func (v Schema) HasDellstore2(ctx context.Context) (bool, error) {
	db := v.db
	var n int
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables
		WHERE schemaname = current_schema() AND tablename IN ('orders', 'customers')`).Scan(&n)
	return n == 2, translate(err)
}
