package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// UserSQL makes an Aggregate of a user's own SELECT statement. With keyColumn empty the
// statement must return exactly one row, served whole; otherwise every row is stored under the
// text of its keyColumn. Each row marshals to a JSON object of its columns, in order: numerics
// as exact numbers, dates as "2006-01-02", timestamps in RFC 3339.
//
// The statement runs inside a read-only transaction, so a job cannot change data. The single-key
// lookup wraps it: SELECT * FROM (stmt) WHERE keyColumn::text = $1.
func UserSQL(stmt, keyColumn string) (Aggregate, error) {
	stmt = strings.TrimRight(strings.TrimSpace(stmt), ";")
	if stmt == "" {
		return Aggregate{}, fmt.Errorf("sql is empty")
	}
	if strings.Contains(stmt, ";") {
		return Aggregate{}, fmt.Errorf("sql must be one statement")
	}
	agg := Aggregate{
		streamSQL: stmt,
		lookupSQL: stmt,
		args:      noArgs,
		scan:      scanObject(keyColumn),
	}
	if keyColumn != "" {
		if !identifier.MatchString(keyColumn) {
			return Aggregate{}, fmt.Errorf("key column %q is not a plain column name", keyColumn)
		}
		agg.Keyed = true
		agg.lookupSQL = fmt.Sprintf("SELECT * FROM (%s) AS job WHERE job.%s::text = $1", stmt, keyColumn)
	}
	return agg, nil
}

// scanObject returns a scanner that writes a row as a JSON object and takes its key from
// keyColumn.
func scanObject(keyColumn string) func(pgx.Rows) (Row, error) {
	return func(rows pgx.Rows) (Row, error) {
		values, err := rows.Values()
		if err != nil {
			return Row{}, err
		}
		var (
			buf bytes.Buffer
			row Row
		)
		buf.WriteByte('{')
		for i, fd := range rows.FieldDescriptions() {
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
			if keyColumn != "" && fd.Name == keyColumn {
				row.Key = keyText(fd.DataTypeOID, values[i])
			}
		}
		buf.WriteByte('}')
		if keyColumn != "" && row.Key == "" {
			return Row{}, fmt.Errorf("result has no non-empty column %q to key by", keyColumn)
		}
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

// keyText spells a key column's value as it appears in the key and in the lookup's ::text cast.
func keyText(oid uint32, v any) string {
	switch v := v.(type) {
	case time.Time:
		if oid == pgtype.DateOID {
			return DateOf(v).String()
		}
		return v.Format(time.RFC3339Nano)
	case nil:
		return ""
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int16:
		return strconv.FormatInt(int64(v), 10)
	case pgtype.Numeric:
		b, _ := v.MarshalJSON()
		return string(b)
	}
	return fmt.Sprint(v)
}
