package jobs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
)

// ParseDuration reads a Go duration ("90s", "5m", "2h30m"), days before it ("1d", "7d", "1d12h"),
// or a whole number of seconds ("300"), the form the tutorials' settings use.
func ParseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	wrong := fmt.Errorf("%q is not a duration: write 90s, 10m, 2h, 1d or 1d12h, or a number of seconds", s)
	var days time.Duration
	if before, after, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.ParseUint(before, 10, 16)
		if err != nil {
			return 0, wrong
		}
		days, s = time.Duration(n)*24*time.Hour, after
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 && days > 0 {
		return 0, wrong
	}
	return days + d, nil
}

// durationSetting writes d as a jobs file may: "1d", "2h", "90m", "45s", else Go's form.
func durationSetting(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d >= time.Minute && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}

// MaxTimeout is the longest a run may take (a job's timeout): Redis remembers the single-key
// writes made during a run for that long (cache.TouchedWindow), so that the run steps around
// them.
const MaxTimeout = time.Hour

// Policy says how long a value stays fresh after it is computed: a fixed duration, or until the
// end of the day or of the week in the configured time zone.
type Policy struct {
	kind     policyKind
	duration time.Duration
}

type policyKind int

const (
	fixedDuration policyKind = iota
	endOfDay
	endOfWeek
)

// ParsePolicy reads a TTL policy: a Go duration ("90s", "10m"), a whole number of seconds
// ("300"), "end_of_day" or "end_of_week". Weeks end at midnight between Sunday and Monday.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "end_of_day":
		return Policy{kind: endOfDay}, nil
	case "end_of_week":
		return Policy{kind: endOfWeek}, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return Policy{}, fmt.Errorf("%q is not a duration (90s, 10m, 2h, 1d), a number of seconds, end_of_day or end_of_week", s)
	}
	if d < time.Second {
		return Policy{}, fmt.Errorf("%q is shorter than one second", s)
	}
	return Policy{kind: fixedDuration, duration: d}, nil
}

// FixedPolicy returns the policy of values that stay fresh for d after they are computed.
func FixedPolicy(d time.Duration) Policy { return Policy{kind: fixedDuration, duration: d} }

// String returns the policy as ParsePolicy reads it.
func (p Policy) String() string {
	switch p.kind {
	case endOfDay:
		return "end_of_day"
	case endOfWeek:
		return "end_of_week"
	}
	return p.duration.String()
}

// Calendar reports whether the policy expires at the end of a day or week rather than after a
// fixed duration.
func (p Policy) Calendar() bool { return p.kind != fixedDuration }

// Expiry returns when a value computed at t stops being fresh.
func (p Policy) Expiry(t time.Time, loc *time.Location) time.Time {
	local := t.In(loc)
	y, m, d := local.Date()
	switch p.kind {
	case endOfDay:
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case endOfWeek:
		// Days until the next Monday: Monday → 7, Sunday → 1.
		days := (8 - int(local.Weekday())) % 7
		if days == 0 {
			days = 7
		}
		return time.Date(y, m, d+days, 0, 0, 0, 0, loc)
	}
	return t.Add(p.duration)
}

// Covers reports whether a value refreshed at most every interval never expires between two
// refreshes: the fixed duration is at least the interval; a calendar policy needs a refresh at
// least once a day or a week (a day is 25 hours long when the clocks go back).
func (p Policy) Covers(interval time.Duration) bool {
	switch p.kind {
	case endOfDay:
		return interval <= 25*time.Hour
	case endOfWeek:
		return interval <= 7*24*time.Hour+time.Hour
	}
	return p.duration >= interval
}

// Lifetime is how a job's values age: the freshness policy, jitter that spreads expiry so keys
// do not all expire together, a grace period past freshness during which Redis keeps the value
// so the API can serve it as stale while PostgreSQL is down, and how long a key without a row is
// remembered as unknown. Everything about the life of a job's values is decided here.
type Lifetime struct {
	Policy Policy
	Jitter time.Duration
	Grace  time.Duration
	// Negative is how long a key without a row stays cached as unknown (CACHE_NEGATIVE_TTL).
	Negative time.Duration
	Location *time.Location
}

// Fresh returns when the value of key computed at t stops being fresh (the policy less the key's
// jitter) and when its grace past that ends.
func (l Lifetime) Fresh(key string, t time.Time) (freshUntil, staleUntil time.Time) {
	fresh := l.freshUntil(t, key)
	return fresh, fresh.Add(l.Grace)
}

// Unknown returns when the negative entry of a key without a row, computed at t, stops being
// fresh (after l.Negative) and when it is dropped: as long again, so that it can be served stale
// like any value.
func (l Lifetime) Unknown(t time.Time) (freshUntil, staleUntil time.Time) {
	fresh := t.Add(l.Negative)
	return fresh, fresh.Add(l.Negative)
}

// freshUntil returns when the value of key computed at t stops being fresh. Jitter shortens
// freshness by a fraction of Jitter fixed by the key, so that a value never outlives its policy
// (end_of_day means the end of the day) and a key keeps its place in the spread from one run to
// the next.
func (l Lifetime) freshUntil(t time.Time, key string) time.Time {
	fresh := l.Policy.Expiry(t, l.Location)
	if l.Jitter > 0 {
		fresh = fresh.Add(-time.Duration(xxhash.Sum64String(key) % uint64(l.Jitter)))
	}
	if fresh.Before(t) {
		fresh = t
	}
	return fresh
}
