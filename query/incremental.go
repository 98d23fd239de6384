package query

import (
	"context"
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"github.com/cespare/xxhash/v2"
	"github.com/jackc/pgx/v5"
)

// Sum is a figure of an incremental job: its result column Name holds the sum of Column.
type Sum struct {
	Name   string
	Column string
}

// IncrementalSpec declares a user's incremental job: a count and sums over a table, grouped by
// one of its columns (one value per group, keyed by it) or over the whole table (one value).
// These are the aggregates whose maintenance by triggers the product can prove right: every
// change adds to or takes from the figures of the groups its rows belong to.
type IncrementalSpec struct {
	Table   string
	GroupBy string // empty for a single value
	Count   string // the result column holding count(*); empty for none
	Sums    []Sum
}

var lowerIdentifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Incremental makes the Aggregate of job's incremental declaration: the full statement a run
// computes, and lookups of the figures InstallIncremental's triggers maintain in a table of the
// job's own.
func Incremental(job string, spec IncrementalSpec) (Aggregate, error) {
	if err := spec.validate(); err != nil {
		return Aggregate{}, err
	}
	t := summaryTable(job)
	group, groupBy, grp := "", "", "0"
	if spec.GroupBy != "" {
		group, groupBy, grp = spec.GroupBy+", ", " GROUP BY "+spec.GroupBy, spec.GroupBy
	}
	full := "SELECT " + group + strings.Join(spec.figures("count(*)", "COALESCE(sum(%[1]s), 0)"), ", ") +
		" FROM " + spec.Table + groupBy
	maintained := "SELECT " + strings.Join(spec.figures("COALESCE(sum(n), 0)::bigint", "CASE WHEN COALESCE(sum(n), 0) = 0 THEN 0 ELSE sum(%[2]s) END"), ", ") +
		" FROM " + t
	agg := Aggregate{
		streamSQL: full,
		lookupSQL: maintained,
		checkSQL:  maintained,
		reseedSQL: fmt.Sprintf("SELECT %s()", t+"_reseed"),
		args:      noArgs,
		scan:      scanObject(keyTemplate{}),
	}
	if spec.GroupBy == "" {
		return agg, nil
	}
	tmpl, err := parseKeyTemplate("{" + grp + "}")
	if err != nil {
		return Aggregate{}, err
	}
	maintained = fmt.Sprintf("SELECT grp AS %s, %s FROM %s GROUP BY grp HAVING sum(n) > 0", grp,
		strings.Join(spec.figures("sum(n)::bigint", "sum(%[2]s)"), ", "), t)
	check := fmt.Sprintf("SELECT job.*, job.%s::text FROM (%s) AS job", grp, maintained)
	agg.Keyed = true
	agg.streamSQL = fmt.Sprintf("SELECT job.*, job.%s::text FROM (%s) AS job", grp, full)
	agg.lookupSQL, agg.checkSQL = "", check
	agg.scan = scanObject(tmpl)
	agg.keys = &templateKeys{tmpl: tmpl, stream: check, stmt: maintained}
	return agg, nil
}

func (s IncrementalSpec) validate() error {
	names := map[string]bool{}
	for _, id := range append([]string{s.Table, s.GroupBy, s.Count}, sumColumns(s.Sums)...) {
		if id != "" && !lowerIdentifier.MatchString(id) {
			return fmt.Errorf("%q is not a lower-case name of a table or column", id)
		}
	}
	switch {
	case s.Table == "":
		return fmt.Errorf("incremental: table is required")
	case s.Count == "" && len(s.Sums) == 0:
		return fmt.Errorf("incremental: a count or a sum is required")
	}
	for _, n := range append([]string{s.GroupBy, s.Count}, sumNames(s.Sums)...) {
		if n != "" && names[n] {
			return fmt.Errorf("incremental: %s names two result columns", n)
		}
		names[n] = true
	}
	return nil
}

