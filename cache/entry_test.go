package cache

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestEntryFormatIsStable holds every format version this one reads to its golden bytes: entries
// written by one version are read by the next, so the bytes must not drift.
func TestEntryFormatIsStable(t *testing.T) {
	t.Parallel()
	e := newEntry([]byte(`{"customerid":42,"count":3}`), 1700000000123456,
		time.UnixMicro(1700000000200000), time.UnixMicro(1700000300200000), time.UnixMicro(1700003900200000), false)
	golden := filepath.Join("testdata", "entry-v3.hex")
	got := []byte(hex.Dump(e.marshal()))
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("entry bytes changed (run with -update only for a new format version):\n%s\nwant:\n%s", got, want)
	}
	// Version 2, whose versions were times, still reads: as a value read at no position, which
	// any write replaces and no read at a position takes.
	v2 := readHexDump(t, filepath.Join("testdata", "entry-v2.hex"))
	old, err := decodeEntry(v2)
	if err != nil {
		t.Fatal(err)
	}
	if old.Position != 0 || !old.ComputedAt.Equal(e.ComputedAt) || !old.FreshUntil.Equal(e.FreshUntil) ||
		!old.StaleUntil.Equal(e.StaleUntil) || old.ETag != e.ETag || !bytes.Equal(old.Body, e.Body) {
		t.Errorf("a version 2 entry read as %+v, want %+v at position 0", old, e)
	}
	// Version 1, written before entries knew their grace, still reads: as a value without one.
	v1 := readHexDump(t, filepath.Join("testdata", "entry-v1.hex"))
	if old, err = decodeEntry(v1); err != nil {
		t.Fatal(err)
	}
	if old.Position != 0 || !old.ComputedAt.Equal(e.ComputedAt) || !old.FreshUntil.Equal(e.FreshUntil) ||
		!old.StaleUntil.Equal(e.FreshUntil) || old.ETag != e.ETag || !bytes.Equal(old.Body, e.Body) {
		t.Errorf("a version 1 entry read as %+v, want %+v without grace, at position 0", old, e)
	}
}

// readHexDump reads the bytes of a hex.Dump.
func readHexDump(t *testing.T, path string) []byte {
	t.Helper()
	dump, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, line := range bytes.Split(dump, []byte("\n")) {
		if len(line) < 10 {
			continue
		}
		hexPart, _, _ := bytes.Cut(line[10:], []byte("  |"))
		decoded, err := hex.DecodeString(string(bytes.ReplaceAll(hexPart, []byte(" "), nil)))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b = append(b, decoded...)
	}
	return b
}

func TestEntryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []Entry{
		newEntry([]byte(`{"count":12000,"revenue":2567386.79}`), 1, time.UnixMicro(2), time.UnixMicro(3), time.UnixMicro(4), false),
		newEntry([]byte(`{"error":"customer 99 not found"}`), 1<<62, time.UnixMicro(1<<50), time.UnixMicro(1<<51), time.UnixMicro(1<<52), true),
		newEntry(nil, 5, time.UnixMicro(6), time.UnixMicro(7), time.UnixMicro(7), false),
	} {
		got, err := decodeEntry(e.marshal())
		if err != nil {
			t.Fatal(err)
		}
		if got.Position != e.Position || !got.ComputedAt.Equal(e.ComputedAt) || !got.FreshUntil.Equal(e.FreshUntil) ||
			!got.StaleUntil.Equal(e.StaleUntil) || got.NotFound != e.NotFound || got.ETag != e.ETag || !bytes.Equal(got.Body, e.Body) {
			t.Errorf("round trip of %+v gave %+v", e, got)
		}
	}
}

func TestETag(t *testing.T) {
	t.Parallel()
	a, b := etagOf([]byte(`{"count":1}`)), etagOf([]byte(`{"count":2}`))
	if a == b || len(a) != 18 || a[0] != '"' || a[17] != '"' {
		t.Errorf("ETags %s and %s: want distinct quoted 16-digit hashes", a, b)
	}
	if a != etagOf([]byte(`{"count":1}`)) {
		t.Error("the same body got another ETag")
	}
}

func TestDecodeRefusesGarbage(t *testing.T) {
	t.Parallel()
	for _, b := range [][]byte{nil, []byte("{}"), append([]byte{4}, make([]byte, 60)...), append([]byte{3}, make([]byte, 40)...),
		append([]byte{2}, make([]byte, 40)...)} {
		if _, err := decodeEntry(b); err == nil {
			t.Errorf("decodeEntry(%q) accepted it", b)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(newEntry([]byte(`{"a":1}`), 1, time.UnixMicro(2), time.UnixMicro(3), time.UnixMicro(4), true).marshal())
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil || b[0] != formatVersion {
			return
		}
		// Whatever decodes re-encodes to the same bytes when its flags are canonical.
		again := e.marshal()
		if len(again) != len(b) || !bytes.Equal(again[2:], b[2:]) {
			t.Fatalf("re-encoding changed the bytes:\n%x\n%x", b, again)
		}
	})
}

func TestNewNegativeEntry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	e := NewNegativeEntry(`customer 9 "x" not found`, 7, now, now.Add(30*time.Second), now.Add(time.Minute))
	if !e.NotFound || string(e.Body) != `{"error":"customer 9 \"x\" not found"}` || e.Position != 7 || !e.ComputedAt.Equal(now) {
		t.Errorf("negative entry %+v", e)
	}
}
