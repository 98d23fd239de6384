package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"github.com/jackc/pgx/v5"
)

// Row is one result of an aggregate: the key it is stored under (empty for a single-value
// aggregate), its value, which marshals to the JSON body the API serves, and the position of the
// snapshot it was computed from.
type Row struct {
	Key   string
	Value any
	// Position is the WAL position (LSN) of the snapshot the row was read in (Position): every
	// commit acknowledged at or before it is reflected in the row, so a row read at a higher
	// position never lost a write that one read at a lower position saw, whichever server of
	// the primary and its replicas each was read from.
	Position int64
}

// Params are the inputs an aggregate may depend on besides the data.
type Params struct {
	// Today is the reference date for anything relative to the calendar, such as whether a
	// credit card has expired. The caller derives it from its clock in its time zone.
	Today Date
}

// Aggregate is a query a job runs: the SQL that yields every row in one pass, the SQL that
// yields the rows of given keys, and how a result row becomes a Row. The built-in aggregates and
// users' SQL jobs are all values of this one type.
//
// An incremental aggregate's lookups read figures that triggers maintain in the writing
// transaction, so that they cost the same whatever the size of the data; its stream computes
// everything in full and checks the maintained figures against it (Stream's Drift).
type Aggregate struct {
	// Keyed reports whether the aggregate yields one row per key; otherwise it yields exactly
	// one row.
	Keyed bool

	streamSQL string
	// streamSettings are SET LOCAL statements run before streamSQL, in its transaction only.
	streamSettings []string
	// lookupSQL yields the single value; a keyed aggregate's keys make their own lookup.
	lookupSQL string
	keys      keys
	// args returns the statement arguments; the lookup's keys, when there are some, come after.
	args func(Params) []any
	scan func(rows pgx.Rows) (Row, error)
	// user marks a user's own SQL, which Check confirms only reads.
	user bool

	// checkSQL yields every row from the maintained figures, and reseedSQL computes them afresh;
	// both are empty unless the aggregate is incremental. repair, when set, confirms and mends a
	// drift its own way instead of reseeding (Repair).
	checkSQL  string
	reseedSQL string
	repair    func(ctx context.Context, db *DB, settle Settle) (Drift, error)
}

// keys is how a keyed aggregate's keys are spelled and become its lookup's arguments.
type keys interface {
	// canonical checks that key can name a row and returns the spelling it is stored under, or
	// ErrInvalidKey.
	canonical(key string) (string, error)
	// lookup returns the statement that yields the rows of keys, canonical all, and its key
	// arguments; it may ask tx's server about the statement first.
	lookup(ctx context.Context, tx pgx.Tx, keys []string) (sql string, args []any, err error)
}

// User reports whether the aggregate is a user's own SQL, whose dependencies PostgreSQL finds.
func (a Aggregate) User() bool { return a.user }

// Incremental reports whether the aggregate's lookups read figures maintained by triggers.
func (a Aggregate) Incremental() bool { return a.checkSQL != "" }

// CanonicalKey checks that key can name a row of a keyed aggregate and returns the spelling
// it is stored under (for customer ids, the decimal number without leading zeros). It returns
// ErrInvalidKey for a key that can never match, and for a key that no key of an aggregate may
// be: empty, longer than MaxKeyLength, not UTF-8, or holding control characters.
func (a Aggregate) CanonicalKey(key string) (string, error) {
	if !a.Keyed {
		return "", nil
	}
	if len(key) == 0 || len(key) > MaxKeyLength || !utf8.ValidString(key) || strings.ContainsFunc(key, unicode.IsControl) {
		return "", ErrInvalidKey
	}
	return a.keys.canonical(key)
}

// Key returns the key of a keyed aggregate's row whose key columns, in the key template's order,
// have the text of parts, in the spelling it is stored under: what a change that names those
// values touches. A key that cannot name a row is ErrInvalidKey.
func (a Aggregate) Key(parts []string) (string, error) {
	if k, ok := a.keys.(*templateKeys); ok {
		if len(parts) != len(k.tmpl.columns) {
			return "", ErrInvalidKey
		}
		return a.CanonicalKey(k.tmpl.render(parts))
	}
	if len(parts) != 1 {
		return "", ErrInvalidKey
	}
	return a.CanonicalKey(parts[0])
}

// MaxKeyLength bounds a key, in bytes. Keys name rows (a customer id, a date, a product): they
// are short, and what a client asks for is stored in Redis, as a value or as unknown, and
// written to logs.
const MaxKeyLength = 256

// Drift is what a check of an incremental aggregate found: how many values its maintained
// figures get wrong, and one of them as an example for the log.
type Drift struct {
	Values  int
	Example string
}

