package query

import (
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// Decimal is an exact decimal number read from a PostgreSQL numeric, such as an amount of money.
// It marshals to a JSON number with exactly the digits PostgreSQL holds: 567.58 stays 567.58,
// never 567.5799999.
type Decimal struct {
	text string // canonical decimal text; empty means 0
}

// ParseDecimal reads a plain decimal number such as "23", "-4.5" or "0.07", and keeps its
// digits, without leading zeros. Exponents, NaN and infinities are refused: amounts are never
// written that way.
func ParseDecimal(s string) (Decimal, error) {
	body, negative := strings.CutPrefix(s, "-")
	intPart, frac, hasDot := strings.Cut(body, ".")
	if intPart == "" || (hasDot && frac == "") || !allDigits(intPart) || !allDigits(frac) {
		return Decimal{}, fmt.Errorf("%q is not a decimal number", s)
	}
	text := strings.TrimLeft(intPart, "0")
	if text == "" {
		text = "0"
	}
	if negative {
		text = "-" + text
	}
	if hasDot {
		text += "." + frac
	}
	return Decimal{text: text}, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// String returns the decimal's text, "0" for the zero value.
func (d Decimal) String() string {
	if d.text == "" {
		return "0"
	}
	return d.text
}

// Rat returns the decimal as an exact rational, for comparisons and arithmetic in tests and
// validation.
func (d Decimal) Rat() *big.Rat {
	r, _ := new(big.Rat).SetString(d.String())
	return r
}

// MarshalJSON writes the decimal as a JSON number.
func (d Decimal) MarshalJSON() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalJSON reads a JSON number (or a string holding one) without going through float64.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := ParseDecimal(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ScanNumeric lets pgx scan a numeric column into a Decimal.
func (d *Decimal) ScanNumeric(v pgtype.Numeric) error {
	if !v.Valid {
		*d = Decimal{}
		return nil
	}
	if v.NaN || v.InfinityModifier != pgtype.Finite {
		return fmt.Errorf("numeric %v is not a finite decimal", v)
	}
	b, err := v.MarshalJSON()
	if err != nil {
		return err
	}
	*d = Decimal{text: string(b)}
	return nil
}

// NumericValue lets pgx send a Decimal as a numeric parameter.
func (d Decimal) NumericValue() (pgtype.Numeric, error) {
	var n pgtype.Numeric
	err := n.Scan(d.String())
	return n, err
}

// Date is a calendar date without a time of day or zone, as PostgreSQL's date type.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf returns the date of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

// ParseDate reads a date in ISO 8601 form, 2006-01-02, and refuses dates that do not exist.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("%q is not a date (want YYYY-MM-DD)", s)
	}
	return DateOf(t), nil
}

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d == Date{} }

// Time returns midnight of d in loc.
func (d Date) Time(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

// String returns d as 2006-01-02.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// MarshalJSON writes d as a JSON string, "2006-01-02".
func (d Date) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads a JSON string "2006-01-02".
func (d *Date) UnmarshalJSON(b []byte) error {
	s, okPrefix := strings.CutPrefix(string(b), `"`)
	s, okSuffix := strings.CutSuffix(s, `"`)
	if !okPrefix || !okSuffix {
		return fmt.Errorf("date %s is not a JSON string", b)
	}
	v, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ScanDate lets pgx scan a date column into a Date.
func (d *Date) ScanDate(v pgtype.Date) error {
	if !v.Valid || v.InfinityModifier != pgtype.Finite {
		return fmt.Errorf("date %v is not a calendar date", v)
	}
	*d = DateOf(v.Time)
	return nil
}

// DateValue lets pgx send a Date as a date parameter.
func (d Date) DateValue() (pgtype.Date, error) {
	return pgtype.Date{Time: d.Time(time.UTC), Valid: true}, nil
}
