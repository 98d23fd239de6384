package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Run records one run of a job, for GET /v1/jobs.
type Run struct {
	Job      string        `json:"job"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"-"`
	Keys     int64         `json:"keys_written"`
	Error    string        `json:"error,omitempty"`
	// LastSuccess is the start of the last run that succeeded, this one or an earlier one.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// Next is the job's next scheduled run, as the warmer that ran it saw it.
	Next time.Time `json:"next_run,omitzero"`
}

// runPlain is Run without its methods, so that encoding it does not recurse.
type runPlain Run

// MarshalJSON writes the run with its duration in seconds.
func (r Run) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		runPlain
		DurationSeconds float64 `json:"duration_seconds"`
	}{runPlain(r), r.Duration.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Run) UnmarshalJSON(b []byte) error {
	var v struct {
		runPlain
		DurationSeconds float64 `json:"duration_seconds"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Run(v.runPlain)
	r.Duration = time.Duration(v.DurationSeconds * float64(time.Second))
	return nil
}

// RecordRun records run as its job's last run. A failed run keeps the time of the last success.
func (s *Store) RecordRun(ctx context.Context, run Run) error {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	if run.Error != "" && run.LastSuccess.IsZero() {
		prev, err := s.Runs(ctx, run.Job)
		if err != nil && !errors.Is(err, ErrMiss) {
			return err
		}
		run.LastSuccess = prev[run.Job].LastSuccess
	}
	b, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("encode run: %w", err)
	}
	return s.failure(ctx, s.rdb.Set(ctx, s.keys.Run(run.Job), b, 0).Err())
}

// Runs returns the last run of each of jobs that has run.
func (s *Store) Runs(ctx context.Context, jobs ...string) (map[string]Run, error) {
	ctx, cancel := s.bounded(ctx)
	defer cancel()
	keys := make([]string, len(jobs))
	for i, j := range jobs {
		keys[i] = s.keys.Run(j)
	}
	runs := make(map[string]Run, len(jobs))
	if len(keys) == 0 {
		return runs, nil
	}
	// Pipelined GETs rather than one MGET: a Cluster spreads the keys over slots.
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.failure(ctx, err)
	}
	for i, c := range cmds {
		b, err := c.Bytes()
		if err != nil {
			continue // never ran
		}
		var run Run
		if err := json.Unmarshal(b, &run); err != nil {
			return nil, fmt.Errorf("decode run of %s: %w", jobs[i], err)
		}
		runs[jobs[i]] = run
	}
	return runs, nil
}
