package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"heartlog/dumps"
	"heartlog/health"
	"heartlog/heartbeat"
	"heartlog/today"
	"heartlog/users"
)

// Options configure a Server. Zero fields take the defaults.
type Options struct {
	// MaxBodyBytes is the largest request body (default 4 MiB); larger is 413.
	MaxBodyBytes int64
	// Limits bound heartbeats (default heartbeat.DefaultLimits).
	Limits heartbeat.Limits
	// RateLimit is requests per second per user (default 10), with
	// RateBurst above it (default 100); over it is 429.
	RateLimit float64
	RateBurst int
	// HeartbeatRate is heartbeats per second per user at ingest (default
	// 20), with HeartbeatBurst above it (default 2000; never below
	// Limits.MaxHeartbeats). ByteRate and ByteBurst are the same in request
	// body bytes (defaults 64 KiB/s and 8 MiB; the burst never below
	// MaxBodyBytes). Over either, the whole request is 429 with
	// Retry-After: wakatime-cli then requeues all of it.
	HeartbeatRate  float64
	HeartbeatBurst int
	ByteRate       float64
	ByteBurst      int
	// MaxDaysPerRequest is how many distinct UTC days one request may
	// carry (default 31); heartbeats of further days are answered 429 each.
	MaxDaysPerRequest int
	// MaxDayHeartbeats and MaxDayBytes cap one user-day (defaults 100,000
	// heartbeats and 64 MiB of day-file JSON); heartbeats past a cap are
	// answered 400 each. DayCounterIDs bounds the memory this instance
	// counts them in, in heartbeat ids remembered, each user-day costing 20
	// ids more (default 4,000,000, some 64 MiB).
	MaxDayHeartbeats int
	MaxDayBytes      int64
	DayCounterIDs    int
	// Capacity says when the log is nearly full; ingest then answers 503
	// with Retry-After. Nil: never.
	Capacity Capacity
	// Reader serves the read routes (summaries, status bar, durations,
	// stats); without it they are not registered.
	Reader HeartbeatReader
	// Export serves a user's download of their heartbeats (GET
	// …/heartbeats.ndjson); without it the route is not registered.
	Export *dumps.Exporter
	// Today keeps the live status bar of active users: with it
	// GetStatusBar and statusbar/today read it when asked for the user's
	// own time zone and timeout without filters, and WatchToday streams
	// it. Nil: the status bar is computed on every read and WatchToday is
	// unimplemented.
	Today *today.Tracker
	// MaxWatches is how many WatchToday streams one user may hold open at
	// once (default 8: tabs and devices); past it a stream is refused
	// ResourceExhausted. Each recomputes on every heartbeat of the user.
	MaxWatches int
	// Sessions keep browser sessions; with them the API serves sign-in
	// (POST /api/v1/session) and sign-out (DELETE), and the reads accept a
	// session cookie. Nil: keys only.
	Sessions Sessions
	// AuthFailureRate is failed sign-ins and refused session cookies per
	// second allowed per client address (default 1), with AuthFailureBurst
	// above it (default 20); past it sign-in and cookies get 429 without
	// a lookup.
	AuthFailureRate  float64
	AuthFailureBurst int
	// SignInsPerHour is how many sessions one user may open an hour
	// (default 20), with SignInBurst at once (default 20); past it
	// sign-in answers 429. Each session is a record in the sessions bucket
	// for its whole TTL, so without this one key signing in over and over
	// would fill the bucket every user's sign-in needs: at the defaults a
	// user holds at most about 3,400 live sessions of the 7-day TTL.
	SignInsPerHour float64
	SignInBurst    int
	// Web serves the dashboard (web.Handler): GET / and GET /assets/ go
	// to it. Nil: / is a 404 like any unknown path.
	Web http.Handler
	// Health answers /readyz; nil means always ready.
	Health *health.Checker
	// Log receives request errors.
	Log zerolog.Logger
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 4 << 20
	}
	if o.Limits.MaxHeartbeats == 0 {
		o.Limits = heartbeat.DefaultLimits
	}
	if o.RateLimit <= 0 {
		o.RateLimit = 10
	}
	if o.RateBurst <= 0 {
		o.RateBurst = 100
	}
	if o.AuthFailureRate <= 0 {
		o.AuthFailureRate = 1
	}
	if o.AuthFailureBurst <= 0 {
		o.AuthFailureBurst = 20
	}
	if o.SignInsPerHour <= 0 {
		o.SignInsPerHour = 20
	}
	if o.SignInBurst <= 0 {
		o.SignInBurst = 20
	}
	if o.MaxWatches <= 0 {
		o.MaxWatches = 8
	}
	o.setWorkDefaults()
	if o.Now == nil {
		o.Now = time.Now
	}
}

