package warm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sethvargo/go-retry"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/backoff"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// Scheduler runs jobs on their schedules with robfig/cron. Several warmer replicas may run
// together: each scheduled run is locked and claimed in PostgreSQL by the first replica to fire,
// so a run happens once and a job never overlaps itself. A run that fails because PostgreSQL or
// Redis is unavailable is retried with backoff until it succeeds or the next scheduled run is
// due. A run whose warmer died before it ended is taken over by any replica within a second.
type Scheduler struct {
	*baseservice.Archetype
	cron      *cron.Cron
	jobs      []jobs.Job
	runner    *Runner
	runs      Runs // on the primary: claims, locks and run requests
	namespace string
	owner     string
	backoff   time.Duration
	// poll is how often owed runs (requested, or left by a dead warmer) are looked for without
	// a notification.
	poll time.Duration

	ctx           context.Context // the runs' context, cancelled when Stop runs out of time
	cancel        context.CancelFunc
	stopping      chan struct{} // closed when Stop is called: retries wait no longer
	stopOnce      sync.Once
	running       atomic.Bool        // between Start and Stop: the schedule is held
	listening     sync.WaitGroup     // the listener of owed runs
	stopListening context.CancelFunc // ends it
	requested     sync.WaitGroup     // the runs it started
}

// Runs is what the scheduler needs of the primary database to share the jobs among warmer
// replicas (query.Runs): locks, claims of scheduled runs, and runs owed (requested, or left by a
// dead warmer).
type Runs interface {
	Lock(ctx context.Context, namespace, job string) (unlock func(), ok bool, err error)
	Claim(ctx context.Context, namespace, job, owner string, now, next time.Time, tolerance time.Duration) (claimed bool, tookOver string, err error)
	Running(ctx context.Context, namespace, job, owner string) error
	Finished(ctx context.Context, namespace, job, owner string) error
	OwedRuns(ctx context.Context, namespace string) ([]query.OwedRun, error)
	TakeRun(ctx context.Context, namespace, job, owner string) (took query.OwedRun, ok bool, err error)
	OnRunRequest(ctx context.Context, poll time.Duration, fn func(context.Context), lost func(error))
}

var _ Runs = query.Runs{}

// NewScheduler returns a Scheduler for the enabled jobs. runs are the primary database's, where
// claims, locks and run requests live; namespace keeps deployments sharing it apart.
func NewScheduler(arch *baseservice.Archetype, jobs []jobs.Job, runner *Runner, runs Runs, namespace string) *Scheduler {
	ctx, cancel := context.WithCancel(context.Background())
	clog := cronLogger{arch.Logger}
	s := &Scheduler{
		Archetype: arch,
		cron:      cron.New(cron.WithChain(cron.Recover(clog), cron.SkipIfStillRunning(clog)), cron.WithLogger(clog)),
		jobs:      jobs,
		runner:    runner,
		runs:      runs,
		namespace: namespace,
		owner:     owner(),
		backoff:   time.Second,
		poll:      time.Second,
		ctx:       ctx,
		cancel:    cancel,
		stopping:  make(chan struct{}),
	}
	for _, job := range jobs {
		if job.Enabled {
			s.cron.Schedule(&startNow{Schedule: job.Schedule}, cron.FuncJob(func() { s.tick(job) }))
		}
	}
	return s
}

// owner names this process in the claims and marks of the runs it makes.
func owner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// startNow fires once as the scheduler starts, then follows the job's schedule: a warmer fills
// the cache when it starts rather than an interval later. The start-up run is claimed like any
// other, so a replica starting beside one that just ran the job does not run it again.
type startNow struct {
	jobs.Schedule
	started bool // only robfig/cron's run loop calls Next
}

func (s *startNow) Next(t time.Time) time.Time {
	if !s.started {
		s.started = true
		return t
	}
	return s.Schedule.Next(t)
}

// Running reports whether the scheduler holds the jobs' schedules: started, and not stopping.
func (s *Scheduler) Running() bool { return s.running.Load() }

// Start starts running the jobs on their schedules, and the runs they are owed.
func (s *Scheduler) Start() {
	s.running.Store(true)
	s.cron.Start()
	ctx, cancel := context.WithCancel(s.ctx)
	s.stopListening = cancel
	s.listening.Go(func() { s.serveOwedRuns(ctx) })
}

