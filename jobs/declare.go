package jobs

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/warmcache/warmcache/query"
)

var (
	// tableName is a table as SQL names it: a name, or schema.name, each plain (lower-case) or
	// quoted ("UsageEvents").
	tableName = regexp.MustCompile(`^(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")(?:\.(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+"))?$`)
	// columnName is a column as the catalog names it, quoted or not: the outbox records it so.
	columnName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)
	// oneColumn is a key template of one column alone.
	oneColumn = regexp.MustCompile(`^\{([A-Za-z_][A-Za-z0-9_]*)\}$`)
)

// parseDependsOn reads a job's depends_on, which adds to what PostgreSQL finds the job reads: a
// mapping of tables to the column whose value names the key a changed row touches (empty or null
// for none), or a list of tables, each named as SQL would (orders, metering."UsageEvents").
//
//	depends_on: {orders: customerid, customers: customerid}
//	depends_on: [orderlines]
//	depends_on: []    # the schedule alone refreshes the job
//
// A keyed job can be named by a declared change only through its one key column; a job keyed by
// several columns, and a single-value job, depend on tables alone (PostgreSQL finds their
// columns). It reports whether depends_on was written at all.
func parseDependsOn(n *yaml.Node, keyTemplate string) ([]Dependency, bool, error) {
	var deps []Dependency
	switch n.Kind {
	case 0:
		return nil, false, nil
	case yaml.SequenceNode:
		for _, t := range n.Content {
			deps = append(deps, Dependency{Table: t.Value})
		}
	case yaml.MappingNode:
		keyColumn := ""
		if m := oneColumn.FindStringSubmatch(keyTemplate); m != nil {
			keyColumn = m[1]
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			table, column := n.Content[i], n.Content[i+1]
			if column.Kind != yaml.ScalarNode {
				return nil, true, fmt.Errorf("line %d: %s: the column must be a name, or empty", column.Line, table.Value)
			}
			d := Dependency{Table: table.Value}
			switch c := column.Value; {
			case c == "":
			case !columnName.MatchString(c):
				return nil, true, fmt.Errorf("%s: %q is not a column name", d.Table, c)
			case keyTemplate == "":
				return nil, true, fmt.Errorf("%s.%s: a single-value job depends on tables, not columns", d.Table, c)
			case keyColumn == "":
				return nil, true, fmt.Errorf("%s.%s: a change can only name the key of a job keyed by one column, and this job's key is %s (without a column, PostgreSQL finds which columns name its keys)",
					d.Table, c, keyTemplate)
			case c != keyColumn:
				return nil, true, fmt.Errorf("%s.%s: the job's key column is %s: a changed row names its key by that column",
					d.Table, c, keyColumn)
			default:
				d.Keys = []*query.KeySource{{Column: c}}
			}
			deps = append(deps, d)
		}
	default:
		return nil, true, fmt.Errorf("line %d: a mapping of tables to columns, or a list of tables", n.Line)
	}
	for _, d := range deps {
		if !tableName.MatchString(d.Table) {
			return nil, true, fmt.Errorf("%q is not a table name (orders, public.orders, metering.\"UsageEvents\")", d.Table)
		}
	}
	return deps, true, nil
}

// fileIncremental is a job's incremental declaration in the jobs file:
//
//	incremental:
//	  table: orderlines
//	  group_by: prod_id      # optional: one value per group, keyed by it
//	  count: lines           # optional: the result column holding the number of rows
//	  sum: {sold: quantity}  # optional: result columns holding sums of columns
type fileIncremental struct {
	Table   string    `yaml:"table"`
	GroupBy string    `yaml:"group_by"`
	Count   string    `yaml:"count"`
	Sum     yaml.Node `yaml:"sum"` // a mapping, kept as a node to keep the file's order
}

func (f *fileIncremental) spec() (*query.IncrementalSpec, error) {
	spec := &query.IncrementalSpec{Table: f.Table, GroupBy: f.GroupBy, Count: f.Count}
	switch f.Sum.Kind {
	case 0:
	case yaml.MappingNode:
		for i := 0; i+1 < len(f.Sum.Content); i += 2 {
			spec.Sums = append(spec.Sums, query.Sum{Name: f.Sum.Content[i].Value, Column: f.Sum.Content[i+1].Value})
		}
	default:
		return nil, fmt.Errorf("line %d: sum is a mapping of result columns to the columns they sum", f.Sum.Line)
	}
	if strings.TrimSpace(spec.Table) == "" {
		return nil, errors.New("table is required")
	}
	return spec, nil
}
