// Package faults is an HTTP reverse proxy that stands in front of an S3
// endpoint and makes it behave like a busy or slow one: it answers a share
// of requests with S3's throttling error (503 SlowDown) without forwarding
// them, caps the request rate with a token bucket, and adds latency.
//
// Tests use NewProxy; programs (the benchmark's latency simulation) use
// Listen or New and serve the Handler themselves. For example, the
// production-like simulation:
//
//	primary: faults.Options{Latency: 200 * time.Millisecond}
//	backup:  faults.Options{MethodLatency: map[string]time.Duration{"PUT": 2 * time.Second}, RateLimit: 500}
//
// The proxy keeps the client's Host header, so SigV4 signatures made for
// the proxy's address still verify at the server behind it.
package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// SlowDownBody is the body of an injected refusal, as S3 sends it.
const SlowDownBody = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
	`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`

// Options says what the proxy does. The zero value forwards everything
// unchanged.
type Options struct {
	// SlowDownEvery refuses every Nth request that Match selects (1
	// refuses all of them). 0: off.
	SlowDownEvery int
	// SlowDownRate refuses this share (0 to 1) of the requests that Match
	// selects, drawn from one generator seeded with Seed. 0: off. Both
	// SlowDownEvery and SlowDownRate may be set; a request is refused if
	// either says so.
	SlowDownRate float64
	// Seed seeds SlowDownRate's generator; 0 picks a random seed.
	//
	// A fixed seed reproduces the sequence of answers in arrival order
	// (the k-th request is refused or not), which is exact for one client
	// at a time. With concurrent clients it does not fix which request
	// gets which answer, and it replays the same streaks of refusals in
	// every run at about the same point of a workload: when few requests
	// are left in flight (the ones that were refused and are retrying), a
	// dense stretch of the sequence lands on them alone, and a request is
	// refused many more times in a row than the rate suggests. Measured:
	// 32 clients, 200 puts, rate 0.3, seed 42: one put was refused 10
	// times in a row (independent draws: 0.3^10, about 1 in 170,000
	// requests) in one run of eight. Tests of "everything succeeds despite
	// faults" should use seed 0.
	Seed uint64
	// Match selects the requests that SlowDownEvery and SlowDownRate apply
	// to (for example only PUTs). nil: all requests.
	Match func(*http.Request) bool

	// Latency is added to every forwarded request before it is forwarded.
	// MethodLatency overrides it per HTTP method ("PUT", any case).
	// Refused requests are answered at once.
	Latency       time.Duration
	MethodLatency map[string]time.Duration

	// RateLimit caps the requests admitted per second (a token bucket
	// refilled at this rate). 0: no cap. Above the rate a request is
	// refused with SlowDown, or with Queue it waits for a token (as long as
	// its client waits).
	RateLimit float64
	// Burst is the token bucket's size. 0: one second's worth of
	// RateLimit (at least 1).
	Burst int
	// Queue makes requests above RateLimit wait instead of being refused.
	Queue bool
}

// Stats counts what the proxy did. Requests = Forwarded + SlowDowns +
// RateLimited + requests whose client went away while they waited.
type Stats struct {
	Requests    int64 // requests received
	Forwarded   int64 // requests passed to the target
	SlowDowns   int64 // refused by SlowDownEvery or SlowDownRate
	RateLimited int64 // refused because they came above RateLimit
	Queued      int64 // waited for a RateLimit token (Queue)

	// The requests received, by S3 operation (refused ones included):
	// Lists are GETs of a listing (ListObjectsV2, ListObjectVersions,
	// ListMultipartUploads), Gets every other GET (an object or one of
	// its versions) and HEAD, Puts PUTs and POSTs, Deletes DELETEs.
	Gets, Lists, Puts, Deletes int64
}

// Minus is s less an earlier reading o: what happened in between.
func (s Stats) Minus(o Stats) Stats {
	return Stats{Requests: s.Requests - o.Requests, Forwarded: s.Forwarded - o.Forwarded,
		SlowDowns: s.SlowDowns - o.SlowDowns, RateLimited: s.RateLimited - o.RateLimited, Queued: s.Queued - o.Queued,
		Gets: s.Gets - o.Gets, Lists: s.Lists - o.Lists, Puts: s.Puts - o.Puts, Deletes: s.Deletes - o.Deletes}
}

// Faults is the number of requests answered with SlowDown, for either
// reason.
func (s Stats) Faults() int64 { return s.SlowDowns + s.RateLimited }

// Handler is the proxy as an http.Handler.
type Handler struct {
	proxy   *httputil.ReverseProxy
	match   func(*http.Request) bool
	every   int64
	latency time.Duration
	byVerb  map[string]time.Duration
	limiter *rate.Limiter
	queue   bool

	mu       sync.Mutex
	rng      *rand.Rand
	rate     float64
	eligible int64

	requests, forwarded, slowDowns, rateLimited, queued, ids atomic.Int64
	gets, lists, puts, deletes                               atomic.Int64
}