// figures returns the result columns: the count, as count, then each sum, as sum with %[1]s the
// summed column and %[2]s its column of the maintained table.
func (s IncrementalSpec) figures(count, sum string) []string {
	var cols []string
	if s.Count != "" {
		cols = append(cols, count+" AS "+s.Count)
	}
	for i, f := range s.Sums {
		cols = append(cols, fmt.Sprintf(sum, f.Column, fmt.Sprintf("s%d", i))+" AS "+f.Name)
	}
	return cols
}

func sumNames(sums []Sum) []string {
	names := make([]string, len(sums))
	for i, s := range sums {
		names[i] = s.Name
	}
	return names
}

func sumColumns(sums []Sum) []string {
	cols := make([]string, len(sums))
	for i, s := range sums {
		cols[i] = s.Column
	}
	return append(cols, sumNames(sums)...)
}

// summaryTable names the table of job's maintained figures; its triggers and functions are
// named after it. A long job name is shortened with a hash, so every name fits in 63 bytes.
func summaryTable(job string) string {
	if len(job) > 40 {
		job = fmt.Sprintf("%s_%08x", job[:31], uint32(xxhash.Sum64String(job)))
	}
	return "warmcache_sum_" + job
}

// summableTypes are the column types whose sums the maintained figures reproduce exactly.
var summableTypes = []string{"smallint", "integer", "bigint", "numeric"}

// CheckIncremental checks spec against the catalog: the table and columns exist, the group
// column cannot be NULL (it is a key), and the summed columns are integers or numerics (whose
// sums add up exactly). Its errors name the table or column.
func (v Schema) CheckIncremental(ctx context.Context, spec IncrementalSpec) error {
	db := v.db
	_, err := db.incrementalColumns(ctx, spec)
	return err
}

// incrementalColumns checks spec and returns the type of its group column ("integer" without
// one).
func (db *DB) incrementalColumns(ctx context.Context, spec IncrementalSpec) (string, error) {
	cols, err := db.Schema().Columns(ctx, spec.Table)
	if err != nil {
		return "", fmt.Errorf("no table %s", spec.Table)
	}
	groupType := "integer"
	if spec.GroupBy != "" {
		c, ok := cols[spec.GroupBy]
		switch {
		case !ok:
			return "", fmt.Errorf("table %s has no column %s", spec.Table, spec.GroupBy)
		case !c.NotNull:
			return "", fmt.Errorf("column %s.%s may be NULL, and a key cannot", spec.Table, spec.GroupBy)
		}
		groupType = c.Type
	}
	for _, s := range spec.Sums {
		c, ok := cols[s.Column]
		base, _, _ := strings.Cut(c.Type, "(")
		switch {
		case !ok:
			return "", fmt.Errorf("table %s has no column %s", spec.Table, s.Column)
		case !slices.Contains(summableTypes, base):
			return "", fmt.Errorf("column %s.%s is %s: only integers and numerics add up exactly", spec.Table, s.Column, c.Type)
		}
	}
	return groupType, nil
}

// InstallIncremental creates the table of job's maintained figures, the triggers that keep it in
// the writing transactions of spec's table, and the function that reseeds it, and seeds it,
// unless what is installed is already for this very declaration. A changed declaration is
// installed afresh.
func (v Schema) InstallIncremental(ctx context.Context, job string, spec IncrementalSpec) error {
	db := v.db
	groupType, err := db.incrementalColumns(ctx, spec)
	if err != nil {
		return err
	}
	t, signature := summaryTable(job), db.incrementalSignature(groupType, spec)
	return translate(pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockID); err != nil {
			return err
		}
		var have string
		err := tx.QueryRow(ctx, "SELECT COALESCE(obj_description(to_regclass($1), 'pg_class'), '')", t).Scan(&have)
		if err != nil || have == signature {
			return err
		}
		stmts, err := incrementalDDL(db.schema, t, groupType, spec)
		if err != nil {
			return err
		}
		for _, stmt := range stmts {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("install the figures of %s: %w", job, err)
			}
		}
		_, err = tx.Exec(ctx, fmt.Sprintf("COMMENT ON TABLE %s IS %s", t, quoteLiteral(signature)))
		return err
	}))
}

