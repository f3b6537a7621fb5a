package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"heartlog/users"
)

// UserLookup finds users. *users.Store implements it.
type UserLookup interface {
	// ByKey finds the owner of an API key (cached for KeyCacheTTL).
	ByKey(ctx context.Context, hash users.KeyHash) (users.User, error)
	// ByID reads a user afresh: all_time needs a first day newer than
	// the cached user's.
	ByID(ctx context.Context, id string) (users.User, error)
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

// authenticator resolves API keys to users, with a short cache so that the
// hot ingest path does not ask Postgres on every request. Only key hashes
// are kept in memory.
type authenticator struct {
	users UserLookup
	ttl   time.Duration

	mu    sync.Mutex
	cache map[users.KeyHash]cached
}

type cached struct {
	user    users.User
	found   bool
	expires time.Time
}

const maxCachedKeys = 100_000

func newAuthenticator(u UserLookup, ttl time.Duration) *authenticator {
	return &authenticator{users: u, ttl: ttl, cache: map[users.KeyHash]cached{}}
}

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
	now := time.Now()
	a.mu.Lock()
	c, ok := a.cache[hash]
	a.mu.Unlock()
	if ok && now.Before(c.expires) {
		if !c.found {
			return users.User{}, errUnknownKey
		}
		return c.user, nil
	}
	u, err := a.users.ByKey(ctx, hash)
	found := err == nil
	if err != nil && !errors.Is(err, users.ErrNotFound) {
		return users.User{}, err
	}
	ttl := a.ttl
	if !found {
		ttl = min(ttl, 5*time.Second) // a key created a moment later must work soon
	}
	a.mu.Lock()
	if len(a.cache) >= maxCachedKeys {
		clear(a.cache)
	}
	a.cache[hash] = cached{user: u, found: found, expires: now.Add(ttl)}
	a.mu.Unlock()
	if !found {
		return users.User{}, errUnknownKey
	}
	return u, nil
}
