package jobs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Text says when the schedule runs, in words, for people ("every 5 minutes", "at 02:30 every day,
// Europe/Paris"). An expression beyond what it words (steps within ranges, mixed lists) is said
// as it was written.
func (s Schedule) Text() string {
	zone, spec := splitZone(s.spec)
	if strings.HasPrefix(spec, "@") {
		return descriptorText(spec)
	}
	text, ok := cronText(strings.Fields(spec))
	if !ok {
		return "on the cron schedule " + s.spec
	}
	if zone == "" {
		zone = s.zone()
	}
	if zone != "" {
		text += ", " + zone
	}
	return text
}

// zone is the time zone of a schedule whose hours are fixed; empty when the zone does not
// change when it runs.
func (s Schedule) zone() string {
	var spec *cron.SpecSchedule
	switch v := s.Schedule.(type) {
	case wallClock:
		spec = v.spec
	case *cron.SpecSchedule:
		spec = v
	}
	if spec == nil || spec.Hour&allHours == allHours {
		return ""
	}
	return spec.Location.String()
}

func descriptorText(spec string) string {
	if every, ok := strings.CutPrefix(spec, "@every "); ok {
		d, err := time.ParseDuration(every)
		if err != nil {
			return spec
		}
		return "every " + durationText(d)
	}
	switch spec {
	case "@hourly":
		return "every hour, at minute 0"
	case "@daily", "@midnight":
		return "every day at 00:00"
	case "@weekly":
		return "every Sunday at 00:00"
	case "@monthly":
		return "on the first day of every month at 00:00"
	case "@yearly", "@annually":
		return "on January 1 at 00:00"
	}
	return spec
}

// durationText words an interval: "30 seconds", "5 minutes", "1 hour 30 minutes".
func durationText(d time.Duration) string {
	var parts []string
	for _, u := range []struct {
		size time.Duration
		name string
	}{{time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}} {
		if n := d / u.size; n > 0 {
			parts = append(parts, plural(int(n), u.name))
			d -= n * u.size
		}
	}
	if len(parts) == 1 && strings.HasPrefix(parts[0], "1 ") {
		return strings.TrimPrefix(parts[0], "1 ")
	}
	return strings.Join(parts, " ")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

var (
	monthNames = []string{"", "January", "February", "March", "April", "May", "June", "July", "August",
		"September", "October", "November", "December"}
	dayNames = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
)

// field is one field of a cron expression, read for wording: any value (* or ?), every step-th
// value (*/step), or a list of values and ranges (from == to for a single value).
type field struct {
	any    bool
	step   int
	ranges [][2]int
}

func (f field) single() (int, bool) {
	if len(f.ranges) == 1 && f.ranges[0][0] == f.ranges[0][1] {
		return f.ranges[0][0], true
	}
	return 0, false
}

// readField reads a field whose values may be names of names (month or day names), or reports
// a form it does not word.
func readField(s string, names []string) (field, bool) {
	if s == "*" || s == "?" {
		return field{any: true}, true
	}
	if step, ok := strings.CutPrefix(s, "*/"); ok {
		n, err := strconv.Atoi(step)
		return field{step: n}, err == nil && n > 0
	}
	var f field
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, okA := fieldValue(lo, names)
		b, okB := a, true
		if isRange {
			b, okB = fieldValue(hi, names)
		}
		if !okA || !okB {
			return field{}, false
		}
		f.ranges = append(f.ranges, [2]int{a, b})
	}
	return f, true
}

func fieldValue(s string, names []string) (int, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	for i, name := range names {
		if len(s) == 3 && strings.EqualFold(s, name[:min(3, len(name))]) {
			return i, true
		}
	}
	return 0, false
}

// words says the values of f with say naming each: "Monday through Friday", "1, 15".
func (f field) words(say func(int) string) string {
	parts := make([]string, len(f.ranges))
	for i, r := range f.ranges {
		parts[i] = say(r[0])
		if r[1] != r[0] {
			parts[i] += " through " + say(r[1])
		}
	}
	return strings.Join(parts, ", ")
}

// cronText words five fields, or six with seconds first.
func cronText(fields []string) (string, bool) {
	if len(fields) == 5 {
		fields = append([]string{"0"}, fields...)
	}
	if len(fields) != 6 {
		return "", false
	}
	read := make([]field, 6)
	for i, s := range fields {
		var names []string
		switch i {
		case 4:
			names = monthNames
		case 5:
			names = dayNames
		}
		f, ok := readField(s, names)
		if !ok {
			return "", false
		}
		read[i] = f
	}
	sec, minute, hour, dom, month, dow := read[0], read[1], read[2], read[3], read[4], read[5]
	clock, daily := clockText(sec, minute, hour)
	var days []string
	if !dom.any {
		if dom.step > 0 {
			days = append(days, fmt.Sprintf("every %d days of the month", dom.step))
		} else {
			days = append(days, "on day "+dom.words(strconv.Itoa)+" of the month")
		}
	}
	if !dow.any {
		if dow.step > 0 {
			return "", false
		}
		days = append(days, "on "+dow.words(func(d int) string { return dayNames[d%7] }))
	}
	text := clock
	switch {
	case len(days) > 0:
		text += " " + strings.Join(days, " or ")
	case daily:
		text += " every day"
	}
	if !month.any {
		if month.step > 0 {
			text += fmt.Sprintf(", every %d months", month.step)
		} else {
			text += ", in " + month.words(func(m int) string { return monthNames[min(max(m, 1), 12)] })
		}
	}
	return text, true
}

// clockText words the seconds, minutes and hours of a schedule, and reports whether it is a
// time of day.
func clockText(sec, minute, hour field) (text string, timeOfDay bool) {
	s, sOK := sec.single()
	m, mOK := minute.single()
	h, hOK := hour.single()
	switch {
	case sOK && mOK && hOK && s == 0:
		return fmt.Sprintf("at %02d:%02d", h, m), true
	case sOK && mOK && hOK:
		return fmt.Sprintf("at %02d:%02d:%02d", h, m, s), true
	}
	switch {
	case !sOK || s != 0:
		text = unitText(sec, "second")
		if !minute.any {
			text += ", " + unitText(minute, "minute")
		}
	default:
		text = unitText(minute, "minute")
	}
	switch {
	case hour.any && mOK && sOK:
		text += " of every hour"
	case hour.any:
	case hour.step > 0:
		text += fmt.Sprintf(", every %d hours", hour.step)
	case len(hour.ranges) == 1:
		r := hour.ranges[0]
		text += fmt.Sprintf(", between %02d:00 and %02d:59", r[0], r[1])
	default:
		text += ", in the hours " + hour.words(func(h int) string { return fmt.Sprintf("%02d", h) })
	}
	return text, false
}

// unitText words one field of seconds or minutes.
func unitText(f field, unit string) string {
	switch {
	case f.any:
		return "every " + unit
	case f.step == 1:
		return "every " + unit
	case f.step > 0:
		return fmt.Sprintf("every %d %ss", f.step, unit)
	}
	if _, ok := f.single(); ok {
		return "at " + unit + " " + f.words(strconv.Itoa)
	}
	return "at " + unit + "s " + f.words(strconv.Itoa)
}
