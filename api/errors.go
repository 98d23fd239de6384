package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// apiError is an error with the status and message the client gets.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

// errUnavailable answers a valid request that neither Redis nor PostgreSQL can serve now.
var errUnavailable = &apiError{http.StatusServiceUnavailable, "the data is unavailable right now; try again shortly"}

// classify is the one table from errors to statuses and client messages. The text of an
// unexpected error is never shown to the client.
func classify(err error) (status int, msg string, unexpected bool) {
	var api *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &api):
		return api.status, api.msg, false
	case errors.As(err, &he):
		msg = http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		return he.Code, msg, false
	}
	return http.StatusInternalServerError, "internal error", true
}

func statusOf(err error) int {
	status, _, _ := classify(err)
	return status
}

// errorHandler is echo's HTTPErrorHandler: every error answer is JSON {"error": "..."}, and an
// unexpected error is logged.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, msg, unexpected := classify(err)
		if unexpected {
			logger.Error("request_failed", "method", c.Request().Method, "path", c.Request().URL.Path, "error", err)
		}
		if status == http.StatusServiceUnavailable {
			c.Response().Header().Set("Retry-After", "5")
		}
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(status)
		} else {
			err = c.JSON(status, map[string]string{"error": msg})
		}
		if err != nil {
			logger.Warn("error_response_failed", "error", err)
		}
	}
}
