package jobs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser reads the standard five fields, an optional leading seconds field, and descriptors
// (@every 30s, @hourly, @daily...).
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month |
	cron.Dow | cron.Descriptor)

// allHours is the Hour field of a schedule that runs in every hour.
const allHours = 1<<24 - 1

// Schedule is when a job runs: a robfig/cron schedule, corrected at daylight-saving changes the
// way classic cron does it. robfig/cron computes times on the real clock, so a daily 02:30 job
// is skipped on the day 02:30 does not exist and runs twice on the day it exists twice. A
// Schedule whose hours are fixed instead walks the wall clock: a time that falls in the
// spring-forward gap runs once, right after the jump, and a time in the repeated fall-back hour
// runs once, at its first occurrence. Schedules that run every hour (*/5 * * * *, @every 1m)
// keep to the real clock, as classic cron keeps them, so their interval never stretches.
type Schedule struct {
	spec string
	cron.Schedule
}

// ParseSchedule reads a cron expression in loc, unless it names its own zone (TZ=Area/City ...).
func ParseSchedule(spec string, loc *time.Location) (Schedule, error) {
	if err := checkFields(spec); err != nil {
		return Schedule{}, fmt.Errorf("%q: %w", spec, err)
	}
	s, err := parse(spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("%q: %w", spec, err)
	}
	// robfig/cron rounds any @every below a second, negative ones included, up to a second.
	if every, ok := strings.CutPrefix(spec, "@every "); ok {
		if d, err := time.ParseDuration(every); err != nil || d < time.Second {
			return Schedule{}, fmt.Errorf("%q: the interval must be at least 1s", spec)
		}
	}
	if spec, ok := s.(*cron.SpecSchedule); ok {
		// robfig/cron leaves time.Local unless the expression names a zone (TZ=Area/City).
		if spec.Location == time.Local {
			spec.Location = loc
		}
		if spec.Hour&allHours != allHours {
			s = wallClock{spec: spec}
		}
	}
	sched := Schedule{spec: spec, Schedule: s}
	if sched.Next(time.Now()).IsZero() {
		return Schedule{}, fmt.Errorf("%q never runs", spec)
	}
	return sched, nil
}

// splitZone splits the zone an expression names first (TZ=Area/City or CRON_TZ=Area/City) from
// the rest of it; zone is empty when it names none.
func splitZone(spec string) (zone, rest string) {
	first, rest, _ := strings.Cut(strings.TrimSpace(spec), " ")
	for _, prefix := range []string{"TZ=", "CRON_TZ="} {
		if zone, ok := strings.CutPrefix(first, prefix); ok {
			return zone, strings.TrimSpace(rest)
		}
	}
	return "", strings.TrimSpace(spec)
}

// cronField is one field of a cron expression: its name and the values it takes.
type cronField struct {
	name     string
	min, max int
}

var (
	fiveFields = []cronField{{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 6}}
	sixFields  = append([]cronField{{"second", 0, 59}}, fiveFields...)
)

// checkFields refuses the numbers of a cron expression that robfig/cron lets through or
// reports in its own terms: a value or range outside its field ("61"), and a step that cannot
// step within its range ("*/61" runs at minute 0 alone, once an hour: surely not what was
// meant). Names (MON, JAN) and descriptors are left to the parser.
func checkFields(spec string) error {
	_, spec = splitZone(spec)
	fields := strings.Fields(spec)
	var layout []cronField
	switch {
	case len(fields) == 0 || strings.HasPrefix(fields[0], "@"):
		return nil
	case len(fields) == 5:
		layout = fiveFields
	case len(fields) == 6:
		layout = sixFields
	default:
		return fmt.Errorf("has %d fields: want five (minute hour day-of-month month day-of-week), or six with seconds first", len(fields))
	}
	for i, f := range layout {
		for part := range strings.SplitSeq(fields[i], ",") {
			if err := f.check(part); err != nil {
				return fmt.Errorf("the %s field: %w", f.name, err)
			}
		}
	}
	return nil
}

