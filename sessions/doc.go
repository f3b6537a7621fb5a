// Package sessions holds browser sessions: what a dashboard page signs in
// for instead of keeping the user's API key.
//
// A session is a random 256-bit token, handed to the browser once (in an
// HttpOnly cookie) and stored only as its SHA-256 in a JetStream KV bucket,
// with a per-key TTL. Any API instance can therefore check a session with
// NATS alone, like an API key (DESIGN.md invariant 7), and a copy of the
// bucket authenticates no one. A session records the hash of the API key
// it was made from: it ends when that key is rotated or its user deleted,
// not only when it expires or is signed out.
package sessions
