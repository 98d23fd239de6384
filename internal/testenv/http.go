package testenv

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Response is an HTTP answer as a test reads it: the status, the header and the whole body.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Do sends req with client (http.DefaultClient when nil) and reads the whole answer; when the
// body cannot be read to its end, the error comes with the status, the header and what was read.
// It fails no test, so it may be called from any goroutine.
func Do(client *http.Client, req *http.Request) (Response, error) {
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return Response{Status: res.StatusCode, Header: res.Header, Body: string(body)}, err
}

// Fetch is Do for the test's own goroutine: an answer that cannot be had or read fails the test.
func Fetch(t testing.TB, client *http.Client, req *http.Request) Response {
	t.Helper()
	res, err := Do(client, req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// HTTPGet gets url, failing the test when no answer can be had or read.
func HTTPGet(t testing.TB, url string) Response {
	t.Helper()
	return Fetch(t, nil, NewRequest(t, http.MethodGet, url, "", ""))
}

// NewRequest returns a request of method for url with body; with a token, it carries it as a
// bearer token, and the body as JSON, as the api's clients write.
func NewRequest(t testing.TB, method, url, token, body string) *http.Request {
	t.Helper()
	req, err := newRequest(t.Context(), method, url, token, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// Post posts body, JSON, to url with a bearer token, failing the test when no answer can be had
// or read.
func Post(t testing.TB, url, token, body string) Response {
	t.Helper()
	return Fetch(t, nil, NewRequest(t, http.MethodPost, url, token, body))
}

// TryPost is Post for any goroutine: it fails no test, and returns the error instead.
func TryPost(url, token, body string) (Response, error) {
	req, err := newRequest(context.Background(), http.MethodPost, url, token, body)
	if err != nil {
		return Response{}, err
	}
	return Do(nil, req)
}

func newRequest(ctx context.Context, method, url, token, body string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err == nil && token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
	}
	return req, err
}
