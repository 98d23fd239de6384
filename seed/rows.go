package seed

import (
	"math/big"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/warmcache/warmcache/query"
)

const (
	minLines = 1
	maxLines = 9
	// taxRate is the sales tax of the sample data: tax = round(net * 8.25 %).
	taxRateBasisPoints = 825
	// cardModulus and cardMultiplier make card numbers distinct, scattered 16-digit numbers:
	// id ↦ (id × multiplier + offset) mod modulus is a bijection because the multiplier is a
	// prime not dividing the modulus (9 × 10^15).
	cardModulus    = 9_000_000_000_000_000
	cardMultiplier = 2_305_843_009_213_693_951 // 2^61 - 1
	cardOffset     = 4_242_424_242_424
)

// Stream identifiers keep every table's random numbers independent of the others'.
const (
	streamCustomer  = 1 << 40
	streamProduct   = 2 << 40
	streamOrder     = 3 << 40
	streamInventory = 4 << 40
)

var (
	customerColumns = []string{"customerid", "firstname", "lastname", "address1", "address2", "city",
		"state", "zip", "country", "region", "email", "phone", "creditcardtype", "creditcard",
		"creditcardexpiration", "username", "password", "age", "income", "gender"}
	orderColumns     = []string{"orderid", "orderdate", "customerid", "netamount", "tax", "totalamount"}
	orderlineColumns = []string{"orderlineid", "orderid", "prod_id", "quantity", "orderdate"}
	productColumns   = []string{"prod_id", "category", "title", "actor", "price", "special", "common_prod_id"}

	categoryNames = []string{"Action", "Animation", "Children", "Classics", "Comedy", "Documentary",
		"Drama", "Family", "Foreign", "Games", "Horror", "Music", "New", "Sci-Fi", "Sports", "Travel"}
	countries = []string{"Australia", "Canada", "Chile", "China", "France", "Germany", "Japan",
		"Russia", "South Africa", "UK"}
	states = []string{"AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "IA", "ID",
		"IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE",
		"NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VA",
		"VT", "WA", "WI", "WV", "WY"}
	incomes     = []int32{20000, 40000, 60000, 80000, 100000}
	titleWords  = []string{"AMBER", "BRIGHT", "CANYON", "DESERT", "ECHO", "FALCON", "GARDEN", "HARBOR", "ISLAND", "JUNGLE", "KINGDOM", "LANTERN", "MEADOW", "NORTH", "OCEAN", "PRAIRIE", "QUARTZ", "RIVER", "SILVER", "THUNDER", "UNION", "VALLEY", "WINTER", "ZENITH"}
	actorFirsts = []string{"ALEX", "BERNIE", "CARMEN", "DANA", "ELLIOT", "FRANCES", "GLEN", "HARPER", "IMOGEN", "JULES", "KIT", "LEE", "MORGAN", "NOEL", "OLIVE", "PAT", "QUINN", "ROBIN", "SAGE", "TERRY"}
	actorLasts  = []string{"ABBOTT", "BRENNAN", "CALLOWAY", "DRUMMOND", "ELLWOOD", "FAIRBANK", "GALLAGHER", "HOLLOWAY", "IVERSON", "JARDINE", "KESWICK", "LOCKHART", "MERRIMAN", "NORCROSS", "OAKLEY", "PEMBERTON", "QUINCEY", "RADCLIFFE", "STANHOPE", "TREMAINE"}
)

// generator derives every row from the scale and the row's id alone.
type generator struct {
	s    Scale
	days []time.Time // the dates of the year, for orderdate
}

