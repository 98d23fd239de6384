package jobs

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

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

	// line is the line of the job's name in the file, lines those of its settings, by name:
	// errors point at what the user wrote.
	line  int
	lines map[string]int
}

// errorf returns an error of the job's setting, at its line in the file (or the job's, when the
// setting is not written there; none without a file).
func (f fileJob) errorf(name, setting string, err error) error {
	line := f.line
	if l, ok := f.lines[setting]; ok {
		line = l
	}
	where := "job " + name
	if setting != "" {
		where += ": " + setting
	}
	if line == 0 {
		return fmt.Errorf("%s: %w", where, err)
	}
	return fmt.Errorf("line %d: %s: %w", line, where, err)
}

// Load returns the jobs: the built-in ones, with the overrides of the jobs file at path, then
// the file's own jobs in its order. path may be empty. Every error names the file, the job and
// the setting; all of them are configuration errors. now anchors the check that values outlive
// the gaps between runs.
func Load(path string, d Defaults, now time.Time) ([]Job, Builtins, error) {
	var (
		decls      map[string]fileJob
		order      []string
		builtinsOn Builtins
		decodeErrs []error
	)
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			var pathErr *fs.PathError
			if errors.As(err, &pathErr) {
				err = pathErr.Err // the caller names the file
			}
			return nil, 0, fmt.Errorf("cannot be read: %w", err)
		}
		if decls, order, builtinsOn, decodeErrs, err = decode(raw); err != nil {
			return nil, 0, err
		}
	}
	var (
		jobs []Job
		errs = decodeErrs
	)
	for _, b := range builtins {
		decl := decls[b.name]
		if builtinsOn == BuiltinsOff {
			if _, set := decls[b.name]; set {
				errs = append(errs, decl.errorf(b.name, "", withFix(errors.New("is a built-in job, and builtins is false"),
					"remove it, or builtins: true")))
			}
			continue
		}
		job, err := builtinJob(b, decl, d, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		jobs = append(jobs, job)
	}
	for _, name := range order {
		if slices.ContainsFunc(builtins, func(b builtin) bool { return b.name == name }) {
			continue
		}
		job, err := userJob(name, decls[name], d, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		jobs = append(jobs, job)
	}
	if len(errs) > 0 {
		// In the file's order: an error's line is the first thing it says.
		slices.SortStableFunc(errs, func(a, b error) int { return cmp.Compare(lineOf(a), lineOf(b)) })
		return nil, 0, errors.Join(errs...)
	}
	return jobs, builtinsOn, nil
}

// lineOf returns the line an error of the jobs file starts with ("line 7: ..."), 0 for none.
func lineOf(err error) int {
	var line int
	fmt.Sscanf(err.Error(), "line %d:", &line) //nolint:errcheck // no line reads as 0
	return line
}

// builtinJob makes a built-in job with the jobs file's overrides.
func builtinJob(b builtin, decl fileJob, d Defaults, now time.Time) (Job, error) {
	for _, setting := range []string{"sql", "key", "depends_on", "incremental"} {
		if _, set := decl.lines[setting]; set {
			return Job{}, decl.errorf(b.name, setting, withFix(
				errors.New("a built-in job's sql, key, depends_on and incremental cannot be changed"),
				"remove %s, or declare a job of your own under another name", setting))
		}
	}
	if decl.Schedule == "" {
		decl.Schedule = d.defaultEvery(b.every)
	}
	job, err := build(b.name, decl, b.aggregate, b.key, d, now)
	if err != nil {
		return Job{}, err
	}
	job.Builtin, job.Description, job.KeyKind, job.DependsOn = true, b.description, b.keyKind, b.dependsOn
	return job, nil
}

// userJob makes a job of the user's own: a query of their SQL, or an incremental declaration.
func userJob(name string, decl fileJob, d Defaults, now time.Time) (Job, error) {
	fail := func(setting string, err error) (Job, error) { return Job{}, decl.errorf(name, setting, err) }
	var (
		agg  query.Aggregate
		key  = decl.Key
		deps []Dependency
		set  bool
		spec *query.IncrementalSpec
		err  error
	)
	switch {
	case decl.Schedule == "":
		return fail("", withFix(errors.New("a job of your own needs a schedule"), `add schedule: "@every 5m"`))
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
		deps = []Dependency{{Table: spec.Table}}
		if spec.GroupBy != "" {
			deps[0].Keys = []*query.KeySource{{Column: spec.GroupBy}}
		}
		if spec.GroupBy != "" {
			key = "{" + spec.GroupBy + "}"
		}
	case decl.SQL == "":
		return fail("", withFix(errors.New("a job of your own needs sql (or incremental) and a schedule"),
			"add sql: SELECT ..."))
	default:
		if agg, err = query.UserSQL(decl.SQL, decl.Key); err != nil {
			setting := "sql"
			if errors.Is(err, query.ErrKeyTemplate) {
				setting = "key"
			}
			return fail(setting, err)
		}
		if deps, set, err = parseDependsOn(&decl.DependsOn, decl.Key); err != nil {
			return fail("depends_on", err)
		}
	}
	job, err := build(name, decl, agg, key, d, now)
	job.DependsOn, job.DependsOnSet, job.Incremental = deps, set, spec
	return job, err
}

// settings are a job's settings in the jobs file, in the order the README lists them.
var settings = []string{"description", "schedule", "sql", "key", "depends_on", "incremental", "ttl", "grace",
	"jitter", "timeout", "enabled"}

// decode reads the file strictly: an unknown or misspelt setting is an error, and every error
// names the line and the setting as the user wrote them. A file that is not a mapping of jobs
// is err; the errors of its jobs are jobErrs, one a job at most, and those jobs are left out.
func decode(raw []byte) (decls map[string]fileJob, order []string, builtins Builtins, jobErrs []error, err error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, nil, 0, nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, nil, 0, nil, nil // an empty file
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, nil, 0, nil, fmt.Errorf("line %d: the file must be a mapping of jobs (and builtins)", top.Line)
	}
	var list *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		switch k, v := top.Content[i], top.Content[i+1]; k.Value {
		case "jobs":
			list = v
		case "builtins":
			var on bool
			if v.Kind != yaml.ScalarNode || v.Decode(&on) != nil {
				return nil, nil, 0, nil, withFix(fmt.Errorf("line %d: builtins: %s is not true or false", v.Line, written(v)),
					"builtins: true, builtins: false, or no builtins (on where the database has their tables)")
			}
			builtins = BuiltinsOff
			if on {
				builtins = BuiltinsOn
			}
		default:
			return nil, nil, 0, nil, withFix(fmt.Errorf("line %d: unknown key %q: the file has jobs, and builtins", k.Line, k.Value),
				"write jobs:")
		}
	}
	if list == nil || list.Kind == yaml.ScalarNode && list.Tag == "!!null" {
		return nil, nil, builtins, nil, nil
	}
	if list.Kind != yaml.MappingNode {
		return nil, nil, 0, nil, fmt.Errorf("line %d: jobs must be a mapping of job names to jobs", list.Line)
	}
	decls = map[string]fileJob{}
	for i := 0; i+1 < len(list.Content); i += 2 {
		nameNode := list.Content[i]
		name := nameNode.Value
		if !jobName.MatchString(name) {
			jobErrs = append(jobErrs, withFix(fmt.Errorf("line %d: job name %q must be lower-case letters, digits and '_', starting with a letter",
				nameNode.Line, name), "call it %s", suggestName(name)))
			continue
		}
		if _, dup := decls[name]; dup {
			jobErrs = append(jobErrs, withFix(fmt.Errorf("line %d: job %s is declared twice", nameNode.Line, name),
				"merge the two, or rename one"))
			continue
		}
		decl, err := decodeJob(name, nameNode.Line, list.Content[i+1])
		if err != nil {
			jobErrs = append(jobErrs, err)
			decls[name] = fileJob{} // declared, though wrong: not a second declaration, nor a built-in's defaults
			continue
		}
		decls[name] = decl
		order = append(order, name)
	}
	return decls, order, builtins, jobErrs, nil
}

