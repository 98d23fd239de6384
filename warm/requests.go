package warm

import (
	"context"
	"slices"

	"github.com/warmcache/warmcache/jobs"
)

// serveOwedRuns runs the runs the jobs are owed until the scheduler stops: at start, at each
// request (POST /v1/jobs/{job}/run), and every poll interval. A job is owed a run when one was
// requested, and when a warmer marked a run in flight and its lock is free: that warmer died, or
// stopped, before the run ended, and the job's keys may be half old, half new.
//
// A warmer takes an owed run only while it holds the job's lock, so the run starts after the
// request and never beside a run in flight: a job running on another replica keeps its request
// until that run ends, and nothing waits on a lock meanwhile. Requests made before one is taken
// coalesce into it.
func (s *Scheduler) serveOwedRuns(ctx context.Context) {
	s.runs.OnRunRequest(ctx, s.poll, s.takeOwedRuns, func(err error) {
		s.Logger.Warn("run_requests_listen_failed", "error", err)
	})
}

// takeOwedRuns starts the owed runs this warmer can start now. (A scheduled tick that gets the
// lock first takes the run owed too.)
func (s *Scheduler) takeOwedRuns(ctx context.Context) {
	owed, err := s.runs.OwedRuns(ctx, s.namespace)
	if err != nil {
		if ctx.Err() == nil {
			s.Logger.Warn("run_requests_unavailable", "error", err)
		}
		return
	}
	for _, o := range owed {
		i := slices.IndexFunc(s.jobs, func(j jobs.Job) bool { return j.Name == o.Job })
		if i < 0 {
			continue // a job of another jobs file: a warmer that has it takes the run
		}
		job := s.jobs[i]
		unlock, locked, err := s.runs.Lock(ctx, s.namespace, job.Name)
		if err != nil || !locked {
			// Running here or elsewhere, or PostgreSQL is down: the run waits.
			if o.Requested {
				s.Logger.Debug("run_request_deferred", "job", job.Name, "error", err)
			}
			continue
		}
		trigger, ok := s.takeOwedRun(job)
		if !ok {
			unlock()
			continue
		}
		s.requested.Go(func() {
			defer unlock()
			s.runMarked(job, job.Schedule.Next(s.Time.Now()), trigger)
		})
	}
}

// takeOwedRun takes the run job is owed, if any, for this warmer, which holds the job's lock,
// and says so.
func (s *Scheduler) takeOwedRun(job jobs.Job) (Trigger, bool) {
	took, ok, err := s.runs.TakeRun(s.ctx, s.namespace, job.Name, s.owner)
	switch {
	case err != nil || !ok:
		return "", false
	case took.RunningBy != "":
		s.Logger.Info("run_taken_over", "job", job.Name, "from", took.RunningBy,
			"started", took.Since, "reason", "its warmer stopped before the run ended")
		return TriggerTakeover, true
	}
	s.Logger.Info("run_started_on_request", "job", job.Name)
	return TriggerRequest, true
}
