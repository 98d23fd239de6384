package api

import (
	"net/http"
	"testing"
	"time"
)

func TestNotModified(t *testing.T) {
	t.Parallel()
	const etag = `"36ec290cd2eb2d9f"`
	modified := time.Date(2026, 11, 21, 12, 0, 0, 500_000_000, time.UTC)
	at := func(d time.Duration) string { return modified.Add(d).Format(http.TimeFormat) }
	for _, tc := range []struct {
		name   string
		header http.Header
		want   bool
	}{
		{"no preconditions", http.Header{}, false},
		{"exact tag", http.Header{"If-None-Match": {etag}}, true},
		{"other tag", http.Header{"If-None-Match": {`"0000000000000000"`}}, false},
		{"weak form of the tag", http.Header{"If-None-Match": {`W/` + etag}}, true},
		{"list with the tag", http.Header{"If-None-Match": {`"a", W/"b", ` + etag}}, true},
		{"list without the tag", http.Header{"If-None-Match": {`"a", W/"b"`}}, false},
		{"tag in a second field line", http.Header{"If-None-Match": {`"a"`, etag}}, true},
		{"list without spaces", http.Header{"If-None-Match": {`"a",` + etag}}, true},
		{"star", http.Header{"If-None-Match": {"*"}}, true},
		{"unquoted tag does not match", http.Header{"If-None-Match": {"36ec290cd2eb2d9f"}}, false},
		{"malformed member ends the list", http.Header{"If-None-Match": {`"a", bogus, ` + etag}}, false},
		{"unterminated tag", http.Header{"If-None-Match": {`"36ec290cd2eb2d9f`}}, false},
		{"empty value", http.Header{"If-None-Match": {""}}, false},
		{"modified since an earlier time", http.Header{"If-Modified-Since": {at(-time.Hour)}}, false},
		{"not modified since the same second", http.Header{"If-Modified-Since": {at(0)}}, true},
		{"not modified since a later time", http.Header{"If-Modified-Since": {at(time.Hour)}}, true},
		{"invalid date is ignored", http.Header{"If-Modified-Since": {"yesterday"}}, false},
		{"If-None-Match wins over If-Modified-Since (no match)",
			http.Header{"If-None-Match": {`"other"`}, "If-Modified-Since": {at(time.Hour)}}, false},
		{"If-None-Match wins over If-Modified-Since (match)",
			http.Header{"If-None-Match": {etag}, "If-Modified-Since": {at(-time.Hour)}}, true},
		{"the gzip representation's tag", http.Header{"If-None-Match": {`"36ec290cd2eb2d9f-gzip"`}}, true},
		{"another value's gzip tag", http.Header{"If-None-Match": {`"46ec290cd2eb2d9f-gzip"`}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := notModified(tc.header, etag, true, modified); got != tc.want {
				t.Errorf("notModified(%v) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}

func FuzzIfNoneMatch(f *testing.F) {
	for _, s := range []string{`"x"`, `W/"x"`, `*`, `"a", "b"`, `"`, `W/`, `,,,`, `"a"bogus"b"`} {
		f.Add(s)
	}
	const etag = `"36ec290cd2eb2d9f"`
	f.Fuzz(func(t *testing.T, value string) {
		got := noneMatch([]string{value}, etag)
		// Appending the tag itself to a well-formed list always matches; a value that
		// matched keeps matching with more members after it.
		if got && !noneMatch([]string{value + `, "zzz"`}, etag) {
			t.Fatalf("%q matched, but not with a member appended", value)
		}
		if !noneMatch([]string{value, etag}, etag) {
			t.Fatalf("the tag in a later field line did not match after %q", value)
		}
	})
}
