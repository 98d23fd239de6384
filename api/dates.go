package api

import (
	"net/http"
	"sync/atomic"
	"time"
)

// httpDates formats times as HTTP dates, remembering the last date of each of 64 seconds: the
// answers of a second share their Date, and the entries of one warmer run their computed-at
// second, so their answers' Last-Modified is made once.
type httpDates struct {
	slots [64]atomic.Pointer[formattedDate]
}

type formattedDate struct {
	unix int64
	text [1]string
}

// format returns t as an HTTP date.
func (d *httpDates) format(t time.Time) string { return d.header(t)[0] }

// header returns t as an HTTP date, as a header's value of capacity one.
func (d *httpDates) header(t time.Time) []string {
	unix := t.Unix()
	slot := &d.slots[uint64(unix)%uint64(len(d.slots))]
	if f := slot.Load(); f != nil && f.unix == unix {
		return f.text[:]
	}
	f := &formattedDate{unix: unix, text: [1]string{t.UTC().Format(http.TimeFormat)}}
	slot.Store(f)
	return f.text[:]
}
