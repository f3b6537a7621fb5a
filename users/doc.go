// Package users holds user records and their API keys in Postgres.
//
// API keys are UUID v4, optionally "waka_"-prefixed, because wakatime-cli
// refuses to send with any other form. Only a SHA-256 hash of the
// normalised key is stored; this package must never log or return a stored
// key, and the only place a key exists in clear is the moment Create hands
// it to the operator.
package users