// check checks one comma-separated part of the field: *, a value, or a range, with a step.
func (f cronField) check(part string) error {
	rng, stepText, stepped := strings.Cut(part, "/")
	lo, hi := f.min, f.max
	if rng != "*" && rng != "?" {
		first, last, isRange := strings.Cut(rng, "-")
		var ok bool
		if lo, ok = cronValue(first); !ok {
			return nil // a name, or a malformed value the parser reports
		}
		hi = lo
		if isRange {
			if hi, ok = cronValue(last); !ok {
				return nil
			}
		} else if stepped {
			hi = f.max // 5/15 steps from 5 to the end
		}
		for _, v := range []int{lo, hi} {
			if v < f.min || v > f.max {
				return fmt.Errorf("%d is out of range (%d to %d)", v, f.min, f.max)
			}
		}
	}
	if !stepped {
		return nil
	}
	step, ok := cronValue(stepText)
	if ok && (step < 1 || step > 1 && step > hi-lo) { // not a number: the parser reports it
		return fmt.Errorf("the step of %s is out of range (1 to %d for %d-%d)", part, max(hi-lo, 1), lo, hi)
	}
	return nil
}

// cronValue reads a number of a field; names (MON, JAN) are not numbers.
func cronValue(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// parse calls robfig/cron's parser, which panics on some malformed input (such as "TZ="): a jobs
// file must never crash the process.
func parse(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("malformed expression")
		}
	}()
	return parser.Parse(spec)
}

// String returns the expression as written.
func (s Schedule) String() string { return s.spec }

// MaxInterval returns the longest gap between two consecutive runs over the year from t, which
// is the shortest freshness the job's values may have. A job that never runs again has none.
func (s Schedule) MaxInterval(t time.Time) time.Duration {
	if every, ok := s.Schedule.(cron.ConstantDelaySchedule); ok {
		return every.Delay
	}
	var longest time.Duration
	end := t.AddDate(1, 0, 0)
	prev := s.Next(t)
	for i := 0; i < 10000 && !prev.IsZero() && prev.Before(end); i++ {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	return longest
}

// wallClock runs a fixed-hour schedule on the wall clock of its location.
type wallClock struct {
	spec *cron.SpecSchedule
}

// Next returns the first run after t.
func (w wallClock) Next(t time.Time) time.Time {
	loc := w.spec.Location
	utc := *w.spec
	utc.Location = time.UTC // robfig/cron on UTC walks wall times without any DST
	wall := naive(t.In(loc))
	// Usually the first wall time will do. When t is in the second pass of a repeated hour, the
	// times of that hour already ran at their first occurrence and are passed over: at most one
	// per second of the hour.
	for range 4000 {
		wall = utc.Next(wall)
		if wall.IsZero() {
			return wall
		}
		if at := instantOf(wall, loc); at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// naive returns t's wall-clock reading as a UTC time.
func naive(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// instantOf returns the first instant at which loc's wall clock reads wall (given as UTC): the
// earlier of two when the hour repeats, and the moment of the jump when wall was skipped.
func instantOf(wall time.Time, loc *time.Location) time.Time {
	// The wall clock reads wall at wall - offset, for one of the offsets in use around it.
	var first time.Time
	for _, probe := range []time.Time{wall.Add(-36 * time.Hour), wall, wall.Add(36 * time.Hour)} {
		_, offset := probe.In(loc).Zone()
		at := wall.Add(-time.Duration(offset) * time.Second).In(loc)
		if naive(at).Equal(wall) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	if !first.IsZero() {
		return first
	}
	// Skipped: find the jump, the first instant whose wall clock reads later than wall. It lies
	// within a few hours; bisect to the second.
	lo, hi := wall.Add(-6*time.Hour).In(loc), wall.Add(6*time.Hour).In(loc)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if naive(mid).Before(wall) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi.Truncate(time.Second)
}

// NextRun returns when the job runs next after now, computed from its schedule, whatever
// process asks; a disabled job has no next run (zero). An @every schedule counts from the
// warmer's start, which only its runs show: lastScheduled, the start of its last run on
// schedule (zero if none is known), anchors it, and its next run falls a whole number of
// intervals after it. The warmer starts its runs within milliseconds of their time, so the
// anchor is that start to the second, as robfig/cron counts.
func (j Job) NextRun(now, lastScheduled time.Time) time.Time {
	if !j.Enabled {
		return time.Time{}
	}
	every, ok := j.Schedule.Schedule.(cron.ConstantDelaySchedule)
	if !ok || lastScheduled.IsZero() {
		return j.Schedule.Next(now)
	}
	anchor := lastScheduled.Truncate(time.Second)
	intervals := time.Duration(1)
	if now.After(anchor) {
		intervals = now.Sub(anchor)/every.Delay + 1
	}
	return anchor.Add(intervals * every.Delay)
}
