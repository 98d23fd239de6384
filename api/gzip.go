package api

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
)

// gzipMinLength is the smallest body the api compresses for a client that accepts gzip: below
// about a kilobyte, compression saves too little to be worth the CPU. No built-in job's value
// is that large (the credit overview is 894 bytes); users' values and the listings may be.
const gzipMinLength = 1024

// compressed is the gzip representation of a large cached answer: its own body, and its own
// strong ETag, as RFC 9110 wants a strong validator to change with the representation.
type compressed struct {
	body   []byte
	etag   []string // the header values, of capacity one
	length []string
}

// gzipped returns the answer's gzip representation, compressing its body the first time it is
// asked for; nil when the body is too small to compress, or does not shrink. Answers kept in
// the in-process tier are compressed once each, whatever the number of hits.
func (a *answer) gzipped() *compressed {
	if len(a.entry.Body) < gzipMinLength {
		return nil
	}
	if g := a.gzip.Load(); g != nil {
		return g
	}
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(a.entry.Body) // writes to memory do not fail
	_ = w.Close()
	g := &compressed{}
	if buf.Len() < len(a.entry.Body) {
		g = &compressed{body: buf.Bytes(), etag: []string{gzipETag(a.entry.ETag)}, length: []string{strconv.Itoa(buf.Len())}}
	}
	a.gzip.Store(g) // two requests racing here compress twice, and store equal values
	return g
}

// gzipETag is the strong ETag of the gzip representation of the value whose ETag is etag:
// "0123456789abcdef" gives "0123456789abcdef-gzip".
func gzipETag(etag string) string { return strings.TrimSuffix(etag, `"`) + `-gzip"` }

// acceptsGzip reports whether the request's Accept-Encoding accepts gzip: it names gzip (or
// x-gzip, or *) without q=0.
func acceptsGzip(h http.Header) bool {
	for _, v := range h.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			coding = strings.TrimSpace(coding)
			if !strings.EqualFold(coding, "gzip") && !strings.EqualFold(coding, "x-gzip") && coding != "*" {
				continue
			}
			q, found := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
			if !found {
				return true
			}
			if f, err := strconv.ParseFloat(q, 64); err == nil && f > 0 {
				return true
			}
		}
	}
	return false
}
