package query

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Logical decoding (CHANGE_CAPTURE=logical) captures the changes of the jobs' tables without a
// trigger: a publication names the tables, and a logical replication slot, read with the
// pgoutput plugin, keeps every change PostgreSQL has not yet been told was handled. A Capture
// turns the slot's messages into the Changes the triggers would record, a committed transaction
// at a time, each with its commit's position; Confirm tells PostgreSQL which it may forget.

// How changes are captured (CHANGE_CAPTURE).
const (
	CaptureTriggers = "triggers" // triggers write the outbox in the writing transaction
	CaptureLogical  = "logical"  // logical decoding of the WAL: no trigger on users' tables
)

// Logical names the publication and the slot of a database's change capture: the publication is
// the database's own (named after warmcache's schema), the slot is the cluster's, so its name
// carries the database's oid too.
type Logical struct {
	Publication string
	Slot        string
}

// identityFull is the replica identity warmcache sets on a table whose changes must carry old
// values the table's own identity does not hold.
const identityFull = "f"

// logical returns the names of the database's change capture.
func (v Schema) logical(ctx context.Context) (Logical, error) {
	var oid uint32
	if err := v.db.pool.QueryRow(ctx, "SELECT oid FROM pg_database WHERE datname = current_database()").Scan(&oid); err != nil {
		return Logical{}, translate(err)
	}
	// A slot's name is at most 63 bytes: the schema's (at most 63) is cut to leave room.
	return Logical{Publication: v.db.schema, Slot: fmt.Sprintf("%.50s_%d", v.db.schema, oid)}, nil
}

// LogicalPlan is what InstallLogical does or would do: the tables whose replica identity it sets
// to FULL (their changes must carry old values of columns their identity lacks), and whether it
// creates the publication and the slot.
type LogicalPlan struct {
	Logical
	IdentityFull      []string
	CreatePublication bool
	CreateSlot        bool
}

