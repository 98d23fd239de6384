package testenv

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/warmcache/warmcache/jobs"
)

// JobDefaults are the settings of the tests' jobs where a jobs file says nothing: a ten-minute
// TTL, an hour's grace, thirty seconds for unknown keys, a minute per run, in UTC.
func JobDefaults() jobs.Defaults {
	return jobs.Defaults{TTL: 10 * time.Minute, Grace: time.Hour, NegativeTTL: 30 * time.Second,
		Timeout: time.Minute, Location: time.UTC}
}

// BuiltinsNotWarmed is the head of a jobs file that stops warming the built-in jobs, for a test that runs
// jobs of its own alone: the jobs it adds follow, indented as they.
const BuiltinsNotWarmed = `jobs:
  orders_total: {enabled: false}
  orders_by_customer: {enabled: false}
  credit_by_customer: {enabled: false}
  credit_overview: {enabled: false}
`

// LoadJobs returns the jobs of a jobs file holding yaml, with JobDefaults, as of now: the
// built-in jobs alone when yaml is empty.
func LoadJobs(t testing.TB, yaml string, now time.Time) []jobs.Job {
	t.Helper()
	return LoadJobsFile(t, JobsFile(t, yaml), now)
}

// LoadJobsFile returns the jobs of the jobs file at path, with JobDefaults, as of now: the
// built-in jobs alone when path is empty.
func LoadJobsFile(t testing.TB, path string, now time.Time) []jobs.Job {
	t.Helper()
	list, _, err := jobs.Load(path, JobDefaults(), now)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// JobsFile writes yaml into a jobs file of the test's and returns its path; "" when yaml is
// empty, which loads the built-in jobs alone.
func JobsFile(t testing.TB, yaml string) string {
	t.Helper()
	if yaml == "" {
		return ""
	}
	return WriteFile(t, "jobs.yaml", yaml)
}

// WriteFile writes content into a file called name, in a directory of the test's own, and
// returns its path.
func WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// JobsByName returns list by job name.
func JobsByName(list []jobs.Job) map[string]jobs.Job {
	m := make(map[string]jobs.Job, len(list))
	for _, j := range list {
		m[j.Name] = j
	}
	return m
}
