package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"heartlog/users"
)

// UserLookup finds users and changes their settings; users.Accounts
// implements it.
type UserLookup interface {
	// ByKey finds the owner of an API key: users.ErrNotFound if none,
	// another error if it cannot tell. It must not need Postgres: ingest
	// depends on NATS alone (DESIGN.md invariant 7).
	ByKey(ctx context.Context, hash users.KeyHash) (users.User, error)
	// ByID reads a user afresh: all_time needs a first day newer than
	// the cached user's.
	ByID(ctx context.Context, id string) (users.User, error)
	// Update changes a user's settings in Postgres and the users bucket;
	// when it returns, ByKey answers with the change.
	Update(ctx context.Context, id string, c users.Change) (users.User, error)
}

// authError is a refused credential; its message is safe to show.
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }

var (
	errNoKey      = &authError{"missing API key: send Authorization: Basic base64(key), Bearer <key>, or ?api_key="}
	errBadKey     = &authError{"malformed API key: expected a UUID v4, optionally prefixed waka_"}
	errUnknownKey = &authError{"unknown API key"}
)

// keyFrom reads the API key from the request in the three ways WakaTime
// clients send it.
func keyFrom(h http.Header, query func(string) string) string {
	auth := h.Get("Authorization")
	scheme, value, _ := strings.Cut(auth, " ")
	value = strings.TrimSpace(value)
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			return value // garbage: reported as a malformed key
		}
		// wakatime-cli sends base64(key); some clients send base64(key:).
		key, _, _ := strings.Cut(string(raw), ":")
		return key
	case "bearer":
		return value
	}
	if query != nil {
		return query("api_key")
	}
	return ""
}

// authenticator resolves API keys to users. Its lookup is local
// (users.Directory keeps the users bucket in memory), so it needs no cache
// of its own, and a revoked key stops working as soon as the bucket says.
// Only key hashes are kept in memory.
type authenticator struct {
	users UserLookup
}

func newAuthenticator(u UserLookup) *authenticator { return &authenticator{users: u} }

// user returns the key's owner or an *authError; other errors mean the
// user store is unreachable.
func (a *authenticator) user(ctx context.Context, key string) (users.User, error) {
	if key == "" {
		return users.User{}, errNoKey
	}
	hash, err := users.HashKey(key)
	if err != nil {
		return users.User{}, errBadKey
	}
	u, err := a.users.ByKey(ctx, hash)
	if errors.Is(err, users.ErrNotFound) {
		return users.User{}, errUnknownKey
	}
	return u, err
}

// retryAfterUnavailable is the Retry-After of a 503 when the user store is
// unreachable: NATS reconnects within a second or two.
const retryAfterUnavailable = "2"
