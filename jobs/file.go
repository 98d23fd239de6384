package jobs

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/conf"
	"github.com/warmcache/warmcache/query"
)

// File is the jobs file (JOBS_FILE or --jobs): overrides for the built-in jobs and users' own.
//
//	jobs:
//	  orders_total:              # a built-in job: schedule, ttl, grace, jitter, timeout, enabled
//	    schedule: "@every 30s"
//	  top_products:              # a user's job: sql and schedule required
//	    description: Units sold per product.
//	    schedule: "*/10 * * * *"
//	    sql: SELECT prod_id, sum(quantity) AS sold FROM orderlines GROUP BY prod_id
//	    key: "{prod_id}"         # omit for a job whose first row is its one value
//	    ttl: end_of_day
type File struct {
	Jobs yaml.Node `yaml:"jobs"` // a mapping, kept as a node to keep the file's order
}

type fileJob struct {
	Description string           `yaml:"description"`
	Schedule    string           `yaml:"schedule"`
	SQL         string           `yaml:"sql"`
	Key         string           `yaml:"key"`
	DependsOn   yaml.Node        `yaml:"depends_on"`
	Incremental *fileIncremental `yaml:"incremental"`
	TTL         string           `yaml:"ttl"`
	Grace       string           `yaml:"grace"`
	Jitter      string           `yaml:"jitter"`
	Timeout     string           `yaml:"timeout"`
	Enabled     *bool            `yaml:"enabled"`
}

// Load returns the jobs: the built-in ones, with the overrides of the jobs file at path, then
// the file's own jobs in its order. path may be empty. Every error names the file, the job and
// the setting; all of them are configuration errors. now anchors the check that values outlive
// the gaps between runs.
func Load(path string, d Defaults, now time.Time) ([]Job, error) {
	var decls map[string]fileJob
	var order []string
	where := "jobs (no jobs file)"
	if path != "" {
		where = "jobs file " + path
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("jobs file: %w", err)
		}
		if decls, order, err = decode(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	var jobs []Job
	for _, b := range builtins {
		decl := decls[b.name]
		if decl.SQL != "" || decl.Key != "" || decl.DependsOn.Kind != 0 || decl.Incremental != nil {
			return nil, fmt.Errorf("%s: job %s: a built-in job's sql, key, depends_on and incremental cannot be changed", where, b.name)
		}
		if decl.Schedule == "" {
			decl.Schedule = d.defaultEvery(b.every)
		}
		job, err := build(b.name, decl, b.aggregate, b.key, d, now)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		job.Builtin, job.Description, job.KeyKind, job.DependsOn = true, b.description, b.keyKind, b.dependsOn
		jobs = append(jobs, job)
	}
	for _, name := range order {
		if slices.ContainsFunc(builtins, func(b builtin) bool { return b.name == name }) {
			continue
		}
		job, err := userJob(name, decls[name], d, now)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		jobs = append(jobs, job)
	}
	return jobs, nil
}

// userJob makes a job of the user's own: a query of their SQL, or an incremental declaration.
func userJob(name string, decl fileJob, d Defaults, now time.Time) (Job, error) {
	fail := func(setting string, err error) (Job, error) {
		return Job{}, fmt.Errorf("job %s: %s: %w", name, setting, err)
	}
	var (
		agg  query.Aggregate
		key  = decl.Key
		deps []Dependency
		spec *query.IncrementalSpec
		err  error
	)
	switch {
	case decl.Schedule == "":
		return Job{}, fmt.Errorf("job %s: a job of your own needs a schedule", name)
	case decl.Incremental != nil:
		if decl.SQL != "" || decl.Key != "" || decl.DependsOn.Kind != 0 {
			return fail("incremental", errors.New("an incremental job has no sql, key or depends_on: they follow from its declaration"))
		}
		if spec, err = decl.Incremental.spec(); err != nil {
			return fail("incremental", err)
		}
		if agg, err = query.Incremental(name, *spec); err != nil {
			return fail("incremental", err)
		}
		deps = []Dependency{{Table: spec.Table, Column: spec.GroupBy}}
		if spec.GroupBy != "" {
			key = "{" + spec.GroupBy + "}"
		}
	case decl.SQL == "":
		return Job{}, fmt.Errorf("job %s: a job of your own needs sql (or incremental) and a schedule", name)
	default:
		if agg, err = query.UserSQL(decl.SQL, decl.Key); err != nil {
			return Job{}, fmt.Errorf("job %s: %w", name, err)
		}
		if deps, err = parseDependsOn(&decl.DependsOn, decl.Key); err != nil {
			return fail("depends_on", err)
		}
	}
	job, err := build(name, decl, agg, key, d, now)
	job.DependsOn, job.Incremental = deps, spec
	return job, err
}

// decode reads the file strictly: an unknown or misspelt field is an error.
func decode(raw []byte) (map[string]fileJob, []string, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	if f.Jobs.Kind == 0 {
		return nil, nil, nil
	}
	if f.Jobs.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("line %d: jobs must be a mapping of job names to jobs", f.Jobs.Line)
	}
	decls := map[string]fileJob{}
	var order []string
	for i := 0; i+1 < len(f.Jobs.Content); i += 2 {
		name := f.Jobs.Content[i].Value
		if !jobName.MatchString(name) {
			return nil, nil, fmt.Errorf("line %d: job name %q must be lower-case letters, digits and '_', starting with a letter", f.Jobs.Content[i].Line, name)
		}
		if _, dup := decls[name]; dup {
			return nil, nil, fmt.Errorf("line %d: job %s is declared twice", f.Jobs.Content[i].Line, name)
		}
		var decl fileJob
		if err := decodeStrict(f.Jobs.Content[i+1], &decl); err != nil {
			return nil, nil, fmt.Errorf("job %s: %w", name, err)
		}
		decls[name] = decl
		order = append(order, name)
	}
	return decls, order, nil
}