func newGenerator(s Scale) *generator {
	g := &generator{s: s}
	for d := time.Date(s.Year, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() == s.Year; d = d.AddDate(0, 0, 1) {
		g.days = append(g.days, d)
	}
	return g
}

func (g *generator) rng(stream uint64, id int) *rand.Rand {
	return rand.New(rand.NewPCG(g.s.Seed, stream+uint64(id)))
}

// rows is a RowSource of n rows whose values fill writes for ids 1..n. The value slice is
// reused: pgx encodes a row before it asks for the next.
func (g *generator) rows(n int, fill func(id int, vals []any) []any) query.RowSource {
	return &source{n: n, fill: fill}
}

// lines is a RowSource over the order lines of orders 1..n.
func (g *generator) lines(n int, fill func(o order, line int, prod int32, vals []any) []any) query.RowSource {
	return &lineSource{g: g, n: n, fill: fill}
}

type source struct {
	n, id int
	fill  func(int, []any) []any
	vals  []any
}

func (s *source) Next() bool             { s.id++; return s.id <= s.n }
func (s *source) Values() ([]any, error) { s.vals = s.fill(s.id, s.vals[:0]); return s.vals, nil }
func (s *source) Err() error             { return nil }

type lineSource struct {
	g          *generator
	n          int
	o          order
	line, left int
	fill       func(order, int, int32, []any) []any
	vals       []any
}

func (s *lineSource) Next() bool {
	for s.left == 0 {
		if s.o.id >= s.n {
			return false
		}
		s.o = s.g.orderOf(s.o.id + 1)
		s.line, s.left = 0, s.o.lines
	}
	s.line++
	s.left--
	return true
}

func (s *lineSource) Values() ([]any, error) {
	s.vals = s.fill(s.o, s.line, s.o.product(s.line, s.g.s.Products), s.vals[:0])
	return s.vals, nil
}

func (s *lineSource) Err() error { return nil }

// order is what every table derived from one order needs to agree on.
type order struct {
	id, customer, lines int
	day                 time.Time
	netCents            int64
}

// orderOf derives order id: months hold equal shares of the orders, in id order as in the sample
// data; the customer is drawn uniformly, which gives the sample's share of customers without
// orders (e^-0.6 ≈ 55 % at its 0.6 orders per customer).
func (g *generator) orderOf(id int) order {
	r := g.rng(streamOrder, id)
	month := (id - 1) * 12 / max(g.s.Orders, 1)
	first := time.Date(g.s.Year, time.Month(month+1), 1, 0, 0, 0, 0, time.UTC)
	day := first.YearDay() - 1 + r.IntN(daysIn(first))
	return order{
		id:       id,
		customer: 1 + r.IntN(g.s.Customers),
		day:      g.days[day],
		netCents: 1 + r.Int64N(40000), // 0.01 to 400.00
		lines:    minLines + r.IntN(maxLines-minLines+1),
	}
}

// product is the product of an order's line; lines draw from their own stream so that orders,
// orderlines and cust_hist agree without sharing state.
func (o order) product(line, products int) int32 {
	r := rand.New(rand.NewPCG(uint64(o.id), uint64(line)))
	return int32(1 + r.IntN(products))
}

func daysIn(first time.Time) int { return first.AddDate(0, 1, -1).Day() }

func (g *generator) order(id int, v []any) []any {
	o := g.orderOf(id)
	tax := (o.netCents*taxRateBasisPoints + 5000) / 10000
	return append(v, int32(id), o.day, int32(o.customer), cents(o.netCents), cents(tax), cents(o.netCents+tax))
}

func (g *generator) orderline(o order, line int, prod int32, v []any) []any {
	quantity := int16(1 + (prod+int32(line))%3)
	return append(v, int32(line), int32(o.id), prod, quantity, o.day)
}

func (g *generator) custHist(o order, _ int, prod int32, v []any) []any {
	return append(v, int32(o.customer), int32(o.id), prod)
}

func (g *generator) customer(id int, v []any) []any {
	r := g.rng(streamCustomer, id)
	last := letters(r, 10)
	// The first half of the customers live in the US (region 1), the rest spread over ten
	// countries (region 2), where state is NULL and zip is 0.
	region, country, state, zip := int16(1), "US", any(states[r.IntN(len(states))]), int32(10000+r.IntN(90000))
	if id > g.s.Customers/2 {
		region, country, state, zip = 2, countries[r.IntN(len(countries))], nil, 0
	}
	phone := strconv.FormatInt(1_000_000_000+r.Int64N(9_000_000_000), 10)
	card := cardNumber(id)
	expiry := strconv.Itoa(g.s.Year+4+r.IntN(5)) + "/" + twoDigits(1+r.IntN(12))
	gender := "M"
	if r.IntN(2) == 0 {
		gender = "F"
	}
	return append(v, int32(id), letters(r, 6), last, phone+" Dell Way", nil, letters(r, 7),
		state, zip, country, region, last+"@dell.com", phone, int32(1+r.IntN(5)),
		card, expiry, "user"+strconv.Itoa(id), "password",
		int16(18+r.IntN(73)), incomes[r.IntN(len(incomes))], gender)
}

func (g *generator) product(id int, v []any) []any {
	r := g.rng(streamProduct, id)
	title := titleWords[r.IntN(len(titleWords))] + " " + titleWords[r.IntN(len(titleWords))]
	actor := actorFirsts[r.IntN(len(actorFirsts))] + " " + actorLasts[r.IntN(len(actorLasts))]
	special := int16(0)
	if r.IntN(50) == 0 {
		special = 1
	}
	return append(v, int32(id), int32(1+r.IntN(len(categoryNames))), title, actor,
		cents(999+100*r.Int64N(21)), special, int32(1+r.IntN(g.s.Products)))
}

func (g *generator) inventory(id int, v []any) []any {
	r := g.rng(streamInventory, id)
	return append(v, int32(id), int32(r.IntN(250)), int32(r.IntN(40)))
}

func (g *generator) category(id int, v []any) []any {
	return append(v, int32(id), categoryNames[id-1])
}

func cardNumber(id int) string {
	hi, lo := bits.Mul64(uint64(id), cardMultiplier)
	_, rem := bits.Div64(hi%cardModulus, lo, cardModulus)
	return strconv.FormatUint((rem+cardOffset)%cardModulus+1_000_000_000_000_000, 10)
}

func cents(c int64) pgtype.Numeric {
	return pgtype.Numeric{Int: big.NewInt(c), Exp: -2, Valid: true}
}

func letters(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('A' + r.IntN(26))
	}
	return string(b)
}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}
