package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

var (
	identifier  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	placeholder = regexp.MustCompile(`\{([^{}]*)\}`)
	// leadingNoise is what may come before a statement's first word: space, comments, and
	// opening parentheses.
	leadingNoise = regexp.MustCompile(`^(?:\s+|--[^\n]*(?:\n|$)|/\*(?s:.*?)\*/|\()*`)
	firstWord    = regexp.MustCompile(`^[A-Za-z]+`)
)

// ErrKeyTemplate reports a key template that cannot name rows: UserSQL's errors about the key
// template match it.
var ErrKeyTemplate = errors.New("bad key template")

type keyTemplateError struct{ error }

func (keyTemplateError) Is(target error) bool { return target == ErrKeyTemplate }

// readingStatements are the first words of a statement that reads: a query. Whether it writes
// nonetheless (a data-modifying WITH, FOR UPDATE, a function that writes) only PostgreSQL can
// tell: see Check and the READ ONLY transaction every job runs in.
var readingStatements = []string{"SELECT", "WITH", "VALUES", "TABLE"}

// checkReads refuses a statement that is no query, by its first word.
func checkReads(stmt string) error {
	word := strings.ToUpper(firstWord.FindString(stmt[len(leadingNoise.FindString(stmt)):]))
	if !slices.Contains(readingStatements, word) {
		if word == "" {
			word = "no keyword"
		}
		return fmt.Errorf("must be a query (SELECT, WITH, VALUES or TABLE): a job only reads, and this statement starts with %s", word)
	}
	return nil
}

// keyTemplate is how a keyed job's rows are named: literal text and {column} placeholders, such
// as "{customerid}" or "{category}:{prod_id}". Each placeholder takes the text PostgreSQL gives
// the column (its ::text cast), so the key a row is stored under is exactly the key that looks
// it up again.
type keyTemplate struct {
	literals []string // len(columns)+1 pieces of text around the placeholders
	columns  []string
	match    *regexp.Regexp
}

// parseKeyTemplate reads a key template; the empty template has no columns.
func parseKeyTemplate(s string) (keyTemplate, error) {
	var t keyTemplate
	if s == "" {
		return t, nil
	}
	if !utf8.ValidString(s) {
		return t, fmt.Errorf("key template %q is not valid UTF-8", s)
	}
	pattern := "^"
	last := 0
	for _, m := range placeholder.FindAllStringSubmatchIndex(s, -1) {
		col := s[m[2]:m[3]]
		if !identifier.MatchString(col) {
			return t, fmt.Errorf("key template %q: {%s} is not a column name", s, col)
		}
		t.literals = append(t.literals, s[last:m[0]])
		t.columns = append(t.columns, col)
		pattern += regexp.QuoteMeta(s[last:m[0]]) + "(.+?)"
		last = m[1]
	}
	if strings.ContainsAny(s[last:], "{}") || strings.ContainsAny(strings.Join(t.literals, ""), "{}") {
		return t, fmt.Errorf("key template %q has an unbalanced brace", s)
	}
	if len(t.columns) == 0 {
		return t, fmt.Errorf("key template %q names no {column}", s)
	}
	t.literals = append(t.literals, s[last:])
	match, err := regexp.Compile(pattern + regexp.QuoteMeta(s[last:]) + "$")
	if err != nil {
		return t, fmt.Errorf("key template %q: %w", s, err)
	}
	t.match = match
	return t, nil
}

// render builds a key from the text of each column.
func (t keyTemplate) render(parts []string) string {
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(t.literals[i])
		b.WriteString(p)
	}
	b.WriteString(t.literals[len(parts)])
	return b.String()
}

// parse splits a key into the text of each column, or fails with ErrInvalidKey.
func (t keyTemplate) parse(key string) ([]string, error) {
	m := t.match.FindStringSubmatch(key)
	if m == nil {
		return nil, ErrInvalidKey
	}
	return m[1:], nil
}

