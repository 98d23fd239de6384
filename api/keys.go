package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/jobs"
)

// Pages of keys: limit keys a page by default, at most maxLimit.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// keyPage is a page of a keyed job's keys.
type keyPage struct {
	Job  string   `json:"job"`
	Keys []string `json:"keys"`
	// NextCursor and Next go on to the next page; both are absent on the last.
	NextCursor string `json:"next_cursor,omitempty"`
	Next       string `json:"next,omitempty"`
}

// listKeys answers a page of the keys job holds values for in Redis (cache.Store.ListKeys: SCAN,
// never KEYS): about ?limit= of them from ?cursor=, and the URL of the next page. A page may hold
// fewer keys, even none, before the last.
func (s *Server) listKeys(c echo.Context, job jobs.Job) error {
	limit := defaultLimit
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return public(errInvalid, "limit must be a number from 1 to %d", maxLimit)
		}
		limit = n
	}
	keys, next, err := s.store.ListKeys(c.Request().Context(), job.Name, c.QueryParam("cursor"), limit)
	switch {
	case errors.Is(err, cache.ErrInvalidCursor):
		return public(err, "the cursor is not one this api gave, or the Redis Cluster changed: list again from the start")
	case err != nil:
		return fmt.Errorf("list the keys of %s: %w", job.Name, err)
	}
	page := keyPage{Job: job.Name, Keys: keys, NextCursor: next}
	if next != "" {
		page.Next = "/v1/results/" + job.Name + "?" + url.Values{"cursor": {next}, "limit": {strconv.Itoa(limit)}}.Encode()
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
	return c.JSON(http.StatusOK, page)
}