// Stream runs agg over every key in one read-only snapshot and hands each row to fn as it
// arrives from the server: nothing is buffered, so memory stays flat whatever the number of
// rows. An error from fn stops the query and is returned unchanged. For an incremental
// aggregate it then reads the maintained figures in the same snapshot and returns how they
// differ from the rows computed in full.
func (db *DB) Stream(ctx context.Context, agg Aggregate, p Params, fn func(Row) error) (Streamed, error) {
	var streamed Streamed
	err := db.snapshot(ctx, 0, func(tx pgx.Tx, position int64) error {
		streamed.Position = position
		for _, set := range agg.streamSettings {
			if _, err := tx.Exec(ctx, set); err != nil {
				return translate(err)
			}
		}
		var full map[string]uint64 // the full rows' bodies, hashed, to check the figures against
		if agg.Incremental() {
			full = map[string]uint64{}
		}
		err := scanRows(ctx, tx, agg, agg.streamSQL, agg.args(p), func(row Row) error {
			row.Position = position
			if full != nil && (agg.Keyed || len(full) == 0) {
				b, err := json.Marshal(row.Value)
				if err != nil {
					return fmt.Errorf("encode row %q: %w", row.Key, err)
				}
				full[row.Key] = xxhash.Sum64(b)
			}
			return fn(row)
		})
		if err != nil || full == nil {
			return err
		}
		streamed.Drift, err = check(ctx, tx, agg, p, full)
		return err
	})
	return streamed, err
}

// Streamed is what Stream says of the rows it streamed: the position of the snapshot they were
// read in (Row.Position, also when there was none), and what the check of an incremental
// aggregate's maintained figures found.
type Streamed struct {
	Position int64
	Drift    Drift
}

// check compares the maintained figures of agg with the full rows' hashes.
func check(ctx context.Context, tx pgx.Tx, agg Aggregate, p Params, full map[string]uint64) (Drift, error) {
	var d Drift
	err := scanRows(ctx, tx, agg, agg.checkSQL, agg.args(p), func(row Row) error {
		b, err := json.Marshal(row.Value)
		if err != nil {
			return fmt.Errorf("encode row %q: %w", row.Key, err)
		}
		want, ok := full[row.Key]
		delete(full, row.Key)
		if !ok || want != xxhash.Sum64(b) {
			d.Values++
			if d.Example == "" {
				d.Example = fmt.Sprintf("key %q: the maintained figures say %s", row.Key, b)
			}
		}
		return nil
	})
	for key := range full {
		d.Values++
		if d.Example == "" {
			d.Example = fmt.Sprintf("key %q: missing from the maintained figures", key)
		}
	}
	return d, err
}

// Repair mends the maintained figures of an incremental aggregate where Stream found them
// drifted, and returns the drift it confirmed: none when what Stream saw were writes still on
// their way into the figures, which settle waits for (nil gives them a fixed time). Figures kept
// by triggers in the writing transactions cannot lag: their drift is confirmed as found, and they
// are computed afresh, holding off writes to their table meanwhile.
func (db *DB) Repair(ctx context.Context, agg Aggregate, found Drift, settle Settle) (Drift, error) {
	switch {
	case found.Values == 0 || !agg.Incremental():
		return Drift{}, nil
	case agg.repair != nil:
		return agg.repair(ctx, db, settle)
	}
	return found, translate(pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, agg.reseedSQL)
		return err
	}))
}

