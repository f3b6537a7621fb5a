// Package admin serves the operator's endpoints of a heartlog process on a
// listener of their own (HEARTLOG_ADMIN_ADDR), apart from the public API:
// Prometheus metrics at /metrics and the Go profiler at /debug/pprof/.
// Neither asks for credentials, so the address must be reachable only by
// operators and scrapers (the default is loopback).
package admin

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"heartlog/internal/wiring"
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
type Server struct{ s *wiring.Server }

// Listen starts serving Handler on addr; it fails at once if addr is taken.
// An empty addr disables the listener: Listen returns nil and no error, and
// the nil *Server's Close does nothing.
func Listen(addr string, log zerolog.Logger) (*Server, error) {
	if addr == "" {
		return nil, nil
	}
	// No read timeout: net/http would end a CPU profile or trace that
	// streams past it.
	s, err := wiring.Listen(addr, Handler(), wiring.ServerOptions{ReadTimeout: -1})
	if err != nil {
		return nil, fmt.Errorf("admin listener on %s (HEARTLOG_ADMIN_ADDR; empty disables it): %w", addr, err)
	}
	log.Info().Str("addr", s.URL()).Msg("admin listening (/metrics, /debug/pprof/)")
	return &Server{s: s}, nil
}

// Close stops the listener, letting scrapes in flight finish for a moment.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	return s.s.Close(5 * time.Second)
}
