package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The built-in totals (orders_total, credit_overview) read figures booked per customer
// (migration 6). Maintain keeps them up to date with the changes of orders and customers; the
// scheduled full computation finds where they drifted, and repairTotals mends it.

// Maintain brings the maintained figures up to date with a batch of changes, before the values
// that read them are recomputed: the built-in totals book the current figures of every customer
// a change of orders or customers names, and recount the orders without a customer when one had
// none. It is idempotent: a change maintained twice, or late, leaves the same figures. It
// returns the primary's position after its writes (zero when it wrote nothing): the values that
// read the figures are read at it or past it.
func (db *DB) Maintain(ctx context.Context, changes []Change) (int64, error) {
	wrote, err := db.maintain(ctx, db.pool, changes)
	if err != nil || !wrote {
		return 0, err
	}
	return db.Position(ctx)
}

// builtinTables are the qualified names of the tables the built-in totals are maintained from.
type builtinTables struct{ orders, customers string }

// UseBuiltins makes Maintain keep the built-in totals, from the orders and customers tables the
// search path finds: the warmer calls it where the built-in jobs are on. Without it, Maintain
// leaves every change alone.
func (db *DB) UseBuiltins() { db.useBuiltins.Store(true) }

// builtinTables returns the built-in jobs' tables once UseBuiltins was called, nil before: found
// at the first call that reaches PostgreSQL, and kept.
func (db *DB) builtinTables(ctx context.Context, ex execer) (*builtinTables, error) {
	if t := db.builtins.Load(); t != nil || !db.useBuiltins.Load() {
		return t, nil
	}
	var t builtinTables
	// A database without them leaves the names empty, which no change names.
	err := ex.QueryRow(ctx, `SELECT COALESCE((SELECT `+qualifiedName+` FROM pg_class c WHERE c.oid = to_regclass('orders')), ''),
		COALESCE((SELECT `+qualifiedName+` FROM pg_class c WHERE c.oid = to_regclass('customers')), '')`).Scan(&t.orders, &t.customers)
	if err != nil {
		return nil, fmt.Errorf("find the built-in jobs' tables: %w", translate(err))
	}
	db.builtins.Store(&t)
	return &t, nil
}

// execer runs a statement: a pool, or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// maintain books the changes in the figures through ex, and reports whether it wrote.
func (db *DB) maintain(ctx context.Context, ex execer, changes []Change) (bool, error) {
	t, err := db.builtinTables(ctx, ex)
	if t == nil {
		return false, err
	}
	var ids []int32
	nulls := false
	for _, c := range changes {
		if c.Table != t.orders && c.Table != t.customers {
			continue
		}
		if c.Truncated {
			return true, db.reseedTotals(ctx, ex)
		}
		v, ok := c.Columns["customerid"]
		if !ok {
			nulls = nulls || c.Table == t.orders
			continue
		}
		if id, err := strconv.ParseInt(v, 10, 32); err == nil {
			ids = append(ids, int32(id))
		}
	}
	if len(ids) == 0 && !nulls {
		return false, nil
	}
	slices.Sort(ids)
	_, err = ex.Exec(ctx, "SELECT warmcache_reconcile_totals($1, $2)", slices.Compact(ids), nulls)
	if err != nil {
		return true, fmt.Errorf("maintain the totals: %w", translate(err))
	}
	return true, nil
}

// reseedTotals books every customer afresh: after a TRUNCATE, which names no customer.
func (db *DB) reseedTotals(ctx context.Context, ex execer) error {
	if _, err := ex.Exec(ctx, "SELECT warmcache_reseed_totals()"); err != nil {
		return fmt.Errorf("reseed the totals: %w", translate(err))
	}
	return nil
}

// Moment is a moment of the primary, after which the changes committed before it can be waited
// for: its WAL position, past every commit it could see, and the last outbox row it could see.
type Moment struct {
	position int64
	outbox   int64
}

// moment reads the primary's moment now.
func (db *DB) moment(ctx context.Context) (Moment, error) {
	var m Moment
	err := db.pool.QueryRow(ctx, `SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint,
		COALESCE((SELECT max(id) FROM warmcache_outbox), 0)`).Scan(&m.position, &m.outbox)
	return m, translate(err)
}

