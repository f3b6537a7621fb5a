// Package processors runs heartlog's sinks off the HEARTBEATS stream: the
// shared consume loop (Run) that every sink uses, and the Sink contract it
// relies on. Each sink lives in a package of its own below this one.
//
// The loop never acks a message before its sink has committed it, so a
// processor killed at any point loses nothing; since sinks are idempotent,
// the redelivery that follows duplicates nothing visible either.
package processors
