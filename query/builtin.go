package query

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// OrdersTotal is the result of the orders_total aggregate.
type OrdersTotal struct {
	Count   int64   `json:"count"`
	Revenue Decimal `json:"revenue"`
}

// CustomerOrders is one row of orders_by_customer: how many orders a customer placed, 0
// included.
type CustomerOrders struct {
	CustomerID int64 `json:"customerid"`
	Count      int64 `json:"count"`
}

// AppendJSON appends v's JSON to b, the bytes encoding/json gives, without reflection: a warm
// run encodes one for every customer (cache.JSONAppender).
func (v CustomerOrders) AppendJSON(b []byte) []byte {
	b = append(b, `{"customerid":`...)
	b = strconv.AppendInt(b, v.CustomerID, 10)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, v.Count, 10)
	return append(b, '}')
}

// CustomerCredit is one row of credit_by_customer: a customer's consumer credit summary. It
// carries the card's last four digits only; the full number and the password are never read.
type CustomerCredit struct {
	CustomerID    int64    `json:"customerid"`
	Income        *int64   `json:"income"`
	CardType      int64    `json:"card_type"`
	CardLast4     string   `json:"card_last4"`
	CardExpiry    string   `json:"card_expiry"`
	CardExpired   bool     `json:"card_expired"`
	Orders        int64    `json:"orders"`
	TotalSpent    Decimal  `json:"total_spent"`
	AverageOrder  Decimal  `json:"average_order_value"`
	LastOrderDate *Date    `json:"last_order_date"`
	SpendToIncome *Decimal `json:"spend_to_income"`
}

// CreditOverview is the result of credit_overview: the credit figures by card type, and the
// same figures over all customers.
type CreditOverview struct {
	All       CardTypeCredit   `json:"all"`
	CardTypes []CardTypeCredit `json:"card_types"`
}

// CardTypeCredit aggregates CustomerCredit over the customers holding one card type (CardType
// is 0 for the figures over all customers).
type CardTypeCredit struct {
	CardType      int64   `json:"card_type,omitempty"`
	Customers     int64   `json:"customers"`
	ExpiredCards  int64   `json:"expired_cards"`
	Orders        int64   `json:"orders"`
	TotalSpent    Decimal `json:"total_spent"`
	AverageOrder  Decimal `json:"average_order_value"`
	AverageIncome Decimal `json:"average_income"`
}

// The built-in aggregates (README, Jobs). Each keyed one has a streaming statement that reads every
// customer in one pass (a join against one GROUP BY over orders, never a query per customer)
// and a lookup statement for given customers. The totals are incremental: their lookups read the
// figures migration 6 keeps and the warmer maintains (DB.Maintain), and a run computes them in
// full and checks those.
var (
	OrdersTotalAggregate = Aggregate{
		streamSQL: ordersTotalSQL,
		lookupSQL: ordersTotalMaintainedSQL,
		checkSQL:  ordersTotalMaintainedSQL,
		repair:    repairTotals,
		args:      noArgs,
		scan:      scanOrdersTotal,
	}
	OrdersByCustomerAggregate = Aggregate{
		Keyed:          true,
		streamSQL:      ordersByCustomerSQL,
		streamSettings: sortedPlan,
		keys:           customerKeys{ordersOfCustomersSQL},
		args:           noArgs,
		scan:           scanCustomerOrders,
	}
	CreditByCustomerAggregate = Aggregate{
		Keyed:          true,
		streamSQL:      creditByCustomerSQL,
		streamSettings: sortedPlan,
		keys:           customerKeys{creditOfCustomersSQL},
		args:           todayArg,
		scan:           scanCustomerCredit,
	}
	CreditOverviewAggregate = Aggregate{
		streamSQL: creditOverviewSQL,
		lookupSQL: creditOverviewMaintainedSQL,
		checkSQL:  creditOverviewMaintainedSQL,
		repair:    repairTotals,
		args:      todayArg,
		scan:      scanCreditOverview,
	}
)

