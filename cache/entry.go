package cache

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
)

// The entry format, version 1. All integers are big-endian; times are Unix microseconds.
//
//	offset  size  field
//	0       1     format version (1)
//	1       1     flags: bit 0 set for a negative entry (the key has no row)
//	2       8     data version: the snapshot version the value was computed from
//	10      8     computed at
//	18      8     fresh until
//	26      18    strong ETag, quoted: "0123456789abcdef"
//	44      ...   the response body, exactly as served
//
// The data version sits at a fixed offset so that the versioned-write script can compare it with
// a byte-string comparison, without decoding anything.
const (
	formatVersion   = 1
	flagNotFound    = 1 << 0
	offsetFlags     = 1
	offsetVersion   = 2
	offsetComputed  = 10
	offsetFresh     = 18
	offsetETag      = 26
	etagLen         = 18
	headerLen       = offsetETag + etagLen
	versionFieldEnd = offsetVersion + 8
)

// ErrCorrupt reports bytes that are not an entry of a format this version reads.
var ErrCorrupt = errors.New("cache: corrupt or unknown entry")

// Entry is one cached value: the exact bytes the API writes as the response body, with what it
// needs to answer with headers and conditional requests without decoding the body.
type Entry struct {
	// Version is the snapshot version of the data the value was computed from; a write never
	// replaces an entry of a higher version.
	Version int64
	// ComputedAt is when the value was computed (Last-Modified, Age).
	ComputedAt time.Time
	// FreshUntil is when the value is due for refresh (Cache-Control max-age, Expires). Past
	// it, the API recomputes the value, or serves it as stale while PostgreSQL is down.
	FreshUntil time.Time
	// NotFound marks a negative entry: the key has no row, and Body is the error to serve.
	NotFound bool
	// ETag is the strong entity tag of Body, quoted.
	ETag string
	// Body is the response body.
	Body []byte
}

// NewEntry returns the entry for body, with an ETag computed from its content.
func NewEntry(body []byte, version int64, computedAt, freshUntil time.Time, notFound bool) Entry {
	return Entry{
		Version:    version,
		ComputedAt: computedAt,
		FreshUntil: freshUntil,
		NotFound:   notFound,
		ETag:       ETagOf(body),
		Body:       body,
	}
}

// ETagOf returns the strong ETag of body: a 64-bit content hash in hex, quoted.
func ETagOf(body []byte) string {
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], xxhash.Sum64(body))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// AppendBinary appends the entry's stored form to b.
func (e Entry) AppendBinary(b []byte) ([]byte, error) {
	if len(e.ETag) != etagLen {
		return b, fmt.Errorf("cache: entity tag %q is not a quoted 16-digit hash", e.ETag)
	}
	var flags byte
	if e.NotFound {
		flags |= flagNotFound
	}
	b = append(b, formatVersion, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Version))
	b = binary.BigEndian.AppendUint64(b, uint64(e.ComputedAt.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.FreshUntil.UnixMicro()))
	b = append(b, e.ETag...)
	return append(b, e.Body...), nil
}

// MarshalBinary returns the entry's stored form.
func (e Entry) MarshalBinary() ([]byte, error) {
	return e.AppendBinary(make([]byte, 0, headerLen+len(e.Body)))
}

// DecodeEntry reads an entry from its stored form. Body aliases b.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) < headerLen || b[0] != formatVersion {
		return Entry{}, ErrCorrupt
	}
	return Entry{
		Version:    int64(binary.BigEndian.Uint64(b[offsetVersion:])),
		ComputedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b[offsetComputed:]))),
		FreshUntil: time.UnixMicro(int64(binary.BigEndian.Uint64(b[offsetFresh:]))),
		NotFound:   b[offsetFlags]&flagNotFound != 0,
		ETag:       string(b[offsetETag : offsetETag+etagLen]),
		Body:       b[headerLen:],
	}, nil
}