// scanRows runs sql and hands each row, scanned, to fn.
func scanRows(ctx context.Context, tx pgx.Tx, agg Aggregate, sql string, args []any, fn func(Row) error) error {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return translate(err)
	}
	defer rows.Close()
	for rows.Next() {
		row, err := agg.scan(rows)
		if err != nil {
			return fmt.Errorf("scan row: %w", err)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return translate(rows.Err())
}

// Lookup computes the row of one key (ignored for a single-value aggregate) in a snapshot at
// position at or past it (LookupMany). It returns ErrInvalidKey for a malformed key, and
// ErrNotFound when the key has no row, with the returned row's Position still telling which
// snapshot found nothing.
func (db *DB) Lookup(ctx context.Context, agg Aggregate, p Params, key string, at int64) (Row, error) {
	canon, err := agg.CanonicalKey(key)
	if err != nil {
		return Row{}, err
	}
	rows, position, err := db.LookupMany(ctx, agg, p, []string{canon}, at)
	if err != nil {
		return Row{}, err
	}
	row, ok := rows[canon]
	if !ok {
		return Row{Position: position}, ErrNotFound
	}
	return row, nil
}

// LookupMany computes the rows of keys, canonical all (CanonicalKey), in one snapshot and with
// one statement, and returns those that exist by key, with the snapshot's position. The
// snapshot reaches position at at least: a replica's once it has replayed past it, else the
// primary's (0 takes the replica as it is, Latest the primary). For a single-value aggregate,
// keys are ignored and its one row is under the empty key. A key that cannot name a row is
// ErrInvalidKey.
func (db *DB) LookupMany(ctx context.Context, agg Aggregate, p Params, keys []string, at int64) (map[string]Row, int64, error) {
	found := map[string]Row{}
	var position int64
	err := db.snapshot(ctx, at, func(tx pgx.Tx, v int64) error {
		position = v
		sql, args := agg.lookupSQL, agg.args(p)
		wanted := map[string]bool{"": true}
		if agg.Keyed {
			wanted = make(map[string]bool, len(keys))
			for _, k := range keys {
				wanted[k] = true
			}
			stmt, keyArgs, err := agg.keys.lookup(ctx, tx, keys)
			if err != nil {
				return err
			}
			sql, args = stmt, append(args, keyArgs...)
		}
		return scanRows(ctx, tx, agg, sql, args, func(row Row) error {
			// A template's lookup may yield rows of other keys; a single value is its first row.
			if _, seen := found[row.Key]; wanted[row.Key] && !seen {
				row.Position = v
				found[row.Key] = row
			}
			return nil
		})
	})
	return found, position, err
}

// snapshot runs fn in a read-only repeatable-read transaction, so every statement of fn sees one
// database state, and tells fn the position of that state: at least at, on a replica that has
// replayed past it, or else on the primary (acquire). fn translates its own driver errors: its
// callbacks' errors must reach the caller unchanged.
//
// Getting a connection and starting the transaction take at most the DB's timeout (and the
// replica's wait): a server that stops answering fails the caller then, not at the end of a
// run's timeout.
func (db *DB) snapshot(ctx context.Context, at int64, fn func(tx pgx.Tx, position int64) error) error {
	start, cancel := context.WithTimeoutCause(ctx, db.timeout+db.replicaWait(), errTimedOut)
	defer cancel()
	conn, position, err := db.acquire(start, at)
	if err != nil {
		return db.failure(start, err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(start, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return db.failure(start, err)
	}
	cancel()
	// The rollback of a transaction that failed is bounded too: the connection may be the
	// reason it failed.
	defer func() {
		end, cancel := context.WithTimeout(context.WithoutCancel(ctx), db.timeout)
		defer cancel()
		tx.Rollback(end) //nolint:errcheck // after Commit it is a no-op
	}()
	if err := fn(tx, position); err != nil {
		return err
	}
	return translate(tx.Commit(ctx))
}

// Check asks PostgreSQL to parse and plan agg's statements without running them, so that a
// user's job with a syntax error, an unknown table or a key column its result lacks is refused
// at start-up rather than at its first run. Of an incremental aggregate, whose other statements
// read the figures warmcache maintains (and may not have installed yet), it checks the stream.
func (db *DB) Check(ctx context.Context, agg Aggregate) error {
	return db.snapshot(ctx, Latest, func(tx pgx.Tx, _ int64) error {
		statements := []string{agg.streamSQL, agg.lookupSQL}
		switch {
		case agg.Incremental():
			statements = statements[:1]
		case agg.Keyed:
			lookup, _, err := agg.keys.lookup(ctx, tx, nil)
			if err != nil {
				return err
			}
			statements = append(statements, lookup)
		}
		for _, sql := range statements {
			if sql == "" {
				continue
			}
			if _, err := tx.Prepare(ctx, "", sql); err != nil {
				return translate(err)
			}
		}
		if agg.user {
			return checkReadOnly(ctx, tx, agg.streamSQL)
		}
		return nil
	})
}

// checkReadOnly refuses a statement whose plan writes or locks rows: a data-modifying WITH
// (INSERT, UPDATE, DELETE, MERGE) or FOR UPDATE / FOR SHARE, which the first word of a query does
// not show. EXPLAIN plans it without running it. A function that writes shows in no plan: the
// READ ONLY transaction every run uses refuses it when it runs.
func checkReadOnly(ctx context.Context, tx pgx.Tx, sql string) error {
	var plan string
	if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql).Scan(&plan); err != nil {
		return translate(err)
	}
	switch {
	case strings.Contains(plan, `"Node Type": "ModifyTable"`):
		return errors.New("writes (a WITH holding INSERT, UPDATE, DELETE or MERGE): a job only reads")
	case strings.Contains(plan, `"Node Type": "LockRows"`):
		return errors.New("locks rows (FOR UPDATE or FOR SHARE): a job only reads")
	}
	return nil
}