// UserSQL makes an Aggregate of a user's own SELECT statement. With an empty key template the
// statement's first row is the job's one value; otherwise every row is stored under the key the
// template builds from it. Each row marshals to a JSON object of its columns, in order: numerics
// as exact numbers, dates as "2006-01-02", timestamps in RFC 3339.
//
// The statement runs inside a read-only transaction, so a job cannot change data. The lookup of
// given keys wraps it, comparing each key column in its own type so that PostgreSQL can push the
// condition down to the tables and use their indexes:
//
//	SELECT job.*, job.col::text FROM (stmt) AS job WHERE job.col = ANY(CAST($1::text[] AS type[]))
func UserSQL(stmt, key string) (Aggregate, error) {
	stmt = strings.TrimRight(strings.TrimSpace(stmt), "; \t\n")
	if stmt == "" {
		return Aggregate{}, fmt.Errorf("is empty")
	}
	if strings.Contains(stmt, ";") {
		return Aggregate{}, fmt.Errorf("must be one statement")
	}
	if err := checkReads(stmt); err != nil {
		return Aggregate{}, err
	}
	tmpl, err := parseKeyTemplate(key)
	if err != nil {
		return Aggregate{}, keyTemplateError{err}
	}
	agg := Aggregate{
		Keyed:     len(tmpl.columns) > 0,
		streamSQL: stmt,
		lookupSQL: stmt,
		args:      noArgs,
		scan:      scanObject(tmpl),
		user:      true,
	}
	if agg.Keyed {
		var keyCols []string
		for _, c := range tmpl.columns {
			keyCols = append(keyCols, fmt.Sprintf("job.%s::text", c))
		}
		agg.streamSQL = fmt.Sprintf("SELECT job.*, %s FROM (%s) AS job", strings.Join(keyCols, ", "), stmt)
		agg.lookupSQL = ""
		agg.keys = &templateKeys{tmpl: tmpl, stream: agg.streamSQL, stmt: stmt}
	}
	return agg, nil
}

// templateKeys are the keys of a user's keyed job. Its lookup compares each key column in the
// column's own type, which it learns from the server on first use.
type templateKeys struct {
	tmpl   keyTemplate
	stream string // the streaming statement, which the lookup filters
	stmt   string // the user's statement

	mu    sync.Mutex
	sql   string   // the lookup statement, once the types are known
	types []string // the SQL type of each key column
}

func (k *templateKeys) canonical(key string) (string, error) {
	if _, err := k.tmpl.parse(key); err != nil {
		return "", err
	}
	return key, nil
}

// lookup returns the lookup statement and, for each key column, the array of the keys' texts.
// Keys whose text the column's type does not read are ErrInvalidKey.
func (k *templateKeys) lookup(ctx context.Context, tx pgx.Tx, keys []string) (string, []any, error) {
	sql, types, err := k.resolve(ctx, tx)
	if err != nil {
		return "", nil, err
	}
	columns := make([][]string, len(k.tmpl.columns))
	for _, key := range keys {
		parts, err := k.tmpl.parse(key)
		if err != nil {
			return "", nil, err
		}
		for i, p := range parts {
			columns[i] = append(columns[i], p)
		}
	}
	args := make([]any, len(columns))
	casts := make([]string, len(columns))
	for i, c := range columns {
		args[i] = c
		casts[i] = fmt.Sprintf("CAST($%d::text[] AS %s[])", i+1, types[i])
	}
	if len(keys) > 0 {
		// Converting the keys alone tells a key that is not of the column's type, a 400, from a
		// failure of the statement itself.
		if _, err := tx.Exec(ctx, "SELECT "+strings.Join(casts, ", "), args...); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") { // data exception
				return "", nil, fmt.Errorf("%w: %s", ErrInvalidKey, pgErr.Message)
			}
			return "", nil, translate(err)
		}
	}
	return sql, args, nil
}

// resolve learns the types of the key columns from the server, once, and builds the lookup.
func (k *templateKeys) resolve(ctx context.Context, tx pgx.Tx) (string, []string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sql != "" {
		return k.sql, k.types, nil
	}
	described, err := tx.Prepare(ctx, "", fmt.Sprintf("SELECT * FROM (%s) AS job", k.stmt))
	if err != nil {
		return "", nil, translate(err)
	}
	types := make([]string, len(k.tmpl.columns))
	conds := make([]string, len(k.tmpl.columns))
	for i, col := range k.tmpl.columns {
		j := slices.IndexFunc(described.Fields, func(f pgconn.FieldDescription) bool { return f.Name == col })
		if j < 0 {
			return "", nil, fmt.Errorf("the result has no column %s for the key template", col)
		}
		f := described.Fields[j]
		if err := tx.QueryRow(ctx, "SELECT format_type($1, NULLIF($2, -1))", f.DataTypeOID, f.TypeModifier).Scan(&types[i]); err != nil {
			return "", nil, translate(err)
		}
		conds[i] = fmt.Sprintf("job.%s = ANY(CAST($%d::text[] AS %s[]))", col, i+1, types[i])
	}
	k.sql, k.types = k.stream+" WHERE "+strings.Join(conds, " AND "), types
	return k.sql, k.types, nil
}

