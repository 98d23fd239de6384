package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"
)

// loadOpenAPI loads and validates /openapi.json with kin-openapi, as code generators read it.
func loadOpenAPI(t *testing.T, doc []byte) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(doc)
	if err != nil {
		t.Fatalf("load /openapi.json: %v", err)
	}
	if err := spec.Validate(context.Background()); err != nil {
		t.Fatalf("/openapi.json is not a valid OpenAPI document: %v", err)
	}
	return spec
}

// TestOpenAPIIsValid: the document validates, documents every route the api serves and no
// other, and gives every success a schema, so that a code generator makes typed clients.
func TestOpenAPIIsValid(t *testing.T) {
	t.Parallel()
	spec := loadOpenAPI(t, openAPIDoc)
	f := newFixture(t, fixtureOptions{})
	served := map[string]bool{}
	param := regexp.MustCompile(`:([a-z]+)`)
	for _, r := range f.srv.Handler().(*echo.Echo).Routes() {
		if r.Method == http.MethodHead || strings.HasPrefix(r.Path, "/*") || r.Method == echo.RouteNotFound {
			continue
		}
		served[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	// The admin listener's own routes (the status page, the metrics) are documented too; the
	// profiles and its redirect to the status page are not part of the API.
	for _, r := range f.srv.AdminHandler().(*echo.Echo).Routes() {
		if adminOnly[r.Path] && r.Method == http.MethodGet {
			served[r.Method+" "+r.Path] = true
		}
	}
	documented := map[string]bool{}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = true
			for code, res := range op.Responses.Map() {
				if !strings.HasPrefix(code, "2") {
					continue
				}
				content := res.Value.Content
				if len(content) == 0 {
					t.Errorf("%s %s: answer %s has no content", method, path, code)
				}
				for mime, media := range content {
					if media.Schema == nil {
						t.Errorf("%s %s: answer %s (%s) has no schema", method, path, code, mime)
					}
				}
			}
		}
	}
	for route := range served {
		if !documented[route] {
			t.Errorf("%s is served but not documented", route)
		}
	}
	for route := range documented {
		if !served[route] {
			t.Errorf("%s is documented but not served", route)
		}
	}
}

// TestOpenAPIDescribesTheAnswers sends a request to every documented operation, and more, and
// checks each answer (status, headers, body) against the document with kin-openapi: a schema
// that says less, or otherwise, than the api answers fails.
func TestOpenAPIDescribesTheAnswers(t *testing.T) {
	t.Parallel()
	spec := loadOpenAPI(t, openAPIDoc)
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatal(err)
	}
	// HTML is checked for being a string, as text/plain is.
	openapi3filter.RegisterBodyDecoder("text/html", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef,
		_ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(body)
		return string(b), err
	})
	f := newFixture(t, fixtureOptions{token: token, jobs: bigJob})
	f.warm()
	order := `{"orderdate":"2023-03-10","customerid":42,"netamount":23.0,"tax":2.0}`
	created := f.post("/v1/orders", token, order)
	var o struct{ OrderID int64 }
	if err := json.Unmarshal([]byte(created.body), &o); err != nil {
		t.Fatal(err)
	}
	credit := f.get("/v1/credit")
	covered := map[string]bool{}
	auth := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	type request struct {
		method, path string
		header       http.Header
		body         string
		status       int
	}
	var requests []request
	for _, get := range []struct {
		path   string
		status int
	}{
		{"/", 200},
		{"/v1/orders/count", 200},
		{"/v1/orders/count?customerid=42", 200},
		{"/v1/orders/count?customerid=20001", 404},
		{"/v1/orders/count?customerid=abc", 400},
		{"/v1/customers/42/credit", 200},
		{"/v1/customers/1/credit", 200},
		{"/v1/customers/99999/credit", 404},
		{"/v1/credit", 200},
		{"/v1/results/orders_total", 200},
		{"/v1/results/orders_by_customer?limit=5", 200},
		{"/v1/results/orders_by_customer?cursor=bogus", 400},
		{"/v1/results/nope", 404},
		{"/v1/results/orders_by_customer/42", 200},
		{"/v1/jobs", 200},
		{"/v1/jobs/orders_total/runs", 200},
		{"/v1/jobs/nope/runs", 404},
		{"/v1/orders/" + itoa(int(o.OrderID)), 200},
		{"/v1/orders/99999999", 404},
		{"/count", 200},
		{"/count?customerid=42", 200},
		{"/cachedResults", 200},
		{"/healthz", 200},
		{"/readyz", 200},
		{"/v1/status", 200}, // the admin listener's, below
		{"/status", 200},
		{"/metrics", 200},
		{"/openapi.json", 200},
		{"/docs", 200},
	} {
		requests = append(requests, request{method: http.MethodGet, path: get.path, status: get.status})
	}
	// The reads with a header, and the writes.
	requests = append(requests, []request{
		{"GET", "/", http.Header{"Accept": {"text/html"}}, "", 200},
		{"GET", "/v1/credit", http.Header{"If-None-Match": {credit.header.Get("ETag")}}, "", 304},
		{"GET", "/v1/results/big", http.Header{"Accept-Encoding": {"identity"}}, "", 200},
		{"POST", "/v1/jobs/orders_total/run", auth, "", 202},
		{"POST", "/v1/jobs/orders_total/run", nil, "", 401},
		{"POST", "/v1/orders", auth, order, 201},
		{"POST", "/v1/orders", auth, `{"orderdate":"2023-02-30","customerid":42,"netamount":1,"tax":0}`, 422},
		{"POST", "/add/", auth, order, 200},
		{"POST", "/add", auth, order, 200},
	}...)
	for _, tc := range requests {
		name := tc.method + " " + tc.path
		srv := f.http
		if adminOnly[tc.path] {
			srv = f.admin
		}
		res := f.fetchAt(t, srv, tc.method, tc.path, tc.header, tc.body)
		if res.status != tc.status {
			t.Errorf("%s: %d, want %d: %s", name, res.status, tc.status, res.body)
			continue
		}
		req, err := http.NewRequest(tc.method, "http://"+strings.TrimPrefix(f.http.URL, "http://")+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.header {
			req.Header[k] = v
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s: not in the document: %v", name, err)
			continue
		}
		input := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
			Status:  res.status,
			Header:  res.header,
			Body:    io.NopCloser(bytes.NewReader([]byte(res.body))),
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		input.SetBodyBytes([]byte(res.body))
		if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
			t.Errorf("%s: the answer (%d) breaks the document: %v\n%.300s", name, res.status, err, res.body)
		}
		if tc.status < 300 && tc.body != "" && !strings.Contains(tc.path, "run") {
			if err := openapi3filter.ValidateRequest(context.Background(), input.RequestValidationInput); err != nil {
				t.Errorf("%s: the request breaks the document: %v", name, err)
			}
		}
		covered[route.Method+" "+route.Path] = true
	}
	for path, item := range spec.Paths.Map() {
		for method := range item.Operations() {
			if !covered[method+" "+path] {
				t.Errorf("no request checks %s %s", method, path)
			}
		}
	}
}
