package jobs

import (
	"context"
	"slices"
)

// serveRequests runs the jobs whose runs were requested (POST /v1/jobs/{job}/run) until the
// scheduler stops: at start, at each request, and every poll interval. A warmer takes a request
// only while it holds the job's lock, so the run starts after the request and never beside a
// run in flight: a job running on another replica keeps its request until that run ends, and
// no connection waits on a lock meanwhile. Requests made before one is taken coalesce into it.
func (s *Scheduler) serveRequests(ctx context.Context) {
	s.db.OnRunRequest(ctx, s.poll, s.takeRequests, func(err error) {
		s.Logger.Warn("run_requests_listen_failed", "error", err)
	})
}

// takeRequests starts the requested runs this warmer can start now.
func (s *Scheduler) takeRequests(ctx context.Context) {
	names, err := s.db.RequestedRuns(ctx, s.namespace)
	if err != nil {
		if ctx.Err() == nil {
			s.Logger.Warn("run_requests_unavailable", "error", err)
		}
		return
	}
	for _, name := range names {
		i := slices.IndexFunc(s.jobs, func(j Job) bool { return j.Name == name })
		if i < 0 {
			continue // a job of another jobs file: a warmer that has it takes the request
		}
		job := s.jobs[i]
		unlock, locked, err := s.db.Lock(ctx, s.namespace, job.Name, false)
		if err != nil || !locked {
			// Running elsewhere, or PostgreSQL is down: the request waits.
			s.Logger.Debug("run_request_deferred", "job", job.Name, "error", err)
			continue
		}
		took, err := s.db.TakeRunRequest(ctx, s.namespace, job.Name)
		if err != nil || !took {
			unlock()
			continue
		}
		s.Logger.Info("run_started_on_request", "job", job.Name)
		s.requested.Go(func() {
			defer unlock()
			s.runWithRetry(job, job.Schedule.Next(s.Time.Now()), TriggerRequest)
		})
	}
}
