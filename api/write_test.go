package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/warmcache/warmcache/query"
)

const token = "s3cret-token"

// orders counts the orders in the fixture's database.
func (f *fixture) orders() string {
	f.t.Helper()
	count, err := query.UserSQL("SELECT count(*) AS n FROM orders", "")
	if err != nil {
		f.t.Fatal(err)
	}
	row, err := f.db.Lookup(context.Background(), count, query.Params{}, "", query.Latest)
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := json.Marshal(row.Value)
	return string(b)
}

func TestCreateOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{token: token})
	for _, tc := range []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"the tutorial's order", `{"orderdate":"2023-03-10","customerid":9999,"netamount":23.0,"tax":2.0}`, 201, `"totalamount":25.00`},
		{"with its total", `{"orderdate":"2023-03-10","customerid":1,"netamount":10.5,"tax":0.87,"totalamount":11.37}`, 201, `"totalamount":11.37`},
		{"amounts as strings", `{"orderdate":"2023-03-10","customerid":1,"netamount":"10","tax":"0"}`, 201, `"netamount":10`},
		{"zero amounts", `{"orderdate":"2024-02-29","customerid":1,"netamount":0,"tax":0}`, 201, `"orderid"`},
		{"cut short", `{"orderdate":`, 400, "cut short"},
		{"not JSON", `{"orderdate" "x"}`, 400, "invalid JSON"},
		{"empty body", ``, 400, "empty"},
		{"an array", `[1,2]`, 400, "not an order"},
		{"two objects", `{"orderdate":"2023-03-10","customerid":1,"netamount":1,"tax":0} {}`, 400, "more than one"},
		{"unknown field", `{"orderdate":"2023-03-10","customerid":1,"netamount":1,"tax":0,"discount":5}`, 400, "discount"},
		{"customer id as text", `{"orderdate":"2023-03-10","customerid":"one","netamount":1,"tax":0}`, 400, "customerid must be an integer"},
		{"fractional customer id", `{"orderdate":"2023-03-10","customerid":1.5,"netamount":1,"tax":0}`, 400, "customerid must be an integer"},
		{"amount as an object", `{"orderdate":"2023-03-10","customerid":1,"netamount":{},"tax":0}`, 400, "not an order"},
		{"missing fields", `{"customerid":1}`, 422, "orderdate is required"},
		{"date that does not exist", `{"orderdate":"2023-02-30","customerid":1,"netamount":1,"tax":0}`, 422, "orderdate"},
		{"date in another form", `{"orderdate":"10/03/2023","customerid":1,"netamount":1,"tax":0}`, 422, "orderdate"},
		{"negative amount", `{"orderdate":"2023-03-10","customerid":1,"netamount":-1,"tax":0}`, 422, "netamount must not be negative"},
		{"three decimals", `{"orderdate":"2023-03-10","customerid":1,"netamount":1.005,"tax":0}`, 422, "two decimals"},
		{"too large", `{"orderdate":"2023-03-10","customerid":1,"netamount":99999999999,"tax":0}`, 422, "too large"},
		{"wrong total", `{"orderdate":"2023-03-10","customerid":1,"netamount":1,"tax":1,"totalamount":3}`, 422, "totalamount"},
		{"zero customer", `{"orderdate":"2023-03-10","customerid":0,"netamount":1,"tax":0}`, 422, "customerid"},
		{"unknown customer", `{"orderdate":"2023-03-10","customerid":12345678,"netamount":1,"tax":0}`, 422, "customer 12345678 does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.orders()
			res := f.post("/v1/orders", token, tc.body)
			if res.status != tc.status || !strings.Contains(res.body, tc.want) {
				t.Fatalf("%d %s, want %d containing %q", res.status, res.body, tc.status, tc.want)
			}
			if after := f.orders(); tc.status != 201 && after != before {
				t.Errorf("a refused order changed the orders from %s to %s", before, after)
			}
			if tc.status != 201 {
				return
			}
			// Location names the order, which reads back as it was answered.
			var created struct{ OrderID int64 }
			if err := json.Unmarshal([]byte(res.body), &created); err != nil {
				t.Fatal(err)
			}
			loc := res.header.Get("Location")
			if loc != "/v1/orders/"+strconv.FormatInt(created.OrderID, 10) {
				t.Fatalf("Location %q for order %d", loc, created.OrderID)
			}
			if got := f.get(loc); got.status != 200 || got.body != res.body {
				t.Errorf("GET %s: %d %s, want the 201's body %s", loc, got.status, got.body, res.body)
			}
		})
	}
	for path, want := range map[string]int{"/v1/orders/99999999": 404, "/v1/orders/abc": 400, "/v1/orders/-1": 400} {
		if res := f.get(path); res.status != want || !strings.Contains(res.body, `"error"`) {
			t.Errorf("GET %s: %d %s, want %d", path, res.status, res.body, want)
		}
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	order := `{"orderdate":"2023-03-10","customerid":1,"netamount":1,"tax":0}`
	open := newFixture(t, fixtureOptions{})
	before := open.orders()
	if res := open.post("/v1/orders", "anything", order); res.status != http.StatusForbidden || !strings.Contains(res.body, "API_TOKEN") {
		t.Errorf("writes without API_TOKEN configured: %d %s, want 403", res.status, res.body)
	}
	if open.orders() != before {
		t.Error("an order was written without API_TOKEN configured")
	}
	f := newFixture(t, fixtureOptions{token: token})
	before = f.orders()
	for _, tc := range []struct {
		name, path, header string
		status             int
	}{
		{"no header", "/v1/orders", "", 401},
		{"not bearer", "/v1/orders", "Basic " + token, 401},
		{"empty bearer", "/v1/orders", "Bearer ", 401},
		{"wrong token", "/v1/orders", "Bearer wrong", 403},
		{"token with a suffix", "/v1/orders", "Bearer " + token + "x", 403},
		{"tutorial route, no header", "/add/", "", 401},
		{"run request, wrong token", "/v1/jobs/orders_total/run", "Bearer wrong", 403},
	} {
		header := http.Header{"Content-Type": {"application/json"}}
		if tc.header != "" {
			header.Set("Authorization", tc.header)
		}
		res := f.fetch(t, http.MethodPost, tc.path, header, order)
		if res.status != tc.status || !strings.Contains(res.body, `"error"`) {
			t.Errorf("%s: %d %s, want %d", tc.name, res.status, res.body, tc.status)
		}
		if tc.status == 401 && !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: no WWW-Authenticate challenge", tc.name)
		}
	}
	if f.orders() != before {
		t.Error("an order was written without the right token")
	}
}

