// Package api is warmcache's HTTP API on echo v4: routes, status codes, headers, conditional
// requests and compression. It asks package readthrough for the jobs' values, which decides where
// each comes from (the in-process tier, Redis, PostgreSQL), and writes the answer's prepared
// headers and stored bytes. It owns every status code, and the one table from errors to them.
package api

import (
	"context"
	"io"
	"net/http"
	"net/http/pprof"
	"net/textproto"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/semaphore"

	"github.com/warmcache/warmcache/cache"
	"github.com/warmcache/warmcache/internal/baseservice"
	"github.com/warmcache/warmcache/jobs"
	"github.com/warmcache/warmcache/query"
	"github.com/warmcache/warmcache/readthrough"
	"github.com/warmcache/warmcache/warm"
)

// Config tunes the API.
type Config struct {
	// CacheHeader names the header that says HIT, MISS, STALE or BYPASS.
	CacheHeader string
	// QueryTimeout bounds computing one value from PostgreSQL.
	QueryTimeout time.Duration
	// MaxQueries bounds the values computed from PostgreSQL at once.
	MaxQueries int64
	// LeaseWait is how long a replica waits for the value another replica is computing.
	LeaseWait time.Duration
	// Keys are the deployment's keys (CACHE_NAMESPACE): runs are requested in its namespace, and
	// answers carry its surrogate keys.
	Keys cache.Keys
	// MaxAge is the freshness browsers and every other cache get (HTTP_MAX_AGE).
	MaxAge time.Duration
	// SharedMaxAge is the freshness shared caches get (s-maxage) when the warmer purges them of
	// changed values; zero without purging (HTTP_SHARED_MAX_AGE and PURGE_URLS).
	SharedMaxAge time.Duration
	// SurrogateKeyHeader names the header of an answer's surrogate keys (SURROGATE_KEY_HEADER).
	SurrogateKeyHeader string
	// LocalCacheSize bounds the in-process tier, in bytes (LOCAL_CACHE_SIZE); zero turns it off.
	LocalCacheSize uint64
	// LocalCacheTTL is the longest the in-process tier keeps a value (LOCAL_CACHE_TTL): the
	// safety net, should a change never be told.
	LocalCacheTTL time.Duration
	// APIToken is the bearer token of writes and admin actions; empty refuses them all.
	APIToken string
	// AccessLog, when set, receives one line per request (ACCESS_LOG), in JSON, or in logfmt with
	// AccessLogText (LOG_FORMAT).
	AccessLog     io.Writer
	AccessLogText bool
	// CORSOrigins are the origins whose pages may call the api from a browser (CORS_ORIGINS):
	// exact origins, "*" for any, or patterns with * ("https://*.example.com"). None by default:
	// CORS is off.
	CORSOrigins []string
}

// Store is what the api needs of Redis (cache.Store): what reads need (readthrough.Store), the
// jobs' run records, a job's keys and the warmers' lag for the listings and the status page, the
// wake-up it sends the warmers after a write, and a ping for its probes.
type Store interface {
	readthrough.Store
	History(ctx context.Context, n int, jobs ...string) (map[string][]cache.Run, error)
	ListKeys(ctx context.Context, job, from string, count int) (keys []string, next string, err error)
	LagWindows(ctx context.Context) ([]cache.LagWindow, error)
	Wake(ctx context.Context) error
	Ping(ctx context.Context) error
}

var _ Store = (*cache.Store)(nil)

// Database is what the api needs of PostgreSQL (query.DB): what reads need (warm.Source), the
// orders it writes and reads, run requests, the outbox's backlog, and a ping for its probes.
type Database interface {
	warm.Source
	InsertOrder(ctx context.Context, o query.NewOrder) (query.Order, error)
	Order(ctx context.Context, id int64) (query.Order, error)
	Runs() query.Runs
	Outbox() query.Outbox
	Ping(ctx context.Context) error
}

var _ Database = (*query.DB)(nil)

// Server is the API. Its dependencies are injected, so tests run it on real servers.
type Server struct {
	*baseservice.Archetype
	cfg     Config
	store   Store
	db      Database
	jobs    []jobs.Job
	byName  map[string]jobs.Job
	metrics *metrics
	reg     *prometheus.Registry

	cacheHeader        string // Config.CacheHeader, canonicalized once
	surrogateHeader    string // Config.SurrogateKeyHeader, canonicalized once
	surrogateSeparator string // between surrogate keys: a comma in a Cache-Tag, a space elsewhere
	dates              httpDates
	logTimes           logTimes
	controls           cacheControls

	reads   *readthrough.Reader[*answer]
	queries *semaphore.Weighted // MAX_QUERIES: the values computed and the orders read at once
	traffic traffic             // the samples of the status page's traffic (Track)
	// compress gzips the large answers of the routes that are not cached reads, as echo does;
	// cached reads compress theirs once per answer (write).
	compress echo.MiddlewareFunc
}

