package api

import (
	"net/http"
	"testing"
	"time"
)

func TestHTTPDates(t *testing.T) {
	t.Parallel()
	var d httpDates
	base := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, offset := range []time.Duration{0, 64 * time.Second, 500 * time.Millisecond, time.Second, 0, 128 * time.Second, -time.Hour} {
		at := base.Add(offset).In(time.FixedZone("X", 3600))
		if got, want := d.format(at), at.UTC().Format(http.TimeFormat); got != want {
			t.Errorf("format(%s) = %q, want %q", at, got, want)
		}
	}
}