// Captured reports whether every change committed before m is out of PostgreSQL's hands: the
// outbox rows m saw published (or dropped: booked, Redis being full), and with logical decoding
// the slot confirmed past m's position (a capture confirms what it has published).
func (db *DB) Captured(ctx context.Context, m Moment, logical bool) (bool, error) {
	var captured bool
	err := db.pool.QueryRow(ctx, `SELECT NOT EXISTS (SELECT FROM warmcache_outbox WHERE id <= $1 AND NOT dropped)
		AND (NOT $2 OR COALESCE((SELECT confirmed_flush_lsn - '0/0' >= $3 FROM pg_replication_slots
			WHERE slot_name = `+slotNameSQL("$4")+`), false))`,
		m.outbox, logical, m.position, db.schema).Scan(&captured)
	return captured, translate(err)
}

// Settle waits until the changes committed before a moment are booked in the maintained figures
// (Maintain), within a bound of its own, and reports whether they are: the warmers' pipeline
// knows (invalidate.Settle). It returns an error only when ctx ends.
type Settle func(ctx context.Context, before Moment) (bool, error)

// ErrUnsettled reports that the check of the built-in totals was put off: the changes committed
// before it looked were not all booked within its Settle's bound, so what it saw may be writes on
// their way rather than drift.
var ErrUnsettled = errors.New("the changes before the check were not all booked in time")

// settleTime is how long the changes in flight are given when no Settle is at hand (a warmer run
// with --once): the warmers reconcile a write within milliseconds.
const settleTime = 2 * time.Second

// waitSettleTime is the Settle of a warmer without the warmers' pipeline at hand: it gives the
// changes settleTime, and takes them as booked then.
func waitSettleTime(ctx context.Context, _ Moment) (bool, error) {
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-time.After(settleTime):
		return true, nil
	}
}

// repairTotals confirms that the built-in totals drifted, and mends them. The full computation
// and the maintained figures of one snapshot also differ while writes are on their way to the
// warmers, so it looks twice: the customers whose booked figures differ from their current ones,
// then, once the changes committed before that first look are booked (settle; settleTime when
// nil), those of them whose booked figures have not moved since and still differ. It books their
// current figures and returns how many there were. The orders without a customer count as
// customer 0. Changes settle does not see booked in time put the check off (ErrUnsettled).
func repairTotals(ctx context.Context, db *DB, settle Settle) (Drift, error) {
	first, err := db.driftedTotals(ctx, nil)
	if err != nil || len(first) == 0 {
		return Drift{}, err
	}
	// Read after the first look, the moment is past every commit the look saw.
	m, err := db.moment(ctx)
	if err != nil {
		return Drift{}, err
	}
	if settle == nil {
		settle = waitSettleTime
	}
	switch settled, err := settle(ctx, m); {
	case err != nil:
		return Drift{}, err
	case !settled:
		return Drift{}, ErrUnsettled
	}
	second, err := db.driftedTotals(ctx, slices.Collect(func(yield func(int32) bool) {
		for id := range first {
			if !yield(id) {
				return
			}
		}
	}))
	if err != nil {
		return Drift{}, err
	}
	var drifted []int32
	d := Drift{}
	for id, booked := range second {
		if before, ok := first[id]; ok && before == booked {
			drifted = append(drifted, id)
			if d.Example == "" {
				d.Example = fmt.Sprintf("customer %d: booked %s", id, booked)
			}
		}
	}
	d.Values = len(drifted)
	if len(drifted) == 0 {
		return d, nil
	}
	nulls := slices.Contains(drifted, 0)
	if _, err := db.pool.Exec(ctx, "SELECT warmcache_reconcile_totals($1, $2)", drifted, nulls); err != nil {
		return d, fmt.Errorf("reconcile the drifted totals: %w", translate(err))
	}
	return d, nil
}

// driftedTotals returns the customers among ids (all when nil) whose booked figures differ from
// their current ones, each with its booked figures as text, to tell whether they moved.
func (db *DB) driftedTotals(ctx context.Context, ids []int32) (map[int32]string, error) {
	rows, _ := db.pool.Query(ctx, `
		SELECT d.id, COALESCE((SELECT t::text FROM warmcache_customer_totals t WHERE t.customerid = d.id),
		                      (SELECT t::text FROM warmcache_orders_total t WHERE d.id = 0 AND t.part = 'none'), '')
		FROM warmcache_drifted_totals($1) AS d(id)`, ids)
	drifted := map[int32]string{}
	var id int32
	var booked string
	_, err := pgx.ForEachRow(rows, []any{&id, &booked}, func() error {
		drifted[id] = booked
		return nil
	})
	return drifted, translate(err)
}