// New returns the API over store and db for the jobs. Its metrics, and Go's, are registered on
// reg, which /metrics serves. The store's timeout bounds each Redis read: past it, a read is
// answered from PostgreSQL. Keep it short (100 ms).
func New(arch *baseservice.Archetype, cfg Config, store Store, db Database, list []jobs.Job,
	reg *prometheus.Registry) *Server {
	s := &Server{
		Archetype: arch,
		cfg:       cfg,
		store:     store,
		db:        db,
		jobs:      list,
		byName:    map[string]jobs.Job{},
		metrics:   newMetrics(reg),
		reg:       reg,
		queries:   semaphore.NewWeighted(cfg.MaxQueries),
		compress:  middleware.GzipWithConfig(middleware.GzipConfig{MinLength: gzipMinLength}),

		cacheHeader:     textproto.CanonicalMIMEHeaderKey(cfg.CacheHeader),
		surrogateHeader: textproto.CanonicalMIMEHeaderKey(cfg.SurrogateKeyHeader),
	}
	s.surrogateSeparator = " "
	if s.surrogateHeader == "Cache-Tag" {
		s.surrogateSeparator = ","
	}
	for _, j := range list {
		s.byName[j.Name] = j
	}
	s.reads = readthrough.New(arch, readthrough.Config{QueryTimeout: cfg.QueryTimeout, LeaseWait: cfg.LeaseWait,
		LocalCacheSize: cfg.LocalCacheSize, LocalCacheTTL: cfg.LocalCacheTTL}, store, db, list, s.queries,
		s.newAnswer, (*answer).weight, reg)
	return s
}

// Watch keeps the in-process tier as fresh as Redis until ctx ends (readthrough.Reader.Watch).
func (s *Server) Watch(ctx context.Context) { s.reads.Watch(ctx) }

// cors lets the pages of the configured origins read the api, and write with the token, from a
// browser. Preflights are cached for ten minutes.
func (s *Server) cors() echo.MiddlewareFunc {
	expose := []string{"ETag", echo.HeaderLastModified, echo.HeaderLocation, echo.HeaderRetryAfter, s.cacheHeader,
		HeaderPosition}
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins: s.cfg.CORSOrigins,
		AllowMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost},
		AllowHeaders: []string{echo.HeaderAuthorization, echo.HeaderContentType, "If-None-Match",
			echo.HeaderIfModifiedSince, HeaderPosition},
		ExposeHeaders: expose,
		MaxAge:        600,
	})
}

// maxHeaderBytes bounds a request's line and headers: a request of the api's is a few hundred
// bytes, and a longer one (a megabyte of method, or of key) is answered 431 before it is read.
const maxHeaderBytes = 16 << 10

// HTTPServer returns a server of the API's routes with the limits a server facing any client
// needs: on the time to send a request and to read the answer, and on the size of a request's
// head (a body's is the write routes' own).
func (s *Server) HTTPServer() *http.Server { return NewHTTPServer(s.Handler()) }

// NewHTTPServer returns a server of h with the limits of the api's public listener: its
// timeouts and header size. The benchmarks serve reference handlers with it, to compare like
// with like.
func NewHTTPServer(h http.Handler) *http.Server { return httpServer(h, 30*time.Second) }

// httpServer returns a server of h with the limits of HTTPServer, answers taking up to write.
func httpServer(h http.Handler, write time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      write,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// AdminHandler returns the routes of the admin listener (ADMIN_ADDR), for operators rather than
// clients: the metrics, the status page with what it reads (/v1/status, /v1/jobs and each job's
// runs), and Go's profiles (/debug/pprof/). None of them is on the public port: its metrics name
// every job and route, and a profile costs the process CPU.
func (s *Server) AdminHandler() http.Handler {
	e := s.newEcho()
	getHead := []string{http.MethodGet, http.MethodHead}
	e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/status") })
	e.Match(getHead, "/status", s.statusHTML, s.compress)
	e.Match(getHead, "/v1/status", s.status, s.compress)
	e.Match(getHead, "/v1/jobs", s.listJobs, s.compress)
	e.Match(getHead, "/v1/jobs/:job/runs", s.jobRuns, s.compress)
	e.Match(getHead, "/healthz", s.healthz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})))
	e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	e.GET("/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	e.GET("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	return e
}

// AdminHTTPServer returns a server of the admin routes: a profile takes 30 seconds by default,
// so answers may take up to two minutes to write.
func (s *Server) AdminHTTPServer() *http.Server { return httpServer(s.AdminHandler(), 2*time.Minute) }

// newEcho returns an echo server that answers errors with the one table of statuses.
func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(s.Logger)
	return e
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	e := s.newEcho()
	e.Use(s.instrument)
	if len(s.cfg.CORSOrigins) > 0 {
		e.Use(s.cors())
	}

	getHead := []string{http.MethodGet, http.MethodHead}
	cached := func(path string, h func(echo.Context, routeMetrics) error) {
		rm := s.metrics.forRoute(path)
		e.Match(getHead, path, func(c echo.Context) error { return h(c, rm) })
	}
	cached("/v1/orders/count", s.ordersCount)
	cached("/count", s.ordersCount)
	cached("/v1/customers/:id/credit", s.customerCredit)
	cached("/v1/credit", s.creditOverview)
	cached("/cachedResults", s.creditOverview)
	cached("/v1/results/:job", s.result)
	cached("/v1/results/:job/:key", s.result)

	e.Match(getHead, "/", s.root)
	e.Match(getHead, "/v1/jobs", s.listJobs, s.compress)
	e.Match(getHead, "/v1/jobs/:job/runs", s.jobRuns, s.compress)
	e.Match(getHead, "/healthz", s.healthz)
	e.Match(getHead, "/readyz", s.readyz)
	e.Match(getHead, "/openapi.json", s.openAPI, s.compress)
	e.Match(getHead, "/docs", s.docs, s.compress)

	// Per route, not in a group: echo's groups catch every path to run their middleware.
	write := []echo.MiddlewareFunc{middleware.BodyLimit(strconv.Itoa(maxBody/1024) + "K"), s.requireToken}
	e.POST("/v1/orders", s.createOrder, write...)
	e.POST("/add/", s.addOrder, write...)
	e.POST("/add", s.addOrder, write...) // the tutorials' curl commands post to both
	e.Match(getHead, "/v1/orders/:id", s.getOrder)
	e.POST("/v1/jobs/:job/run", s.runJob, write...)
	return e
}