// decodeStrict decodes a node rejecting unknown fields, which yaml.Node.Decode alone does not.
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// build validates one job's settings and makes the Job.
func build(name string, decl fileJob, agg query.Aggregate, key string, d Defaults, now time.Time) (Job, error) {
	fail := func(setting string, err error) (Job, error) {
		return Job{}, fmt.Errorf("job %s: %s: %w", name, setting, err)
	}
	sched, err := ParseSchedule(decl.Schedule, d.Location)
	if err != nil {
		return fail("schedule", err)
	}
	policy := cache.FixedPolicy(d.TTL)
	if decl.TTL != "" {
		if policy, err = cache.ParsePolicy(decl.TTL); err != nil {
			return fail("ttl", err)
		}
	}
	ttl := policy.Expiry(now, d.Location).Sub(now)
	life := cache.Lifetime{Policy: policy, Grace: d.Grace, Jitter: defaultJitter(policy, ttl), Negative: d.NegativeTTL,
		Location: d.Location}
	if err := validateLifetime(sched, life, now); err != nil {
		return fail("ttl", err)
	}
	if life.Grace, err = duration(decl.Grace, d.Grace, 0); err != nil {
		return fail("grace", err)
	}
	if life.Jitter, err = duration(decl.Jitter, life.Jitter, 0); err != nil {
		return fail("jitter", err)
	}
	if !policy.Calendar() && life.Jitter >= ttl {
		return fail("jitter", fmt.Errorf("%s is not shorter than the ttl %s", life.Jitter, policy))
	}
	timeout, err := duration(decl.Timeout, cmp.Or(d.Timeout, 10*time.Minute), time.Second)
	if err != nil {
		return fail("timeout", err)
	}
	if timeout > cache.TouchedWindow {
		return fail("timeout", fmt.Errorf("%s is longer than %s, the longest a run may take", timeout, cache.TouchedWindow))
	}
	enabled := decl.Enabled == nil || *decl.Enabled
	return Job{Name: name, Description: decl.Description, Schedule: sched, Aggregate: agg, KeyTemplate: key,
		Lifetime: life, Timeout: timeout, Enabled: enabled}, nil
}

// duration reads a duration setting ("90s" or a number of seconds), def when empty.
func duration(s string, def, least time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := conf.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < least {
		return 0, fmt.Errorf("%s is shorter than %s", d, least)
	}
	return d, nil
}
