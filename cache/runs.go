package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Run records one run of a job: the history GET /v1/jobs/{job}/runs serves, newest first, and
// the last run GET /v1/jobs shows. Error is what the public may read of a failure (a kind of
// failure, never a driver's text or row data): the details are in the warmer's log.
type Run struct {
	Job      string        `json:"job"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"-"`
	Keys     int64         `json:"keys_written"`
	// Trigger says why the job ran: schedule, retry, request or once.
	Trigger string `json:"trigger,omitempty"`
	Error   string `json:"error,omitempty"`
	// LastSuccess is the start of the last run that succeeded, this one or an earlier one.
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// runPlain is Run without its methods, so that encoding it does not recurse.
type runPlain Run

// MarshalJSON writes the run with its duration in seconds and its result.
func (r Run) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		runPlain
		DurationSeconds float64 `json:"duration_seconds"`
		Result          string  `json:"result"`
	}{runPlain(r), r.Duration.Seconds(), r.Result()})
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

// Result is success or failure.
func (r Run) Result() string {
	if r.Error != "" {
		return "failure"
	}
	return "success"
}

// DefaultRunHistory is how many runs of each job Redis keeps when Options.RunHistory is zero.
const DefaultRunHistory = 50

// RecordRun adds run to its job's history, which keeps the last Options.RunHistory runs. A failed
// run keeps the time of the last success. The runs of a job are recorded one at a time (a job
// never runs twice at once), so reading the previous run before adding this one races with
// nothing.
func (s *Store) RecordRun(ctx context.Context, run Run) error {
	key := s.keys.Runs(run.Job)
	call, cancel := s.bounded(ctx)
	defer cancel()
	if run.Error != "" && run.LastSuccess.IsZero() {
		prev, err := s.lastRun(call, key)
		if err != nil && !errors.Is(err, ErrMiss) {
			return s.failure(call, err)
		}
		run.LastSuccess = prev.LastSuccess
	}
	b, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("encode run: %w", err)
	}
	// One key, so one slot: the transaction works on a Cluster too.
	_, err = s.rdb.TxPipelined(call, func(p redis.Pipeliner) error {
		p.LPush(call, key, b)
		p.LTrim(call, key, 0, int64(s.runHistory-1))
		return nil
	})
	return s.failure(call, err)
}

func (s *Store) lastRun(ctx context.Context, key string) (Run, error) {
	b, err := s.rdb.LIndex(ctx, key, 0).Bytes()
	if err != nil {
		return Run{}, translate(err)
	}
	var run Run
	if err := json.Unmarshal(b, &run); err != nil {
		return Run{}, fmt.Errorf("decode run: %w", err)
	}
	return run, nil
}

// Runs returns the last run of each of jobs that has run.
func (s *Store) Runs(ctx context.Context, jobs ...string) (map[string]Run, error) {
	history, err := s.History(ctx, 1, jobs...)
	if err != nil {
		return nil, err
	}
	last := make(map[string]Run, len(history))
	for job, runs := range history {
		last[job] = runs[0]
	}
	return last, nil
}

// History returns the last n recorded runs of each of jobs that has run, newest first; n zero
// returns every run kept.
func (s *Store) History(ctx context.Context, n int, jobs ...string) (map[string][]Run, error) {
	call, cancel := s.bounded(ctx)
	defer cancel()
	history := make(map[string][]Run, len(jobs))
	if len(jobs) == 0 {
		return history, nil
	}
	// Pipelined, not one command over every key: a Cluster spreads the keys over slots.
	cmds := make([]*redis.StringSliceCmd, len(jobs))
	_, err := s.rdb.Pipelined(call, func(p redis.Pipeliner) error {
		for i, j := range jobs {
			cmds[i] = p.LRange(call, s.keys.Runs(j), 0, int64(n-1))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, s.failure(call, err)
	}
	for i, c := range cmds {
		raw := c.Val()
		if len(raw) == 0 {
			continue // never ran
		}
		runs := make([]Run, len(raw))
		for k, b := range raw {
			if err := json.Unmarshal([]byte(b), &runs[k]); err != nil {
				return nil, fmt.Errorf("decode run of %s: %w", jobs[i], err)
			}
		}
		history[jobs[i]] = runs
	}
	return history, nil
}
