package api

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/warmcache/warmcache/cache"
)

// answer is a value ready to be written: its entry, and the values of the headers that do not
// change with the clock, rendered once. The in-process tier keeps answers, so that a hit writes
// what is prepared; Cache-Control and Date, which change with the clock, come from small caches
// of rendered values the answers share. An answer is shared by the requests it
// serves and never changed after newAnswer.
type answer struct {
	entry cache.Entry
	// headers are the values of the headers below; a response's header holds a slice of one of
	// them, of capacity one, so that anything appending to it gets a copy.
	headers [4]string
	// gzip is the gzip representation of a large body, made when first asked for (gzipped).
	gzip atomic.Pointer[compressed]
}

// The headers of answer.headers.
const (
	headerETag = iota
	headerLastModified
	headerLength
	headerTags
)

func (a *answer) header(i int) []string { return a.headers[i : i+1 : i+1] }

// newAnswer renders the headers of job's value at key that do not change with the clock.
func (s *Server) newAnswer(e cache.Entry, job, key string) *answer {
	tags := s.cfg.Keys.Surrogate(job, "")
	if key != "" {
		tags += s.surrogateSeparator + s.cfg.Keys.Surrogate(job, key)
	}
	a := &answer{entry: e}
	a.headers[headerETag] = e.ETag
	a.headers[headerLastModified] = s.dates.format(e.ComputedAt)
	a.headers[headerLength] = strconv.Itoa(len(e.Body))
	a.headers[headerTags] = tags
	return a
}

// answerOverhead is what an answer costs the in-process tier besides its body and surrogate
// keys, in bytes: the answer, the bytes read from Redis around the body, the key and the tier's
// own record of it (TestLocalTierStaysWithinItsSize measures it).
const answerOverhead = 576

// weight is what the answer costs the in-process tier, in bytes. A body large enough to be
// compressed counts twice: its gzip representation, when a client asks for it, is smaller.
func (a *answer) weight() int {
	body := len(a.entry.Body)
	if body >= gzipMinLength {
		body *= 2
	}
	return answerOverhead + body + len(a.headers[headerTags])
}

// setHeaders sets the answer's headers as result at now. No Expires: max-age says it, and every
// cache since HTTP/1.1 reads max-age first. Date is now in whole seconds, made once a second
// (net/http would format it for every answer). An answer's header then holds eight fields (with
// X-Request-Id), which a Go map keeps without growing a table, and net/http copies once more
// when it writes them.
func (s *Server) setHeaders(h http.Header, a *answer, result string, now time.Time) {
	l := s.freshness(a.entry, result, now)
	h["Content-Type"] = jsonType
	h["Etag"] = a.header(headerETag)
	h["Last-Modified"] = a.header(headerLastModified)
	h["Cache-Control"] = s.controls.header(l)
	h["Date"] = s.dates.header(now)
	h[s.surrogateHeader] = a.header(headerTags)
	h[s.cacheHeader] = resultHeaders[result]
}

// jsonType and resultHeaders are header values every answer shares, of capacity their length.
var (
	jsonType      = []string{"application/json"}
	resultHeaders = map[string][]string{hit: {hit}, miss: {miss}, stale: {stale}, bypass: {bypass}}
)

// cacheControls renders Cache-Control values, remembering the last value of each of 64 slots:
// the answers of a moment share a few.
type cacheControls struct {
	slots [64]atomic.Pointer[renderedControl]
}

type renderedControl struct {
	lifetimes lifetimes
	value     [1]string
}

// header returns the Cache-Control value of l, as a header's value of capacity one.
func (c *cacheControls) header(l lifetimes) []string {
	h := uint64(l.maxAge)*1_000_003 ^ uint64(l.sharedMaxAge)*10_007 ^ uint64(l.grace)
	if l.shared {
		h++
	}
	slot := &c.slots[h%uint64(len(c.slots))]
	if r := slot.Load(); r != nil && r.lifetimes == l {
		return r.value[:]
	}
	r := &renderedControl{lifetimes: l, value: [1]string{l.cacheControl()}}
	slot.Store(r)
	return r.value[:]
}
