package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// runs returns the first n runs of spec after from, formatted in loc.
func runs(t *testing.T, spec string, loc *time.Location, from time.Time, n int) []string {
	t.Helper()
	s, err := ParseSchedule(spec, loc)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for at := from; len(out) < n; {
		at = s.Next(at)
		out = append(out, at.In(loc).Format("01-02 15:04:05 MST"))
	}
	return out
}

func TestScheduleAcrossDaylightSaving(t *testing.T) {
	t.Parallel()
	ny, paris := mustZone(t, "America/New_York"), mustZone(t, "Europe/Paris")
	for _, tc := range []struct {
		name string
		spec string
		loc  *time.Location
		from time.Time
		want []string
	}{
		{"spring gap runs once right after the jump", "30 2 * * *", ny, time.Date(2026, 3, 7, 0, 0, 0, 0, ny),
			[]string{"03-07 02:30:00 EST", "03-08 03:00:00 EDT", "03-09 02:30:00 EDT"}},
		{"spring gap at its first minute", "0 2 * * *", ny, time.Date(2026, 3, 7, 12, 0, 0, 0, ny),
			[]string{"03-08 03:00:00 EDT", "03-09 02:00:00 EDT"}},
		{"spring gap with seconds", "15 45 2 * * *", ny, time.Date(2026, 3, 7, 12, 0, 0, 0, ny),
			[]string{"03-08 03:00:00 EDT", "03-09 02:45:15 EDT"}},
		{"every minute of a skipped hour runs once", "* 2 * * *", ny, time.Date(2026, 3, 8, 1, 59, 0, 0, ny),
			[]string{"03-08 03:00:00 EDT", "03-09 02:00:00 EDT"}},
		{"repeated hour runs once", "30 1 * * *", ny, time.Date(2026, 10, 31, 0, 0, 0, 0, ny),
			[]string{"10-31 01:30:00 EDT", "11-01 01:30:00 EDT", "11-02 01:30:00 EST"}},
		{"repeated hour, frequent fixed-hour job runs the hour once", "*/20 1 * * *", ny, time.Date(2026, 11, 1, 0, 0, 0, 0, ny),
			[]string{"11-01 01:00:00 EDT", "11-01 01:20:00 EDT", "11-01 01:40:00 EDT", "11-02 01:00:00 EST"}},
		{"started in the second pass of the repeated hour", "30 1 * * *", ny, time.Date(2026, 11, 1, 6, 10, 0, 0, time.UTC),
			[]string{"11-02 01:30:00 EST"}},
		{"every hour keeps the real clock in spring", "30 * * * *", ny, time.Date(2026, 3, 8, 0, 45, 0, 0, ny),
			[]string{"03-08 01:30:00 EST", "03-08 03:30:00 EDT"}},
		{"every half hour keeps the real clock in autumn", "*/30 * * * *", ny, time.Date(2026, 11, 1, 0, 45, 0, 0, ny),
			[]string{"11-01 01:00:00 EDT", "11-01 01:30:00 EDT", "11-01 01:00:00 EST", "11-01 01:30:00 EST", "11-01 02:00:00 EST"}},
		{"Paris spring", "30 2 * * *", paris, time.Date(2026, 3, 28, 12, 0, 0, 0, paris),
			[]string{"03-29 03:00:00 CEST", "03-30 02:30:00 CEST"}},
		{"Paris autumn", "30 2 * * *", paris, time.Date(2026, 10, 24, 12, 0, 0, 0, paris),
			[]string{"10-25 02:30:00 CEST", "10-26 02:30:00 CET"}},
		{"zone named in the expression", "TZ=Asia/Tokyo 0 9 * * *", paris, time.Date(2026, 5, 31, 12, 0, 0, 0, time.UTC),
			[]string{"06-01 02:00:00 CEST", "06-02 02:00:00 CEST"}},
		{"@daily is a fixed-hour job", "@daily", ny, time.Date(2026, 3, 7, 12, 0, 0, 0, ny),
			[]string{"03-08 00:00:00 EST", "03-09 00:00:00 EDT"}},
		{"@every ignores zones", "@every 90m", ny, time.Date(2026, 3, 8, 0, 30, 0, 0, ny),
			[]string{"03-08 03:00:00 EDT", "03-08 04:30:00 EDT"}}, // 02:00 EST is 03:00 EDT
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runs(t, tc.spec, tc.loc, tc.from, len(tc.want))
			if strings.Join(got, ", ") != strings.Join(tc.want, ", ") {
				t.Errorf("runs of %q after %s:\n got  %v\n want %v", tc.spec, tc.from, got, tc.want)
			}
		})
	}
}