// scanObject returns a scanner that writes a row's columns as a JSON object and builds its key
// from the key columns the statement appends after them.
func scanObject(tmpl keyTemplate) func(pgx.Rows) (Row, error) {
	return func(rows pgx.Rows) (Row, error) {
		values, err := rows.Values()
		if err != nil {
			return Row{}, err
		}
		fields := rows.FieldDescriptions()
		n := len(fields) - len(tmpl.columns)
		var row Row
		if len(tmpl.columns) > 0 {
			parts := make([]string, len(tmpl.columns))
			for i, v := range values[n:] {
				text, ok := v.(string)
				if !ok {
					return Row{}, fmt.Errorf("key column %s is NULL", tmpl.columns[i])
				}
				parts[i] = text
			}
			row.Key = tmpl.render(parts)
		}
		var buf bytes.Buffer
		buf.WriteByte('{')
		for i, fd := range fields[:n] {
			if i > 0 {
				buf.WriteByte(',')
			}
			name, _ := json.Marshal(fd.Name)
			buf.Write(name)
			buf.WriteByte(':')
			v, err := jsonValue(fd.DataTypeOID, values[i])
			if err != nil {
				return Row{}, fmt.Errorf("column %s: %w", fd.Name, err)
			}
			buf.Write(v)
		}
		buf.WriteByte('}')
		row.Value = json.RawMessage(buf.Bytes())
		return row, nil
	}
}

func jsonValue(oid uint32, v any) ([]byte, error) {
	switch v := v.(type) {
	case pgtype.Numeric:
		return v.MarshalJSON()
	case time.Time:
		switch oid {
		case pgtype.DateOID:
			return DateOf(v).MarshalJSON()
		case pgtype.TimestampOID:
			return json.Marshal(v.Format("2006-01-02T15:04:05.999999"))
		}
		return json.Marshal(v.Format(time.RFC3339Nano))
	case [16]uint8: // uuid
		return json.Marshal(fmt.Sprintf("%x-%x-%x-%x-%x", v[0:4], v[4:6], v[6:8], v[8:10], v[10:16]))
	}
	return json.Marshal(v)
}

// LookupPushedDown reports whether PostgreSQL applies the key condition of a user's keyed job's
// lookup where the rows are read rather than on the statement's whole result: without, every
// lookup of a key (read-through, the refresh after a write) computes the statement in full. A
// LIMIT, DISTINCT ON or window function in the statement prevents it, as do key columns that are
// computed rather than read. It returns the plan it judged by.
func (db *DB) LookupPushedDown(ctx context.Context, agg Aggregate) (bool, string, error) {
	k, ok := agg.keys.(*templateKeys)
	if !ok {
		return true, "", nil // the built-in lookups are written for their indexes
	}
	var plan strings.Builder
	err := db.snapshot(ctx, Latest, func(tx pgx.Tx, _ int64) error {
		sql, _, err := k.resolve(ctx, tx)
		if err != nil {
			return err
		}
		// One NULL key per column: a real key of each type is not at hand, and an empty array
		// would let the planner drop the statement altogether.
		args := make([]any, len(k.tmpl.columns))
		for i := range args {
			args[i] = []*string{nil}
		}
		rows, err := tx.Query(ctx, "EXPLAIN "+sql, args...)
		if err != nil {
			return translate(err)
		}
		defer rows.Close()
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return err
			}
			plan.WriteString(line + "\n")
		}
		return translate(rows.Err())
	})
	if err != nil {
		return false, "", err
	}
	// Left on top, the condition filters the statement's result, which PostgreSQL calls job.
	return !strings.Contains(plan.String(), "Filter: (job."), plan.String(), nil
}
