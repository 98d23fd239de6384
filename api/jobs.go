package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/warm"
)

// jobView is a job as GET /v1/jobs shows it.
type jobView struct {
	Name         string     `json:"name"`
	Description  string     `json:"description,omitempty"`
	Builtin      bool       `json:"builtin"`
	Enabled      bool       `json:"enabled"`
	Keyed        bool       `json:"keyed"`
	KeyTemplate  string     `json:"key_template,omitempty"`
	Schedule     string     `json:"schedule"`
	ScheduleText string     `json:"schedule_text"`
	TTL          string     `json:"ttl"`
	Grace        string     `json:"grace"`
	NextRun      time.Time  `json:"next_run,omitzero"`
	LastRun      *cache.Run `json:"last_run"`
}

// recentRuns is how many of each job's last runs GET /v1/jobs reads to find its last scheduled
// run, which anchors an @every schedule.
const recentRuns = 10

// listJobs answers every job with its schedule, its next run, computed from the schedule, and
// its last run. The runs come from Redis; with Redis down the jobs are listed without them.
func (s *Server) listJobs(c echo.Context) error {
	names := make([]string, len(s.jobs))
	for i, j := range s.jobs {
		names[i] = j.Name
	}
	history, err := s.store.History(c.Request().Context(), recentRuns, names...)
	if err != nil {
		s.Logger.Warn("job_runs_unavailable", "error", err)
	}
	now := s.Time.Now()
	views := make([]jobView, len(s.jobs))
	for i, j := range s.jobs {
		runs := history[j.Name]
		views[i] = jobView{Name: j.Name, Description: j.Description, Builtin: j.Builtin, Enabled: j.Enabled,
			Keyed: j.Keyed(), KeyTemplate: j.KeyTemplate, Schedule: j.Schedule.String(),
			ScheduleText: j.Schedule.Text(), TTL: j.Lifetime.Policy.String(), Grace: j.Lifetime.Grace.String(),
			NextRun: j.NextRun(now, lastScheduled(runs))}
		if len(runs) > 0 {
			views[i].LastRun = &runs[0]
		}
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
	return c.JSON(http.StatusOK, map[string]any{"jobs": views})
}

// lastScheduled is the start of the newest of runs (newest first) that ran on schedule.
func lastScheduled(runs []cache.Run) time.Time {
	for _, r := range runs {
		if r.Trigger == string(warm.TriggerSchedule) {
			return r.Started
		}
	}
	return time.Time{}
}

// jobRuns answers a job's recorded runs, newest first: as many as the warmer keeps
// (RUN_HISTORY). A job that never ran has none; with Redis down, 503.
func (s *Server) jobRuns(c echo.Context) error {
	job, ok := s.byName[c.Param("job")]
	if !ok {
		return public(errNotFound, "no job is called %q", c.Param("job"))
	}
	history, err := s.store.History(c.Request().Context(), 0, job.Name)
	if err != nil {
		return err
	}
	runs := history[job.Name]
	if runs == nil {
		runs = []cache.Run{}
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
	return c.JSON(http.StatusOK, map[string]any{"job": job.Name, "runs": runs})
}
