package api

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"heartlog/sessions"
	"heartlog/users"
)

// SessionCookie is the name of the cookie a browser session travels in.
const SessionCookie = "heartlog_session"

// Sessions keep browser sessions; *sessions.Store implements it.
type Sessions interface {
	Create(ctx context.Context, u users.User, key users.KeyHash) (string, sessions.Session, error)
	Lookup(ctx context.Context, token string) (sessions.Session, error)
	Delete(ctx context.Context, token string) error
	TTL() time.Duration
}

var (
	errNoSession = &authError{"session expired or signed out: sign in again"}
	// errCrossOrigin refuses a cookie that came with a request from another
	// origin: the browser attaches cookies to whatever asks, so a cookie
	// alone does not show that the user's own page sent the request.
	errCrossOrigin = errors.New("cross-origin request refused: a session cookie is accepted only from this server's own pages")
)

// throttled is a refusal for too many failed sign-ins or sessions from
// one address.
type throttled struct{ wait time.Duration }

func (e *throttled) Error() string {
	return "too many failed sign-ins from this address; retry after " + e.wait.Round(time.Millisecond).String()
}

func (e *throttled) retryAfter() string { return strconv.Itoa(int(e.wait.Seconds()) + 1) }

// credentials says what a route authenticates by.
type credentials int

const (
	// keyOrSession: an API key, or a session cookie from this server's own
	// origin (the reads, for the dashboard).
	keyOrSession credentials = iota
	// keyOnly: an API key alone (ingest: a script in a page, even this
	// server's, never writes heartbeats).
	keyOnly
)

// authenticate is the one place a request is authenticated. An API key
// (the Authorization header, or ?api_key= if query) wins; without one, and
// where creds allow, the session cookie does, if the request passes
// sameOrigin. bySession says the cookie was tried. Errors: an *authError
// (errNoKey when there was no credential at all), errCrossOrigin, a
// *throttled, or another error when the user or session store is
// unreachable.
func (s *Server) authenticate(r *http.Request, creds credentials, query bool) (u users.User, bySession bool, err error) {
	var get func(string) string
	if query {
		get = r.URL.Query().Get
	}
	if key := keyFrom(r.Header, get); key != "" || creds == keyOnly || s.opts.Sessions == nil {
		u, err = s.auth.user(r.Context(), key)
		return u, false, err
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return users.User{}, false, errNoKey
	}
	if err := sameOrigin(r); err != nil {
		return users.User{}, true, err
	}
	u, err = s.sessionUser(r, c.Value)
	return u, true, err
}

// sessionUser is the owner of a session token. A session lives only as
// long as the key it was made from: a rotated key or a deleted user ends
// it. Failures count against the caller's address, as failed sign-ins do;
// see throttleFailure for why a valid token is never refused for them.
func (s *Server) sessionUser(r *http.Request, token string) (users.User, error) {
	sess, err := s.opts.Sessions.Lookup(r.Context(), token)
	if err == nil {
		var u users.User
		if u, err = s.users.ByKey(r.Context(), sess.Key); err == nil && u.ID == sess.UserID {
			return u, nil
		}
		if err == nil || errors.Is(err, users.ErrNotFound) {
			err = sessions.ErrNotFound
		}
	}
	if errors.Is(err, sessions.ErrNotFound) {
		if err := s.throttleFailure(r); err != nil {
			return users.User{}, err
		}
		return users.User{}, errNoSession
	}
	return users.User{}, err
}

// throttleFailure counts a failed sign-in or session against the caller's
// address, and returns the throttled error once the address is past its
// failures. Only failures are throttled, after the credential was looked
// at: behind a load balancer every client has the balancer's address, and
// refusing valid keys and sessions there for a stranger's failures would
// let one stranger lock everyone out. Guessing gains nothing from it: a
// key is a random UUID, a session token 256 random bits.
func (s *Server) throttleFailure(r *http.Request) error {
	ip := clientIP(r)
	if blocked, wait := s.failures.blocked(ip); blocked {
		return &throttled{wait}
	}
	s.failures.allow(ip)
	return nil
}

// sameOrigin refuses a request that a browser says came from another
// origin: Sec-Fetch-Site (every current browser sends it) must be
// same-origin, or none for what the user opened directly, and an Origin
// header must name this server's host. A request with neither header is
// not from a browser that could have been tricked into sending it. This is
// the rule of net/http's CrossOriginProtection, applied to every method:
// a cookie-authenticated GET of a read must not be embedded by a sibling
// site either.
func sameOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return errCrossOrigin
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return errCrossOrigin
		}
	}
	return nil
}

