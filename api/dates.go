package api

import (
	"net/http"
	"sync/atomic"
	"time"
)

// httpDates formats times as HTTP dates, remembering the last date of each of 64 seconds: a
// response carries two (Last-Modified, Expires), the entries of one warmer run share their
// computed-at second, and jitter spreads their expiry over a minute, so most requests find both
// strings already made.
type httpDates struct {
	slots [64]atomic.Pointer[formattedDate]
}

type formattedDate struct {
	unix int64
	text string
}

func (d *httpDates) format(t time.Time) string {
	unix := t.Unix()
	slot := &d.slots[uint64(unix)%uint64(len(d.slots))]
	if f := slot.Load(); f != nil && f.unix == unix {
		return f.text
	}
	text := t.UTC().Format(http.TimeFormat)
	slot.Store(&formattedDate{unix: unix, text: text})
	return text
}
