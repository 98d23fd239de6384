package query

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrUnknownCustomer reports an order for a customer that does not exist.
var ErrUnknownCustomer = errors.New("unknown customer")

// ErrInvalidOrder reports an order that breaks a rule of the orders table; the error is an
// *InvalidOrderError, which says which.
var ErrInvalidOrder = errors.New("invalid order")

// InvalidOrderError says why an order cannot be stored, field by field.
type InvalidOrderError struct {
	Problems []string
}

func (e *InvalidOrderError) Error() string { return "invalid order: " + strings.Join(e.Problems, "; ") }

// Unwrap makes the error an ErrInvalidOrder.
func (e *InvalidOrderError) Unwrap() error { return ErrInvalidOrder }

// NewOrder is an order to insert. TotalAmount, when zero, is NetAmount + Tax.
type NewOrder struct {
	OrderDate   Date
	CustomerID  int64
	NetAmount   Decimal
	Tax         Decimal
	TotalAmount *Decimal
}

// maxAmount bounds amounts to what numeric(12,2) holds.
var maxAmount = big.NewRat(1e10, 1)

// Validate checks the order against the orders table's rules: a positive customer id, amounts
// that numeric(12,2) holds (at most two decimals, below 10^10) and are not negative, and a total
// that is net plus tax.
func (o NewOrder) Validate() error {
	var problems []string
	if o.OrderDate.IsZero() {
		problems = append(problems, "orderdate is required")
	}
	if o.CustomerID <= 0 || o.CustomerID > 1<<31-1 {
		problems = append(problems, "customerid must be a positive integer")
	}
	check := func(name string, d Decimal) {
		r := d.Rat()
		_, frac, _ := strings.Cut(d.String(), ".")
		switch {
		case r.Sign() < 0:
			problems = append(problems, name+" must not be negative")
		case len(frac) > 2:
			problems = append(problems, name+" has more than two decimals")
		case r.Cmp(maxAmount) >= 0:
			problems = append(problems, name+" is too large")
		}
	}
	check("netamount", o.NetAmount)
	check("tax", o.Tax)
	if o.TotalAmount == nil && o.Total().Rat().Cmp(maxAmount) >= 0 {
		problems = append(problems, "netamount + tax is too large")
	}
	if o.TotalAmount != nil {
		check("totalamount", *o.TotalAmount)
		sum := new(big.Rat).Add(o.NetAmount.Rat(), o.Tax.Rat())
		if o.TotalAmount.Rat().Cmp(sum) != 0 {
			problems = append(problems, "totalamount must be netamount + tax")
		}
	}
	if len(problems) > 0 {
		return &InvalidOrderError{Problems: problems}
	}
	return nil
}

// Total returns the order's total amount: TotalAmount, or NetAmount + Tax.
func (o NewOrder) Total() Decimal {
	if o.TotalAmount != nil {
		return *o.TotalAmount
	}
	sum := new(big.Rat).Add(o.NetAmount.Rat(), o.Tax.Rat())
	return Decimal{text: sum.FloatString(2)}
}

// InsertOrder validates and inserts o and returns it as stored, with its id and the position of
// its commit. The outbox trigger records the change in the same transaction. An order for a
// customer that does not exist is ErrUnknownCustomer.
func (db *DB) InsertOrder(ctx context.Context, o NewOrder) (Order, error) {
	if err := o.Validate(); err != nil {
		return Order{}, err
	}
	var stored Order
	err := db.pool.QueryRow(ctx, `
		INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount)
		VALUES ($1, $2, $3, $4, $5)
		RETURNING `+orderColumns, o.OrderDate, o.CustomerID, o.NetAmount, o.Tax, o.Total()).Scan(stored.fields()...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
		return Order{}, fmt.Errorf("customer %d: %w", o.CustomerID, ErrUnknownCustomer)
	}
	if err != nil {
		return Order{}, translate(err)
	}
	stored.Position, err = db.Position(ctx)
	return stored, err
}

// Order is a stored order.
type Order struct {
	OrderID     int64   `json:"orderid"`
	OrderDate   Date    `json:"orderdate"`
	CustomerID  int64   `json:"customerid"`
	NetAmount   Decimal `json:"netamount"`
	Tax         Decimal `json:"tax"`
	TotalAmount Decimal `json:"totalamount"`
	// Position is where the insert's commit is in the WAL, or past it (DB.Position).
	Position int64 `json:"-"`
}

// orderColumns are the columns of an Order, in the order of Order.fields.
const orderColumns = "orderid, orderdate, customerid, netamount, tax, totalamount"

func (o *Order) fields() []any {
	return []any{&o.OrderID, &o.OrderDate, &o.CustomerID, &o.NetAmount, &o.Tax, &o.TotalAmount}
}

// Order returns the order id, or ErrNotFound.
func (db *DB) Order(ctx context.Context, id int64) (Order, error) {
	var o Order
	err := db.pool.QueryRow(ctx, "SELECT "+orderColumns+" FROM orders WHERE orderid = $1", id).Scan(o.fields()...)
	return o, translate(err)
}
