package api

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestAccessLog: every answer carries a request id, the client's when it sent a usable one; with
// the access log on, each request is one line holding the id, method, path, status, size,
// duration and hit header, errors included; with it off, no line.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	var log logBuffer
	f := newFixture(t, fixtureOptions{accessLog: true, logger: slog.New(slog.NewJSONHandler(&log, nil))})
	for _, tc := range []struct {
		name, path, sent string
		status           int
		kept             bool // the answer's id is the one sent
	}{
		{"a read with the client's id", "/v1/credit", "abc", http.StatusOK, true},
		{"a 404 with the client's id", "/v1/orders/count?customerid=999999", "req-404", http.StatusNotFound, true},
		{"a 400 without an id", "/v1/orders/count?customerid=x", "", http.StatusBadRequest, false},
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
		if _, ok := line["duration_ms"].(float64); !ok {
			t.Errorf("%s: access-log line without duration_ms: %v", tc.name, line)
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
