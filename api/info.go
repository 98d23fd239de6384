package api

import (
	"context"
	_ "embed"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/warmcache/warmcache/cache"
)

var (
	//go:embed openapi.json
	openAPIDoc []byte
	//go:embed docs.html
	docsPage []byte
)

func (s *Server) root(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{
		"hello":   "warmcache serves slow PostgreSQL aggregates from Redis; see the docs",
		"docs":    "/docs",
		"openapi": "/openapi.json",
		"jobs":    "/v1/jobs",
	})
}

func (s *Server) openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIDoc)
}

// docs is a self-contained page that renders the OpenAPI document: it fetches nothing but
// /openapi.json from this server.
func (s *Server) docs(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMETextHTMLCharsetUTF8, docsPage)
}

// jobView is a job as GET /v1/jobs shows it.
type jobView struct {
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Builtin     bool       `json:"builtin"`
	Enabled     bool       `json:"enabled"`
	KeyTemplate string     `json:"key_template,omitempty"`
	Schedule    string     `json:"schedule"`
	TTL         string     `json:"ttl"`
	Grace       string     `json:"grace"`
	NextRun     time.Time  `json:"next_run,omitzero"`
	LastRun     *cache.Run `json:"last_run"`
}

// listJobs answers every job with its schedule and last run. The runs come from Redis; with
// Redis down the jobs are listed without them.
func (s *Server) listJobs(c echo.Context) error {
	names := make([]string, len(s.jobs))
	for i, j := range s.jobs {
		names[i] = j.Name
	}
	runs, err := s.store.Runs(c.Request().Context(), names...)
	if err != nil {
		s.Logger.Warn("job_runs_unavailable", "error", err)
	}
	now := s.Time.Now()
	views := make([]jobView, len(s.jobs))
	for i, j := range s.jobs {
		views[i] = jobView{Name: j.Name, Description: j.Description, Builtin: j.Builtin, Enabled: j.Enabled,
			KeyTemplate: j.KeyTemplate, Schedule: j.Schedule.String(), TTL: j.Lifetime.Policy.String(),
			Grace: j.Lifetime.Grace.String()}
		run, ran := runs[j.Name]
		if ran {
			views[i].LastRun = &run
		}
		// The warmer knows its next run; for @every schedules, which count from the warmer's
		// start, the api could only guess.
		switch {
		case ran && run.Next.After(now):
			views[i].NextRun = run.Next
		case j.Enabled:
			views[i].NextRun = j.Schedule.Next(now)
		}
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
	return c.JSON(http.StatusOK, map[string]any{"jobs": views})
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether Redis and PostgreSQL answer. The api can answer while one of them is
// down (from PostgreSQL without Redis, stale values without PostgreSQL), so it stays ready, and
// says "degraded", unless both are: taking every replica out of a Service because Redis is down
// would turn a slower API into no API.
func (s *Server) readyz(c echo.Context) error {
	// Each dependency gets its own second, so a slow one cannot make the other look down.
	check := func(ping func(context.Context) error) <-chan string {
		status := make(chan string, 1)
		go func() {
			ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
			defer cancel()
			if err := ping(ctx); err != nil {
				status <- "unavailable"
				return
			}
			status <- "ok"
		}()
		return status
	}
	redisStatus, pgStatus := check(s.store.Ping), check(s.db.Ping)
	deps := map[string]string{"redis": <-redisStatus, "postgresql": <-pgStatus}
	switch {
	case deps["redis"] == "ok" && deps["postgresql"] == "ok":
		deps["status"] = "ready"
	case deps["redis"] == "ok" || deps["postgresql"] == "ok":
		deps["status"] = "degraded"
	default:
		deps["status"] = "unavailable"
		return c.JSON(http.StatusServiceUnavailable, deps)
	}
	return c.JSON(http.StatusOK, deps)
}
