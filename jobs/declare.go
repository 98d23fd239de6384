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
	// sqlName is a table or column as the jobs file names them: an unquoted, lower-case name.
	sqlName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	// oneColumn is a key template of one column alone.
	oneColumn = regexp.MustCompile(`^\{([a-z_][a-z0-9_]*)\}$`)
)

// parseDependsOn reads a job's depends_on: a mapping of tables to the column whose value names
// the key a changed row touches (empty or null for none), or a list of tables.
//
//	depends_on: {orders: customerid, customers: customerid}
//	depends_on: [orderlines]
//
// A keyed job can be named by a change only through its one key column; a job keyed by several
// columns, and a single-value job, depend on tables alone.
func parseDependsOn(n *yaml.Node, keyTemplate string) ([]Dependency, error) {
	var deps []Dependency
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.SequenceNode:
		for _, t := range n.Content {
			deps = append(deps, Dependency{Table: t.Value})
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			table, column := n.Content[i], n.Content[i+1]
			if column.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: %s: the column must be a name, or empty", column.Line, table.Value)
			}
			deps = append(deps, Dependency{Table: table.Value, Column: column.Value})
		}
	default:
		return nil, fmt.Errorf("line %d: a mapping of tables to columns, or a list of tables", n.Line)
	}
	keyColumn := ""
	if m := oneColumn.FindStringSubmatch(keyTemplate); m != nil {
		keyColumn = m[1]
	}
	for _, d := range deps {
		switch {
		case !sqlName.MatchString(d.Table):
			return nil, fmt.Errorf("%q is not a lower-case table name", d.Table)
		case d.Column == "":
		case !sqlName.MatchString(d.Column):
			return nil, fmt.Errorf("%s: %q is not a lower-case column name", d.Table, d.Column)
		case keyTemplate == "":
			return nil, fmt.Errorf("%s.%s: a single-value job depends on tables, not columns", d.Table, d.Column)
		case keyColumn == "":
			return nil, fmt.Errorf("%s.%s: a change can only name the key of a job keyed by one column, and this job's key is %s",
				d.Table, d.Column, keyTemplate)
		case d.Column != keyColumn:
			return nil, fmt.Errorf("%s.%s: the job's key column is %s: a changed row names its key by that column",
				d.Table, d.Column, keyColumn)
		}
	}
	return deps, nil
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
