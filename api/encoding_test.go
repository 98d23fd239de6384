package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
)

// bigJob is a user's job whose one value is about 9 KiB, large enough to be compressed.
const bigJob = `jobs:
  big:
    schedule: "@hourly"
    ttl: 2h
    sql: SELECT string_agg(customerid::text || ':' || username, ',') AS users FROM customers WHERE customerid <= 700
`

func gunzip(t *testing.T, body string) string {
	t.Helper()
	r, err := gzip.NewReader(strings.NewReader(body))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGzip: a large cached value is sent gzipped to clients that accept it, under an ETag of its
// own, with Vary: Accept-Encoding on every answer of it; small values are sent as they are.
func TestGzip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{jobs: bigJob})
	f.warm()
	enc := func(accept string, extra ...string) http.Header {
		h := http.Header{"Accept-Encoding": {accept}}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	plain := f.do(http.MethodGet, "/v1/results/big", enc("identity"))
	if plain.status != 200 || len(plain.body) < 4096 || plain.header.Get("Content-Encoding") != "" ||
		plain.header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("identity: %d, %d bytes, %v", plain.status, len(plain.body), plain.header)
	}
	etag := plain.header.Get("ETag")
	gzipTag := strings.TrimSuffix(etag, `"`) + `-gzip"`
	for _, accept := range []string{"gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8, *;q=0.1", "x-gzip", "*"} {
		res := f.do(http.MethodGet, "/v1/results/big", enc(accept))
		if res.status != 200 || res.header.Get("Content-Encoding") != "gzip" || res.header.Get("ETag") != gzipTag ||
			res.header.Get("Vary") != "Accept-Encoding" || len(res.body) >= len(plain.body)/2 {
			t.Fatalf("Accept-Encoding %s: %d, %d bytes, %v", accept, res.status, len(res.body), res.header)
		}
		if got := gunzip(t, res.body); got != plain.body {
			t.Fatalf("Accept-Encoding %s: the gzip body does not hold the value", accept)
		}
	}
	for _, accept := range []string{"gzip;q=0", "deflate", "br", "identity"} {
		if res := f.do(http.MethodGet, "/v1/results/big", enc(accept)); res.header.Get("Content-Encoding") != "" || res.body != plain.body {
			t.Errorf("Accept-Encoding %s: Content-Encoding %q", accept, res.header.Get("Content-Encoding"))
		}
	}
	// Either representation's tag says the client has the current value; the 304 carries the
	// tag of the representation it would get.
	for _, tc := range []struct{ accept, inm, want string }{
		{"gzip", gzipTag, gzipTag},
		{"gzip", etag, gzipTag},
		{"identity", gzipTag, etag},
		{"identity", etag, etag},
	} {
		res := f.do(http.MethodGet, "/v1/results/big", enc(tc.accept, "If-None-Match", tc.inm))
		if res.status != 304 || res.header.Get("ETag") != tc.want || res.header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %s, If-None-Match %s: %d ETag %s Vary %q, want 304 %s", tc.accept, tc.inm,
				res.status, res.header.Get("ETag"), res.header.Get("Vary"), tc.want)
		}
	}
	zipped := f.do(http.MethodGet, "/v1/results/big", enc("gzip"))
	head := f.do(http.MethodHead, "/v1/results/big", enc("gzip"))
	if head.header.Get("Content-Length") != zipped.header.Get("Content-Length") || head.header.Get("Content-Encoding") != "gzip" {
		t.Errorf("HEAD: Content-Length %s, GET's %s", head.header.Get("Content-Length"), zipped.header.Get("Content-Length"))
	}
	// A small value is never compressed, and varies with nothing.
	small := f.do(http.MethodGet, "/v1/orders/count?customerid=42", enc("gzip"))
	if small.status != 200 || small.header.Get("Content-Encoding") != "" || small.header.Get("Vary") != "" {
		t.Errorf("a small value: %d %v", small.status, small.header)
	}
	// The routes that are not cached reads compress what is large.
	for _, path := range []string{"/openapi.json", "/docs", "/v1/jobs"} {
		res := f.do(http.MethodGet, path, enc("gzip"))
		if res.status != 200 || res.header.Get("Content-Encoding") != "gzip" || !strings.Contains(res.header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("%s: %d %v", path, res.status, res.header)
		}
		if identity := f.do(http.MethodGet, path, enc("identity")); !bytes.Equal([]byte(gunzip(t, res.body)), []byte(identity.body)) {
			t.Errorf("%s: the gzip body differs from the identity one", path)
		}
	}
}

// TestCORS: with CORS_ORIGINS set, the pages of those origins may read and write from a browser;
// without, no answer allows any origin.
func TestCORS(t *testing.T) {
	t.Parallel()
	const app = "https://app.example"
	f := newFixture(t, fixtureOptions{token: token, cors: []string{app, "https://*.tools.example"}})
	f.warm()
	for origin, allowed := range map[string]bool{app: true, "https://ops.tools.example": true, "https://evil.example": false} {
		res := f.do(http.MethodGet, "/v1/orders/count", http.Header{"Origin": {origin}})
		if got := res.header.Get("Access-Control-Allow-Origin"); res.status != 200 || (got == origin) != allowed ||
			!strings.Contains(res.header.Get("Vary"), "Origin") {
			t.Errorf("origin %s: %d, Access-Control-Allow-Origin %q, Vary %q", origin, res.status, got, res.header.Get("Vary"))
		}
		if allowed && !strings.Contains(res.header.Get("Access-Control-Expose-Headers"), "X-Cache") {
			t.Errorf("origin %s: the hit header is not exposed: %v", origin, res.header)
		}
	}
	pre := f.do(http.MethodOptions, "/v1/orders", http.Header{"Origin": {app}, "Access-Control-Request-Method": {"POST"},
		"Access-Control-Request-Headers": {"authorization,content-type"}})
	if pre.status != 204 || pre.header.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight of a write: %d %v", pre.status, pre.header)
	}
	off := newFixture(t, fixtureOptions{})
	if res := off.do(http.MethodGet, "/v1/orders/count", http.Header{"Origin": {app}}); res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS off by default, yet %v", res.header)
	}
}
