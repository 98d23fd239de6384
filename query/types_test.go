package query_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strconv"
	"testing"

	"github.com/warmcache/warmcache/query"
)

func TestParseDecimal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		ok   bool
		json string
	}{
		{"23", true, "23"},
		{"23.0", true, "23.0"},
		{"-4.55", true, "-4.55"},
		{"0.07", true, "0.07"},
		{"007.50", true, "7.50"},
		{"-0", true, "-0"},
		{"", false, ""},
		{".5", false, ""},
		{"5.", false, ""},
		{"1e3", false, ""},
		{"NaN", false, ""},
		{"+1", false, ""},
		{"1.2.3", false, ""},
		{"--1", false, ""},
	} {
		d, err := query.ParseDecimal(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseDecimal(%q) error = %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && marshal(t, d) != tc.json {
			t.Errorf("ParseDecimal(%q) marshals to %s, want %s", tc.in, marshal(t, d), tc.json)
		}
	}
}

func TestDecimalUnmarshalKeepsDigits(t *testing.T) {
	t.Parallel()
	var v struct{ Amount query.Decimal }
	if err := json.Unmarshal([]byte(`{"Amount": 0.1000000000000000055511151231257827}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.Amount.String() != "0.1000000000000000055511151231257827" {
		t.Errorf("decimal lost digits: %s", v.Amount)
	}
}

func TestParseDate(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{
		"2023-03-10": true, "2024-02-29": true, "2023-02-29": false, "2023-13-01": false,
		"2023-3-10": false, "10/03/2023": false, "": false, "2023-03-10T00:00:00Z": false,
	} {
		d, err := query.ParseDate(in)
		if (err == nil) != ok {
			t.Errorf("ParseDate(%q) error = %v, want ok %v", in, err, ok)
		}
		if ok && d.String() != in {
			t.Errorf("ParseDate(%q) = %s", in, d)
		}
	}
}

func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"23", "-4.55", "0.07", "1e3", ".5", "9999999999999999999999.99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := query.ParseDecimal(s)
		if err != nil {
			return
		}
		// Whatever parses marshals to a valid JSON number of exactly the value written.
		b, err := json.Marshal(d)
		if err != nil || !json.Valid(b) {
			t.Fatalf("ParseDecimal(%q) marshals to %q (%v)", s, b, err)
		}
		want, _ := new(big.Rat).SetString(s)
		if d.Rat() == nil || d.Rat().Cmp(want) != 0 {
			t.Fatalf("ParseDecimal(%q) = %s, another value", s, d)
		}
	})
}

func FuzzParseDate(f *testing.F) {
	for _, s := range []string{"2023-03-10", "2024-02-29", "0000-01-01", "9999-12-31", "2023-02-30"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := query.ParseDate(s)
		if err != nil {
			return
		}
		if d.String() != s {
			t.Fatalf("ParseDate(%q) = %s", s, d)
		}
	})
}

func FuzzCustomerKey(f *testing.F) {
	for _, s := range []string{"1", "042", "19887", "-1", "0", "2147483647", "2147483648", "1e3", " 7", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		canon, err := query.CreditByCustomerAggregate.CanonicalKey(key)
		if err != nil {
			if !errors.Is(err, query.ErrInvalidKey) {
				t.Fatalf("CanonicalKey(%q): %v, want ErrInvalidKey", key, err)
			}
			return
		}
		id, perr := strconv.ParseInt(canon, 10, 32)
		if perr != nil || id <= 0 || strconv.FormatInt(id, 10) != canon {
			t.Fatalf("CanonicalKey(%q) = %q, not a canonical positive id", key, canon)
		}
	})
}

func FuzzCustomerOrdersJSON(f *testing.F) {
	for _, v := range [][2]int64{{1, 0}, {19887, 12}, {-1, -1}, {math.MaxInt64, math.MinInt64}} {
		f.Add(v[0], v[1])
	}
	f.Fuzz(func(t *testing.T, id, count int64) {
		v := query.CustomerOrders{CustomerID: id, Count: count}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		prefix := []byte("kept")
		if got := v.AppendJSON(prefix); string(got) != "kept"+string(want) {
			t.Fatalf("AppendJSON of %+v = %q, want %q after the prefix, as encoding/json", v, got, want)
		}
	})
}
