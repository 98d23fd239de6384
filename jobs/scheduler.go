package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sethvargo/go-retry"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/query"
)

// Scheduler runs jobs on their schedules with robfig/cron. Several warmer replicas may run
// together: each scheduled run is claimed in PostgreSQL by the first replica to fire, which
// runs it under the job's advisory lock, so a run happens once and a job never overlaps itself.
// A run that fails because PostgreSQL or Redis is unavailable is retried with backoff until it
// succeeds or the next scheduled run is due.
type Scheduler struct {
	*baseservice.Archetype
	cron      *cron.Cron
	jobs      []Job
	runner    *Runner
	db        *query.DB // the primary: claims, locks and run requests
	namespace string
	owner     string
	backoff   time.Duration
	// poll is how often run requests are looked for without a notification.
	poll time.Duration

	ctx           context.Context // the runs' context, cancelled when Stop runs out of time
	cancel        context.CancelFunc
	listening     sync.WaitGroup     // the run-request listener
	stopListening context.CancelFunc // ends it
	requested     sync.WaitGroup     // the runs it started
}

// NewScheduler returns a Scheduler for the enabled jobs. db is the primary database, where
// claims, locks and run requests live; namespace keeps deployments sharing it apart.
func NewScheduler(arch *baseservice.Archetype, jobs []Job, runner *Runner, db *query.DB, namespace string) *Scheduler {
	host, _ := os.Hostname()
	ctx, cancel := context.WithCancel(context.Background())
	clog := cronLogger{arch.Logger}
	s := &Scheduler{
		Archetype: arch,
		cron:      cron.New(cron.WithChain(cron.Recover(clog), cron.SkipIfStillRunning(clog)), cron.WithLogger(clog)),
		jobs:      jobs,
		runner:    runner,
		db:        db,
		namespace: namespace,
		owner:     fmt.Sprintf("%s/%d", host, os.Getpid()),
		backoff:   time.Second,
		poll:      time.Second,
		ctx:       ctx,
		cancel:    cancel,
	}
	for _, job := range jobs {
		if job.Enabled {
			s.cron.Schedule(&startNow{Schedule: job.Schedule}, cron.FuncJob(func() { s.tick(job) }))
		}
	}
	return s
}

// startNow fires once as the scheduler starts, then follows the job's schedule: a warmer fills
// the cache when it starts rather than an interval later. The start-up run is claimed like any
// other, so a replica starting beside one that just ran the job does not run it again.
type startNow struct {
	Schedule
	started bool // only robfig/cron's run loop calls Next
}

func (s *startNow) Next(t time.Time) time.Time {
	if !s.started {
		s.started = true
		return t
	}
	return s.Schedule.Next(t)
}

// Start starts running the jobs on their schedules, and the runs requested of them.
func (s *Scheduler) Start() {
	s.cron.Start()
	ctx, cancel := context.WithCancel(s.ctx)
	s.stopListening = cancel
	s.listening.Go(func() { s.serveRequests(ctx) })
}

// Stop stops scheduling and waits for the runs in flight to finish. When ctx ends first, it
// cancels them and waits for them to return.
func (s *Scheduler) Stop(ctx context.Context) {
	if s.stopListening != nil {
		s.stopListening()
	}
	s.listening.Wait() // no run starts on request from now on
	cronDone := s.cron.Stop().Done()
	done := make(chan struct{})
	go func() {
		<-cronDone
		s.requested.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.Logger.Warn("shutdown_cancelling_runs")
		s.cancel()
		<-done
	}
	s.cancel()
}

// tick is one scheduled run of job, on one replica.
func (s *Scheduler) tick(job Job) {
	now := s.Time.Now()
	next := job.Schedule.Next(now)
	// Replicas fire within milliseconds of each other: a claim due up to a quarter of the
	// interval (at most a second) from now is this run's.
	tolerance := min(next.Sub(now)/4, time.Second)
	claimed, err := s.db.Claim(s.ctx, s.namespace, job.Name, s.owner, now, next, tolerance)
	switch {
	case err != nil:
		// PostgreSQL is down: run anyway, so the failure is recorded and retried.
		s.Logger.Warn("job_claim_failed", "job", job.Name, "error", err)
	case !claimed:
		s.Logger.Debug("job_skipped", "job", job.Name, "reason", "another replica claimed this run")
		return
	}
	unlock, locked, err := s.db.Lock(s.ctx, s.namespace, job.Name, false)
	switch {
	case err != nil:
		s.Logger.Warn("job_lock_failed", "job", job.Name, "error", err)
	case !locked:
		s.Logger.Info("job_skipped", "job", job.Name, "reason", "still running on another replica")
		return
	default:
		defer unlock()
	}
	s.runWithRetry(job, next, TriggerSchedule)
}

// runWithRetry runs job, and again with exponential backoff while the failure is PostgreSQL or
// Redis being unavailable, until the next scheduled run is due.
func (s *Scheduler) runWithRetry(job Job, next time.Time, trigger Trigger) {
	backoff := retry.WithCappedDuration(time.Minute, retry.NewExponential(s.backoff))
	if !next.IsZero() {
		backoff = retry.WithMaxDuration(next.Sub(s.Time.Now()), backoff)
	}
	_ = retry.Do(s.ctx, backoff, func(ctx context.Context) error {
		runCtx, cancel := context.WithTimeout(ctx, job.Timeout)
		defer cancel()
		_, err := s.runner.Run(runCtx, job, trigger, nil)
		trigger = TriggerRetry
		if errors.Is(err, query.ErrUnavailable) || errors.Is(err, cache.ErrUnavailable) {
			return retry.RetryableError(err)
		}
		return err
	})
}

// Once runs jobs one after the other, each under its advisory lock (waiting for a replica that
// holds it), and returns the first failure. It is warmer --once.
func Once(ctx context.Context, jobs []Job, runner *Runner, db *query.DB, namespace string, progress func(Job) Progress) error {
	var failed error
	for _, job := range jobs {
		err := func() error {
			unlock, _, err := db.Lock(ctx, namespace, job.Name, true)
			if err != nil {
				return fmt.Errorf("lock %s: %w", job.Name, err)
			}
			defer unlock()
			runCtx, cancel := context.WithTimeout(ctx, job.Timeout)
			defer cancel()
			_, err = runner.Run(runCtx, job, TriggerOnce, progress(job))
			return err
		}()
		if err != nil && failed == nil {
			failed = fmt.Errorf("%s: %w", job.Name, err)
		}
	}
	return failed
}

// cronLogger lets robfig/cron log through slog: its chatter at debug, its errors (recovered
// panics among them) as errors.
type cronLogger struct{ logger *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.logger.Debug("cron_"+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.logger.Error("cron_"+msg, append(kv, "error", err)...)
}
