// Package jobs owns what a job is: its definition (the built-in aggregates and users' SQL jobs,
// all values of one type), the jobs file, schedules and their words, TTL policies, and the tables
// and columns a job depends on. It knows nothing of Redis, of the configuration, or of running a
// job: package warm runs them. Its SQL is query's.
package jobs

import (
	"fmt"
	"regexp"
	"slices"
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
	// DependsOnSet says that the jobs file wrote depends_on: what it names adds to what
	// PostgreSQL finds, and written empty it leaves the job to its schedule alone.
	DependsOnSet bool
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

// Dependency is a table a job reads, and how its changed rows name the keys they touch: a job of
// the user's own SQL gets them from PostgreSQL (warm.Resolve), with what its depends_on adds; the
// built-in and incremental jobs declare theirs.
type Dependency = query.Dependency

// Joined holds the values the joins of a batch of changes looked up (query.DB.JoinedKeys): by
// join, for each value of the joined column, the key column's values.
type Joined map[query.Join]map[string][]string

// Joins returns, by join, the values of the joined column that changes carry to the jobs of
// list whose keys they find through a join: what Joined is looked up from.
func Joins(list []Job, changes []query.Change) map[query.Join][]string {
	values := map[query.Join][]string{}
	for _, c := range changes {
		for _, job := range list {
			for _, d := range job.DependsOn {
				if d.Table != c.Table || c.Truncated || d.Strategy(job.KeyColumns()) != query.JoinedKeys {
					continue
				}
				for _, k := range d.Keys {
					if k.Via == nil {
						continue
					}
					if v, ok := c.Columns[k.Via.From]; ok && !slices.Contains(values[*k.Via], v) {
						values[*k.Via] = append(values[*k.Via], v)
					}
				}
			}
		}
	}
	return values
}

// KeyColumns is the number of columns of the job's key template; 0 for a single value.
func (j Job) KeyColumns() int {
	if !j.Keyed() {
		return 0
	}
	return max(strings.Count(j.KeyTemplate, "{"), 1)
}

// AffectedBy returns which of the job's values change c touches, given what the joins of its
// batch looked up (nil when they could not be: such a change then touches every key): the keys
// it names, or all when it touches every key, a single-value job's one value among them. A
// change to a table the job does not read touches nothing. An UPDATE's change comes as the
// values of its rows before and after, so that a row moved from one group to another touches
// both.
func (j Job) AffectedBy(c query.Change, joined Joined) (keys []string, all bool) {
	for _, d := range j.DependsOn {
		if d.Table != c.Table {
			continue
		}
		strategy := d.Strategy(j.KeyColumns())
		if c.Truncated || strategy == query.WholeJob || strategy == query.JoinedKeys && joined == nil {
			return nil, true
		}
		keys = append(keys, j.keysOf(d, c.Columns, joined)...)
	}
	return keys, false
}

// keysOf returns the keys the row of columns names through d: each key column's values, from the
// row or through a join, combined in every way. A NULL, or a join without a match, names none.
func (j Job) keysOf(d Dependency, columns map[string]string, joined Joined) []string {
	combos := [][]string{{}}
	for _, k := range d.Keys {
		var values []string
		if k.Via == nil {
			if v, ok := columns[k.Column]; ok {
				values = []string{v}
			}
		} else if v, ok := columns[k.Via.From]; ok {
			values = joined[*k.Via][v]
		}
		var next [][]string
		for _, combo := range combos {
			for _, v := range values {
				next = append(next, append(slices.Clip(combo), v))
			}
		}
		combos = next
	}
	var keys []string
	for _, parts := range combos {
		if key, err := j.Aggregate.Key(parts); err == nil {
			keys = append(keys, key)
		}
	}
	return keys
}

// TableNames returns the tables the jobs depend on, as their definitions name them.
func TableNames(list []Job) []string {
	var names []string
	for _, job := range list {
		for _, d := range job.DependsOn {
			if !slices.Contains(names, d.Table) {
				names = append(names, d.Table)
			}
		}
	}
	return names
}

// Resolve returns the jobs of list with the tables they depend on named as qualified gives them
// (query.Schema.Resolve: schema.table, as changes name them). A name qualified lacks stays.
func Resolve(list []Job, qualified map[string]string) []Job {
	out := make([]Job, len(list))
	for i, job := range list {
		deps := make([]Dependency, len(job.DependsOn))
		for j, d := range job.DependsOn {
			if q, ok := qualified[d.Table]; ok {
				d.Table = q
			}
			deps[j] = d
		}
		job.DependsOn = deps
		out[i] = job
	}
	return out
}

// Tables returns every table some job depends on, with the columns whose values name the keys a
// change touches, directly or through a join: what the outbox must record of each table's
// changes.
func Tables(list []Job) map[string][]string {
	tables := map[string][]string{}
	for _, job := range list {
		for _, d := range job.DependsOn {
			cols := append(tables[d.Table], d.Columns()...)
			slices.Sort(cols)
			tables[d.Table] = slices.Compact(cols)
		}
	}
	return tables
}

// Builtins is the jobs file's builtins: whether the built-in jobs (the dellstore2 demo) and the
// order write endpoint are on.
type Builtins int

const (
	// BuiltinsAuto, without builtins in the file: on where the database has the tables they
	// read (query.BuiltinTables), off elsewhere.
	BuiltinsAuto Builtins = iota
	// BuiltinsOn, builtins: true: on, and a database without their tables is an error.
	BuiltinsOn
	// BuiltinsOff, builtins: false: off.
	BuiltinsOff
)

// Decide says whether the built-in jobs are on, given the tables of theirs the database lacks.
// builtins: true on a database without them is an error naming the first missing table.
func (b Builtins) Decide(missing []string) (bool, error) {
	switch {
	case b == BuiltinsOff:
		return false, nil
	case b == BuiltinsOn && len(missing) > 0:
		return false, withFix(fmt.Errorf("builtins: true, and the database has no table %s, which the built-in jobs read", missing[0]),
			"builtins: false, or no builtins (then they are on where the database has their tables)")
	}
	return len(missing) == 0, nil
}

// WithoutBuiltins returns the jobs of list that are not built-in.
func WithoutBuiltins(list []Job) []Job {
	var mine []Job
	for _, job := range list {
		if !job.Builtin {
			mine = append(mine, job)
		}
	}
	return mine
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
	perCustomer = []Dependency{
		{Table: "orders", Keys: []*query.KeySource{{Column: "customerid"}}},
		{Table: "customers", Keys: []*query.KeySource{{Column: "customerid"}}},
	}
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
