package jobs_test

import (
	"testing"
	"time"

	"github.com/warmcache/warmcache/jobs"
)

func TestPolicyExpiry(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, paris)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		policy   string
		computed string
		want     string
	}{
		{"10m", "2026-03-10 12:00", "2026-03-10 12:10"},
		{"300", "2026-03-10 12:00", "2026-03-10 12:05"},
		{"end_of_day", "2026-03-10 12:00", "2026-03-11 00:00"},
		{"end_of_day", "2026-03-10 00:00", "2026-03-11 00:00"},
		{"end_of_day", "2026-12-31 23:59", "2027-01-01 00:00"},
		{"end_of_day", "2026-03-28 23:00", "2026-03-29 00:00"},  // the night before the clocks go forward
		{"end_of_week", "2026-03-11 12:00", "2026-03-16 00:00"}, // Wednesday
		{"end_of_week", "2026-03-15 23:59", "2026-03-16 00:00"}, // Sunday
		{"end_of_week", "2026-03-16 00:00", "2026-03-23 00:00"}, // Monday midnight: a whole week
		{"end_of_week", "2026-03-25 08:00", "2026-03-30 00:00"}, // a week of 167 hours (DST on Sunday)
		{"end_of_week", "2026-12-30 10:00", "2027-01-04 00:00"}, // across the new year
	} {
		p, err := jobs.ParsePolicy(tc.policy)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Expiry(at(tc.computed), paris); !got.Equal(at(tc.want)) {
			t.Errorf("%s computed %s: expires %s, want %s", tc.policy, tc.computed, got.In(paris), tc.want)
		}
	}
}

func TestParsePolicyRefuses(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "0", "-5m", "500ms", "tomorrow", "end_of_month", "1e3"} {
		if _, err := jobs.ParsePolicy(s); err == nil {
			t.Errorf("ParsePolicy(%q) accepted", s)
		}
	}
}

func TestPolicyCovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy   string
		interval time.Duration
		want     bool
	}{
		{"10m", 5 * time.Minute, true},
		{"10m", 10 * time.Minute, true},
		{"10m", 11 * time.Minute, false},
		{"end_of_day", 24 * time.Hour, true},
		{"end_of_day", 25 * time.Hour, true}, // a daily job on the day the clocks go back
		{"end_of_day", 48 * time.Hour, false},
		{"end_of_week", 7 * 24 * time.Hour, true},
		{"end_of_week", 8 * 24 * time.Hour, false},
	} {
		p, _ := jobs.ParsePolicy(tc.policy)
		if got := p.Covers(tc.interval); got != tc.want {
			t.Errorf("%s covers %s: %v, want %v", tc.policy, tc.interval, got, tc.want)
		}
	}
}

func TestLifetimeJitterAndGrace(t *testing.T) {
	t.Parallel()
	l := jobs.Lifetime{Policy: jobs.FixedPolicy(10 * time.Minute), Jitter: time.Minute, Grace: time.Hour, Location: time.UTC}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	type entry struct{ FreshUntil, StaleUntil time.Time }
	fresh := func(l jobs.Lifetime, key string, at time.Time) entry {
		var e entry
		e.FreshUntil, e.StaleUntil = l.Fresh(key, at)
		return e
	}
	spread := map[time.Time]bool{}
	for _, key := range []string{"1", "2", "3", "4", "5", "6", "7", "8"} {
		e := fresh(l, key, now)
		if e.FreshUntil.After(now.Add(10*time.Minute)) || e.FreshUntil.Before(now.Add(9*time.Minute)) {
			t.Errorf("key %s fresh until %s: want within the last minute of the policy", key, e.FreshUntil)
		}
		if e.StaleUntil != e.FreshUntil.Add(time.Hour) {
			t.Errorf("key %s: stale until %s, want freshness plus an hour of grace", key, e.StaleUntil)
		}
		if again := fresh(l, key, now); !again.FreshUntil.Equal(e.FreshUntil) {
			t.Errorf("key %s: jitter differs between runs", key)
		}
		spread[e.FreshUntil] = true
	}
	if len(spread) < 6 {
		t.Errorf("8 keys expire at only %d distinct times: jitter does not spread them", len(spread))
	}
	eod := jobs.Lifetime{Policy: mustPolicy(t, "end_of_day"), Jitter: time.Minute, Location: time.UTC}
	if e := fresh(eod, "k", time.Date(2026, 3, 10, 23, 59, 50, 0, time.UTC)); e.FreshUntil.After(time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("end_of_day value fresh until %s, past the end of the day", e.FreshUntil)
	}
}

func TestLifetimeNotFound(t *testing.T) {
	t.Parallel()
	l := jobs.Lifetime{Policy: jobs.FixedPolicy(10 * time.Minute), Grace: time.Hour, Negative: 30 * time.Second}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	if fresh, stale := l.Unknown(now); fresh != now.Add(30*time.Second) || stale != now.Add(time.Minute) {
		t.Errorf("negative entry fresh until %s, kept until %s: want 30 s, and as long again", fresh, stale)
	}
}

func mustPolicy(t *testing.T, s string) jobs.Policy {
	t.Helper()
	p, err := jobs.ParsePolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"300": 300 * time.Second, "90s": 90 * time.Second, "10m": 10 * time.Minute, "2h30m": 150 * time.Minute,
		"1d": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "0d30m": 30 * time.Minute,
	} {
		if got, err := jobs.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "-1d", "1d-2h", "dd", "1w", "forever", "1d2"} {
		if got, err := jobs.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %s, want an error", in, got)
		}
	}
	if p, err := jobs.ParsePolicy("1d"); err != nil || p.String() != "24h0m0s" {
		t.Errorf(`ParsePolicy("1d") = %s, %v`, p, err)
	}
}
