package query

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Row is one result of an aggregate: the key it is stored under (empty for a single-value
// aggregate), its value, which marshals to the JSON body the API serves, and the version of the
// snapshot it was computed from.
type Row struct {
	Key   string
	Value any
	// Version is PostgreSQL's transaction start time in microseconds since the Unix epoch. Every
	// commit acknowledged before it is reflected in the row, so a row with a higher version never
	// lost a write that one with a lower version saw.
	Version int64
}

// Params are the inputs an aggregate may depend on besides the data.
type Params struct {
	// Today is the reference date for anything relative to the calendar, such as whether a
	// credit card has expired. The caller derives it from its clock in its time zone.
	Today Date
}

// Aggregate is a query a job runs: the SQL that yields every row in one pass, the SQL that
// yields the row of one key, and how a result row becomes a Row. The built-in aggregates and
// users' SQL jobs are all values of this one type.
type Aggregate struct {
	// Keyed reports whether the aggregate yields one row per key; otherwise it yields exactly
	// one row.
	Keyed bool

	streamSQL string
	lookupSQL string
	// streamSettings are SET LOCAL statements run before streamSQL, in its transaction only.
	streamSettings []string
	// args returns the statement arguments; the lookup key, when there is one, comes after.
	args func(Params) []any
	// keyArgs checks a lookup key and returns its canonical spelling and the lookup
	// statement's arguments for it.
	keyArgs func(key string) (canonical string, args []any, err error)
	scan    func(rows pgx.Rows) (Row, error)
}

// CanonicalKey checks that key can name a row of a keyed aggregate and returns the spelling
// it is stored under (for customer ids, the decimal number without leading zeros). It returns
// ErrInvalidKey for a key that can never match.
func (a Aggregate) CanonicalKey(key string) (string, error) {
	if !a.Keyed {
		return "", nil
	}
	canon, _, err := a.keyArgs(key)
	return canon, err
}

// Stream runs agg over every key in one read-only snapshot and hands each row to fn as it
// arrives from the server: nothing is buffered, so memory stays flat whatever the number of
// rows. An error from fn stops the query and is returned unchanged.
func (db *DB) Stream(ctx context.Context, agg Aggregate, p Params, fn func(Row) error) error {
	return db.snapshot(ctx, func(tx pgx.Tx, version int64) error {
		for _, set := range agg.streamSettings {
			if _, err := tx.Exec(ctx, set); err != nil {
				return translate(err)
			}
		}
		rows, err := tx.Query(ctx, agg.streamSQL, agg.args(p)...)
		if err != nil {
			return translate(err)
		}
		defer rows.Close()
		for rows.Next() {
			row, err := agg.scan(rows)
			if err != nil {
				return fmt.Errorf("scan row: %w", err)
			}
			row.Version = version
			if err := fn(row); err != nil {
				return err
			}
		}
		return translate(rows.Err())
	})
}

// Lookup computes the row of one key (ignored for a single-value aggregate). It returns
// ErrInvalidKey for a malformed key, and ErrNotFound when the key has no row, with the returned
// row's Version still telling which snapshot found nothing.
func (db *DB) Lookup(ctx context.Context, agg Aggregate, p Params, key string) (Row, error) {
	args := agg.args(p)
	if agg.Keyed {
		_, keyArgs, err := agg.keyArgs(key)
		if err != nil {
			return Row{}, err
		}
		args = append(args, keyArgs...)
	}
	var row Row
	err := db.snapshot(ctx, func(tx pgx.Tx, version int64) error {
		row.Version = version
		rows, err := tx.Query(ctx, agg.lookupSQL, args...)
		if err != nil {
			return translate(err)
		}
		defer rows.Close()
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return translate(err)
			}
			return ErrNotFound
		}
		found, err := agg.scan(rows)
		if err != nil {
			return fmt.Errorf("scan row: %w", err)
		}
		found.Version = version
		row = found
		return nil
	})
	return row, err
}

// snapshot runs fn in a read-only repeatable-read transaction, so every statement of fn sees one
// database state, and tells fn the version of that state. fn translates its own driver errors:
// its callbacks' errors must reach the caller unchanged.
func (db *DB) snapshot(ctx context.Context, fn func(tx pgx.Tx, version int64) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return translate(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	var started time.Time
	if err := tx.QueryRow(ctx, "SELECT now()").Scan(&started); err != nil {
		return translate(err)
	}
	if err := fn(tx, started.UnixMicro()); err != nil {
		return err
	}
	return translate(tx.Commit(ctx))
}

// Check asks PostgreSQL to parse and plan agg's statements without running them, so that a
// user's job with a syntax error, an unknown table or a key column its result lacks is refused
// at start-up rather than at its first run.
func (db *DB) Check(ctx context.Context, agg Aggregate) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return translate(err)
	}
	defer conn.Release()
	for _, sql := range []string{agg.streamSQL, agg.lookupSQL} {
		if _, err := conn.Conn().Prepare(ctx, "", sql); err != nil {
			return translate(err)
		}
	}
	return nil
}