// incrementalSignature is what the comment of an installed summary table says of the declaration
// it was installed for. The schema and truncation are in it since 0.2: older installations are
// installed afresh.
func (db *DB) incrementalSignature(groupType string, spec IncrementalSpec) string {
	return fmt.Sprintf("%s %s %+v truncate", db.schema, groupType, spec)
}

// IncrementalInstalled reports whether the figures of job are installed for spec as it is.
func (v Schema) IncrementalInstalled(ctx context.Context, job string, spec IncrementalSpec) (bool, error) {
	db := v.db
	groupType, err := db.incrementalColumns(ctx, spec)
	if err != nil {
		return false, err
	}
	var have string
	err = db.pool.QueryRow(ctx, "SELECT COALESCE(obj_description(to_regclass($1), 'pg_class'), '')",
		db.schema+"."+summaryTable(job)).Scan(&have)
	return have == db.incrementalSignature(groupType, spec), translate(err)
}

//go:embed templates/incremental.sql.tmpl
var incrementalSQL string

// incrementalTemplates are the statements of an installation, in the order they run.
var (
	incrementalTemplates = template.Must(template.New("").Parse(incrementalSQL))
	incrementalSteps     = []string{"drop function", "drop table", "table", "trigger function", "insert trigger", "update trigger",
		"delete trigger", "truncate trigger", "reseed function", "seed"}
)

// incrementalDDL is the installation of the summary table t: the table, its trigger function and
// triggers on the declared table, its reseed function, and the seeding.
func incrementalDDL(schema, t, groupType string, spec IncrementalSpec) ([]string, error) {
	type sum struct{ Col, Column string }
	data := struct {
		S, T, Table, Grp, GroupType string
		Grouped                     bool
		Sums                        []sum
	}{S: schema, T: t, Table: spec.Table, Grp: "0", GroupType: groupType, Grouped: spec.GroupBy != ""}
	if data.Grouped {
		data.Grp = spec.GroupBy
	}
	for i, s := range spec.Sums {
		data.Sums = append(data.Sums, sum{Col: fmt.Sprintf("s%d", i), Column: s.Column})
	}
	stmts := make([]string, len(incrementalSteps))
	for i, step := range incrementalSteps {
		var b strings.Builder
		if err := incrementalTemplates.ExecuteTemplate(&b, step, data); err != nil {
			return nil, err
		}
		stmts[i] = b.String()
	}
	return stmts, nil
}

// UninstallIncrementalExcept drops the maintained figures, with their triggers and functions,
// of every incremental job but those named.
func (v Schema) UninstallIncrementalExcept(ctx context.Context, keep []string) error {
	db := v.db
	kept := make([]string, len(keep))
	for i, job := range keep {
		kept[i] = summaryTable(job)
	}
	return translate(pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockID); err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `SELECT relname FROM pg_class
			WHERE relname LIKE 'warmcache\_sum\_%' AND relkind = 'r' AND NOT relname = ANY($1)
			  AND relnamespace = $2::regnamespace`, kept, db.schema)
		stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, t := range stale {
			// Dropping the functions CASCADE drops the triggers on the declared table with them.
			for _, stmt := range []string{
				fmt.Sprintf("DROP FUNCTION IF EXISTS %s() CASCADE", t),
				fmt.Sprintf("DROP FUNCTION IF EXISTS %s_reseed()", t),
				fmt.Sprintf("DROP TABLE IF EXISTS %s", t),
			} {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("drop %s: %w", t, err)
				}
			}
		}
		return nil
	}))
}

// SummaryTables returns the tables of the incremental jobs' figures installed in warmcache's
// schema: what UninstallIncrementalExcept would look at.
func (v Schema) SummaryTables(ctx context.Context) ([]string, error) {
	db := v.db
	rows, _ := db.pool.Query(ctx, `SELECT relname FROM pg_class
		WHERE relname LIKE 'warmcache\_sum\_%' AND relkind = 'r' AND relnamespace = to_regnamespace($1)
		ORDER BY 1`, db.schema)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return tables, translate(err)
}

// SummaryTable names the table of job's maintained figures, in warmcache's schema.
func SummaryTable(job string) string { return summaryTable(job) }

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
