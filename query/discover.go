package query

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Dependency is a table a job reads, and how a changed row of it names the keys it touches: as
// PostgreSQL plans a user's statement (DB.Dependencies), or as the job declares it.
type Dependency struct {
	// Table is the table's qualified name, schema.table, as changes name it.
	Table string
	// Keys holds, for each column of a keyed job's key template in its order, where a changed row
	// of Table gives that column's value; nil where nothing does, and then a change of Table
	// touches every key of the job. Empty for a single-value job.
	Keys []*KeySource
}

// KeySource is where a changed row gives the value of one key column: a column of its own
// (Column), or, through a join, the key column of the rows of another table it joins (Via).
type KeySource struct {
	Column string
	Via    *Join
}

// Join is how a changed row of a table finds the key column of another: the rows of Table whose
// Column equals the changed row's From hold it in KeyColumn. Type is Column's SQL type, for the
// lookup (DB.JoinedKeys); Unique says that a unique index makes Column name one row at most (a
// lookup of a dimension, not a fan-out).
type Join struct {
	From      string
	Table     string
	Column    string
	Type      string
	KeyColumn string
	Unique    bool
}

// Strategy is how the changes of a table a job reads refresh the job.
type Strategy string

const (
	// ExactKeys: a changed row carries every key column; exactly its keys are refreshed.
	ExactKeys Strategy = "exact keys"
	// JoinedKeys: a changed row joins the table holding some key columns on a column it carries;
	// the keys are looked up, one query per batch of changes.
	JoinedKeys Strategy = "joined keys"
	// WholeJob: the changed rows name no key; every key of the job is refreshed (the one value of
	// a single-value job).
	WholeJob Strategy = "whole job"
)

// Strategy says how the changes of r's table refresh a job with keyColumns key columns.
func (r Dependency) Strategy(keyColumns int) Strategy {
	if keyColumns == 0 || len(r.Keys) != keyColumns || slices.Contains(r.Keys, nil) {
		return WholeJob
	}
	if slices.ContainsFunc(r.Keys, func(k *KeySource) bool { return k.Via != nil }) {
		return JoinedKeys
	}
	return ExactKeys
}

// Columns returns the columns of r's table whose values a change must record: the key columns'
// and those its joins start from.
func (r Dependency) Columns() []string {
	var cols []string
	for _, k := range r.Keys {
		switch {
		case k == nil:
		case k.Via != nil:
			cols = append(cols, k.Via.From)
		default:
			cols = append(cols, k.Column)
		}
	}
	slices.Sort(cols)
	return slices.Compact(cols)
}

// Found is what PostgreSQL says of a user's statement: the tables it reads, and the indexes its
// key lookups would need.
type Found struct {
	Dependencies []Dependency
	// Indexes are the CREATE INDEX statements the lookups of keys and joined keys would need,
	// on tables without an index that starts with the looked-up column.
	Indexes []string
}

// Dependencies asks PostgreSQL what the statement of a user's SQL job reads: EXPLAIN (VERBOSE,
// FORMAT JSON) names every table the plan scans, through joins, subqueries, CTEs and views, and
// the equalities its joins are made on; the statement's result description names the table
// column each key column comes from (following views). For each table it finds where a changed
// row gives each key column: a column of its own, the same value through a join, or a join to
// the table that holds it. An aggregate that is no user's SQL reads nothing PostgreSQL is asked
// about: its dependencies are declared.
func (db *DB) Dependencies(ctx context.Context, agg Aggregate) (Found, error) {
	stmt, keyColumns := agg.statement()
	if stmt == "" {
		return Found{}, nil
	}
	var found Found
	err := db.snapshot(ctx, Latest, func(tx pgx.Tx, _ int64) error {
		p, err := explain(ctx, tx, stmt)
		if err != nil {
			return err
		}
		origins := make([]*column, len(keyColumns))
		if len(keyColumns) > 0 {
			if origins, err = keyOrigins(ctx, tx, stmt, keyColumns); err != nil {
				return err
			}
		}
		for _, table := range slices.Sorted(maps.Keys(p.tables)) {
			r := Dependency{Table: table}
			for _, origin := range origins {
				r.Keys = append(r.Keys, p.source(table, origin))
			}
			found.Dependencies = append(found.Dependencies, r)
		}
		if err := describeJoins(ctx, tx, found.Dependencies); err != nil {
			return err
		}
		wholeWhereJoinedFrom(found.Dependencies, len(keyColumns))
		found.Indexes, err = advise(ctx, tx, found.Dependencies, origins)
		return err
	})
	return found, err
}

