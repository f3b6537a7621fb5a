package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"github.com/klauspost/compress/gzip"

	"heartlog/users"
)

// statsMaxBytes bounds a StatsService request, compressed or not: its
// messages are a few dates and options.
const statsMaxBytes = 64 << 10

// errConnectNoKey is the Connect services' answer to a request without a
// key: they take it from the Authorization header only, since Connect has no
// GET routes here and a key in a URL ends up in proxies' logs.
var errConnectNoKey = errors.New("missing API key: send Authorization: Bearer <key> or Basic base64(key)")

type userKey struct{}

// withUser is ctx carrying the authenticated user for the handler.
func withUser(ctx context.Context, u users.User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// userFrom is the user the guard authenticated, or a CodeInternal error
// when the handler is served without one (a wiring bug, not a client's).
func userFrom(ctx context.Context) (users.User, error) {
	u, ok := ctx.Value(userKey{}).(users.User)
	if !ok {
		return users.User{}, connect.NewError(connect.CodeInternal, errors.New("request reached the service without authentication"))
	}
	return u, nil
}

// guard wraps a Connect handler so that a request is authenticated (by
// API key or session cookie) and rate-limited from its headers, and its
// body capped at maxBytes, before connect-go reads or decompresses a byte
// of it: an interceptor would run only after a unary request's message was
// decoded. Refusals are written as the caller's protocol (Connect, gRPC or
// gRPC-Web) expects them.
func (s *Server) guard(h http.Handler, maxBytes int64, opts ...connect.HandlerOption) http.Handler {
	return s.guardBy(keyOrSession, h, maxBytes, opts...)
}

// keyGuard is guard for a service that takes an API key only: ingest.
func (s *Server) keyGuard(h http.Handler, maxBytes int64, opts ...connect.HandlerOption) http.Handler {
	return s.guardBy(keyOnly, h, maxBytes, opts...)
}

func (s *Server) guardBy(creds credentials, h http.Handler, maxBytes int64, opts ...connect.HandlerOption) http.Handler {
	errW := connect.NewErrorWriter(opts...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.admit(w, r, creds, maxBytes)
		if err != nil {
			_ = errW.Write(w, r, err)
			return
		}
		r = s.liveStream(w, r, creds)
		r.Body = &cappedBody{http.MaxBytesReader(w, r.Body, maxBytes), w, r.ProtoMajor == 1}
		h.ServeHTTP(w, r.WithContext(withUser(r.Context(), u)))
	})
}

// cappedBody closes an HTTP/1 connection whose body went over the cap.
// http.MaxBytesReader does that itself only when handed the server's own
// ResponseWriter, and here it gets the metrics' wrapper: the server would
// then read the rest of the body as the next request.
type cappedBody struct {
	io.ReadCloser
	w     http.ResponseWriter
	http1 bool
}

func (b *cappedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooBig *http.MaxBytesError
	if b.http1 && errors.As(err, &tooBig) {
		b.w.Header().Set("Connection", "close")
	}
	return n, err
}

// admit authenticates r, takes a token of the user's rate limit and checks
// the declared body size, in that order: an unauthenticated caller learns
// nothing about limits. A refusal is a *connect.Error; Retry-After is set on
// w for a rate limit.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, creds credentials, maxBytes int64) (users.User, error) {
	u, bySession, err := s.authenticate(r, creds, false)
	if err == nil && bySession {
		if err = connectCSRF(r); err != nil {
			return users.User{}, connect.NewError(connect.CodePermissionDenied, err)
		}
	}
	if err != nil {
		return users.User{}, s.connectAuthError(err)
	}
	if ok, wait := s.limit.allow(u.ID); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		return users.User{}, connect.NewError(connect.CodeResourceExhausted,
			errors.New("rate limit exceeded; retry after "+wait.Round(time.Millisecond).String()))
	}
	if r.ContentLength > maxBytes {
		return users.User{}, connect.NewError(connect.CodeResourceExhausted,
			errors.New("request body is larger than "+byteSize(maxBytes)))
	}
	return u, nil
}

// connectAuthError maps an authentication failure to a Connect code; the
// store's own error goes to the log only.
func (s *Server) connectAuthError(err error) error {
	var ae *authError
	var th *throttled
	switch {
	case errors.Is(err, errNoKey):
		return connect.NewError(connect.CodeUnauthenticated, errConnectNoKey)
	case errors.As(err, &ae):
		return connect.NewError(connect.CodeUnauthenticated, err)
	case errors.Is(err, errCrossOrigin):
		return connect.NewError(connect.CodePermissionDenied, err)
	case errors.As(err, &th):
		ce := connect.NewError(connect.CodeResourceExhausted, err)
		ce.Meta().Set("Retry-After", th.retryAfter())
		return ce
	}
	s.unavailableLog.Error().Err(err).Msg("user store unavailable")
	ce := connect.NewError(connect.CodeUnavailable, errors.New("user store unavailable, retry later"))
	ce.Meta().Set("Retry-After", retryAfterUnavailable)
	return ce
}

// handlerOptions are the handler options of both Connect services: the
// decompressed message capped at maxBytes, and a gzip that stops at that cap
// instead of inflating a bomb to the end to report its size (connect-go's
// own gzip drains the rest to count it).
func handlerOptions(maxBytes int64) []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithReadMaxBytes(int(maxBytes)),
		connect.WithCompression("gzip",
			func() connect.Decompressor { return &cappedGzip{max: maxBytes} },
			func() connect.Compressor { return gzip.NewWriter(io.Discard) },
		),
	}
}

// errInflatedTooLarge stops a decompression past the cap.
var errInflatedTooLarge = errors.New("decompressed message is over the size limit")

// cappedGzip is a gzip reader that yields at most max+1 bytes, one more
// than connect-go's limit, so that connect-go sees the message is too large
// and then gets errInflatedTooLarge instead of the rest of the stream.
type cappedGzip struct {
	gz   gzip.Reader
	max  int64
	left int64
}

func (c *cappedGzip) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errInflatedTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.gz.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cappedGzip) Reset(r io.Reader) error {
	c.left = c.max + 1
	return c.gz.Reset(r)
}

func (c *cappedGzip) Close() error { return c.gz.Close() }
