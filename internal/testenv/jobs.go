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

// LoadJobs returns the jobs of a jobs file holding yaml, with JobDefaults, as of now: the
// built-in jobs alone when yaml is empty.
func LoadJobs(t testing.TB, yaml string, now time.Time) []jobs.Job {
	t.Helper()
	list, err := jobs.Load(JobsFile(t, yaml), JobDefaults(), now)
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
	path := filepath.Join(t.TempDir(), "jobs.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
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