// TestTutorialAdd: the tutorials post to /add/ and to /add; both insert the order.
func TestTutorialAdd(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{token: token})
	for _, path := range []string{"/add/", "/add"} {
		before := f.orders()
		res := f.post(path, token, `{"orderdate":"2023-03-10","customerid":9999,"netamount":23.0,"tax":2.0}`)
		var got struct {
			Updated struct{ Customer int64 } `json:"updated"`
			OrderID int64                    `json:"orderid"`
		}
		if err := json.Unmarshal([]byte(res.body), &got); err != nil || res.status != 200 || got.Updated.Customer != 9999 || got.OrderID == 0 {
			t.Errorf("POST %s: %d %s", path, res.status, res.body)
		}
		if f.orders() == before {
			t.Errorf("POST %s wrote no order", path)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{token: token})
	before := f.orders()
	body := `{"orderdate":"2023-03-10","customerid":1,"netamount":1,"tax":0,"pad":"` + strings.Repeat("x", 64<<10) + `"}`
	if res := f.post("/v1/orders", token, body); res.status != http.StatusRequestEntityTooLarge || !strings.Contains(res.body, `"error"`) {
		t.Errorf("a 64 KiB body: %d %s, want 413", res.status, res.body)
	}
	if f.orders() != before {
		t.Error("an oversized body wrote an order")
	}
}

func TestRunRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{token: token})
	if res := f.post("/v1/jobs/nope/run", token, ""); res.status != 404 {
		t.Errorf("run of an unknown job: %d %s", res.status, res.body)
	}
	res := f.post("/v1/jobs/orders_by_customer/run", token, "")
	if res.status != http.StatusAccepted || !strings.Contains(res.body, `"status":"requested"`) {
		t.Fatalf("run request: %d %s", res.status, res.body)
	}
	for range 3 {
		if res := f.post("/v1/jobs/orders_total/run", token, ""); res.status != http.StatusAccepted {
			t.Fatalf("run request: %d %s", res.status, res.body)
		}
	}
	requested, err := f.db.Runs().RequestedRuns(context.Background(), f.ns)
	if err != nil || !slices.Equal(requested, []string{"orders_by_customer", "orders_total"}) {
		t.Errorf("runs requested: %v, %v; want one of each job asked for", requested, err)
	}
}

// FuzzOrderBody: whatever the body, decoding gives a valid order or a 400/422, never a panic,
// and what passes validation fits the orders table.
func FuzzOrderBody(f *testing.F) {
	for _, s := range []string{`{"orderdate":"2023-03-10","customerid":9999,"netamount":23.0,"tax":2.0}`,
		`{"orderdate":"2023-02-29","customerid":-1,"netamount":"1e3","tax":null}`, `{}`, `[]`, `null`, `{"totalamount":0.001}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		o, err := decodeOrder(strings.NewReader(body))
		if err != nil {
			if status := statusOf(err); status != 400 && status != 422 {
				t.Fatalf("%q: status %d", body, status)
			}
			return
		}
		if err := o.Validate(); err != nil {
			return
		}
		if o.CustomerID <= 0 || o.NetAmount.Rat().Sign() < 0 || o.Tax.Rat().Sign() < 0 || o.OrderDate.IsZero() {
			t.Fatalf("%q passed validation as %+v", body, o)
		}
	})
}
