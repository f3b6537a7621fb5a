// Package admin serves the operator's endpoints of a heartlog process on a
// listener of their own (HEARTLOG_ADMIN_ADDR), apart from the public API:
// Prometheus metrics at /metrics and the Go profiler at /debug/pprof/.
// Neither asks for credentials, so the address must be reachable only by
// operators and scrapers (the default is loopback).
package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// Handler serves /metrics (the default Prometheus registry, where every
// heartlog metric is registered) and /debug/pprof/.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Server is a running admin listener.
type Server struct {
	hs   *http.Server
	errc chan error
}

// Listen starts serving Handler on addr; it fails at once if addr is taken.
// An empty addr disables the listener: Listen returns nil and no error, and
// the nil *Server's Close does nothing.
func Listen(addr string, log zerolog.Logger) (*Server, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener on %s (HEARTLOG_ADMIN_ADDR; empty disables it): %w", addr, err)
	}
	s := &Server{
		// No WriteTimeout: a CPU profile or trace streams for as long as asked.
		hs:   &http.Server{Handler: Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute},
		errc: make(chan error, 1),
	}
	go func() { s.errc <- s.hs.Serve(ln) }()
	log.Info().Str("addr", "http://"+ln.Addr().String()).Msg("admin listening (/metrics, /debug/pprof/)")
	return s, nil
}

// Close stops the listener, letting scrapes in flight finish for a moment.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.hs.Shutdown(ctx)
	if serveErr := <-s.errc; !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}
