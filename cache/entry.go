package cache

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/cespare/xxhash/v2"
)

// The entry format, version 3. All integers are big-endian; times are Unix microseconds.
//
//	offset  size  field
//	0       1     format version (3)
//	1       1     flags: bit 0 set for a negative entry (the key has no row)
//	2       8     position: the WAL position (LSN) of the snapshot the value was read in
//	10      8     computed at
//	18      8     fresh until
//	26      8     stale until: the end of the grace past freshness; Redis drops the key then
//	34      18    strong ETag, quoted: "0123456789abcdef"
//	52      ...   the response body, exactly as served
//
// The position sits at a fixed offset so that the versioned-write script can compare it with a
// byte-string comparison, without decoding anything. Entries of older formats are still read:
// version 2 has the same layout with a time (the snapshot's start) where the position is, and
// the scripts never compare it with a position, the formats differing; version 1 lacked the
// stale-until field, and its entries are values that may not be served past their freshness.
const (
	formatVersion  = 3
	flagNotFound   = 1 << 0
	offsetFlags    = 1
	offsetPosition = 2
	offsetComputed = 10
	offsetFresh    = 18
	offsetStale    = 26
	offsetETag     = 34
	etagLen        = 18
	headerLen      = offsetETag + etagLen

	formatVersion2     = 2
	formatVersion1     = 1
	offsetETagVersion1 = 26
)

// errCorrupt reports bytes that are not an entry of a format this version reads.
var errCorrupt = errors.New("cache: corrupt or unknown entry")

// Entry is one cached value: the exact bytes the API writes as the response body, with what it
// needs to answer with headers and conditional requests without decoding the body, and what
// Redis needs to know how long to keep it. NewEntry and NewNegativeEntry make entries;
// Store.Get returns them.
type Entry struct {
	// Position is the WAL position (LSN) of the snapshot the value was read in: every commit
	// acknowledged before it is reflected in the value (query.Row.Position). A write never
	// replaces an entry of a higher position, and a reader that wrote at a position takes only
	// entries at or past it.
	Position int64
	// ComputedAt is when the value was computed (Last-Modified).
	ComputedAt time.Time
	// FreshUntil is when the value is due for refresh. Past it, the API recomputes the value,
	// or serves it as stale while PostgreSQL is down.
	FreshUntil time.Time
	// StaleUntil ends the grace past freshness during which the value may still be served
	// stale; Redis keeps the key until then.
	StaleUntil time.Time
	// NotFound marks a negative entry: the key has no row, and Body is the error to serve.
	NotFound bool
	// ETag is the strong entity tag of Body, quoted.
	ETag string
	// Body is the response body.
	Body []byte
}

// JSONAppender is a value that appends its own JSON to a slice, the same bytes as encoding/json
// gives for it: the values a run encodes by the million, which NewEntry then encodes without
// reflection.
type JSONAppender interface {
	AppendJSON(b []byte) []byte
}

// NewEntry returns the entry of value, computed at computedAt from the snapshot at position: its
// JSON as the body (appended by value itself where it is a JSONAppender), fresh and kept until
// the job's lifetime says (jobs.Lifetime.Fresh).
func NewEntry(value any, position int64, computedAt, freshUntil, staleUntil time.Time) (Entry, error) {
	var body []byte
	if v, ok := value.(JSONAppender); ok {
		body = v.AppendJSON(make([]byte, 0, 48)) // a customer's count in one allocation
	} else {
		var err error
		if body, err = json.Marshal(value); err != nil {
			return Entry{}, err
		}
	}
	return newEntry(body, position, computedAt, freshUntil, staleUntil, false), nil
}

// NewNegativeEntry returns the entry of a key without a row, computed at computedAt from the
// snapshot at position: the error msg as its body (served as a 404), fresh and kept until the
// job's lifetime says of unknown keys (jobs.Lifetime.Unknown).
func NewNegativeEntry(msg string, position int64, computedAt, freshUntil, staleUntil time.Time) Entry {
	body, _ := json.Marshal(map[string]string{"error": msg}) // a map of strings always encodes
	return newEntry(body, position, computedAt, freshUntil, staleUntil, true)
}

// newEntry returns the entry for body, with an ETag computed from its content.
func newEntry(body []byte, position int64, computedAt, freshUntil, staleUntil time.Time, notFound bool) Entry {
	return Entry{
		Position:   position,
		ComputedAt: computedAt,
		FreshUntil: freshUntil,
		StaleUntil: staleUntil,
		NotFound:   notFound,
		ETag:       etagOf(body),
		Body:       body,
	}
}

// retention is how long Redis keeps the entry after it was computed: freshness plus grace.
func (e Entry) retention() time.Duration {
	return max(e.StaleUntil.Sub(e.ComputedAt), time.Millisecond)
}

// etagOf returns the strong ETag of body: a 64-bit content hash in hex, quoted.
func etagOf(body []byte) string {
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], xxhash.Sum64(body))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// appendBinary appends the entry's stored form to b.
func (e Entry) appendBinary(b []byte) []byte {
	var flags byte
	if e.NotFound {
		flags |= flagNotFound
	}
	b = append(b, formatVersion, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Position))
	b = binary.BigEndian.AppendUint64(b, uint64(e.ComputedAt.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.FreshUntil.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.StaleUntil.UnixMicro()))
	b = append(b, e.ETag...)
	return append(b, e.Body...)
}

// marshal returns the entry's stored form.
func (e Entry) marshal() []byte {
	return e.appendBinary(make([]byte, 0, headerLen+len(e.Body)))
}

// decodeEntry reads an entry from its stored form. Body aliases b.
func decodeEntry(b []byte) (Entry, error) {
	etagAt := offsetETag
	switch {
	case len(b) >= headerLen && (b[0] == formatVersion || b[0] == formatVersion2):
	case len(b) >= offsetETagVersion1+etagLen && b[0] == formatVersion1:
		etagAt = offsetETagVersion1
	default:
		return Entry{}, errCorrupt
	}
	e := Entry{
		Position:   int64(binary.BigEndian.Uint64(b[offsetPosition:])),
		ComputedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b[offsetComputed:]))),
		FreshUntil: time.UnixMicro(int64(binary.BigEndian.Uint64(b[offsetFresh:]))),
		NotFound:   b[offsetFlags]&flagNotFound != 0,
		ETag:       string(b[etagAt : etagAt+etagLen]),
		Body:       b[etagAt+etagLen:],
	}
	e.StaleUntil = e.FreshUntil
	if b[0] != formatVersion1 {
		e.StaleUntil = time.UnixMicro(int64(binary.BigEndian.Uint64(b[offsetStale:])))
	}
	if b[0] != formatVersion {
		e.Position = 0 // a time, not a position: as old as can be
	}
	return e, nil
}