// sortedPlan steers the per-customer streams to read orders in customerid order from the covering
// index (migration 00001) and aggregate them group by group, merge-joined with customers: rows
// leave PostgreSQL from the first millisecond, so the Redis writes overlap the query, and no
// memory is needed. Left alone, the planner prefers to hash all orders first: at 1M customers and
// 10M orders that plan is four times slower and sends its first row only at the end.
var sortedPlan = []string{"SET LOCAL enable_hashagg = off", "SET LOCAL enable_hashjoin = off"}

const (
	ordersTotalSQL = `
SELECT count(*), COALESCE(sum(totalamount), 0) FROM orders`

	// The maintained total reads as the full one does: a revenue of 0 without orders, not 0.00.
	ordersTotalMaintainedSQL = `
SELECT COALESCE(sum(orders), 0)::bigint,
       CASE WHEN COALESCE(sum(orders), 0) = 0 THEN 0 ELSE sum(revenue) END
FROM warmcache_orders_total`
)

// Customers without orders get 0 from the LEFT JOIN. The lookup counts with the orders index.
const (
	ordersByCustomerSQL = `
SELECT c.customerid, COALESCE(o.orders, 0)
FROM customers c
LEFT JOIN (SELECT customerid, count(*) AS orders FROM orders GROUP BY customerid) o
       ON o.customerid = c.customerid`

	ordersOfCustomersSQL = `
SELECT c.customerid, (SELECT count(*) FROM orders o WHERE o.customerid = c.customerid)
FROM customers c
WHERE c.customerid = ANY($1)`
)

// creditSelect is the per-customer credit summary; the stream joins it against all orders
// grouped once, the lookup against one customer's orders. A card is valid through the last
// day of its expiry month ('YYYY/MM'); $1 is the reference date.
const (
	creditColumns = `
SELECT c.customerid, c.income, c.creditcardtype, right(c.creditcard, 4),
       replace(c.creditcardexpiration, '/', '-'),
       to_date(c.creditcardexpiration, 'YYYY/MM') + interval '1 month' <= $1::date,
       COALESCE(o.orders, 0), COALESCE(o.spent, 0),
       COALESCE(round(o.spent / o.orders, 2), 0), o.last_order,
       round(COALESCE(o.spent, 0) / NULLIF(c.income, 0), 4)
FROM customers c`

	creditByCustomerSQL = creditColumns + `
LEFT JOIN (SELECT customerid, count(*) AS orders, sum(totalamount) AS spent, max(orderdate) AS last_order
           FROM orders GROUP BY customerid) o
       ON o.customerid = c.customerid`

	creditOfCustomersSQL = creditColumns + `
LEFT JOIN LATERAL (SELECT count(*) AS orders, sum(totalamount) AS spent, max(orderdate) AS last_order
                   FROM orders WHERE customerid = c.customerid) o ON true
WHERE c.customerid = ANY($2)`

	// ROLLUP adds the row over all card types, whose creditcardtype is NULL.
	creditOverviewSQL = `
SELECT COALESCE(c.creditcardtype, 0), count(*),
       count(*) FILTER (WHERE to_date(c.creditcardexpiration, 'YYYY/MM') + interval '1 month' <= $1::date),
       COALESCE(sum(o.orders), 0), COALESCE(sum(o.spent), 0),
       COALESCE(round(sum(o.spent) / NULLIF(sum(o.orders), 0), 2), 0),
       COALESCE(round(avg(c.income), 2), 0)
FROM customers c
LEFT JOIN (SELECT customerid, count(*) AS orders, sum(totalamount) AS spent
           FROM orders GROUP BY customerid) o
       ON o.customerid = c.customerid
GROUP BY ROLLUP (c.creditcardtype)
ORDER BY c.creditcardtype NULLS FIRST`

	// The same figures from the groups the triggers maintain by card type and expiry month: a
	// few hundred rows. A card type left without customers is left out, as the full query leaves
	// it out, and sums over nothing read 0, as the full query's do.
	creditOverviewMaintainedSQL = `
SELECT COALESCE(cardtype, 0), COALESCE(sum(customers), 0)::bigint,
       COALESCE(sum(customers) FILTER (WHERE to_date(expiration, 'YYYY/MM') + interval '1 month' <= $1::date), 0)::bigint,
       COALESCE(sum(orders), 0)::bigint,
       CASE WHEN COALESCE(sum(orders), 0) = 0 THEN 0 ELSE sum(spent) END,
       COALESCE(round(sum(spent) / NULLIF(sum(orders), 0), 2), 0),
       COALESCE(round(sum(income) / NULLIF(sum(incomes), 0), 2), 0)
FROM warmcache_credit_totals
GROUP BY ROLLUP (cardtype)
HAVING sum(customers) > 0 OR GROUPING(cardtype) = 1
ORDER BY cardtype NULLS FIRST`
)

