package api

import (
	"net/http"
	"strings"
	"time"
)

// notModified evaluates a GET or HEAD request's preconditions against the representation's
// strong entity tag and last modification, as RFC 9110 §13.2.2 orders them: If-None-Match, when
// present, decides alone (weak comparison, a list of tags, or * for any current representation);
// otherwise If-Modified-Since does, when it is a valid date. It reports whether the answer is
// 304 Not Modified. With compressible set, the value also has a gzip representation, of tag
// gzipETag(etag): a client holding either representation of the current value holds it.
func notModified(h http.Header, etag string, compressible bool, lastModified time.Time) bool {
	if inm := h.Values("If-None-Match"); len(inm) > 0 {
		return noneMatch(inm, etag) || compressible && noneMatch(inm, gzipETag(etag))
	}
	if ims := h.Get("If-Modified-Since"); ims != "" {
		t, err := http.ParseTime(ims)
		if err != nil {
			return false // an invalid date is ignored (RFC 9110 §13.1.3)
		}
		return !lastModified.Truncate(time.Second).After(t)
	}
	return false
}

// noneMatch reports whether any tag of the If-None-Match field values matches etag by the weak
// comparison: W/"x" matches "x". A malformed member ends the list, as a recipient cannot know
// what follows it.
func noneMatch(values []string, etag string) bool {
	want := opaque(etag)
	for _, v := range values {
		rest := v
		for {
			rest = strings.TrimLeft(rest, " \t,")
			if rest == "" {
				break
			}
			if rest[0] == '*' {
				return true
			}
			tag, tail, ok := scanTag(rest)
			if !ok {
				break
			}
			if tag == want {
				return true
			}
			rest = tail
		}
	}
	return false
}

// scanTag reads one entity tag, W/"..." or "...", from the start of s and returns its opaque part
// (with quotes) and the rest of s.
func scanTag(s string) (tag, rest string, ok bool) {
	s = strings.TrimPrefix(s, "W/")
	if len(s) < 2 || s[0] != '"' {
		return "", s, false
	}
	end := strings.IndexByte(s[1:], '"')
	if end < 0 {
		return "", s, false
	}
	return s[:end+2], s[end+2:], true
}

// opaque drops the weakness indicator of an entity tag.
func opaque(etag string) string { return strings.TrimPrefix(etag, "W/") }
