// Package jobs owns what a job is: its definition (the built-in aggregates and users' SQL jobs,
// all values of one type), the jobs file, schedules and their words, TTL policies, and the tables
// and columns a job depends on. It knows nothing of Redis, of the configuration, or of running a
// job: package warm runs them. Its SQL is query's.
package jobs

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/warmcache/warmcache/query"
)

// The built-in jobs' names.
const (
	OrdersTotal      = "orders_total"
	OrdersByCustomer = "orders_by_customer"
	CreditByCustomer = "credit_by_customer"
	CreditOverview   = "credit_overview"
)

// Job is a warm job: a name, a schedule, a query, a key template, the tables it depends on and a
// lifetime policy.
type Job struct {
	Name        string
	Description string
	Schedule    Schedule
	Aggregate   query.Aggregate
	// KeyTemplate names each row of a keyed job ("{customerid}"); empty for a single value.
	KeyTemplate string
	// KeyKind says what a keyed job's keys name, for the errors clients see.
	KeyKind KeyKind
	// DependsOn are the tables the job reads, and how a changed row names the keys it touches.
	DependsOn []Dependency
	// Incremental, when set, is a user's incremental declaration: the job's figures are
	// maintained by triggers, installed by Install.
	Incremental *query.IncrementalSpec
	Lifetime    Lifetime
	// TTLFromSchedule says that the jobs file gave no ttl and CACHE_TTL would expire values
	// before the next run: the ttl is twice the longest gap between runs instead.
	TTLFromSchedule bool
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

// KeyKind says what the keys of a keyed job name, in the words of the errors clients get.
type KeyKind struct {
	// Noun is what a key names, such as "customer"; empty for a user's job, whose keys are
	// described by its key template.
	Noun string
	// Form is what a valid key looks like, such as "a positive integer".
	Form string
}

// NotFoundMessage is the error a client gets for a key without a row.
func (j Job) NotFoundMessage(key string) string {
	switch {
	case j.KeyKind.Noun != "":
		return j.KeyKind.Noun + " " + key + " not found"
	case key == "":
		return "job " + j.Name + " has no value"
	}
	return "job " + j.Name + " has no value for key " + key
}

// InvalidKeyMessage is the error a client gets for a key that can never name a row. It quotes
// the key's first 64 bytes at most: a client may send anything.
func (j Job) InvalidKeyMessage(key string) string {
	if len(key) > 64 {
		key = strings.ToValidUTF8(key[:64], "") + "..."
	}
	if j.KeyKind.Noun != "" {
		return fmt.Sprintf("%q is not a %s id (%s)", key, j.KeyKind.Noun, j.KeyKind.Form)
	}
	return fmt.Sprintf("%q is not a key of job %s (%s, at most %d bytes)", key, j.Name, j.KeyTemplate, query.MaxKeyLength)
}

// Dependency is a table a job reads. Column, when set, is the column of the table whose value in
// a changed row is the key of the job that row touches; without it, any change to the table
// touches every key of the job, or its one value.
type Dependency struct {
	Table  string
	Column string
}

// AffectedBy returns which of the job's values a change to table touches, given the text of the
// columns the change recorded (a NULL left out): the keys the change names, or all when it
// touches every key, a single-value job's one value among them. A change to a table the job
// does not read touches nothing.
func (j Job) AffectedBy(table string, columns map[string]string) (keys []string, all bool) {
	for _, d := range j.DependsOn {
		if d.Table != table {
			continue
		}
		if d.Column == "" || !j.Keyed() {
			return nil, true
		}
		value, ok := columns[d.Column]
		if !ok {
			continue // NULL names no key
		}
		if key, err := j.Aggregate.CanonicalKey(value); err == nil {
			keys = append(keys, key)
		}
	}
	return keys, false
}

// Tables returns every table some job depends on, with the columns whose values name the keys a
// change touches: what the outbox must record of each table's changes.
func Tables(list []Job) map[string][]string {
	tables := map[string][]string{}
	for _, job := range list {
		for _, d := range job.DependsOn {
			cols := tables[d.Table]
			if d.Column != "" {
				cols = append(cols, d.Column)
			}
			tables[d.Table] = cols
		}
	}
	return tables
}

var jobName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// builtin is a built-in job's definition: the data the four product jobs are made of.
type builtin struct {
	name, description, key string
	keyKind                KeyKind
	every                  time.Duration // default interval
	aggregate              query.Aggregate
	dependsOn              []Dependency
}

var (
	customer = KeyKind{Noun: "customer", Form: "a positive integer"}
	// perCustomer is what a job keyed by customer depends on: a changed order or customer
	// touches the key of its customer.
	perCustomer = []Dependency{{Table: "orders", Column: "customerid"}, {Table: "customers", Column: "customerid"}}
)

var builtins = []builtin{
	{name: OrdersTotal, description: "Total number of orders and revenue.", every: time.Minute,
		aggregate: query.OrdersTotalAggregate, dependsOn: []Dependency{{Table: "orders"}}},
	{name: OrdersByCustomer, description: "Number of orders of every customer, 0 included.", key: "{customerid}",
		keyKind: customer, every: 5 * time.Minute, aggregate: query.OrdersByCustomerAggregate, dependsOn: perCustomer},
	{name: CreditByCustomer, description: "Consumer credit summary of every customer.", key: "{customerid}",
		keyKind: customer, every: 5 * time.Minute, aggregate: query.CreditByCustomerAggregate, dependsOn: perCustomer},
	{name: CreditOverview, description: "Consumer credit figures by card type, with expired cards.", every: time.Minute,
		aggregate: query.CreditOverviewAggregate, dependsOn: []Dependency{{Table: "orders"}, {Table: "customers"}}},
}

// Defaults are what a job gets for the settings the jobs file leaves out.
type Defaults struct {
	// TTL is the freshness of a job without a ttl (CACHE_TTL).
	TTL time.Duration
	// Grace is how long past freshness values are kept to be served stale (CACHE_GRACE).
	Grace time.Duration
	// NegativeTTL is how long a key without a row stays cached as unknown (CACHE_NEGATIVE_TTL).
	NegativeTTL time.Duration
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
func defaultJitter(p Policy, ttl time.Duration) time.Duration {
	if p.Calendar() {
		return time.Minute
	}
	return min(ttl/10, time.Minute)
}

// validateLifetime checks that values outlive the longest gap between two runs.
func validateLifetime(s Schedule, l Lifetime, now time.Time) error {
	gap := s.MaxInterval(now)
	if !l.Policy.Covers(gap) {
		return withFix(fmt.Errorf("%s is shorter than the longest gap between runs of %q (%s): values would expire before the next refresh",
			l.Policy, s, gap), "ttl: %s or longer, or no ttl (it is then derived from the schedule)", durationSetting(2*gap))
	}
	return nil
}

// derivedTTL is the freshness of a job whose jobs file gives no ttl: the default (CACHE_TTL) when
// it outlives the longest gap between the job's runs, else twice that gap, so that a schedule
// alone ("@hourly") is a valid job. It reports whether it is the gap's.
func derivedTTL(s Schedule, def time.Duration, now time.Time) (time.Duration, bool) {
	gap := s.MaxInterval(now)
	if def >= gap {
		return def, false
	}
	return 2 * gap, true
}
