package api

import (
	"context"
	_ "embed"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

var (
	//go:embed openapi.json
	openAPIDoc []byte
	//go:embed docs.html
	docsPage []byte
)

func (s *Server) openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIDoc)
}

// docs is a self-contained page that renders the OpenAPI document: it fetches nothing but
// /openapi.json from this server.
func (s *Server) docs(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMETextHTMLCharsetUTF8, docsPage)
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