// Stop stops scheduling and waits for the runs in flight to finish; runs waiting to be retried
// end at once. When ctx ends first, it cancels the runs and waits for them to return. A run
// that did not finish stays marked in flight: another warmer takes it over.
func (s *Scheduler) Stop(ctx context.Context) {
	s.running.Store(false)
	s.stopOnce.Do(func() { close(s.stopping) })
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

// stopped reports whether Stop was called.
func (s *Scheduler) stopped() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// tick is one scheduled run of job, on one replica: the replica that takes the job's lock and
// claims the run runs it.
func (s *Scheduler) tick(job jobs.Job) {
	if s.stopped() {
		return
	}
	now := s.Time.Now()
	next := job.Schedule.Next(now)
	unlock, locked, err := s.runs.Lock(s.ctx, s.namespace, job.Name)
	switch {
	case err != nil:
		// PostgreSQL is down: run anyway, so the failure is recorded and retried.
		s.Logger.Warn("job_lock_failed", "job", job.Name, "error", err)
		s.runWithRetry(job, next, TriggerSchedule)
		return
	case !locked:
		s.Logger.Info("job_skipped", "job", job.Name, "reason", "running on another replica, or still running here")
		return
	}
	defer unlock()
	// Replicas fire within milliseconds of each other: a claim due up to a quarter of the
	// interval (at most a second) from now is this run's.
	tolerance := min(next.Sub(now)/4, time.Second)
	claimed, tookOver, err := s.runs.Claim(s.ctx, s.namespace, job.Name, s.owner, now, next, tolerance)
	switch {
	case err != nil:
		s.Logger.Warn("job_claim_failed", "job", job.Name, "error", err)
		s.runWithRetry(job, next, TriggerSchedule)
	case claimed && tookOver != "" && tookOver != s.owner:
		s.Logger.Info("run_taken_over", "job", job.Name, "from", tookOver, "reason", "its warmer stopped before the run ended")
		s.runMarked(job, next, TriggerTakeover)
	case claimed:
		s.runMarked(job, next, TriggerSchedule)
	default:
		if trigger, ok := s.takeOwedRun(job); ok {
			s.runMarked(job, next, trigger) // another replica ran this tick, but a run is owed
			return
		}
		s.Logger.Info("job_skipped", "job", job.Name, "reason", "another replica ran this tick")
	}
}

// runMarked runs a run marked in flight (claimed or taken) and, once it ended, ends the mark. A
// run cut short by shutdown keeps its mark: another warmer, or this one restarted, redoes it.
func (s *Scheduler) runMarked(job jobs.Job, next time.Time, trigger Trigger) {
	if !s.runWithRetry(job, next, trigger) {
		s.Logger.Info("job_interrupted", "job", job.Name, "reason", "the warmer is stopping: another warmer takes the run over")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
	defer cancel()
	if err := s.runs.Finished(ctx, s.namespace, job.Name, s.owner); err != nil {
		// The mark stays: another warmer will run the job again, once more than needed.
		s.Logger.Warn("job_finish_not_recorded", "job", job.Name, "error", err)
	}
}

// runWithRetry runs job, and again with exponential backoff while the failure is PostgreSQL or
// Redis being unavailable, until the next scheduled run is due. A retry comes as soon as they
// answer again. It returns false if the run did not end: shutdown cut it short, or came while
// it waited to be retried.
func (s *Scheduler) runWithRetry(job jobs.Job, next time.Time, trigger Trigger) bool {
	delays := retry.WithCappedDuration(time.Minute, retry.NewExponential(s.backoff))
	for {
		runCtx, cancel := context.WithTimeout(s.ctx, job.Timeout)
		_, err := s.runner.Run(runCtx, job, trigger, nil)
		cancel()
		trigger = TriggerRetry
		switch {
		case s.ctx.Err() != nil:
			return false
		case !errors.Is(err, query.ErrUnavailable) && !errors.Is(err, cache.ErrUnavailable):
			return true
		}
		delay, _ := delays.Next()
		if !next.IsZero() && !s.Time.Now().Add(delay).Before(next) {
			return true // the next scheduled run is due first
		}
		s.Logger.Info("job_retrying", "job", job.Name, "retry_in", delay.String(), "reason", "postgresql or redis unavailable")
		// What a run needs: PostgreSQL, where it reads, and Redis.
		if !backoff.Wait(s.ctx, s.stopping, delay, backoff.Answering(s.runner.db.Probe, s.runner.store.Probe)) {
			return false
		}
	}
}

// Once runs jobs one after the other, each under its lock (waiting for a replica that runs it to
// finish), and returns the first failure. It is warmer --once. Each run is marked in flight
// while it runs, so that a run cut short (the process killed) is taken over by a warmer.
func Once(ctx context.Context, jobs []jobs.Job, runner *Runner, runs Runs, namespace string, progress func(jobs.Job) Progress) error {
	owner := owner()
	var failed error
	for _, job := range jobs {
		err := func() error {
			unlock, err := awaitLock(ctx, runs, namespace, job.Name)
			if err != nil {
				return fmt.Errorf("lock %s: %w", job.Name, err)
			}
			defer unlock()
			if err := runs.Running(ctx, namespace, job.Name, owner); err != nil {
				return fmt.Errorf("mark %s running: %w", job.Name, err)
			}
			runCtx, cancel := context.WithTimeout(ctx, job.Timeout)
			defer cancel()
			_, err = runner.Run(runCtx, job, TriggerOnce, progress(job))
			if ctx.Err() == nil {
				if ferr := runs.Finished(ctx, namespace, job.Name, owner); ferr != nil && err == nil {
					err = fmt.Errorf("mark %s finished: %w", job.Name, ferr)
				}
			}
			return err
		}()
		if err != nil && failed == nil {
			failed = fmt.Errorf("%s: %w", job.Name, err)
		}
	}
	return failed
}

// lockPoll is how often warmer --once looks whether a job's lock is free while a replica runs
// the job. Waiting on the lock in PostgreSQL instead would hold the locks' connection meanwhile.
const lockPoll = 250 * time.Millisecond

// awaitLock takes job's lock, waiting for it as long as ctx lets.
func awaitLock(ctx context.Context, runs Runs, namespace, job string) (func(), error) {
	for {
		unlock, ok, err := runs.Lock(ctx, namespace, job)
		switch {
		case err != nil:
			return nil, err
		case ok:
			return unlock, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

// cronLogger lets robfig/cron log through slog: its chatter at debug, its errors (recovered
// panics among them) as errors.
type cronLogger struct{ logger *slog.Logger }

func (l cronLogger) Info(msg string, kv ...any) { l.logger.Debug("cron_"+msg, kv...) }
func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.logger.Error("cron_"+msg, append(kv, "error", err)...)
}
