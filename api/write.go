package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
)

// maxBody bounds a write's body; an order is a few dozen bytes.
const maxBody = 16 << 10

// requireToken lets a request through only with Authorization: Bearer <API_TOKEN>. Without a
// configured token nothing gets through: writes are off unless someone turned them on.
func (s *Server) requireToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.APIToken == "" {
			return public(errForbidden, "writes are disabled: the api has no API_TOKEN")
		}
		token, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		if !ok || token == "" {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="warmcache"`)
			return public(errUnauthorized, "an Authorization: Bearer <token> header is required")
		}
		// Comparing hashes keeps the comparison constant-time whatever the lengths.
		got, want := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(s.cfg.APIToken))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return public(errForbidden, "the token is not valid")
		}
		return next(c)
	}
}

// orderBody is the body of POST /v1/orders and POST /add/. Pointers tell a missing field from a
// zero one.
type orderBody struct {
	OrderDate   *string        `json:"orderdate"`
	CustomerID  *int64         `json:"customerid"`
	NetAmount   *query.Decimal `json:"netamount"`
	Tax         *query.Decimal `json:"tax"`
	TotalAmount *query.Decimal `json:"totalamount"`
}

// createOrder inserts an order: 201 with the order, and its URL in Location. A body that is not
// an order's JSON is a 400; an order that breaks a rule (a date that does not exist, a negative
// amount, a total that is not net plus tax, a customer that does not exist) is a 422, and
// nothing is written.
func (s *Server) createOrder(c echo.Context) error {
	o, err := s.insertOrder(c)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/orders/"+strconv.FormatInt(o.OrderID, 10))
	return c.JSON(http.StatusCreated, o)
}

// addOrder is the tutorials' POST /add/: the same insert, answered as they answered it.
func (s *Server) addOrder(c echo.Context) error {
	o, err := s.insertOrder(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"updated": map[string]int64{"customer": o.CustomerID}, "orderid": o.OrderID})
}

func (s *Server) insertOrder(c echo.Context) (query.Order, error) {
	if _, on := s.byName[jobs.OrdersTotal]; !on {
		return query.Order{}, errBuiltinsOff("orders")
	}
	order, err := decodeOrder(c.Request().Body)
	if err != nil {
		return query.Order{}, err
	}
	// PostgreSQL not answering within QUERY_TIMEOUT is a 503, and the transaction is rolled back.
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.QueryTimeout)
	defer cancel()
	stored, err := s.db.InsertOrder(ctx, order)
	var invalid *query.InvalidOrderError
	switch {
	case errors.As(err, &invalid):
		return query.Order{}, public(err, "%s", strings.Join(invalid.Problems, "; "))
	case errors.Is(err, query.ErrUnknownCustomer):
		return query.Order{}, public(err, "customer %d does not exist", order.CustomerID)
	case err != nil:
		return query.Order{}, fmt.Errorf("insert order: %w", err)
	}
	s.Logger.Info("order_created", "orderid", stored.OrderID, "customerid", order.CustomerID)
	// The api's writes spare PostgreSQL's notification (query.Options.QuietWrites): tell the
	// relays here. If Redis does not hear it, they find the change at their next poll.
	if err := s.store.Wake(c.Request().Context()); err != nil {
		s.Logger.Debug("wake_failed", "error", err)
	}
	// Where the commit is: a read sending it back gets a value that holds the write.
	c.Response().Header().Set(HeaderPosition, query.FormatPosition(stored.Position))
	return stored, nil
}

// getOrder answers an order as stored, the resource POST /v1/orders creates, from PostgreSQL
// (within the limit of queries at once). It is not cached: an order is read once in a while,
// not served by the thousand.
func (s *Server) getOrder(c echo.Context) error {
	if _, on := s.byName[jobs.OrdersTotal]; !on {
		return errBuiltinsOff("orders")
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return public(errInvalid, "%q is not an order id (a positive integer)", c.Param("id"))
	}
	// QUERY_TIMEOUT bounds the wait for a turn among MAX_QUERIES and the query, as compute's.
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.QueryTimeout)
	defer cancel()
	if err := s.queries.Acquire(ctx, 1); err != nil {
		return fmt.Errorf("wait to query: %w", err)
	}
	defer s.queries.Release(1)
	o, err := s.db.Order(ctx, id)
	switch {
	case errors.Is(err, query.ErrNotFound):
		return public(err, "order %d not found", id)
	case err != nil:
		return fmt.Errorf("read order %d: %w", id, err)
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-cache")
	return c.JSON(http.StatusOK, o)
}

// decodeOrder reads an order strictly: one JSON object, no unknown fields, numbers where numbers
// go. What cannot be read is a 400; what reads but is not a valid order is a 422.
func decodeOrder(r io.Reader) (query.NewOrder, error) {
	raw, err := io.ReadAll(r)
	switch {
	case errors.Is(err, echo.ErrStatusRequestEntityTooLarge):
		// A body without a length (chunked) is cut off by the limit as it is read.
		return query.NewOrder{}, err
	case err != nil:
		return query.NewOrder{}, public(errInvalid, "the body could not be read")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var b orderBody
	if err := dec.Decode(&b); err != nil {
		return query.NewOrder{}, public(errInvalid, "the body is not an order: %s", jsonProblem(err))
	}
	if dec.More() {
		return query.NewOrder{}, public(errInvalid, "the body has more than one JSON value")
	}
	var problems []string
	var o query.NewOrder
	if b.CustomerID == nil {
		problems = append(problems, "customerid is required")
	} else {
		o.CustomerID = *b.CustomerID
	}
	if b.OrderDate == nil {
		problems = append(problems, "orderdate is required")
	} else if d, err := query.ParseDate(*b.OrderDate); err != nil {
		problems = append(problems, "orderdate "+err.Error())
	} else {
		o.OrderDate = d
	}
	for name, v := range map[string]*query.Decimal{"netamount": b.NetAmount, "tax": b.Tax} {
		if v == nil {
			problems = append(problems, name+" is required")
		}
	}
	if len(problems) > 0 {
		return query.NewOrder{}, public(errUnprocessable, "%s", strings.Join(problems, "; "))
	}
	o.NetAmount, o.Tax, o.TotalAmount = *b.NetAmount, *b.Tax, b.TotalAmount
	return o, nil
}

// jsonProblem says what is wrong with a body in words a client can act on, without echoing it.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		kind := "a " + typ.Type.String()
		switch typ.Type.Kind() {
		case reflect.Int, reflect.Int64:
			kind = "an integer"
		case reflect.String:
			kind = "a string"
		}
		return fmt.Sprintf("%s must be %s", typ.Field, kind)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is empty or cut short"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "its values are not of the right kinds"
}

// runJob asks the warmers to run a job now: 202, and GET /v1/jobs shows the run once it starts.
// Requests made before a warmer takes one coalesce into it.
func (s *Server) runJob(c echo.Context) error {
	job, ok := s.byName[c.Param("job")]
	if !ok {
		return public(errNotFound, "no job is called %q", c.Param("job"))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.QueryTimeout)
	defer cancel()
	if err := s.db.Runs().RequestRun(ctx, s.cfg.Keys.Namespace(), job.Name); err != nil {
		return fmt.Errorf("request a run of %s: %w", job.Name, err)
	}
	s.Logger.Info("run_requested", "job", job.Name)
	return c.JSON(http.StatusAccepted, map[string]string{"job": job.Name, "status": "requested", "status_url": "/v1/jobs"})
}
