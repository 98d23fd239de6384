package api

import (
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/labstack/echo/v4"
)

// maxRequestID bounds the length of a request id taken from a client: longer, or holding
// anything but printable ASCII, the api makes its own.
const maxRequestID = 128

// accessLog gives every request an id, taken from its X-Request-Id or made, returns it in the
// answer's X-Request-Id, and, with AccessLog on, logs one line when the request ends: method,
// path, status, bytes, duration, what the hit header said, and the id. An operator finds the
// request a user complains of by the id the user's client was sent. It answers a handler's
// error itself, so that the line holds the status and size the client got.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		started := time.Now()
		req, res := c.Request(), c.Response()
		id := req.Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		res.Header()[echo.HeaderXRequestID] = []string{id}
		if err := next(c); err != nil {
			c.Error(err)
		}
		if s.cfg.AccessLog {
			s.Logger.LogAttrs(req.Context(), slog.LevelInfo, "http_request",
				slog.String("method", clip(req.Method)),
				slog.String("path", clip(req.URL.Path)),
				slog.Int("status", res.Status),
				slog.Int64("bytes", res.Size),
				slog.Float64("duration_ms", float64(time.Since(started).Microseconds())/1000),
				slog.String("cache", res.Header().Get(s.cacheHeader)),
				slog.String("request_id", id))
		}
		return nil
	}
}

// validRequestID reports whether a client's request id can be kept as it is: 1 to maxRequestID
// bytes of printable ASCII, no space.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := range len(id) {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// newRequestID returns 32 random hex digits: unique enough to find one request in a log, and
// cheap (no system call).
func newRequestID() string {
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}