func noArgs(Params) []any     { return nil }
func todayArg(p Params) []any { return []any{p.Today} }

// customerKeys are customer ids: positive decimal numbers that fit PostgreSQL's integer. The
// lookup statement takes them as an array.
type customerKeys struct{ sql string }

func (k customerKeys) canonical(key string) (string, error) {
	id, err := customerID(key)
	if err != nil {
		return "", err
	}
	var b [12]byte
	if canon := strconv.AppendInt(b[:0], int64(id), 10); string(canon) != key {
		return string(canon), nil
	}
	return key, nil // most often: no copy
}

func (k customerKeys) lookup(_ context.Context, _ pgx.Tx, keys []string) (string, []any, error) {
	ids := make([]int32, len(keys))
	for i, key := range keys {
		id, err := customerID(key)
		if err != nil {
			return "", nil, err
		}
		ids[i] = id
	}
	return k.sql, []any{ids}, nil
}

func customerID(key string) (int32, error) {
	if key == "" || key[0] < '0' || key[0] > '9' {
		return 0, ErrInvalidKey
	}
	id, err := strconv.ParseInt(key, 10, 32)
	if err != nil || id <= 0 {
		return 0, ErrInvalidKey
	}
	return int32(id), nil
}

func scanOrdersTotal(rows pgx.Rows) (Row, error) {
	var v OrdersTotal
	err := rows.Scan(&v.Count, &v.Revenue)
	return Row{Value: v}, err
}

func scanCustomerOrders(rows pgx.Rows) (Row, error) {
	var v CustomerOrders
	if err := rows.Scan(&v.CustomerID, &v.Count); err != nil {
		return Row{}, err
	}
	return Row{Key: strconv.FormatInt(v.CustomerID, 10), Value: v}, nil
}

func scanCustomerCredit(rows pgx.Rows) (Row, error) {
	var v CustomerCredit
	err := rows.Scan(&v.CustomerID, &v.Income, &v.CardType, &v.CardLast4, &v.CardExpiry, &v.CardExpired,
		&v.Orders, &v.TotalSpent, &v.AverageOrder, &v.LastOrderDate, &v.SpendToIncome)
	if err != nil {
		return Row{}, err
	}
	return Row{Key: strconv.FormatInt(v.CustomerID, 10), Value: v}, nil
}

// scanCreditOverview reads every row of the ROLLUP: the first is the total, then one per type.
func scanCreditOverview(rows pgx.Rows) (Row, error) {
	var v CreditOverview
	for first := true; first || rows.Next(); first = false {
		var t CardTypeCredit
		err := rows.Scan(&t.CardType, &t.Customers, &t.ExpiredCards, &t.Orders, &t.TotalSpent,
			&t.AverageOrder, &t.AverageIncome)
		if err != nil {
			return Row{}, err
		}
		if t.CardType == 0 {
			v.All = t
		} else {
			v.CardTypes = append(v.CardTypes, t)
		}
	}
	if v.CardTypes == nil {
		v.CardTypes = []CardTypeCredit{}
	}
	return Row{Value: v}, rows.Err()
}
