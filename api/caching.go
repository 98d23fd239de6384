package api

import (
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

// lifetimes are what an answer's Cache-Control says, in whole seconds.
type lifetimes struct {
	maxAge, sharedMaxAge, grace int64
	shared                      bool // s-maxage and stale-while-revalidate are said
}

// freshness returns the lifetimes of an answer with e as result at now.
func (s *Server) freshness(e cache.Entry, result string, now time.Time) lifetimes {
	fresh := e.FreshUntil.Sub(now) // what the api itself still counts as fresh
	grace := e.StaleUntil.Sub(e.FreshUntil)
	if result == stale || fresh < 0 {
		fresh, grace = 0, e.StaleUntil.Sub(now)
	}
	return lifetimes{
		maxAge:       seconds(min(s.cfg.MaxAge, fresh)),
		sharedMaxAge: seconds(min(s.cfg.SharedMaxAge, fresh)),
		grace:        seconds(grace),
		// Purged of changes, a shared cache may serve an aged copy while it fetches a new one.
		shared: s.cfg.SharedMaxAge > 0 && fresh > 0,
	}
}

// cacheControl renders the lifetimes.
func (l lifetimes) cacheControl() string {
	b := make([]byte, 0, 112)
	b = append(b, "public, max-age="...)
	b = strconv.AppendInt(b, l.maxAge, 10)
	if l.shared {
		b = append(b, ", s-maxage="...)
		b = strconv.AppendInt(b, l.sharedMaxAge, 10)
		b = append(b, ", stale-while-revalidate="...)
		b = strconv.AppendInt(b, l.grace, 10)
	}
	b = append(b, ", stale-if-error="...)
	b = strconv.AppendInt(b, l.grace, 10)
	return string(b)
}

// seconds is d in whole seconds, never negative.
func seconds(d time.Duration) int64 { return max(int64(d/time.Second), 0) }
