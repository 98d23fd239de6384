package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

var (
	identifier  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	placeholder = regexp.MustCompile(`\{([^{}]*)\}`)
)

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
func (t keyTemplate) parse(key string) (string, []any, error) {
	m := t.match.FindStringSubmatch(key)
	if m == nil {
		return "", nil, ErrInvalidKey
	}
	parts := make([]any, len(m)-1)
	for i, p := range m[1:] {
		parts[i] = p
	}
	return key, parts, nil
}

// UserSQL makes an Aggregate of a user's own SELECT statement. With an empty key template the
// statement's first row is the job's one value; otherwise every row is stored under the key the
// template builds from it. Each row marshals to a JSON object of its columns, in order: numerics
// as exact numbers, dates as "2006-01-02", timestamps in RFC 3339.
//
// The statement runs inside a read-only transaction, so a job cannot change data. The single-key
// lookup wraps it: SELECT ... FROM (stmt) AS job WHERE job.col::text = $1 AND ...
func UserSQL(stmt, key string) (Aggregate, error) {
	stmt = strings.TrimRight(strings.TrimSpace(stmt), "; \t\n")
	if stmt == "" {
		return Aggregate{}, fmt.Errorf("sql is empty")
	}
	if strings.Contains(stmt, ";") {
		return Aggregate{}, fmt.Errorf("sql must be one statement")
	}
	tmpl, err := parseKeyTemplate(key)
	if err != nil {
		return Aggregate{}, err
	}
	agg := Aggregate{
		Keyed:     len(tmpl.columns) > 0,
		streamSQL: stmt,
		lookupSQL: stmt,
		args:      noArgs,
		scan:      scanObject(tmpl),
	}
	if agg.Keyed {
		var keyCols, conds []string
		for i, c := range tmpl.columns {
			keyCols = append(keyCols, fmt.Sprintf("job.%s::text", c))
			conds = append(conds, fmt.Sprintf("job.%s::text = $%d", c, i+1))
		}
		agg.streamSQL = fmt.Sprintf("SELECT job.*, %s FROM (%s) AS job", strings.Join(keyCols, ", "), stmt)
		agg.lookupSQL = agg.streamSQL + " WHERE " + strings.Join(conds, " AND ")
		agg.keyArgs = tmpl.parse
	}
	return agg, nil
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