// PlanLogical says what InstallLogical would do for tables (by qualified name, with the columns
// their changes must carry), changing nothing.
func (v Schema) PlanLogical(ctx context.Context, tables map[string][]string) (LogicalPlan, error) {
	names, err := v.logical(ctx)
	if err != nil {
		return LogicalPlan{}, err
	}
	plan := LogicalPlan{Logical: names}
	err = translate(pgx.BeginFunc(ctx, v.db.pool, func(tx pgx.Tx) error {
		var err error
		plan.IdentityFull, err = identityNeeded(ctx, tx, tables)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT FROM pg_publication WHERE pubname = $1),
			NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $2)`, names.Publication, names.Slot).
			Scan(&plan.CreatePublication, &plan.CreateSlot)
		return err
	}))
	return plan, err
}

// identityNeeded returns the tables whose replica identity must become FULL for their changes to
// carry the old values of cols: a table without an identity (no primary key) publishes no
// UPDATE or DELETE at all, and one whose identity (its primary key, or an index) lacks a column
// of cols sends the old value of that column only with FULL.
func identityNeeded(ctx context.Context, tx pgx.Tx, tables map[string][]string) ([]string, error) {
	var need []string
	for _, table := range slices.Sorted(maps.Keys(tables)) {
		var identity string
		var keyCols []string
		err := tx.QueryRow(ctx, `
			SELECT c.relreplident::text, COALESCE(ARRAY(
				SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
				WHERE i.indrelid = c.oid AND (c.relreplident = 'd' AND i.indisprimary OR c.relreplident = 'i' AND i.indisreplident)), '{}')
			FROM pg_class c WHERE c.oid = $1::regclass`, QuoteTable(table)).Scan(&identity, &keyCols)
		if err != nil {
			return nil, fmt.Errorf("the replica identity of %s: %w", table, err)
		}
		if identity == identityFull {
			continue
		}
		covered := len(keyCols) > 0
		for _, c := range tables[table] {
			covered = covered && slices.Contains(keyCols, c)
		}
		if !covered {
			need = append(need, table)
		}
	}
	return need, nil
}

// InstallLogical readies logical decoding for tables (by qualified name, with the columns their
// changes must carry): the replica identity of the tables that need it set to FULL (and what it
// was recorded, for UninstallLogical), the publication set to exactly these tables, and then the
// slot created if missing, outside any transaction (PostgreSQL requires it; and pgoutput reads
// the publication as it was at each change, so it must exist before the slot's first). From the
// slot's creation on no change is lost, so a switch from triggers installs it before the triggers
// go. It returns what it did.
func (v Schema) InstallLogical(ctx context.Context, tables map[string][]string) (LogicalPlan, error) {
	var level string
	if err := v.db.pool.QueryRow(ctx, "SELECT current_setting('wal_level')").Scan(&level); err != nil {
		return LogicalPlan{}, translate(err)
	}
	if level != "logical" {
		return LogicalPlan{}, fmt.Errorf("logical decoding needs wal_level = logical, and the server has %s: set it in postgresql.conf and restart PostgreSQL, or use CHANGE_CAPTURE=triggers", level)
	}
	plan, err := v.PlanLogical(ctx, tables)
	if err != nil {
		return plan, err
	}
	err = translate(pgx.BeginFunc(ctx, v.db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockID); err != nil {
			return err
		}
		need, err := identityNeeded(ctx, tx, tables)
		if err != nil {
			return err
		}
		for _, table := range need {
			if _, err := tx.Exec(ctx, `INSERT INTO warmcache_replica_identity (tablename, previous)
				SELECT $1, relreplident FROM pg_class WHERE oid = $2::regclass ON CONFLICT DO NOTHING`, table, QuoteTable(table)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "ALTER TABLE "+QuoteTable(table)+" REPLICA IDENTITY FULL"); err != nil {
				return fmt.Errorf("set the replica identity of %s: %w", table, err)
			}
		}
		list := "TABLE " + strings.Join(quoted(slices.Sorted(maps.Keys(tables))), ", ")
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1)", plan.Logical.Publication).Scan(&exists); err != nil {
			return err
		}
		pub := pgx.Identifier{plan.Logical.Publication}.Sanitize()
		switch {
		case len(tables) == 0 && exists: // a publication of no table: it cannot be set empty
			if _, err = tx.Exec(ctx, "DROP PUBLICATION "+pub); err == nil {
				_, err = tx.Exec(ctx, "CREATE PUBLICATION "+pub)
			}
		case len(tables) == 0:
			_, err = tx.Exec(ctx, "CREATE PUBLICATION "+pub)
		case exists:
			_, err = tx.Exec(ctx, "ALTER PUBLICATION "+pub+" SET "+list)
		default:
			_, err = tx.Exec(ctx, "CREATE PUBLICATION "+pub+" FOR "+list)
		}
		if err != nil {
			return fmt.Errorf("publish the changes of the jobs' tables: %w", err)
		}
		return nil
	}))
	if err != nil {
		return plan, err
	}
	if plan.CreateSlot {
		_, err := v.db.pool.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", plan.Logical.Slot)
		var pgErr *pgconn.PgError
		if err != nil && (!errors.As(err, &pgErr) || pgErr.Code != "42710") { // 42710: made meanwhile by another warmer
			return plan, fmt.Errorf("create the replication slot %s: %w", plan.Logical.Slot, translate(err))
		}
	}
	return plan, nil
}

func quoted(tables []string) []string {
	out := make([]string, len(tables))
	for i, t := range tables {
		out[i] = QuoteTable(t)
	}
	return out
}

// UninstallLogical removes the logical decoding of the database, if installed: the slot (once
// no warmer streams it: an active one is ended first), the publication, and the replica
// identities InstallLogical set, back to what they were. It returns what it removed.
func (v Schema) UninstallLogical(ctx context.Context) ([]string, error) {
	names, err := v.logical(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var slot bool
	if err := v.db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)`, names.Slot).Scan(&slot); err != nil {
		return nil, translate(err)
	}
	if slot {
		// A warmer streaming it holds it active: end its connection, then drop it.
		if _, err := v.db.pool.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE slot_name = $1 AND active_pid IS NOT NULL`, names.Slot); err != nil {
			return nil, translate(err)
		}
		if err := v.dropSlot(ctx, names.Slot); err != nil {
			return nil, err
		}
		removed = append(removed, "the replication slot "+names.Slot)
	}
	err = translate(pgx.BeginFunc(ctx, v.db.pool, func(tx pgx.Tx) error {
		var published bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1)", names.Publication).Scan(&published); err != nil {
			return err
		}
		if published {
			if _, err := tx.Exec(ctx, "DROP PUBLICATION "+pgx.Identifier{names.Publication}.Sanitize()); err != nil {
				return err
			}
			removed = append(removed, "the publication "+names.Publication)
		}
		rows, _ := tx.Query(ctx, `DELETE FROM warmcache_replica_identity RETURNING tablename, previous`)
		type identity struct{ table, previous string }
		restored, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (identity, error) {
			var i identity
			return i, r.Scan(&i.table, &i.previous)
		})
		if err != nil {
			return err
		}
		for _, i := range restored {
			clause := map[string]string{"d": "DEFAULT", "n": "NOTHING", "f": "FULL"}[i.previous]
			if clause == "" {
				continue // an index's identity: FULL stays, as good for every purpose
			}
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", QuoteTable(i.table)).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				continue // the table went meanwhile
			}
			if _, err := tx.Exec(ctx, "ALTER TABLE "+QuoteTable(i.table)+" REPLICA IDENTITY "+clause); err != nil {
				return err
			}
			removed = append(removed, "the replica identity FULL of "+i.table+", back to "+clause)
		}
		return nil
	}))
	return removed, err
}

// MoveSlotToOutbox records in the outbox every change the slot holds that no warmer confirmed, as
// the triggers would have, so that the triggers take over from logical decoding without losing
// a change: called once the triggers are installed, it covers what happened before. It reads the
// slot without consuming it (the slot is dropped next, by UninstallLogical); moved twice, a
// change is only handled twice. columns are the columns each table's changes carry. It returns
// how many it moved, zero when there is no slot.
func (v Schema) MoveSlotToOutbox(ctx context.Context, columns map[string][]string) (int, error) {
	names, err := v.logical(ctx)
	if err != nil {
		return 0, err
	}
	var moved int
	err = translate(pgx.BeginFunc(ctx, v.db.pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)", names.Slot).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return nil
		}
		rows, _ := tx.Query(ctx, `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
			'proto_version', '1', 'publication_names', $2)`, names.Slot, names.Publication)
		d := newDecoder(columns)
		var changes []Change
		var data []byte
		_, err := pgx.ForEachRow(rows, []any{&data}, func() error {
			_, err := d.decode(data, &changes)
			return err
		})
		if err != nil {
			return err
		}
		for _, c := range changes {
			if _, err := tx.Exec(ctx, "INSERT INTO warmcache_outbox (tablename, columns, truncated) VALUES ($1, $2, $3)",
				c.Table, c.Columns, c.Truncated); err != nil {
				return err
			}
		}
		moved = len(changes)
		return nil
	}))
	return moved, err
}

// dropSlot drops the slot, waiting up to ten seconds for the connection that held it to end.
func (v Schema) dropSlot(ctx context.Context, slot string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.db.pool.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot)
		var pgErr *pgconn.PgError
		if err == nil || errors.As(err, &pgErr) && pgErr.Code == "42704" { // gone already
			return nil
		}
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) { // 55006: in use
			return fmt.Errorf("drop the replication slot %s: %w", slot, translate(err))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// slotNameSQL is the name of the database's slot made in SQL, as logical makes it, from the
// schema's name in the parameter param.
func slotNameSQL(param string) string {
	return "left(" + param + ", 50) || '_' || (SELECT oid FROM pg_database WHERE datname = current_database())"
}

// SlotLag returns how many bytes of WAL the database's slot keeps that it has not confirmed (the
// primary keeps them on disk for it), and whether the slot exists. One query a scrape.
func (v Schema) SlotLag(ctx context.Context) (int64, bool, error) {
	var lag int64
	err := v.db.pool.QueryRow(ctx, `SELECT COALESCE(pg_current_wal_insert_lsn() - confirmed_flush_lsn, 0)::bigint
		FROM pg_replication_slots WHERE slot_name = `+slotNameSQL("$1"), v.db.schema).Scan(&lag)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return lag, err == nil, translate(err)
}

// ErrSlotBusy reports that another connection streams the slot: another warmer does.
var ErrSlotBusy = errors.New("another warmer streams the replication slot")

// Capture reads the database's slot: the changes of committed transactions, as the triggers
// would record them.
type Capture struct {
	conn      *pgconn.PgConn
	names     Logical
	decoder   *decoder
	confirmed pglogrepl.LSN // the position confirmed last
	received  pglogrepl.LSN // the end of what was received, when no transaction is open
	status    time.Time     // when PostgreSQL was last told of progress
}

// decoder turns pgoutput's messages into the changes the triggers would record.
type decoder struct {
	columns   map[string][]string // the columns each table's changes carry, by qualified name
	relations map[uint32]*pglogrepl.RelationMessage
	tx        []Change        // of the transaction being received
	seen      map[string]bool // of tx: one change per table and values, as the triggers' DISTINCT
	open      bool            // a transaction has begun and not committed
}

func newDecoder(columns map[string][]string) *decoder {
	return &decoder{columns: columns, relations: map[uint32]*pglogrepl.RelationMessage{}, seen: map[string]bool{}}
}

// StartCapture opens a replication connection and starts streaming the database's slot, from
// where it was last confirmed. columns are the columns each table's changes carry (by qualified
// name), as InstallDependencies takes them. Another warmer streaming the slot is ErrSlotBusy.
func (db *DB) StartCapture(ctx context.Context, columns map[string][]string) (*Capture, error) {
	names, err := db.Schema().logical(ctx)
	if err != nil {
		return nil, err
	}
	cfg := db.conn.Copy()
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, &cfg.Config)
	if err != nil {
		return nil, translate(err)
	}
	err = pglogrepl.StartReplication(ctx, conn, names.Slot, 0, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names '" + strings.ReplaceAll(names.Publication, "'", "''") + "'"},
	})
	if err != nil {
		conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck // the start's error says more
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" {
			return nil, ErrSlotBusy
		}
		return nil, fmt.Errorf("stream the replication slot %s: %w", names.Slot, translate(err))
	}
	return &Capture{conn: conn, names: names, decoder: newDecoder(columns), status: time.Now()}, nil
}

// Close ends the stream and its connection.
func (c *Capture) Close() { c.conn.Close(context.Background()) } //nolint:errcheck // closing

// Slot names the slot the capture streams.
func (c *Capture) Slot() string { return c.names.Slot }

// statusEvery is how often PostgreSQL is told of the capture's progress, also when idle: well
// within its wal_sender_timeout (a minute by default).
const statusEvery = 10 * time.Second

// Next returns the changes of the transactions that committed, received within wait (as soon as
// one commits, with those right behind it), and the position past them to Confirm once they are
// handled. A transaction's changes come with its commit's end as their position. Nothing
// received within wait returns no changes, and a position to confirm when nothing is pending.
func (c *Capture) Next(ctx context.Context, wait time.Duration) ([]Change, int64, error) {
	var out []Change
	var end pglogrepl.LSN
	deadline := time.Now().Add(wait)
	for {
		if time.Since(c.status) >= statusEvery {
			if err := c.sendStatus(ctx); err != nil {
				return nil, 0, err
			}
		}
		until := deadline
		if len(out) > 0 {
			until = time.Now().Add(time.Millisecond) // more right behind, or return what is here
		}
		rctx, cancel := context.WithDeadline(ctx, until)
		msg, err := c.conn.ReceiveMessage(rctx)
		cancel()
		switch {
		case err != nil && pgconn.Timeout(err) && ctx.Err() == nil:
			if len(out) == 0 && !c.decoder.open && c.received > c.confirmed {
				end = c.received // nothing pending: what was received may be forgotten
			}
			return out, int64(end), nil
		case err != nil:
			return nil, 0, translate(err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			done, err := c.handle(ctx, m.Data, &out)
			if err != nil {
				return nil, 0, err
			}
			if done > 0 {
				end = done
			}
		case *pgproto3.ErrorResponse:
			return nil, 0, translate(pgconn.ErrorResponseToPgError(m))
		default:
			return nil, 0, fmt.Errorf("%w: unexpected message %T from the replication stream", ErrUnavailable, m)
		}
	}
}

// handle reads one message of the stream, appending the changes of a transaction to out when it
// commits, and returns the commit's end then.
func (c *Capture) handle(ctx context.Context, data []byte, out *[]Change) (pglogrepl.LSN, error) {
	if len(data) == 0 {
		return 0, nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return 0, err
		}
		if !c.decoder.open {
			c.received = max(c.received, k.ServerWALEnd)
		}
		if k.ReplyRequested {
			return 0, c.sendStatus(ctx)
		}
		return 0, nil
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return 0, err
		}
		end, err := c.decoder.decode(x.WALData, out)
		if end > 0 {
			c.received = max(c.received, end)
		}
		return end, err
	}
	return 0, nil
}

// decode turns a pgoutput message into changes of the open transaction, which go to out when it
// commits, with the commit's end as their position, returned then.
func (c *decoder) decode(data []byte, out *[]Change) (pglogrepl.LSN, error) {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return 0, fmt.Errorf("decode a change: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		c.relations[m.RelationID] = m
	case *pglogrepl.BeginMessage:
		c.open, c.tx = true, c.tx[:0]
		clear(c.seen)
	case *pglogrepl.InsertMessage:
		return 0, c.row(m.RelationID, m.Tuple, nil)
	case *pglogrepl.UpdateMessage:
		if err := c.row(m.RelationID, m.NewTuple, m.OldTuple); err != nil {
			return 0, err
		}
		if m.OldTuple != nil {
			return 0, c.row(m.RelationID, m.OldTuple, nil)
		}
	case *pglogrepl.DeleteMessage:
		return 0, c.row(m.RelationID, m.OldTuple, nil)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, ok := c.relations[id]
			if !ok {
				return 0, fmt.Errorf("decode a truncate: unknown relation %d", id)
			}
			c.tx = append(c.tx, Change{Table: rel.Namespace + "." + rel.RelationName, Truncated: true, Columns: map[string]string{}})
		}
	case *pglogrepl.CommitMessage:
		for i := range c.tx {
			c.tx[i].Position = int64(m.TransactionEndLSN)
		}
		*out = append(*out, c.tx...)
		c.tx, c.open = nil, false
		return m.TransactionEndLSN, nil
	}
	return 0, nil
}

// row adds the change of a row of relation id, with the values of tuple (and, where tuple holds
// a TOASTed value left unchanged, of old), one per table and values within a transaction.
func (c *decoder) row(id uint32, tuple, old *pglogrepl.TupleData) error {
	rel, ok := c.relations[id]
	if !ok {
		return fmt.Errorf("decode a change: unknown relation %d", id)
	}
	if tuple == nil {
		return nil
	}
	table := rel.Namespace + "." + rel.RelationName
	cols := c.columns[table]
	values := make(map[string]string, len(cols))
	var key strings.Builder
	key.WriteString(table)
	for i, col := range rel.Columns {
		if i >= len(tuple.Columns) || !slices.Contains(cols, col.Name) {
			continue
		}
		v := tuple.Columns[i]
		if v.DataType == pglogrepl.TupleDataTypeToast && old != nil && i < len(old.Columns) {
			v = old.Columns[i]
		}
		if v.DataType != pglogrepl.TupleDataTypeText {
			continue // NULL, as the triggers leave it out
		}
		values[col.Name] = string(v.Data)
		key.WriteString("\x00" + col.Name + "=" + strconv.Quote(string(v.Data)))
	}
	if c.seen[key.String()] {
		return nil
	}
	c.seen[key.String()] = true
	c.tx = append(c.tx, Change{Table: table, Columns: values})
	return nil
}

// Confirm tells PostgreSQL that everything up to position is handled: the slot may forget it.
func (c *Capture) Confirm(ctx context.Context, position int64) error {
	if pglogrepl.LSN(position) <= c.confirmed {
		return nil
	}
	c.confirmed = pglogrepl.LSN(position)
	return c.sendStatus(ctx)
}

// sendStatus tells PostgreSQL how far the capture has handled the stream.
func (c *Capture) sendStatus(ctx context.Context) error {
	c.status = time.Now()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, c.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: c.confirmed, WALFlushPosition: c.confirmed, WALApplyPosition: c.confirmed})
	if err != nil {
		return fmt.Errorf("confirm the replication slot %s: %w", c.names.Slot, translate(err))
	}
	return nil
}

// Uninstall removes what warmcache added outside its schema: the change-capture triggers on
// users' tables, the incremental jobs' figures with their triggers, the replication slot and
// publication, and the replica identities it set, back to what they were. Its own schema stays.
// It returns what it removed, a line each.
func (v Schema) Uninstall(ctx context.Context) ([]string, error) {
	installed, err := v.InstalledDependencies(ctx)
	if err != nil {
		return nil, err
	}
	summaries, err := v.SummaryTables(ctx)
	if err != nil {
		return nil, err
	}
	if err := v.InstallDependencies(ctx, nil); err != nil {
		return nil, err
	}
	var removed []string
	for _, table := range slices.Sorted(maps.Keys(installed)) {
		removed = append(removed, "the change-capture triggers on "+table)
	}
	if err := v.UninstallIncrementalExcept(ctx, nil); err != nil {
		return removed, err
	}
	for _, t := range summaries {
		removed = append(removed, "the table "+t+" of an incremental job's figures, and its triggers")
	}
	logical, err := v.UninstallLogical(ctx)
	return append(removed, logical...), err
}