// wholeWhereJoinedFrom makes the changes of a table that others' changes join to refresh the
// whole job, unless they name exact keys. A join is looked up when the refresh runs, not when the
// row changed: a change of table T finds the key of its row in table R as R is then. That is
// exact if R's own changes refresh its rows' keys, before and after, or the whole job: any
// change of R between T's change and its refresh refreshes what T's lookup misses. It is not if
// R's changes are themselves looked up through a join (a key of columns of T and R both): each
// side's lookup may miss what the other side moved meanwhile.
//
// Of two tables whose changes would each look the other up, the one whose lookups fan out (its
// joined column is not unique in the other table: accounts finding the days of their usage
// events) is run whole, and the other (usage events finding their account's region) keeps its
// lookups: the tables a row finds one row of change less often than those it finds many of.
func wholeWhereJoinedFrom(deps []Dependency, keyColumns int) {
	fansOut := func(d Dependency) bool {
		return slices.ContainsFunc(d.Keys, func(k *KeySource) bool { return k != nil && k.Via != nil && !k.Via.Unique })
	}
	order := slices.Clone(deps)
	slices.SortStableFunc(order, func(a, b Dependency) int {
		return cmp.Compare(boolInt(fansOut(a)), boolInt(fansOut(b)))
	})
	for _, d := range order {
		i := slices.IndexFunc(deps, func(x Dependency) bool { return x.Table == d.Table })
		if deps[i].Keys == nil {
			continue // run whole meanwhile
		}
		for _, k := range d.Keys {
			if k == nil || k.Via == nil {
				continue
			}
			for i := range deps {
				if deps[i].Table == k.Via.Table && deps[i].Strategy(keyColumns) == JoinedKeys {
					deps[i].Keys = nil
				}
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// describeJoins completes the joins of deps with their column's type and whether a unique index
// makes it name one row.
func describeJoins(ctx context.Context, tx pgx.Tx, deps []Dependency) error {
	for _, d := range deps {
		for _, k := range d.Keys {
			if k == nil || k.Via == nil {
				continue
			}
			err := tx.QueryRow(ctx, `
				SELECT format_type(a.atttypid, a.atttypmod),
				       EXISTS (SELECT FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique
				               AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL)
				FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attname = $2`,
				QuoteTable(k.Via.Table), k.Via.Column).Scan(&k.Via.Type, &k.Via.Unique)
			if err != nil {
				return translate(err)
			}
		}
	}
	return nil
}

// statement returns a user's statement and its key columns, or "" for another aggregate.
func (a Aggregate) statement() (string, []string) {
	if !a.user {
		return "", nil
	}
	if k, ok := a.keys.(*templateKeys); ok {
		return k.stmt, k.tmpl.columns
	}
	return a.streamSQL, nil
}

// column is a column of a table: its qualified name and the column's.
type column struct{ table, name string }

// plan is what EXPLAIN says of a statement: the tables it scans, by qualified name, with the
// aliases the plan gives them, and the equalities between two aliases' columns it joins or
// filters on.
type plan struct {
	tables  map[string][]string // qualified name: aliases
	aliases map[string]string   // alias: qualified name
	equal   [][2]column         // by alias, not table
}

// planNode is a node of EXPLAIN (FORMAT JSON)'s plan, with what Dependencies reads of it.
type planNode struct {
	Relation string            `json:"Relation Name"`
	Schema   string            `json:"Schema"`
	Alias    string            `json:"Alias"`
	Plans    []json.RawMessage `json:"Plans"`
}

// conditions are the fields of a plan node that hold conditions, as SQL text.
var conditions = []string{"Hash Cond", "Merge Cond", "Index Cond", "Join Filter", "Recheck Cond", "Filter"}

// explain plans stmt without running it and reads the plan.
func explain(ctx context.Context, tx pgx.Tx, stmt string) (plan, error) {
	var raw []byte
	if err := tx.QueryRow(ctx, "EXPLAIN (VERBOSE, FORMAT JSON) "+stmt).Scan(&raw); err != nil {
		return plan{}, translate(err)
	}
	var top []struct {
		Plan json.RawMessage `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &top); err != nil || len(top) == 0 {
		return plan{}, fmt.Errorf("read the plan: %w", err)
	}
	p := plan{tables: map[string][]string{}, aliases: map[string]string{}}
	if err := p.walk(top[0].Plan); err != nil {
		return plan{}, err
	}
	return p, nil
}

func (p *plan) walk(raw json.RawMessage) error {
	var n planNode
	if err := json.Unmarshal(raw, &n); err != nil {
		return fmt.Errorf("read the plan: %w", err)
	}
	if n.Relation != "" {
		table := n.Schema + "." + n.Relation
		p.tables[table] = append(p.tables[table], n.Alias)
		p.aliases[n.Alias] = table
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		return fmt.Errorf("read the plan: %w", err)
	}
	for _, name := range conditions {
		if cond, ok := fields[name].(string); ok {
			p.equal = append(p.equal, equalities(cond)...)
		}
	}
	for _, child := range n.Plans {
		if err := p.walk(child); err != nil {
			return err
		}
	}
	return nil
}

// ident is an identifier as EXPLAIN writes it: plain, or quoted with doubled quotes inside.
const ident = `([a-z_][a-z0-9_$]*|"(?:[^"]|"")+")`

// equality is alias.column = alias.column in a condition, each side possibly in parentheses and
// cast, as EXPLAIN VERBOSE writes them: (o.customerid = c.customerid), ((u.account_id)::bigint = a.id).
var equality = regexp.MustCompile(`\(?` + ident + `\.` + ident + `\)?(?:::[a-z][a-z0-9_ ]*(?:\[\])?)? = \(?` +
	ident + `\.` + ident + `\)?(?:::[a-z][a-z0-9_ ]*(?:\[\])?)?`)

// equalities returns the equalities between two columns of a condition. Only those of conditions
// joined with AND hold for every row: a condition with OR yields none.
func equalities(cond string) [][2]column {
	if strings.Contains(cond, " OR ") {
		return nil
	}
	var eq [][2]column
	for _, m := range equality.FindAllStringSubmatch(cond, -1) {
		eq = append(eq, [2]column{{unquote(m[1]), unquote(m[2])}, {unquote(m[3]), unquote(m[4])}})
	}
	return eq
}

func unquote(id string) string {
	if s, ok := strings.CutPrefix(id, `"`); ok {
		return strings.ReplaceAll(strings.TrimSuffix(s, `"`), `""`, `"`)
	}
	return id
}

// source says where a changed row of table gives the value of the key column that comes from
// origin: a column of its own that holds it (origin itself, or a column the plan's equalities
// make equal to it, through any number of joins), or a join to a table that has such a column;
// nil when none (an unknown origin included).
func (p plan) source(table string, origin *column) *KeySource {
	if origin == nil {
		return nil
	}
	same := p.equivalents(*origin)
	for _, c := range same {
		if c.table == table {
			return &KeySource{Column: c.name}
		}
	}
	for _, eq := range p.equal {
		for _, pair := range [][2]column{eq, {eq[1], eq[0]}} {
			mine, theirs := p.resolve(pair[0]), p.resolve(pair[1])
			if mine.table != table || theirs.table == table {
				continue
			}
			for _, c := range same {
				if c.table == theirs.table {
					return &KeySource{Via: &Join{From: mine.name, Table: theirs.table, Column: theirs.name, KeyColumn: c.name}}
				}
			}
		}
	}
	return nil
}

// resolve names a column by its table rather than the plan's alias.
func (p plan) resolve(c column) column { return column{p.aliases[c.table], c.name} }

// equivalents returns origin and every column the plan's equalities make equal to it, by table.
func (p plan) equivalents(origin column) []column {
	same := []column{origin}
	for grew := true; grew; {
		grew = false
		for _, eq := range p.equal {
			a, b := p.resolve(eq[0]), p.resolve(eq[1])
			switch {
			case a.table == "" || b.table == "":
			case slices.Contains(same, a) && !slices.Contains(same, b):
				same, grew = append(same, b), true
			case slices.Contains(same, b) && !slices.Contains(same, a):
				same, grew = append(same, a), true
			}
		}
	}
	return same
}

// keyOrigins returns the table column each key column of stmt's result comes from, as the
// result's description says (nil for a computed column), following views to their tables.
func keyOrigins(ctx context.Context, tx pgx.Tx, stmt string, keyColumns []string) ([]*column, error) {
	described, err := tx.Prepare(ctx, "", "SELECT * FROM ("+stmt+") AS job")
	if err != nil {
		return nil, translate(err)
	}
	origins := make([]*column, len(keyColumns))
	for i, name := range keyColumns {
		j := slices.IndexFunc(described.Fields, func(f pgconn.FieldDescription) bool { return f.Name == name })
		if j < 0 {
			return nil, fmt.Errorf("the result has no column %s for the key template", name)
		}
		f := described.Fields[j]
		if origins[i], err = origin(ctx, tx, f.TableOID, f.TableAttributeNumber, 0); err != nil {
			return nil, err
		}
	}
	return origins, nil
}

// origin returns the table and column that column attnum of relation oid is, following a view
// to its definition's column (a few levels deep at most).
func origin(ctx context.Context, tx pgx.Tx, oid uint32, attnum uint16, depth int) (*column, error) {
	if oid == 0 || depth > 8 {
		return nil, nil
	}
	var (
		c    column
		kind string
		def  *string
	)
	err := tx.QueryRow(ctx, `
		SELECT `+qualifiedName+`, a.attname, c.relkind::text,
		       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END
		FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = $2
		WHERE c.oid = $1`, oid, int16(attnum)).Scan(&c.table, &c.name, &kind, &def)
	if err != nil {
		return nil, translate(err)
	}
	if def == nil {
		return &c, nil
	}
	view, err := tx.Prepare(ctx, "", "SELECT * FROM ("+strings.TrimRight(strings.TrimSpace(*def), ";")+") AS v")
	if err != nil {
		return nil, translate(err)
	}
	if int(attnum) > len(view.Fields) {
		return nil, nil
	}
	f := view.Fields[attnum-1]
	return origin(ctx, tx, f.TableOID, f.TableAttributeNumber, depth+1)
}

// advise returns the indexes the lookups would need: of a key (read-through and refreshes look
// keys up by their columns) and of each join, on tables where no index starts with the column
// looked up.
func advise(ctx context.Context, tx pgx.Tx, reads []Dependency, origins []*column) ([]string, error) {
	want := map[column]bool{}
	for _, o := range origins {
		if o != nil {
			want[*o] = true
		}
	}
	for _, r := range reads {
		for _, k := range r.Keys {
			if k != nil && k.Via != nil {
				want[column{k.Via.Table, k.Via.Column}] = true
			}
		}
	}
	var advice []string
	for _, c := range slices.SortedFunc(maps.Keys(want), func(a, b column) int {
		return cmp.Or(cmp.Compare(a.table, b.table), cmp.Compare(a.name, b.name))
	}) {
		var indexed bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_index i JOIN pg_attribute a
				ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
			WHERE i.indrelid = $1::regclass AND a.attname = $2)`, QuoteTable(c.table), c.name).Scan(&indexed); err != nil {
			return nil, translate(err)
		}
		if !indexed {
			advice = append(advice, fmt.Sprintf("CREATE INDEX ON %s (%s)", QuoteTable(c.table), pgx.Identifier{c.name}.Sanitize()))
		}
	}
	return advice, nil
}

// JoinedKeys returns the key column values the rows of j's table hold for each of values of its
// joined column: one query, whatever the number of values. A value no row has is left out.
func (db *DB) JoinedKeys(ctx context.Context, j Join, values []string) (map[string][]string, error) {
	rows, _ := db.pool.Query(ctx, fmt.Sprintf("SELECT DISTINCT %[1]s::text, %[2]s::text FROM %[3]s WHERE %[1]s = ANY(CAST($1::text[] AS %[4]s[])) AND %[2]s IS NOT NULL",
		pgx.Identifier{j.Column}.Sanitize(), pgx.Identifier{j.KeyColumn}.Sanitize(), QuoteTable(j.Table), j.Type), values)
	found := map[string][]string{}
	var value, key string
	_, err := pgx.ForEachRow(rows, []any{&value, &key}, func() error {
		found[value] = append(found[value], key)
		return nil
	})
	return found, translate(err)
}
