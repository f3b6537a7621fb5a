package wiring

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"heartlog/api"
)

// ServerOptions' defaults: those of the public API.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
)

// ServerOptions are an HTTP server's limits. Zero fields take the
// defaults. No write timeout is set: a response (a CPU profile, a long
// range of days) takes as long as it takes.
type ServerOptions struct {
	// ReadHeaderTimeout bounds reading a request's headers, so a client
	// that sends them slowly does not hold a connection. Default 10 s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included. net/http
	// also ends an HTTP/1 request's context once it has passed, so a
	// server whose handlers stream for longer (the profiler) sets it
	// negative: none. Default 60 s.
	ReadTimeout time.Duration
	// IdleTimeout closes a kept-alive connection idle this long.
	// Default 2 min.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers. Default 64 KiB.
	MaxHeaderBytes int
	// Protocols are the HTTP versions served. Default: net/http's
	// (HTTP/1.1, and HTTP/2 over TLS only).
	Protocols *http.Protocols
}

// NewServer is an http.Server for h with o's limits.
func NewServer(h http.Handler, o ServerOptions) *http.Server {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: orDefault(o.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       orDefault(o.ReadTimeout, DefaultReadTimeout),
		IdleTimeout:       orDefault(o.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    o.MaxHeaderBytes,
		Protocols:         o.Protocols,
	}
	if hs.MaxHeaderBytes <= 0 {
		hs.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if hs.ReadTimeout < 0 {
		hs.ReadTimeout = 0 // net/http's "none"
	}
	return hs
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Server is an http.Server serving on a listener of its own.
type Server struct {
	hs   *http.Server
	ln   net.Listener
	done chan struct{}
	err  error // Serve's return, set before done closes
}

// Listen listens on addr (":0" or "127.0.0.1:0" picks a free port) and
// serves h there with o's limits. It fails at once if addr is taken.
func Listen(addr string, h http.Handler, o ServerOptions) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return Serve(NewServer(h, o), ln), nil
}

// ListenAPI is Listen for the public API: the default limits, and
// unencrypted HTTP/2 beside HTTP/1.1 for Connect and gRPC clients
// (api.Protocols).
func ListenAPI(addr string, h http.Handler) (*Server, error) {
	return Listen(addr, h, ServerOptions{Protocols: api.Protocols()})
}

// Serve starts serving hs on ln in a goroutine of its own.
func Serve(hs *http.Server, ln net.Listener) *Server {
	s := &Server{hs: hs, ln: ln, done: make(chan struct{})}
	go func() {
		s.err = hs.Serve(ln)
		close(s.done)
	}()
	return s
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the server's base URL, "http://host:port".
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Done is closed once the server has stopped serving, by Close or because
// its listener failed (then Err says why).
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is why the server stopped: nil after Close, or while it serves.
func (s *Server) Err() error {
	select {
	case <-s.done:
		if errors.Is(s.err, http.ErrServerClosed) {
			return nil
		}
		return s.err
	default:
		return nil
	}
}

// OnShutdown runs f, in a goroutine of its own, when Close begins: the
// way to end long-lived responses (streams), which Close would otherwise
// wait on for all of its grace.
func (s *Server) OnShutdown(f func()) { s.hs.RegisterOnShutdown(f) }

// Close stops accepting connections and waits up to grace for the
// requests in flight; those still running then are cut. It returns the
// timeout if grace ran out, and any error Serve stopped with.
func (s *Server) Close(grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := s.hs.Shutdown(ctx)
	if err != nil {
		_ = s.hs.Close()
	}
	<-s.done
	return errors.Join(err, s.Err())
}
