// Package jobs owns what runs when: job definitions (the built-in aggregates and users' SQL jobs,
// all values of one type), the jobs file, schedules, and the runner that streams a job's rows
// from PostgreSQL into Redis.
package jobs

import (
	"fmt"
	"regexp"
	"time"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/query"
)

// Job is a warm job: a name, a schedule, a query, a key template and a lifetime policy.
type Job struct {
	Name        string
	Description string
	Schedule    Schedule
	Aggregate   query.Aggregate
	// KeyTemplate names each row of a keyed job ("{customerid}"); empty for a single value.
	KeyTemplate string
	Lifetime    cache.Lifetime
	// Timeout bounds one run.
	Timeout time.Duration
	// Builtin marks the four aggregates of the product itself.
	Builtin bool
	// Enabled is false for a built-in job the jobs file switched off: the warmer does not run
	// it, and the API still computes its values on a miss.
	Enabled bool
}

// Keyed reports whether the job stores one value per key.
func (j Job) Keyed() bool { return j.Aggregate.Keyed }

var jobName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// builtin is a built-in job's definition: the data the four product jobs are made of.
type builtin struct {
	name, description, key string
	every                  time.Duration // default interval
	aggregate              query.Aggregate
}

var builtins = []builtin{
	{"orders_total", "Total number of orders and revenue.", "", time.Minute, query.OrdersTotalAggregate},
	{"orders_by_customer", "Number of orders of every customer, 0 included.", "{customerid}", 5 * time.Minute,
		query.OrdersByCustomerAggregate},
	{"credit_by_customer", "Consumer credit summary of every customer.", "{customerid}", 5 * time.Minute,
		query.CreditByCustomerAggregate},
	{"credit_overview", "Consumer credit figures by card type, with expired cards.", "", time.Minute,
		query.CreditOverviewAggregate},
}

// Defaults are what a job gets for the settings the jobs file leaves out.
type Defaults struct {
	// TTL is the freshness of a job without a ttl (CACHE_TTL).
	TTL time.Duration
	// Grace is how long past freshness values are kept to be served stale (CACHE_GRACE).
	Grace time.Duration
	// Timeout bounds a run of a job without a timeout; zero means ten minutes.
	Timeout time.Duration
	// Location is the time zone of schedules and calendar expiry (TIMEZONE).
	Location *time.Location
}

// defaultEvery is a built-in job's interval when the jobs file sets no schedule: its own, or half
// the TTL when that is shorter, so that a short CACHE_TTL alone gives a valid configuration.
func (d Defaults) defaultEvery(every time.Duration) string {
	every = min(every, (d.TTL / 2).Truncate(time.Second))
	return "@every " + max(every, time.Second).String()
}

// defaultJitter spreads expiry over a tenth of the freshness, at most a minute.
func defaultJitter(p cache.Policy, ttl time.Duration) time.Duration {
	if p.Calendar() {
		return time.Minute
	}
	return min(ttl/10, time.Minute)
}

// validateLifetime checks that values outlive the longest gap between two runs.
func validateLifetime(s Schedule, l cache.Lifetime, now time.Time) error {
	gap := s.MaxInterval(now)
	if !l.Policy.Covers(gap) {
		return fmt.Errorf("ttl %s is shorter than the longest gap between runs of %q (%s): values would expire before the next refresh",
			l.Policy, s, gap)
	}
	return nil
}
