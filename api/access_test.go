package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAccessLog: every answer carries a request id, the client's when it sent a usable one; with
// the access log on, each request is one line holding the id, method, path, status, size,
// duration and hit header, errors included; with it off, no line.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	var log logBuffer
	f := newFixture(t, fixtureOptions{accessLog: &log})
	for _, tc := range []struct {
		name, path, sent string
		status           int
		kept             bool // the answer's id is the one sent
	}{
		{"a read with the client's id", "/v1/credit", "abc", http.StatusOK, true},
		{"a 404 with the client's id", "/v1/orders/count?customerid=999999", "req-404", http.StatusNotFound, true},
		{"a 400 without an id", "/v1/orders/count?customerid=x", "", http.StatusBadRequest, false},
		{"a path to escape", `/v1/results/"a%20b\%FF%E2%82%AC`, "", http.StatusNotFound, false},
		{"an id with a space", "/healthz", "a b", http.StatusOK, false},
		{"an id too long", "/healthz", strings.Repeat("x", maxRequestID+1), http.StatusOK, false},
	} {
		log.Reset()
		header := http.Header{}
		if tc.sent != "" {
			header.Set("X-Request-Id", tc.sent)
		}
		res := f.do(http.MethodGet, tc.path, header)
		id := res.header.Get("X-Request-Id")
		switch {
		case res.status != tc.status:
			t.Errorf("%s: status %d, want %d", tc.name, res.status, tc.status)
		case tc.kept && id != tc.sent:
			t.Errorf("%s: X-Request-Id %q, want the client's %q", tc.name, id, tc.sent)
		case !tc.kept && (len(id) != 32 || id == tc.sent):
			t.Errorf("%s: X-Request-Id %q, want one of the api's (32 hex digits)", tc.name, id)
		}
		lines := accessLines(t, &log)
		if len(lines) != 1 {
			t.Fatalf("%s: %d access-log lines, want 1: %v", tc.name, len(lines), lines)
		}
		line := lines[0]
		path, _, _ := strings.Cut(tc.path, "?")
		path, _ = url.PathUnescape(path)
		path = strings.ToValidUTF8(path, "\uFFFD")
		cache := res.header.Get("X-Cache")
		if line["request_id"] != id || line["method"] != "GET" || line["path"] != path ||
			line["status"] != float64(tc.status) || line["cache"] != cache {
			t.Errorf("%s: access-log line %v, want id %s, GET %s, status %d, cache %q", tc.name, line, id, path, tc.status, cache)
		}
		if cached := strings.HasPrefix(tc.path, "/v1/orders") || strings.HasPrefix(tc.path, "/v1/credit"); cached != (cache != "") && tc.status != http.StatusBadRequest {
			t.Errorf("%s: hit header %q", tc.name, cache)
		}
		if bytes, _ := line["bytes"].(float64); int(bytes) != len(res.body) {
			t.Errorf("%s: access-log line says %v bytes, the body has %d", tc.name, line["bytes"], len(res.body))
		}
		if _, ok := line["duration_us"].(float64); !ok {
			t.Errorf("%s: access-log line without duration_us: %v", tc.name, line)
		}
	}

	var quiet logBuffer
	off := newFixture(t, fixtureOptions{logger: slog.New(slog.NewJSONHandler(&quiet, nil))})
	if res := off.do(http.MethodGet, "/v1/credit", http.Header{"X-Request-Id": {"abc"}}); res.header.Get("X-Request-Id") != "abc" {
		t.Errorf("access log off: X-Request-Id %q, want the client's abc all the same", res.header.Get("X-Request-Id"))
	}
	if lines := accessLines(t, &quiet); len(lines) != 0 {
		t.Errorf("access log off: %d lines, want none: %v", len(lines), lines)
	}
}

// accessLines returns the access-log lines in log.
func accessLines(t *testing.T, log *logBuffer) []map[string]any {
	t.Helper()
	log.mu.Lock()
	defer log.mu.Unlock()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log.buf.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if line["msg"] == "http_request" {
			lines = append(lines, line)
		}
	}
	return lines
}

// TestAccessLineLikeSlog: an access-log line, made by hand for speed, holds what log/slog's
// handlers would write of the same fields, in either format, whatever the path holds.
func TestAccessLineLikeSlog(t *testing.T) {
	t.Parallel()
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	for _, text := range []bool{false, true} {
		for _, path := range []string{"/v1/credit", "/v1/results/a b", `/v1/results/"q"\x`, "/v1/results/\xff\x01", "/v1/results/€=",
			"/" + strings.Repeat("x", 300)} {
			var got, want bytes.Buffer
			s := &Server{cfg: Config{AccessLog: &got, AccessLogText: text}}
			s.accessLine(accessLine{method: "GET", path: path, status: 200, bytes: 27, duration: 1234 * time.Microsecond,
				cache: "HIT", id: "abc"})
			var h slog.Handler = slog.NewJSONHandler(&want, &slog.HandlerOptions{ReplaceAttr: noTime})
			if text {
				h = slog.NewTextHandler(&want, &slog.HandlerOptions{ReplaceAttr: noTime})
			}
			slog.New(h).Info("http_request", "method", "GET", "path", clip(path), "status", 200, "bytes", 27,
				"duration_us", 1234, "cache", "HIT", "request_id", "abc")
			line := got.String()
			// The time comes first: compare it with now, and drop it, as noTime does from slog's
			// line.
			var at string
			if text {
				at, line, _ = strings.Cut(line, " ")
				at = strings.TrimPrefix(at, "time=")
			} else {
				var rest string
				at, rest, _ = strings.Cut(strings.TrimPrefix(line, `{"time":"`), `","`)
				line = `{"` + rest
			}
			if when, err := time.Parse(time.RFC3339Nano, at); err != nil || time.Since(when).Abs() > time.Minute {
				t.Errorf("text=%v: time %q is not now in RFC 3339 (%v)", text, at, err)
			}
			if line != want.String() {
				t.Errorf("text=%v, path %q:\n got %s\nwant %s", text, path, line, want.String())
			}
		}
	}
}