// decodeJob reads one job's settings, each from its own node, so that an error can say where.
func decodeJob(name string, line int, n *yaml.Node) (fileJob, error) {
	decl := fileJob{line: line, lines: map[string]int{}}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return decl, nil
	}
	if n.Kind != yaml.MappingNode {
		return decl, decl.errorf(name, "", fmt.Errorf("a job is a mapping of settings (%s)", strings.Join(settings, ", ")))
	}
	text := map[string]*string{"description": &decl.Description, "schedule": &decl.Schedule, "sql": &decl.SQL,
		"key": &decl.Key, "ttl": &decl.TTL, "grace": &decl.Grace, "jitter": &decl.Jitter, "timeout": &decl.Timeout}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		setting := k.Value
		if _, dup := decl.lines[setting]; dup {
			return decl, fmt.Errorf("line %d: job %s: %s is set twice", k.Line, name, setting)
		}
		decl.lines[setting] = k.Line
		switch setting {
		case "depends_on":
			decl.DependsOn = *v
		case "incremental":
			inc, err := decodeIncremental(v)
			if err != nil {
				return decl, decl.errorf(name, setting, err)
			}
			decl.Incremental = inc
		case "enabled":
			var b bool
			if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
				return decl, decl.errorf(name, setting, fmt.Errorf("%s is not true or false", written(v)))
			}
			decl.Enabled = &b
		default:
			to, ok := text[setting]
			if !ok {
				return decl, decl.errorf(name, setting, withFix(fmt.Errorf("is not a setting (a job has %s)",
					strings.Join(settings, ", ")), "%s", closest(setting, settings)))
			}
			if v.Kind != yaml.ScalarNode {
				return decl, decl.errorf(name, setting, errors.New("must be text, not a list or a mapping"))
			}
			*to = v.Value
		}
	}
	return decl, nil
}

