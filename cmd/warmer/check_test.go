package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/warmcache/warmcache/internal/cli"
	"github.com/warmcache/warmcache/internal/testenv"
)

// TestCheck runs warmer check as a user would before a deploy: a jobs file with three mistakes is
// refused with all three, in the file's order, each with its line and a fix, with PostgreSQL
// unreachable; a valid file (a schedule alone, a ttl in days) is described job by job, offline
// or checked against a database.
func TestCheck(t *testing.T) {
	t.Parallel()
	unreachable := "DATABASE_URL=postgres://nobody@127.0.0.1:1/none?connect_timeout=2"
	check := func(env []string, file string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		status := cli.Warmer(context.Background(), []string{"check", "--jobs", testenv.JobsFile(t, file)}, env, &stdout, &stderr, run)
		return status, stdout.String(), stderr.String()
	}

	status, _, stderr := check([]string{unreachable}, `jobs:
  Daily-Totals:
    schedule: "@daily"
  credit_overview:
    schedule: "*/61 * * * *"
  weekly:
    schedule: "0 6 * * 1"
    ttl: 3d
    sql: SELECT count(*) AS n FROM customers
`)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if status != 2 || len(lines) != 3 {
		t.Fatalf("three mistakes: status %d and %d lines, want 2 and 3:\n%s", status, len(lines), stderr)
	}
	for i, want := range []string{`line 2: job name "Daily-Totals"`, "line 5: job credit_overview: schedule:", "line 8: job weekly: ttl:"} {
		if !strings.Contains(lines[i], want) || !strings.Contains(lines[i], "(fix: ") {
			t.Errorf("line %d of the errors: %q, want %q and a fix", i+1, lines[i], want)
		}
	}

	valid := `jobs:
  hourly_counts:
    schedule: "@hourly"
    sql: SELECT customerid, count(*) AS n FROM orders GROUP BY customerid
    key: "{customerid}"
  weekly:
    schedule: "0 6 * * 1"
    ttl: 8d
    sql: SELECT count(*) AS n FROM customers
`
	for _, tc := range []struct {
		name, env, says string
	}{
		{"offline", unreachable, "its SQL was not checked against the database"},
		{"against a database", "DATABASE_URL=" + testenv.NewDatabase(t), "Checked against the database"},
	} {
		status, stdout, stderr := check([]string{tc.env}, valid)
		if status != 0 {
			t.Errorf("%s: a valid file: status %d, want 0:\n%s", tc.name, status, stderr)
			continue
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^hourly_counts +every hour, at minute 0 +2h0m0s \(no ttl: twice the longest gap between runs\) +\{customerid\}`),
			regexp.MustCompile(`(?m)^weekly +at 06:00 on Monday, UTC +192h0m0s +one value`),
			regexp.MustCompile(regexp.QuoteMeta(tc.says)),
		} {
			if !want.MatchString(stdout) {
				t.Errorf("%s: check does not say %s:\n%s", tc.name, want, stdout)
			}
		}
	}
}