func (o *Options) setWorkDefaults() {
	if o.HeartbeatRate <= 0 {
		o.HeartbeatRate = 20
	}
	if o.HeartbeatBurst <= 0 {
		o.HeartbeatBurst = 2000
	}
	// A request of MaxHeartbeats must fit an idle bucket, or it could
	// never pass; likewise for bytes.
	o.HeartbeatBurst = max(o.HeartbeatBurst, o.Limits.MaxHeartbeats)
	if o.ByteRate <= 0 {
		o.ByteRate = 64 << 10
	}
	if o.ByteBurst <= 0 {
		o.ByteBurst = 8 << 20
	}
	o.ByteBurst = max(o.ByteBurst, int(o.MaxBodyBytes))
	if o.MaxDaysPerRequest <= 0 {
		o.MaxDaysPerRequest = 31
	}
	if o.MaxDayHeartbeats <= 0 {
		o.MaxDayHeartbeats = 100_000
	}
	if o.MaxDayBytes <= 0 {
		o.MaxDayBytes = 64 << 20
	}
	if o.DayCounterIDs <= 0 {
		o.DayCounterIDs = 4_000_000
	}
}

// Server is the HTTP API.
type Server struct {
	opts   Options
	users  UserLookup
	auth   *authenticator
	limit  *limiter
	ingest *ingestor
	log    zerolog.Logger
	// unavailableLog is log, sampled: an outage fails every request, and
	// one line in a while says as much as one per request.
	unavailableLog zerolog.Logger
	mux            *http.ServeMux

	// failures counts failed sign-ins and refused cookies by client address.
	failures *limiter
	// signIns counts the sessions each user opens (SignInsPerHour).
	signIns *limiter
}

// New builds the API on a user store and the log's publisher.
func New(u UserLookup, pub Publisher, opts Options) *Server {
	opts.setDefaults()
	s := &Server{
		opts:   opts,
		users:  u,
		auth:   newAuthenticator(u),
		limit:  newLimiter(opts.RateLimit, opts.RateBurst),
		ingest: newIngestor(pub, opts),
		log:    opts.Log,
		mux:    http.NewServeMux(),

		unavailableLog: opts.Log.Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second}),
		failures:       newLimiter(opts.AuthFailureRate, opts.AuthFailureBurst),
		signIns:        newLimiter(opts.SignInsPerHour/3600, opts.SignInBurst),
	}
	s.routes()
	return s
}

// ServeHTTP implements http.Handler. It serves no /metrics: internals are
// for the admin listener (package admin), never the public address. Every
// answer carries the security headers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	s.mux.ServeHTTP(w, r)
}

// wakatimeRoots are the prefixes under which the WakaTime API is served:
// its own, and the one compatible servers (Wakapi, Hakatime) use.
var wakatimeRoots = []string{"/api/v1", "/api/compat/wakatime/v1"}

