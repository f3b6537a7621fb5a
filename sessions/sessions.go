package sessions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/users"
)

// ErrNotFound means a token is no live session: unknown, malformed,
// expired or signed out. The caller cannot tell which, and need not.
var ErrNotFound = errors.New("sessions: no such session")

// DefaultTTL is a session's lifetime unless Options say otherwise.
const DefaultTTL = 7 * 24 * time.Hour

// Options configure a Store. Zero fields take the defaults.
type Options struct {
	// TTL is how long a session lasts after sign-in (default DefaultTTL).
	// It is not extended by use: a stolen cookie works at most this long.
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Session is what a token stands for.
type Session struct {
	UserID string
	// Key is the hash of the API key the session was made from.
	Key       users.KeyHash
	ExpiresAt time.Time
}

// record is a session as stored; never the token.
type record struct {
	UserID    string    `json:"user_id"`
	KeyHash   string    `json:"key_hash"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Store keeps sessions in a KV bucket made with per-key TTLs
// (streams.Ensure creates it).
type Store struct {
	kv   jetstream.KeyValue
	opts Options
}

// Open opens the named sessions bucket.
func Open(ctx context.Context, js jetstream.JetStream, bucket string, opts Options) (*Store, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("sessions: open KV bucket %s: %w", bucket, err)
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{kv: kv, opts: opts}, nil
}

// TTL is a new session's lifetime.
func (s *Store) TTL() time.Duration { return s.opts.TTL }

// tokenBytes is a token's entropy: 256 bits.
const tokenBytes = 32

// tokenLen is a token's length in unpadded base64url.
var tokenLen = base64.RawURLEncoding.EncodedLen(tokenBytes)

// Create starts a session for u, signed in with the key whose hash is
// key, and returns its token: the only time the token exists outside the
// browser.
func (s *Store) Create(ctx context.Context, u users.User, key users.KeyHash) (string, Session, error) {
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", Session{}, fmt.Errorf("sessions: random token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	sess := Session{UserID: u.ID, Key: key, ExpiresAt: s.opts.Now().Add(s.opts.TTL).UTC().Truncate(time.Second)}
	val, err := json.Marshal(record{UserID: sess.UserID, KeyHash: key.String(), ExpiresAt: sess.ExpiresAt})
	if err != nil {
		return "", Session{}, err
	}
	// Create, not Put: a token is never reused, so an existing key would
	// be a broken random source, not a session to overwrite.
	if _, err := s.kv.Create(ctx, storageKey(token), val, jetstream.KeyTTL(s.opts.TTL)); err != nil {
		return "", Session{}, fmt.Errorf("sessions: write KV bucket %s: %w", s.kv.Bucket(), err)
	}
	return token, sess, nil
}

// Lookup returns the live session of token, ErrNotFound if there is
// none, or another error if the bucket cannot be read. The expiry is
// checked here too: the bucket's TTL removes entries within a second or so
// of it, and a session must not outlive its time by that much.
func (s *Store) Lookup(ctx context.Context, token string) (Session, error) {
	if !wellFormed(token) {
		return Session{}, ErrNotFound
	}
	e, err := s.kv.Get(ctx, storageKey(token))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("sessions: read KV bucket %s: %w", s.kv.Bucket(), err)
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil || rec.UserID == "" {
		return Session{}, ErrNotFound // unreadable: authenticates no one
	}
	key, err := hex.DecodeString(rec.KeyHash)
	if err != nil || len(key) != len(users.KeyHash{}) {
		return Session{}, ErrNotFound
	}
	if !s.opts.Now().Before(rec.ExpiresAt) {
		return Session{}, ErrNotFound
	}
	return Session{UserID: rec.UserID, Key: users.KeyHash(key), ExpiresAt: rec.ExpiresAt}, nil
}

// Delete ends the session of token; ending one that does not exist is
// not an error.
func (s *Store) Delete(ctx context.Context, token string) error {
	if !wellFormed(token) {
		return nil
	}
	// Purge, not Delete: no trace of the session is kept in the bucket's
	// history; the purge marker itself expires after a minute.
	if err := s.kv.Purge(ctx, storageKey(token), jetstream.PurgeTTL(time.Minute)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("sessions: delete from KV bucket %s: %w", s.kv.Bucket(), err)
	}
	return nil
}

func wellFormed(token string) bool {
	if len(token) != tokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil
}

// storageKey is the bucket key of a token: its SHA-256 in hex. A token is
// 256 random bits, so a fast hash is enough: there is nothing to guess.
func storageKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}
