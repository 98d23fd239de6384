// Package seed generates dellstore2 data at any scale with the shape of the real sample
// database: the same tables and columns, and the distributions its README lists (half the
// customers in the US, five card types and income levels in equal shares, orders spread evenly
// over one year and over customers, so that many customers have none).
//
// Generation is deterministic: the same Scale always yields the same rows. Every row is derived
// from its own id, so tables are generated independently and in parallel, and orderlines and
// cust_hist agree with orders without holding anything in memory.
package seed

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/warmcache/warmcache/query"
)

// Scale says how much data to generate.
type Scale struct {
	Customers int
	Orders    int
	Products  int
	// Year is the calendar year the orders fall in; card expiry years follow it by 4 to 8.
	Year int
	// Lines adds orderlines and cust_hist (1 to 9 lines per order). The aggregates do not read
	// them; leaving them out loads large scales several times faster.
	Lines bool
	// Seed selects one of the possible data sets.
	Seed uint64
}

// Dellstore2 is the scale of the real sample database.
var Dellstore2 = Scale{Customers: 20000, Orders: 12000, Products: 10000, Year: 2004, Lines: true, Seed: 1}

// Validate reports a scale that cannot be generated.
func (s Scale) Validate() error {
	switch {
	case s.Customers < 1:
		return fmt.Errorf("customers must be at least 1, got %d", s.Customers)
	case s.Orders < 0:
		return fmt.Errorf("orders must not be negative, got %d", s.Orders)
	case s.Products < 1:
		return fmt.Errorf("products must be at least 1, got %d", s.Products)
	case s.Year < 1900 || s.Year > 9990:
		return fmt.Errorf("year must be between 1900 and 9990, got %d", s.Year)
	case s.Customers > 1<<31-1 || s.Orders > 1<<31-1:
		return fmt.Errorf("customers and orders must fit PostgreSQL's integer")
	}
	return nil
}

// Table is one table to load: its columns and a source of its rows.
type Table struct {
	Name    string
	Columns []string
	Rows    int64 // how many rows the source yields, or an estimate for orderlines and cust_hist
	source  func() query.RowSource
}

// Tables returns the tables of the scale, in an order that loads parents before children.
func (s Scale) Tables() []Table {
	g := newGenerator(s)
	tables := []Table{
		{Name: "categories", Columns: []string{"category", "categoryname"}, Rows: int64(len(categoryNames)),
			source: func() query.RowSource { return g.rows(len(categoryNames), g.category) }},
		{Name: "products", Columns: productColumns, Rows: int64(s.Products),
			source: func() query.RowSource { return g.rows(s.Products, g.product) }},
		{Name: "inventory", Columns: []string{"prod_id", "quan_in_stock", "sales"}, Rows: int64(s.Products),
			source: func() query.RowSource { return g.rows(s.Products, g.inventory) }},
		{Name: "customers", Columns: customerColumns, Rows: int64(s.Customers),
			source: func() query.RowSource { return g.rows(s.Customers, g.customer) }},
		{Name: "orders", Columns: orderColumns, Rows: int64(s.Orders),
			source: func() query.RowSource { return g.rows(s.Orders, g.order) }},
	}
	if s.Lines {
		lines := int64(s.Orders) * (minLines + maxLines) / 2
		tables = append(tables,
			Table{Name: "orderlines", Columns: orderlineColumns, Rows: lines,
				source: func() query.RowSource { return g.lines(s.Orders, g.orderline) }},
			Table{Name: "cust_hist", Columns: []string{"customerid", "orderid", "prod_id"}, Rows: lines,
				source: func() query.RowSource { return g.lines(s.Orders, g.custHist) }},
		)
	}
	return tables
}

// Progress is told how many rows of a table have been written so far.
type Progress func(table string, rows int64)

// Load creates the dellstore2 tables in db (dropping existing ones if drop is set), fills them,
// two tables at a time, and adds keys and indexes. It returns the row count of every table.
func Load(ctx context.Context, db *query.DB, s Scale, drop bool, progress Progress) (map[string]int64, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := db.Schema().CreateDellstore2(ctx, drop); err != nil {
		return nil, fmt.Errorf("create tables: %w", err)
	}
	g, copyCtx := errgroup.WithContext(ctx)
	g.SetLimit(2) // PostgreSQL spends one core per COPY; more would only contend.
	for _, t := range s.Tables() {
		g.Go(func() error {
			src := &counting{RowSource: t.source(), report: func(n int64) { progress(t.Name, n) }}
			_, err := db.Schema().Copy(copyCtx, t.Name, t.Columns, src)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := db.Schema().FinishDellstore2(ctx); err != nil {
		return nil, fmt.Errorf("add keys and indexes: %w", err)
	}
	return db.Schema().Counts(ctx)
}

// counting reports progress every few thousand rows.
type counting struct {
	query.RowSource
	n      int64
	report func(int64)
}

func (c *counting) Next() bool {
	if !c.RowSource.Next() {
		c.report(c.n)
		return false
	}
	c.n++
	if c.n%8192 == 0 {
		c.report(c.n)
	}
	return true
}
