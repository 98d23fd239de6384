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

func TestScheduleText(t *testing.T) {
	t.Parallel()
	paris := mustZone(t, "Europe/Paris")
	for spec, want := range map[string]string{
		"@every 30s":                    "every 30 seconds",
		"@every 1m":                     "every minute",
		"@every 1h30m":                  "every 1 hour 30 minutes",
		"@hourly":                       "every hour, at minute 0",
		"@daily":                        "every day at 00:00",
		"* * * * *":                     "every minute",
		"*/10 * * * *":                  "every 10 minutes",
		"15 * * * *":                    "at minute 15 of every hour",
		"0,30 * * * *":                  "at minutes 0, 30",
		"30 2 * * *":                    "at 02:30 every day, Europe/Paris",
		"0 9 * * MON-FRI":               "at 09:00 on Monday through Friday, Europe/Paris",
		"0 0 1,15 * *":                  "at 00:00 on day 1, 15 of the month, Europe/Paris",
		"*/5 9-17 * * 1-5":              "every 5 minutes, between 09:00 and 17:59 on Monday through Friday, Europe/Paris",
		"*/15 * * * * *":                "every 15 seconds",
		"30 15 4 * * *":                 "at 04:15:30 every day, Europe/Paris",
		"0 0 * JAN,JUL *":               "at 00:00 every day, in January, July, Europe/Paris",
		"TZ=Asia/Tokyo 0 9 * * *":       "at 09:00 every day, Asia/Tokyo",
		"0 */2 * * *":                   "at minute 0, every 2 hours, Europe/Paris",
		"0 8 * * SUN":                   "at 08:00 on Sunday, Europe/Paris",
		"0 8-20/4 * * *":                "on the cron schedule 0 8-20/4 * * *",
		"CRON_TZ=UTC 45 23 * * 6":       "at 23:45 on Saturday, UTC",
		"0 12 * * 0,6":                  "at 12:00 on Sunday, Saturday, Europe/Paris",
		"0 3 */2 * *":                   "at 03:00 every 2 days of the month, Europe/Paris",
		"0 0 1 1 *":                     "at 00:00 on day 1 of the month, in January, Europe/Paris",
		"5 4 * * * ":                    "at 04:05 every day, Europe/Paris",
		"0 22 * * 1-5 ":                 "at 22:00 on Monday through Friday, Europe/Paris",
		"0 0 12 * * *":                  "at 12:00 every day, Europe/Paris",
		"*/30 * 9 * * *":                "every 30 seconds, between 09:00 and 09:59, Europe/Paris",
		"0 0,12 * * *":                  "at minute 0, in the hours 00, 12, Europe/Paris",
		"0 0 * * * *":                   "at minute 0 of every hour",
		"0 0 0 * * *":                   "at 00:00 every day, Europe/Paris",
		"*/20 1 * * *":                  "every 20 minutes, between 01:00 and 01:59, Europe/Paris",
		"10 * * * * *":                  "at second 10",
		"1-5 * * * *":                   "at minutes 1 through 5",
		"0 0 * * * ":                    "at 00:00 every day, Europe/Paris",
		"@every 2h":                     "every 2 hours",
		"@weekly":                       "every Sunday at 00:00",
		"@monthly":                      "on the first day of every month at 00:00",
		"@yearly":                       "on January 1 at 00:00",
		"TZ=America/New_York * * * * *": "every minute, America/New_York",
	} {
		s, err := ParseSchedule(strings.TrimSpace(spec), paris)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if got := s.Text(); got != want {
			t.Errorf("%q: %q, want %q", spec, got, want)
		}
	}
}

func TestNextRun(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 12, 0, 10, 0, time.UTC)
	job := func(spec string, enabled bool) Job {
		s, err := ParseSchedule(spec, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return Job{Schedule: s, Enabled: enabled}
	}
	for _, tc := range []struct {
		name          string
		job           Job
		lastScheduled time.Time
		want          time.Time
	}{
		{"a cron schedule, from the clock", job("*/5 * * * *", true), now.Add(-time.Hour), time.Date(2026, 11, 21, 12, 5, 0, 0, time.UTC)},
		{"a disabled job has none", job("*/5 * * * *", false), time.Time{}, time.Time{}},
		{"@every after its last scheduled run", job("@every 1m", true), now.Add(-20*time.Second + 300*time.Millisecond),
			now.Add(40 * time.Second)},
		{"@every after missed intervals", job("@every 1m", true), now.Add(-3*time.Minute - 20*time.Second), now.Add(40 * time.Second)},
		{"@every without a known run, an interval from now", job("@every 1m", true), time.Time{}, now.Add(time.Minute)},
		{"@every run later than now (clocks apart)", job("@every 1m", true), now.Add(2 * time.Second), now.Add(62 * time.Second)},
	} {
		if got := tc.job.NextRun(now, tc.lastScheduled); !got.Equal(tc.want) {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
