package query

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Column is a column of a table, as the catalog describes it.
type Column struct {
	// Type is the column's SQL type, as format_type writes it ("integer", "numeric(12,2)").
	Type string
	// NotNull is set when the column cannot hold NULL.
	NotNull bool
}

// Columns returns the columns of table by name, or ErrNotFound when there is no such table.
func (v Schema) Columns(ctx context.Context, table string) (map[string]Column, error) {
	db := v.db
	rows, _ := db.pool.Query(ctx, `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_attribute a
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, table)
	columns := map[string]Column{}
	var name string
	var c Column
	if _, err := pgx.ForEachRow(rows, []any{&name, &c.Type, &c.NotNull}, func() error {
		columns[name] = c
		return nil
	}); err != nil {
		return nil, translate(err)
	}
	if len(columns) == 0 {
		return nil, fmt.Errorf("table %s: %w", table, ErrNotFound)
	}
	return columns, nil
}

// Resolve finds the tables of names, each written as SQL would name it (orders, public.orders,
// metering."Usage"), with the search path: it returns their qualified names as the outbox
// records them (schema.table, unquoted), by the name as written. A name no table has is an
// error naming it.
func (v Schema) Resolve(ctx context.Context, names []string) (map[string]string, error) {
	db := v.db
	rows, _ := db.pool.Query(ctx, `SELECT n, (SELECT `+qualifiedName+` FROM pg_class c WHERE c.oid = to_regclass(n))
		FROM unnest($1::text[]) AS n`, names)
	found := make(map[string]string, len(names))
	var missing []string
	var name string
	var qualified *string
	if _, err := pgx.ForEachRow(rows, []any{&name, &qualified}, func() error {
		if qualified == nil {
			missing = append(missing, name)
		} else {
			found[name] = *qualified
		}
		return nil
	}); err != nil {
		return nil, translate(err)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no table %s", strings.Join(missing, ", "))
	}
	return found, nil
}

// qualifiedName is the qualified name of the table c (pg_class) as the outbox records it, as
// migration 9's warmcache_table_name writes it: schema.table, unquoted. The statements that need
// it before the migrations ran (warmer check, migrate --dry-run) write it themselves.
const qualifiedName = `(SELECT n.nspname || '.' || c.relname FROM pg_namespace n WHERE n.oid = c.relnamespace)`

// QuoteTable quotes a table's qualified name, as the outbox records it (schema.table, unquoted),
// for SQL: "schema"."table". The schema is what comes before the first dot.
func QuoteTable(qualified string) string {
	schema, table, ok := strings.Cut(qualified, ".")
	if !ok {
		return pgx.Identifier{qualified}.Sanitize()
	}
	return pgx.Identifier{schema, table}.Sanitize()
}

// InstallDependencies makes the changes of each table of tables (by qualified name, schema.table)
// recorded in the outbox with the
// values of its columns (the keys of the jobs depending on it), and removes what warmcache
// installed on tables that are no longer among them. It touches nothing else: the tables, their
// data and other triggers stay as they are. Tables whose recording is already as wanted are left
// alone, so that a warmer's start takes no lock on them. Concurrent calls wait for each other.
func (v Schema) InstallDependencies(ctx context.Context, tables map[string][]string) error {
	db := v.db
	return translate(pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockID); err != nil {
			return err
		}
		installed, err := installedDependencies(ctx, tx)
		if err != nil {
			return err
		}
		for _, table := range slices.Sorted(maps.Keys(tables)) {
			cols := slices.Sorted(slices.Values(tables[table]))
			cols = slices.Compact(cols)
			if have, ok := installed[table]; ok && have == strings.Join(cols, ",") {
				continue
			}
			if _, err := tx.Exec(ctx, "SELECT warmcache_install_changes($1::regclass, $2)", QuoteTable(table), cols); err != nil {
				return fmt.Errorf("record the changes of %s: %w", table, err)
			}
		}
		for table := range installed {
			if _, wanted := tables[table]; !wanted {
				if _, err := tx.Exec(ctx, "SELECT warmcache_uninstall_changes($1::regclass)", QuoteTable(table)); err != nil {
					return fmt.Errorf("stop recording the changes of %s: %w", table, err)
				}
			}
		}
		return nil
	}))
}

// InstalledDependencies returns the tables whose changes are recorded, with the columns each
// records.
func (v Schema) InstalledDependencies(ctx context.Context) (map[string][]string, error) {
	db := v.db
	var installed map[string]string
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		installed, err = installedDependencies(ctx, tx)
		return err
	})
	if err != nil {
		return nil, translate(err)
	}
	tables := make(map[string][]string, len(installed))
	for table, cols := range installed {
		tables[table] = []string{}
		if cols != "" {
			tables[table] = strings.Split(cols, ",")
		}
	}
	return tables, nil
}

// changesVersion marks the functions of the current warmcache_install_changes: one installed by
// another version is installed again.
const changesVersion = "v2:"

// installedDependencies reads what warmcache_install_changes left: the tables carrying its
// triggers, with the columns their function records (its comment, after the version).
func installedDependencies(ctx context.Context, tx pgx.Tx) (map[string]string, error) {
	rows, _ := tx.Query(ctx, `
		SELECT `+qualifiedName+`, COALESCE(obj_description(t.tgfoid, 'pg_proc'), '')
		FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = 'warmcache_changes_insert'`)
	installed := map[string]string{}
	var table, comment string
	_, err := pgx.ForEachRow(rows, []any{&table, &comment}, func() error {
		cols, current := strings.CutPrefix(comment, changesVersion)
		if !current {
			cols = "(another version)" // never a list of columns: installed again
		}
		installed[table] = cols
		return nil
	})
	return installed, err
}