// connectCSRF is what a cookie-authenticated Connect call must carry on top
// of sameOrigin: a POST of the Connect protocol, whose content types
// (application/json and application/proto with Connect-Protocol-Version,
// or application/connect+json|proto for streams) are ones no HTML form
// can send, and which a page of another origin cannot send without a CORS
// preflight that this server never answers.
func connectCSRF(r *http.Request) error {
	if r.Method != http.MethodPost {
		return errCrossOrigin
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json", "application/proto":
		if r.Header.Get("Connect-Protocol-Version") == "1" {
			return nil
		}
	case "application/connect+json", "application/connect+proto":
		return nil
	}
	return errors.New("a session cookie is accepted only on Connect protocol POSTs (Content-Type application/json or application/proto with Connect-Protocol-Version: 1)")
}

// clientIP is the address failed sign-ins are counted against.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// signInMaxBytes bounds a sign-in body: {"api_key": "..."}.
const signInMaxBytes = 4 << 10

// signIn exchanges an API key, in the body as {"api_key": "..."} or in the
// Authorization header as the other routes take it, for a session cookie.
// The token is in the cookie only: page scripts never see it.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if err := sameOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	key := keyFrom(r.Header, nil)
	if key == "" {
		var err error
		if key, err = keyFromBody(w, r); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	u, err := s.auth.user(r.Context(), key)
	var ae *authError
	switch {
	case errors.As(err, &ae):
		var e *throttled
		if errors.As(s.throttleFailure(r), &e) {
			w.Header().Set("Retry-After", e.retryAfter())
			writeError(w, http.StatusTooManyRequests, e.Error())
			return
		}
		writeError(w, http.StatusUnauthorized, "sign-in refused: "+ae.msg)
		return
	case err != nil:
		s.unavailable(w, err)
		return
	}
	if ok, wait := s.limit.allow(u.ID); !ok {
		writeTooMany(w, wait, "rate limit exceeded; retry after "+wait.Round(time.Millisecond).String())
		return
	}
	if ok, wait := s.signIns.allow(u.ID); !ok {
		writeTooMany(w, wait, "too many sign-ins of this user; retry after "+wait.Round(time.Second).String()+" (or use a session already open)")
		return
	}
	hash, _ := users.HashKey(key) // valid: the user was found by it
	token, sess, err := s.opts.Sessions.Create(r.Context(), u, hash)
	if err != nil {
		s.unavailable(w, err)
		return
	}
	http.SetCookie(w, sessionCookie(r, token, int(s.opts.Sessions.TTL().Seconds())))
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"user_id": u.ID, "username": u.Name, "expires_at": sess.ExpiresAt.Format(time.RFC3339),
	}})
}

// keyFromBody reads {"api_key": "..."} from a JSON body. JSON only: a
// form of another site cannot send it.
func keyFromBody(w http.ResponseWriter, r *http.Request) (string, error) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return "", errors.New(`send the API key as a JSON body {"api_key": "..."} with Content-Type: application/json, or in the Authorization header`)
	}
	var body struct {
		APIKey string `json:"api_key"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, signInMaxBytes)).Decode(&body); err != nil {
		return "", errors.New(`malformed sign-in body: want {"api_key": "..."}`)
	}
	if body.APIKey == "" {
		return "", errors.New(`missing api_key: want {"api_key": "..."}`)
	}
	return body.APIKey, nil
}

// signOut ends the session of the request's cookie and expires the cookie.
// Signing out without a session is not an error.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if err := sameOrigin(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		if err := s.opts.Sessions.Delete(r.Context(), c.Value); err != nil {
			// The cookie is kept, so that a retry can end the session.
			s.unavailable(w, err)
			return
		}
	}
	http.SetCookie(w, sessionCookie(r, "", -1))
	w.WriteHeader(http.StatusNoContent)
}

// sessionCookie is the session cookie with its attributes; maxAge < 0
// expires it. Secure when the request came over TLS, directly or through
// a proxy that says so: a forged X-Forwarded-Proto can only make the
// caller's own cookie stricter.
func sessionCookie(r *http.Request, token string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: SessionCookie, Value: token, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
	}
}

// unavailable answers 503 for a store that cannot be reached; the error
// itself goes to the log only.
func (s *Server) unavailable(w http.ResponseWriter, err error) {
	s.unavailableLog.Error().Err(err).Msg("user or session store unavailable")
	w.Header().Set("Retry-After", retryAfterUnavailable)
	writeError(w, http.StatusServiceUnavailable, "user store unavailable, retry later")
}

// contentSecurityPolicy is the policy of everything served, written for
// the dashboard: its scripts, styles and calls come from this server only,
// and no other site may frame it.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// securityHeaders sets the headers every answer carries.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}
