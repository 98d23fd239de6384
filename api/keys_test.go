package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestListKeys pages through a keyed job's keys: every customer's once, and not the unknown
// customer whose 404 is cached.
func TestListKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	f.warm()
	if res := f.get("/v1/orders/count?customerid=20001"); res.status != 404 {
		t.Fatalf("unknown customer: %d", res.status)
	}
	listed := map[string]bool{}
	pages := 0
	for next := "/v1/results/orders_by_customer?limit=1000"; next != ""; pages++ {
		res := f.get(next)
		var page struct {
			Job        string   `json:"job"`
			Keys       []string `json:"keys"`
			NextCursor string   `json:"next_cursor"`
			Next       string   `json:"next"`
		}
		if err := json.Unmarshal([]byte(res.body), &page); err != nil || res.status != 200 || page.Job != "orders_by_customer" ||
			res.header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("GET %s: %d %.200s", next, res.status, res.body)
		}
		if len(page.Keys) > 2000 || pages > 10000 {
			t.Fatalf("page %d of %d keys, for a limit of 1000", pages, len(page.Keys))
		}
		for _, k := range page.Keys {
			if listed[k] {
				t.Fatalf("key %s listed twice", k)
			}
			listed[k] = true
		}
		if (page.Next == "") != (page.NextCursor == "") || page.Next != "" && !strings.Contains(page.Next, "cursor="+page.NextCursor) {
			t.Fatalf("next %q, cursor %q", page.Next, page.NextCursor)
		}
		next = page.Next
	}
	if len(listed) != 20000 || listed["20001"] || !listed["1"] || !listed["20000"] {
		t.Errorf("listed %d keys (20001: %v), want the 20000 customers", len(listed), listed["20001"])
	}
	for path, want := range map[string]int{
		"/v1/results/orders_by_customer?cursor=bogus": 400,
		"/v1/results/orders_by_customer?limit=0":      400,
		"/v1/results/orders_by_customer?limit=1001":   400,
		"/v1/results/nope?cursor=":                    404,
	} {
		if res := f.get(path); res.status != want || !strings.Contains(res.body, `"error"`) {
			t.Errorf("GET %s: %d %s, want %d", path, res.status, res.body, want)
		}
	}
}