// New returns a Handler that forwards to target, an http:// or https:// URL
// (a bare host:port means http://).
func New(target string, opts Options) (*Handler, error) {
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("faults: target %q is not an http:// or https:// URL", target)
	}
	if opts.SlowDownEvery < 0 || opts.SlowDownRate < 0 || opts.SlowDownRate > 1 || opts.RateLimit < 0 || opts.Burst < 0 || opts.Latency < 0 {
		return nil, errors.New("faults: SlowDownEvery, RateLimit, Burst and Latency must not be negative, SlowDownRate must be within [0, 1]")
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DisableCompression = true // pass bodies through byte for byte
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = 512
	h := &Handler{
		proxy: &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(u)
				pr.Out.Host = pr.In.Host // the signature covers Host
			},
			Transport: tr,
		},
		match:   opts.Match,
		every:   int64(opts.SlowDownEvery),
		latency: opts.Latency,
		byVerb:  map[string]time.Duration{},
		queue:   opts.Queue,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		rate:    opts.SlowDownRate,
	}
	for m, d := range opts.MethodLatency {
		h.byVerb[strings.ToUpper(m)] = d
	}
	if opts.RateLimit > 0 {
		burst := opts.Burst
		if burst == 0 {
			burst = max(1, int(opts.RateLimit))
		}
		h.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), burst)
	}
	return h, nil
}

// SetSlowDownRate changes SlowDownRate while the proxy runs (an outage
// that starts or ends).
func (h *Handler) SetSlowDownRate(p float64) {
	h.mu.Lock()
	h.rate = min(max(p, 0), 1)
	h.mu.Unlock()
}

// Stats returns the counters so far.
func (h *Handler) Stats() Stats {
	return Stats{
		Requests:    h.requests.Load(),
		Forwarded:   h.forwarded.Load(),
		SlowDowns:   h.slowDowns.Load(),
		RateLimited: h.rateLimited.Load(),
		Queued:      h.queued.Load(),
		Gets:        h.gets.Load(),
		Lists:       h.lists.Load(),
		Puts:        h.puts.Load(),
		Deletes:     h.deletes.Load(),
	}
}

// count adds r to its operation's counter.
func (h *Handler) count(r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		q := r.URL.Query()
		if q.Has("list-type") || q.Has("versions") || q.Has("uploads") {
			h.lists.Add(1)
		} else {
			h.gets.Add(1)
		}
	case http.MethodPut, http.MethodPost:
		h.puts.Add(1)
	case http.MethodDelete:
		h.deletes.Add(1)
	}
}

// ServeHTTP refuses, delays or forwards one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	h.count(r)
	if h.limiter != nil {
		if h.queue {
			if !h.limiter.Allow() {
				h.queued.Add(1)
				if err := h.limiter.Wait(r.Context()); err != nil {
					return // the client went away, or would have waited past its deadline
				}
			}
		} else if !h.limiter.Allow() {
			h.rateLimited.Add(1)
			h.slowDown(w, r)
			return
		}
	}
	if h.refuse(r) {
		h.slowDowns.Add(1)
		h.slowDown(w, r)
		return
	}
	d, ok := h.byVerb[r.Method]
	if !ok {
		d = h.latency
	}
	if d > 0 && !sleep(r.Context(), d) {
		return
	}
	h.forwarded.Add(1)
	h.proxy.ServeHTTP(w, r)
}

func (h *Handler) refuse(r *http.Request) bool {
	if h.match != nil && !h.match(r) {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.every == 0 && h.rate == 0 {
		return false
	}
	h.eligible++
	refused := h.every > 0 && h.eligible%h.every == 0
	if h.rate > 0 && h.rng.Float64() < h.rate {
		refused = true
	}
	return refused
}

// slowDown answers like S3 does when it throttles. The request body is
// not read, and the target never sees the request.
func (h *Handler) slowDown(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/xml")
	hdr.Set("X-Amz-Request-Id", fmt.Sprintf("FAULTS%010d", h.ids.Add(1)))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	hdr.Set("Content-Length", fmt.Sprint(len(SlowDownBody)))
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(SlowDownBody))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Proxy is a Handler served on a TCP address.
type Proxy struct {
	*Handler
	// URL is the proxy's base URL ("http://127.0.0.1:port"): use it as
	// the S3 endpoint.
	URL string

	srv *http.Server
	ln  net.Listener
}

// Listen serves a Handler for target on addr ("127.0.0.1:0" picks a free
// port) until Close.
func Listen(addr, target string, opts Options) (*Proxy, error) {
	h, err := New(target, opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("faults: listen: %w", err)
	}
	p := &Proxy{
		Handler: h,
		URL:     "http://" + ln.Addr().String(),
		srv:     &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		ln:      ln,
	}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Close stops the proxy and cuts the connections it holds.
func (p *Proxy) Close() error { return p.srv.Close() }

// NewProxy starts a proxy for target on a free loopback port for the rest
// of the test; it fails the test if it cannot.
func NewProxy(t testing.TB, target string, opts Options) *Proxy {
	t.Helper()
	p, err := Listen("127.0.0.1:0", target, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}
