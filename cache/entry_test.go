package cache_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/warmcache/warmcache/cache"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestEntryFormatIsStable(t *testing.T) {
	t.Parallel()
	e := cache.NewEntry([]byte(`{"customerid":42,"count":3}`), 1700000000123456,
		time.UnixMicro(1700000000200000), time.UnixMicro(1700000300200000), false)
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "entry-v1.hex")
	got := []byte(hex.Dump(b))
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	// Entries written by one version are read by the next: the stored bytes must not drift.
	if !bytes.Equal(got, want) {
		t.Errorf("entry bytes changed (run with -update only for a new format version):\n%s\nwant:\n%s", got, want)
	}
}

func TestEntryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []cache.Entry{
		cache.NewEntry([]byte(`{"count":12000,"revenue":2567386.79}`), 1, time.UnixMicro(2), time.UnixMicro(3), false),
		cache.NewEntry([]byte(`{"error":"customer 99 not found"}`), 1<<62, time.UnixMicro(1<<50), time.UnixMicro(1<<51), true),
		cache.NewEntry(nil, 5, time.UnixMicro(6), time.UnixMicro(7), false),
	} {
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := cache.DecodeEntry(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != e.Version || !got.ComputedAt.Equal(e.ComputedAt) || !got.FreshUntil.Equal(e.FreshUntil) ||
			got.NotFound != e.NotFound || got.ETag != e.ETag || !bytes.Equal(got.Body, e.Body) {
			t.Errorf("round trip of %+v gave %+v", e, got)
		}
	}
}

func TestETag(t *testing.T) {
	t.Parallel()
	a, b := cache.ETagOf([]byte(`{"count":1}`)), cache.ETagOf([]byte(`{"count":2}`))
	if a == b || len(a) != 18 || a[0] != '"' || a[17] != '"' {
		t.Errorf("ETags %s and %s: want distinct quoted 16-digit hashes", a, b)
	}
	if a != cache.ETagOf([]byte(`{"count":1}`)) {
		t.Error("the same body got another ETag")
	}
}

func TestDecodeRefusesGarbage(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{nil, []byte("{}"), append([]byte{2}, make([]byte, 60)...)} {
		if _, err := cache.DecodeEntry(b); !errors.Is(err, cache.ErrCorrupt) {
			t.Errorf("DecodeEntry(%q): %v, want ErrCorrupt", b, err)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	e, _ := cache.NewEntry([]byte(`{"a":1}`), 1, time.UnixMicro(2), time.UnixMicro(3), true).MarshalBinary()
	f.Add(e)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := cache.DecodeEntry(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes when its flags are canonical.
		again, err := e.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if len(again) != len(b) || !bytes.Equal(again[2:], b[2:]) {
			t.Fatalf("re-encoding changed the bytes:\n%x\n%x", b, again)
		}
	})
}
