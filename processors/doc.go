// Package processors runs heartlog's sinks off the HEARTBEATS stream: the
// shared consume loop (Run) that every sink uses, and the Sink contract it
// relies on. Each sink lives in a package of its own below this one.
//
// The loop never acks a message before its sink has committed it, so a
// processor killed at any point loses nothing; since sinks are idempotent,
// the redelivery that follows duplicates nothing visible either. What a sink
// can never store (errors.go) is parked in the dead-letter stream, durably,
// before the ack; Run, Replay and RetryDeadLetters share that handling.
package processors
