package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/warmcache/warmcache/cache"
)

// The HTTP caching policy of cached reads (README, "HTTP caching"). The api is the origin of its
// answers: it says how long they stay fresh from the moment it answers, and sends no Age, which
// would count the value's time in Redis a second time against a max-age that already starts
// now. Browsers get a short freshness (HTTP_MAX_AGE) and revalidate with the strong ETag; shared
// caches get a longer one (s-maxage) only when the warmer purges them of changed values
// (PURGE_URLS), by the surrogate keys every answer carries. Neither ever outlives the value's own
// freshness, and both may serve it stale while the api fails for as long as the api would serve
// it stale itself (the job's grace).

// cachingHeaders sets the freshness headers of an answer with e, of job's value at key, as the
// result (HIT, MISS, STALE, BYPASS) it is.
func (s *Server) cachingHeaders(h http.Header, e cache.Entry, result, job, key string, now time.Time) {
	fresh := e.FreshUntil.Sub(now) // what the api itself still counts as fresh
	grace := e.StaleUntil.Sub(e.FreshUntil)
	if result == stale || fresh < 0 {
		fresh, grace = 0, e.StaleUntil.Sub(now)
	}
	maxAge := min(s.cfg.MaxAge, fresh)
	b := make([]byte, 0, 112)
	b = append(b, "public, max-age="...)
	b = strconv.AppendInt(b, seconds(maxAge), 10)
	if s.cfg.SharedMaxAge > 0 && fresh > 0 {
		b = append(b, ", s-maxage="...)
		b = strconv.AppendInt(b, seconds(min(s.cfg.SharedMaxAge, fresh)), 10)
		// Purged of changes, a shared cache may serve an aged copy while it fetches a new one.
		b = append(b, ", stale-while-revalidate="...)
		b = strconv.AppendInt(b, seconds(grace), 10)
	}
	b = append(b, ", stale-if-error="...)
	b = strconv.AppendInt(b, seconds(grace), 10)
	h["Cache-Control"] = []string{string(b)}
	h["Date"] = []string{s.dates.format(now)}
	h["Expires"] = []string{s.dates.format(now.Add(maxAge))}
	tags := s.cfg.Keys.Surrogate(job, "")
	if key != "" {
		tags += s.surrogateSeparator + s.cfg.Keys.Surrogate(job, key)
	}
	h[s.surrogateHeader] = []string{tags}
}

// seconds is d in whole seconds, never negative.
func seconds(d time.Duration) int64 { return max(int64(d/time.Second), 0) }
