package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/sony/gobreaker/v2"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/query"
)

// The kinds of failure the api itself finds. Handlers return them, or query's and cache's own,
// wrapped with what they were doing, or with a message for the client (public).
var (
	errInvalid       = errors.New("invalid request")
	errUnauthorized  = errors.New("unauthorized")
	errForbidden     = errors.New("forbidden")
	errNotFound      = errors.New("not found")
	errUnprocessable = errors.New("unprocessable")
)

// statuses is the one table from errors to HTTP statuses, in the manner of pkgsite's derrors: the
// first kind an error wraps decides. An error of no kind here is a bug or a failure nobody
// foresaw, such as a user's SQL dividing by zero: 500, logged at error level. 503 is for
// PostgreSQL or Redis being unable to answer, and only for that.
var statuses = []struct {
	kind   error
	status int
}{
	{errInvalid, http.StatusBadRequest},
	{query.ErrInvalidKey, http.StatusBadRequest},
	{cache.ErrInvalidCursor, http.StatusBadRequest},
	{errUnauthorized, http.StatusUnauthorized},
	{errForbidden, http.StatusForbidden},
	{errNotFound, http.StatusNotFound},
	{query.ErrNotFound, http.StatusNotFound},
	{errUnprocessable, http.StatusUnprocessableEntity},
	{query.ErrInvalidOrder, http.StatusUnprocessableEntity},
	{query.ErrUnknownCustomer, http.StatusUnprocessableEntity},
	{query.ErrUnavailable, http.StatusServiceUnavailable},
	{cache.ErrUnavailable, http.StatusServiceUnavailable},
	{gobreaker.ErrOpenState, http.StatusServiceUnavailable},
	{gobreaker.ErrTooManyRequests, http.StatusServiceUnavailable},
	{context.DeadlineExceeded, http.StatusServiceUnavailable},
}

// unavailableMessage is what a client gets with a 503.
const unavailableMessage = "the data is unavailable right now; try again shortly"

// publicError is an error with the message its client gets; its cause decides the status.
type publicError struct {
	msg   string
	cause error
}

func (e *publicError) Error() string { return e.msg }
func (e *publicError) Unwrap() error { return e.cause }

// public returns cause with a message for the client.
func public(cause error, format string, args ...any) error {
	return &publicError{msg: fmt.Sprintf(format, args...), cause: cause}
}

// classify returns the status and the client's message of err. The text of an error nobody
// foresaw is never shown to the client.
func classify(err error) (status int, msg string) {
	var he *echo.HTTPError
	if errors.As(err, &he) { // echo's own: an unknown route, a method not allowed, a body too large
		msg = http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		return he.Code, msg
	}
	status = http.StatusInternalServerError
	for _, s := range statuses {
		if errors.Is(err, s.kind) {
			status = s.status
			break
		}
	}
	var pub *publicError
	switch {
	case status == http.StatusInternalServerError:
		return status, "internal error"
	case status == http.StatusServiceUnavailable:
		return status, unavailableMessage
	case errors.As(err, &pub):
		return status, pub.msg
	}
	return status, http.StatusText(status)
}

func statusOf(err error) int {
	status, _ := classify(err)
	return status
}

// unexpected reports whether err is one nobody foresaw: a 500.
func unexpected(err error) bool {
	return statusOf(err) == http.StatusInternalServerError && !errors.Is(err, context.Canceled)
}

// clip is what of a client's text goes into a log: its first 256 bytes at most.
func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}

// errorHandler is echo's HTTPErrorHandler: every error answer is JSON {"error": "..."}, a 503
// says when to retry, and an error nobody foresaw is logged at error level.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, msg := classify(err)
		if unexpected(err) {
			logger.Error("request_failed", "method", clip(c.Request().Method), "path", clip(c.Request().URL.Path), "error", err,
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
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
