package query

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"

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

// Migrate applies the product's own schema additions: its schema (Options.Schema), and in it
// the outbox, claims, run requests and the change-capture functions. Nothing is created on users'
// tables here: Schema.InstallDependencies installs the triggers the jobs need, and the indexes
// they need are advised (warmer check), never created. An installation of an older version, whose
// objects are in the user's schema, is moved into warmcache's first, with its data. Every
// migration is idempotent and recorded in warmcache_migrations; concurrent calls wait for each
// other on an advisory lock.
func (v Schema) Migrate(ctx context.Context, logger *slog.Logger) error {
	db := v.db
	if err := v.adopt(ctx, logger); err != nil {
		return err
	}
	provider, err := db.migrations()
	if err != nil {
		return err
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

// Pending is what Migrate would do: the schema of an older installation it would move into
// warmcache's ("" for none), and the migrations it would apply, by file, in order. It changes
// nothing (warmer migrate --dry-run).
func (v Schema) Pending(ctx context.Context) (adopt string, files []string, err error) {
	db := v.db
	var applied []int64
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// warmcache's own record, or else an older installation's, which Migrate would move.
		var schema string
		err := tx.QueryRow(ctx, `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relname = 'warmcache_migrations' AND c.relkind = 'r'
			ORDER BY n.nspname = $1 DESC, n.nspname = 'public' DESC, n.nspname LIMIT 1`, db.schema).Scan(&schema)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if schema != db.schema {
			adopt = schema
		}
		rows, _ := tx.Query(ctx, "SELECT version_id FROM "+pgx.Identifier{schema, "warmcache_migrations"}.Sanitize()+
			" WHERE is_applied AND version_id > 0")
		applied, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err != nil {
		return "", nil, translate(err)
	}
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return "", nil, err
	}
	for _, e := range entries {
		var version int64
		if _, err := fmt.Sscanf(e.Name(), "%d_", &version); err == nil && !slices.Contains(applied, version) {
			files = append(files, e.Name())
		}
	}
	return adopt, files, nil
}

// migrations returns goose's provider of the migrations, recorded in warmcache's schema.
func (db *DB) migrations() (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	store, err := database.NewStore(database.DialectPostgres, db.schema+".warmcache_migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID))
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	provider, err := goose.NewProvider("", stdlib.OpenDBFromPool(db.pool), fsys,
		goose.WithStore(store), goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return provider, nil
}

// adopt creates warmcache's schema and moves into it an installation of an older version, found
// in another schema by its warmcache_migrations table: every table and function named
// warmcache_*, with their data (sequences and indexes follow their tables). The moved trigger
// functions keep working meanwhile, told to look in warmcache's schema first; migration 9
// installs them afresh.
func (v Schema) adopt(ctx context.Context, logger *slog.Logger) error {
	db := v.db
	return translate(pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+db.schema); err != nil {
			return fmt.Errorf("create schema %s: %w", db.schema, err)
		}
		var old string
		err := tx.QueryRow(ctx, `
			SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relname = 'warmcache_migrations' AND c.relkind = 'r' AND n.nspname <> $1
			  AND to_regclass(quote_ident($1) || '.warmcache_migrations') IS NULL
			ORDER BY n.nspname = 'public' DESC, n.nspname LIMIT 1`, db.schema).Scan(&old)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		// The search paths first, while the functions are still where the statements name them.
		rows, _ := tx.Query(ctx, `
			SELECT stmt FROM (
				SELECT 1 AS step, format('ALTER FUNCTION %s SET search_path = %I, %I', p.oid::regprocedure, $2::text, $1::text) AS stmt
				FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
				WHERE n.nspname = $1 AND p.proname LIKE 'warmcache\_%' AND p.prorettype = 'trigger'::regtype
				UNION ALL
				SELECT 2, format('ALTER TABLE %I.%I SET SCHEMA %I', n.nspname, c.relname, $2::text)
				FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname LIKE 'warmcache\_%'
				UNION ALL
				SELECT 3, format('ALTER FUNCTION %s SET SCHEMA %I', p.oid::regprocedure, $2::text)
				FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
				WHERE n.nspname = $1 AND p.proname LIKE 'warmcache\_%'
			) moves ORDER BY step, stmt`, old, db.schema)
		stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, stmt := range stmts {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("move warmcache's objects from schema %s: %w", old, err)
			}
		}
		logger.Info("schema_moved", "from", old, "to", db.schema, "objects", len(stmts))
		return nil
	}))
}