func (s *Server) routes() {
	for _, root := range wakatimeRoots {
		s.mux.Handle("POST "+root+"/users/{user}/heartbeats", s.keyUser("heartbeats", s.postOne))
		s.mux.Handle("POST "+root+"/users/{user}/heartbeats.bulk", s.keyUser("heartbeats.bulk", s.postBulk))
	}
	if s.opts.Sessions != nil {
		s.mux.Handle("POST /api/v1/session", instrument("session", http.HandlerFunc(s.signIn)))
		s.mux.Handle("DELETE /api/v1/session", instrument("session", http.HandlerFunc(s.signOut)))
	}
	if s.opts.Reader != nil {
		s.readRoutes()
		path, h := s.statsHandler()
		s.mux.Handle(path, instrument("connect_stats", h))
	}
	if s.opts.Export != nil {
		s.exportRoutes()
	}
	s.settingsRoutes()
	path, h := s.connectHandler()
	s.mux.Handle(path, instrument("connect_ingest", h))
	s.mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if s.opts.Web != nil {
		s.mux.Handle("GET /{$}", instrument("web", s.opts.Web))
		s.mux.Handle("GET /assets/", instrument("web", s.opts.Web))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
}

// readyz reports each dependency and the capabilities they serve. It is
// 200 while ingest works, even if reads are degraded: a load balancer must
// not take an ingest node out for a Postgres outage, which every node
// shares and which ingest does not need. 503 when ingest is down.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.opts.Health == nil {
		writeJSON(w, http.StatusOK, health.Report{Status: health.OK, Ingest: health.OK, Reads: health.OK, Checks: map[string]string{}})
		return
	}
	rep := s.opts.Health.Report(r.Context())
	code := http.StatusOK
	if !rep.IngestOK() {
		w.Header().Set("Retry-After", retryAfterUnavailable)
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rep)
}

// userHandler serves a route on behalf of an authenticated user.
type userHandler func(w http.ResponseWriter, r *http.Request, u users.User)

// user authenticates the request by API key or session cookie (see
// authenticate), checks that the {user} path segment is "current" or the
// user's own id, applies the rate limit, and only then calls h.
func (s *Server) user(route string, h userHandler) http.Handler {
	return s.userBy(route, keyOrSession, h)
}

// keyUser is user for the routes that take an API key only: ingest.
func (s *Server) keyUser(route string, h userHandler) http.Handler {
	return s.userBy(route, keyOnly, h)
}

func (s *Server) userBy(route string, creds credentials, h userHandler) http.Handler {
	return instrument(route, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, bySession, err := s.authenticate(r, creds, true)
		if err != nil {
			skipBody(w, r)
			s.refuse(w, err, bySession)
			return
		}
		if who := r.PathValue("user"); who != "current" && who != u.ID {
			skipBody(w, r)
			writeError(w, http.StatusForbidden, "this API key may only act as its own user; use users/current")
			return
		}
		if ok, wait := s.limit.allow(u.ID); !ok {
			skipBody(w, r)
			writeTooMany(w, wait, "rate limit exceeded; retry after "+wait.Round(time.Millisecond).String())
			return
		}
		h(w, r, u)
	}))
}

// refuse answers a failed authenticate. A refused cookie gets no
// WWW-Authenticate: a browser would answer it with its own password
// dialog over the dashboard.
func (s *Server) refuse(w http.ResponseWriter, err error, bySession bool) {
	var ae *authError
	var th *throttled
	switch {
	case errors.As(err, &ae):
		if !bySession {
			w.Header().Set("WWW-Authenticate", `Basic realm="heartlog"`)
		}
		writeError(w, http.StatusUnauthorized, ae.msg)
	case errors.Is(err, errCrossOrigin):
		writeError(w, http.StatusForbidden, err.Error())
	case errors.As(err, &th):
		w.Header().Set("Retry-After", th.retryAfter())
		writeError(w, http.StatusTooManyRequests, th.Error())
	default:
		s.unavailable(w, err)
	}
}

// skipBody closes the connection after a refusal answered before the body
// was read. Otherwise net/http reads and discards up to 256 KiB of the
// unread body to keep the connection alive, so a client flooding large
// requests past its rate limit would still cost the server its uploads
// (measured: a user at its limits took another user's p99 from 8 ms to
// 130 ms); closing makes the flooder pay a new connection instead. A
// wakatime-cli that gets a 429 resends later on a new connection anyway.
func skipBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}

var requestsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "heartlog_api_requests_total",
	Help: "HTTP requests by route and status code.",
}, []string{"route", "code"})

var requestSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "heartlog_api_request_seconds",
	Help:    "HTTP request latency by route.",
	Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
}, []string{"route"})

func instrument(route string, h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerDuration(requestSeconds.MustCurryWith(prometheus.Labels{"route": route}),
		promhttp.InstrumentHandlerCounter(requestsTotal.MustCurryWith(prometheus.Labels{"route": route}), h))
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// Protocols are what the API's http.Server must speak: HTTP/1.1 for
// WakaTime clients and Connect, and HTTP/2 without TLS (h2c) for gRPC
// clients behind a TLS-terminating proxy.
func Protocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}