// decodeIncremental reads an incremental declaration: table, group_by, count and sum.
func decodeIncremental(n *yaml.Node) (*fileIncremental, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("a mapping of table, group_by, count and sum")
	}
	var inc fileIncremental
	text := map[string]*string{"table": &inc.Table, "group_by": &inc.GroupBy, "count": &inc.Count}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "sum" {
			inc.Sum = *v
			continue
		}
		to, ok := text[k.Value]
		switch {
		case !ok:
			return nil, fmt.Errorf("%s is not a setting of incremental (table, group_by, count, sum)", k.Value)
		case v.Kind != yaml.ScalarNode:
			return nil, fmt.Errorf("%s must be a column name", k.Value)
		}
		*to = v.Value
	}
	return &inc, nil
}

// written is a node as the user wrote it, for errors.
func written(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return "a list or a mapping"
}

// build validates one job's settings and makes the Job.
func build(name string, decl fileJob, agg query.Aggregate, key string, d Defaults, now time.Time) (Job, error) {
	fail := func(setting string, err error) (Job, error) { return Job{}, decl.errorf(name, setting, err) }
	sched, err := ParseSchedule(decl.Schedule, d.Location)
	if err != nil {
		return fail("schedule", withFix(err, `five fields ("*/5 * * * *"), six with seconds, or "@every 30s", "@hourly", "@daily"`))
	}
	ttlDefault, fromSchedule := derivedTTL(sched, d.TTL, now)
	policy := FixedPolicy(ttlDefault)
	if decl.TTL != "" {
		if policy, err = ParsePolicy(decl.TTL); err != nil {
			return fail("ttl", err)
		}
		fromSchedule = false
	}
	ttl := policy.Expiry(now, d.Location).Sub(now)
	life := Lifetime{Policy: policy, Grace: d.Grace, Jitter: defaultJitter(policy, ttl), Negative: d.NegativeTTL,
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
	if timeout > MaxTimeout {
		return fail("timeout", fmt.Errorf("%s is longer than %s, the longest a run may take", timeout, MaxTimeout))
	}
	enabled := decl.Enabled == nil || *decl.Enabled
	return Job{Name: name, Description: decl.Description, Schedule: sched, Aggregate: agg, KeyTemplate: key,
		Lifetime: life, TTLFromSchedule: fromSchedule, Timeout: timeout, Enabled: enabled}, nil
}

// duration reads a duration setting ("90s" or a number of seconds), def when empty.
func duration(s string, def, least time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < least {
		return 0, fmt.Errorf("%s is shorter than %s", d, least)
	}
	return d, nil
}

// withFix adds to err what the user may write in the jobs file to mend it.
func withFix(err error, format string, args ...any) error {
	return fmt.Errorf("%w (fix: %s)", err, fmt.Sprintf(format, args...))
}

// closest suggests the one of settings nearest to a misspelt one: "did you mean schedule?", or
// the list when none is near.
func closest(s string, settings []string) string {
	best, bestDistance := "", 3 // at most two edits away
	for _, candidate := range settings {
		if d := editDistance(s, candidate); d < bestDistance {
			best, bestDistance = candidate, d
		}
	}
	if best == "" {
		return "remove it"
	}
	return "write " + best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// suggestName turns a name a job may not have into one it may: lower case, '_' for anything
// else, a letter first.
func suggestName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.Trim(b.String(), "_")
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		s = "job_" + s
	}
	return s
}

// FileDigest returns a short digest of the jobs file at path, "none" for no file: what the
// binaries announce to each other so that an api and a warmer loaded with different files are
// noticed.
func FileDigest(path string) (string, error) {
	if path == "" {
		return "none", nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot be read: %w", err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:6]), nil
}