// CreateDellstore2 creates the empty dellstore2 tables, without keys and indexes, in the user's
// schema: the first of the search path that is not warmcache's. With drop set it first drops the
// tables that exist, and warmcache's objects; otherwise it fails if any exists, so that nothing
// is lost by accident.
func (v Schema) CreateDellstore2(ctx context.Context, drop bool) error {
	db := v.db
	// translate also what beginning the transaction met: a server that cannot be reached.
	return translate(pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('search_path',
			(SELECT string_agg(quote_ident(s), ', ') FROM unnest(current_schemas(false)) s WHERE s <> $1), true)`, db.schema); err != nil {
			return err
		}
		if drop {
			for _, table := range dellstore2TableNames {
				if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+table+" CASCADE"); err != nil {
					return translate(err)
				}
			}
			// warmcache's objects go too, those of an older version in this schema included.
			if _, err := tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+db.schema+" CASCADE; DROP TABLE IF EXISTS warmcache_migrations"); err != nil {
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
	if _, err := db.pool.Exec(ctx, dellstore2Finish+";"+demoIndex); err != nil {
		return translate(err)
	}
	// VACUUM sets the visibility map, which index-only scans of the aggregates depend on.
	if _, err := db.pool.Exec(ctx, "VACUUM (ANALYZE)"); err != nil {
		return translate(err)
	}
	return nil
}

// demoIndex is the demo's own index for the built-in per-customer jobs (warmcache itself creates
// no index on users' tables; warmer check advises them): it lets them read orders in customerid
// order from the index alone, so their GROUP BY streams rows instead of sorting or hashing every
// order, and a single customer's lookup touches only its entries.
const demoIndex = "CREATE INDEX IF NOT EXISTS ix_orders_customer_totals ON orders (customerid) INCLUDE (totalamount, orderdate)"

// CreateDemoIndex creates the demo's index on dellstore2's orders (FinishDellstore2 does too),
// for a database loaded otherwise, from the real dump.
func (v Schema) CreateDemoIndex(ctx context.Context) error {
	_, err := v.db.pool.Exec(ctx, demoIndex)
	return translate(err)
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

// BuiltinTables are the tables the built-in jobs read and the order write endpoint writes.
var BuiltinTables = []string{"orders", "customers"}

// Missing returns those of tables that the search path (warmcache's schema, then the user's)
// does not find, in their order.
func (v Schema) Missing(ctx context.Context, tables []string) ([]string, error) {
	db := v.db
	rows, _ := db.pool.Query(ctx, `SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i)
		WHERE to_regclass(quote_ident(t)) IS NULL ORDER BY i`, tables)
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return missing, translate(err)
}

//go:embed builtins.sql
var builtinsSQL string

// BuiltinsInstalled reports whether InstallBuiltins has run: the functions of the built-in totals
// exist in warmcache's schema.
func (v Schema) BuiltinsInstalled(ctx context.Context) (bool, error) {
	var installed bool
	err := v.db.pool.QueryRow(ctx, "SELECT to_regprocedure($1) IS NOT NULL",
		v.db.schema+".warmcache_reconcile_totals(integer[], boolean)").Scan(&installed)
	return installed, translate(err)
}

// InstallBuiltins installs what the built-in jobs need beyond the migrations: the functions that
// maintain their totals from orders and customers, with every customer booked once if nothing
// is booked yet, and makes Maintain keep them (DB.UseBuiltins). It is idempotent.
func (v Schema) InstallBuiltins(ctx context.Context) error {
	db := v.db
	if err := translate(pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, builtinsSQL); err != nil {
			return fmt.Errorf("install the built-in totals: %w", err)
		}
		var booked bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM warmcache_orders_total)").Scan(&booked); err != nil || booked {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT warmcache_reseed_totals()")
		return err
	})); err != nil {
		return err
	}
	db.UseBuiltins()
	return nil
}
