package api

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
)

// maxRequestID bounds the length of a request id taken from a client: longer, or holding
// anything but printable ASCII, the api makes its own.
const maxRequestID = 128

// instrument is the one middleware of every request: it gives the request an id, taken from
// its X-Request-Id or made, and returns it in the answer's X-Request-Id; times the request
// (warmcache_http_request_duration_seconds); answers a handler's error, or panic, itself; and,
// with an AccessLog, writes one line when the request ends: method, path, status, bytes,
// duration, what the hit header said, and the id. An operator finds the request a user
// complains of by the id the user's client was sent. One middleware, not three: echo v4 wraps
// a request's handler in its middleware anew for every request.
func (s *Server) instrument(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		started := time.Now()
		req, res := c.Request(), c.Response()
		id := req.Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		res.Header()[echo.HeaderXRequestID] = []string{id}
		err := call(next, c)
		status := res.Status
		if err != nil {
			// The error handler has not written yet: it will, with this status.
			status = statusOf(err)
		}
		s.metrics.durationOf(c.Path(), methodLabel(req.Method), status).Observe(time.Since(started).Seconds())
		if err != nil {
			c.Error(err)
		}
		if s.cfg.AccessLog != nil {
			s.accessLine(accessLine{method: req.Method, path: req.URL.Path, status: res.Status, bytes: res.Size,
				duration: time.Since(started), cache: res.Header().Get(s.cacheHeader), id: id})
		}
		return nil
	}
}

// call runs next, turning its panic into an error, which the error handler answers with a 500
// and logs.
func call(next echo.HandlerFunc, c echo.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler { //nolint:errorlint // the sentinel net/http panics with
				panic(r)
			}
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return next(c)
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

// accessLine is what the access log says of a request.
type accessLine struct {
	method, path string
	status       int
	bytes        int64
	duration     time.Duration
	cache, id    string
}

// accessBuffers are the buffers lines are made in.
var accessBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// accessLine writes l to the access log as one line, in the log's format: the JSON or the
// logfmt of log/slog's handlers, with the same time, level and msg fields. Made here rather
// than by a slog.Handler, which took a busy api's hits 7 % of their time for the same bytes.
func (s *Server) accessLine(l accessLine) {
	bp := accessBuffers.Get().(*[]byte)
	b, now := (*bp)[:0], time.Now()
	if s.cfg.AccessLogText {
		b = append(b, "time="...)
		b = s.logTimes.append(b, now, 3)
		b = append(b, " level=INFO msg=http_request method="...)
		b = appendText(b, clip(l.method))
		b = append(b, " path="...)
		b = appendText(b, clip(l.path))
	} else {
		b = append(b, `{"time":"`...)
		b = s.logTimes.append(b, now, 9)
		b = append(b, `","level":"INFO","msg":"http_request","method":`...)
		b = appendJSON(b, clip(l.method))
		b = append(b, `,"path":`...)
		b = appendJSON(b, clip(l.path))
	}
	field := func(name string) {
		if s.cfg.AccessLogText {
			b = append(append(append(b, ' '), name...), '=')
		} else {
			b = append(append(append(b, `,"`...), name...), `":`...)
		}
	}
	field("status")
	b = strconv.AppendInt(b, int64(l.status), 10)
	field("bytes")
	b = strconv.AppendInt(b, l.bytes, 10)
	field("duration_us")
	b = strconv.AppendInt(b, l.duration.Microseconds(), 10)
	for _, f := range []struct{ name, value string }{{"cache", l.cache}, {"request_id", l.id}} {
		field(f.name)
		if s.cfg.AccessLogText {
			b = appendText(b, f.value)
		} else {
			b = appendJSON(b, f.value)
		}
	}
	if !s.cfg.AccessLogText {
		b = append(b, '}')
	}
	b = append(b, '\n')
	s.cfg.AccessLog.Write(b) //nolint:errcheck // a log line that cannot be written is not the client's failure
	*bp = b
	accessBuffers.Put(bp)
}

// plain reports whether v can be written as it is: printable ASCII, none of the characters
// either format quotes or escapes.
func plain(v string) bool {
	for i := range len(v) {
		if c := v[i]; c <= ' ' || c > '~' || c == '"' || c == '\\' || c == '=' {
			return false
		}
	}
	return true
}

// appendJSON appends v as a JSON string.
func appendJSON(b []byte, v string) []byte {
	if plain(v) {
		return append(append(append(b, '"'), v...), '"')
	}
	quoted, _ := json.Marshal(v) // a string always marshals; invalid UTF-8 becomes U+FFFD
	return append(b, quoted...)
}

// appendText appends v as a logfmt value, quoted as log/slog's text handler quotes it.
func appendText(b []byte, v string) []byte {
	if v != "" && plain(v) {
		return append(b, v...)
	}
	return strconv.AppendQuote(b, v)
}

// logTimes renders the times of log lines as RFC 3339 with a fraction of digits digits, as
// log/slog does (milliseconds in text, nanoseconds in JSON), making the date and zone once a
// second.
type logTimes struct {
	last atomic.Pointer[logSecond]
}

type logSecond struct {
	unix       int64
	date, zone []byte // 2006-01-02T15:04:05 and Z07:00
}

func (l *logTimes) append(b []byte, t time.Time, digits int) []byte {
	sec := l.last.Load()
	if sec == nil || sec.unix != t.Unix() {
		sec = &logSecond{unix: t.Unix(), date: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		l.last.Store(sec)
	}
	b = append(append(b, sec.date...), '.')
	var frac [9]byte
	n := t.Nanosecond()
	for i := 8; i >= 0; i-- {
		frac[i] = byte('0' + n%10)
		n /= 10
	}
	return append(append(b, frac[:digits]...), sec.zone...)
}