// TestRobfigAloneMishandlesDaylightSaving records what robfig/cron does by itself, which is
// why Schedule corrects it. If a new release fixes this, the correction can go.
func TestRobfigAloneMishandlesDaylightSaving(t *testing.T) {
	t.Parallel()
	ny := mustZone(t, "America/New_York")
	s, err := parser.Parse("30 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	s.(*cron.SpecSchedule).Location = ny
	if next := s.Next(time.Date(2026, 3, 7, 12, 0, 0, 0, ny)); next.Day() != 9 {
		t.Errorf("robfig/cron alone ran 02:30 on %s; it used to skip March 8", next)
	}
	s, _ = parser.Parse("30 1 * * *")
	s.(*cron.SpecSchedule).Location = ny
	first := s.Next(time.Date(2026, 11, 1, 0, 0, 0, 0, ny))
	if second := s.Next(first); second.Day() != 1 {
		t.Errorf("robfig/cron alone ran 01:30 once on November 1; it used to run it twice")
	}
}

func TestMaxInterval(t *testing.T) {
	t.Parallel()
	ny := mustZone(t, "America/New_York")
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		spec string
		loc  *time.Location
		want time.Duration
	}{
		{"@every 90s", time.UTC, 90 * time.Second},
		{"*/5 * * * *", time.UTC, 5 * time.Minute},
		{"0 0 * * *", time.UTC, 24 * time.Hour},
		{"0 0 * * *", ny, 25 * time.Hour}, // the day the clocks go back
		{"0 9 * * 1-5", time.UTC, 72 * time.Hour},
		{"*/10 * * * * *", time.UTC, 10 * time.Second},
	} {
		s, err := ParseSchedule(tc.spec, tc.loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.MaxInterval(from); got != tc.want {
			t.Errorf("MaxInterval(%q in %s) = %s, want %s", tc.spec, tc.loc, got, tc.want)
		}
	}
}

func TestParseScheduleRefuses(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"", "bogus", "61 * * * *", "* * * *", "0 0 30 2 *", "@fortnightly", "@every -1s", "@every 0s", "@every 500ms", "TZ=", "TZ=Nowhere/City 0 0 * * *",
		"*/61 * * * *", "*/60 * * * *", "0 */24 * * *", "0 0 */31 * *", "0 0 1 */12 *", "0 0 * * */7", "10-20/11 * * * *",
		"0-61 * * * *", "*/0 * * * *", "*/61 * * * * *", "TZ=UTC */61 * * * *", "0 25 * * *"} {
		if _, err := ParseSchedule(spec, time.UTC); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", spec)
		}
	}
}

func TestParseScheduleSteps(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"*/59 * * * *", "*/30 * * * *", "0 */2 * * *", "0 0 */30 * *", "5/15 * * * *", "0-30/10 * * * *",
		"0 9 * * MON-FRI", "0 0 1 JAN/3 *", "*/5 * * * * *"} {
		if _, err := ParseSchedule(spec, time.UTC); err != nil {
			t.Errorf("ParseSchedule(%q): %v", spec, err)
		}
	}
	_, err := ParseSchedule("*/61 * * * *", time.UTC)
	if want := `"*/61 * * * *": the minute field: the step of */61 is out of range (1 to 59 for 0-59)`; err == nil || err.Error() != want {
		t.Errorf("ParseSchedule(*/61): %v, want %s", err, want)
	}
}

func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "30 2 * * *", "@every 1s", "@hourly", "0 0 30 2 *", "1-5/2 * * * * *", "TZ=UTC 0 0 * * *"} {
		f.Add(s)
	}
	loc, _ := time.LoadLocation("America/New_York")
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSchedule(spec, loc)
		if err != nil {
			return
		}
		// A schedule that parses runs again and again, strictly later each time.
		at := time.Date(2026, 10, 31, 23, 0, 0, 0, loc)
		for range 20 {
			next := s.Next(at)
			if !next.After(at) {
				t.Fatalf("%q: run after %s is %s", spec, at, next)
			}
			at = next
		}
	})
}
