package api

import (
	"context"
	_ "embed"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/munnerz/goautoneg"

	"github.com/warmcache/warmcache/internal/build"
	"github.com/warmcache/warmcache/internal/recent"
)

var (
	//go:embed status.html
	statusPage []byte
	//go:embed root.html
	rootPage []byte
)

// pagePolicy is the Content-Security-Policy of the api's pages: they load nothing from
// elsewhere, and a browser holds them to it.
const pagePolicy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
	"img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// statusWindow is how far back the status page looks: five minutes.
const statusWindow = 5 * time.Minute

// statusView is GET /v1/status: how this api replica and the warmers are doing, for the status
// page. Jobs and their runs are GET /v1/jobs's and GET /v1/jobs/{job}/runs's.
type statusView struct {
	Now     time.Time `json:"now"`
	Replica string    `json:"replica"`
	// Version is the build this replica runs (version, Go release, commit).
	Version string `json:"version"`
	// Breakers are the states of this replica's circuit breakers: closed, open or half-open.
	Breakers     map[string]string `json:"breakers"`
	Traffic      trafficView       `json:"traffic"`
	Invalidation invalidationView  `json:"invalidation"`
	Outbox       outboxView        `json:"outbox"`
}

// invalidationView is the invalidation lag the warmers measured over the last five minutes.
type invalidationView struct {
	// Warmers is how many warmers reported; none means no warmer handles events.
	Warmers int      `json:"warmers"`
	Events  uint64   `json:"events"`
	LagP50  *float64 `json:"lag_p50_seconds,omitempty"`
	LagP99  *float64 `json:"lag_p99_seconds,omitempty"`
	LagMean *float64 `json:"lag_mean_seconds,omitempty"`
	// Error says why the lag is unknown (Redis unavailable).
	Error string `json:"error,omitempty"`
}

// outboxView is the backlog of changes waiting to be published.
type outboxView struct {
	Rows          *int64   `json:"rows,omitempty"`
	OldestSeconds *float64 `json:"oldest_seconds,omitempty"`
	// Error says why the backlog is unknown (PostgreSQL unavailable).
	Error string `json:"error,omitempty"`
}

// status answers GET /v1/status. Each dependency gets a second at most: the page shows what is
// unavailable rather than wait for it.
func (s *Server) status(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), time.Second)
	defer cancel()
	host, _ := os.Hostname()
	v := statusView{
		Now:      s.Time.Now(),
		Replica:  host,
		Version:  build.Read().String(),
		Breakers: s.reads.Breakers(),
		Traffic:  s.traffic.view(),
	}
	lag := make(chan invalidationView, 1)
	go func() { lag <- s.invalidation(ctx, v.Now) }()
	if b, err := s.db.Outbox().Backlog(ctx); err != nil {
		s.Logger.Warn("status_outbox_unavailable", "error", err)
		v.Outbox.Error = "PostgreSQL is unavailable"
	} else {
		oldest := b.Oldest.Seconds()
		v.Outbox = outboxView{Rows: &b.Rows, OldestSeconds: &oldest}
	}
	v.Invalidation = <-lag
	c.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
	return c.JSON(http.StatusOK, v)
}

// invalidation sums the lag windows the warmers recorded over the last five minutes.
func (s *Server) invalidation(ctx context.Context, now time.Time) invalidationView {
	windows, err := s.store.LagWindows(ctx)
	if err != nil {
		s.Logger.Warn("status_lag_unavailable", "error", err)
		return invalidationView{Error: "Redis is unavailable"}
	}
	var lag recent.Histogram
	var warmers []string
	for _, w := range windows {
		if now.Sub(w.End) > statusWindow {
			continue
		}
		lag = lag.Add(w.Lag)
		if !slices.Contains(warmers, w.Warmer) {
			warmers = append(warmers, w.Warmer)
		}
	}
	return invalidationView{Warmers: len(warmers), Events: lag.Count, LagP50: number(lag.Quantile(0.5)),
		LagP99: number(lag.Quantile(0.99)), LagMean: number(lag.Mean())}
}

// statusHTML is the status page: self-contained, it reads /v1/status, /v1/jobs and each job's
// runs from this api, and refreshes itself.
func (s *Server) statusHTML(c echo.Context) error {
	c.Response().Header().Set("Content-Security-Policy", pagePolicy)
	c.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
	return c.Blob(http.StatusOK, echo.MIMETextHTMLCharsetUTF8, statusPage)
}

// root greets: a page linking to the docs for a browser, JSON for clients that ask for it or
// state no preference (curl's */*). The status page is the admin port's.
func (s *Server) root(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderVary, echo.HeaderAccept)
	accept := c.Request().Header.Get(echo.HeaderAccept)
	if accept != "" && goautoneg.Negotiate(accept, []string{echo.MIMEApplicationJSON, echo.MIMETextHTML}) == echo.MIMETextHTML {
		c.Response().Header().Set("Content-Security-Policy", pagePolicy)
		return c.Blob(http.StatusOK, echo.MIMETextHTMLCharsetUTF8, rootPage)
	}
	return c.JSON(http.StatusOK, map[string]any{
		"hello":   "warmcache serves slow PostgreSQL aggregates from Redis; see the docs",
		"docs":    "/docs",
		"openapi": "/openapi.json",
		"jobs":    "/v1/jobs",
	})
}
