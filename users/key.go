package users

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"

	"github.com/google/uuid"
)

// ErrMalformedKey means a string is not an API key heartlog could have
// issued: not a UUID v4, with or without the waka_ prefix.
var ErrMalformedKey = errors.New("users: API key must be a UUID v4, optionally prefixed waka_")

// KeyHash is the stored form of an API key.
type KeyHash [32]byte

// NewKey returns a fresh random API key in the waka_ form that WakaTime
// itself issues.
func NewKey() string { return "waka_" + uuid.NewString() }

// HashKey validates a presented key and returns its stored form. The
// waka_ prefix and letter case do not matter: all spellings of one UUID are
// one key.
func HashKey(key string) (KeyHash, error) {
	raw := strings.TrimPrefix(key, "waka_")
	// Exactly the canonical 36-character form; uuid.Parse alone also takes
	// braces and urn: prefixes, which wakatime-cli would not send.
	if len(raw) != 36 {
		return KeyHash{}, ErrMalformedKey
	}
	u, err := uuid.Parse(raw)
	if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
		return KeyHash{}, ErrMalformedKey
	}
	return sha256.Sum256([]byte(u.String())), nil
}

const prefixAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newObjectPrefix is the random leading part of a user's day-file keys:
// spreading users over prefixes spreads load over S3's partitions.
func newObjectPrefix() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	for i := range b {
		b[i] = prefixAlphabet[int(b[i])%len(prefixAlphabet)]
	}
	return string(b)
}
