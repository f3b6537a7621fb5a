// Package streams declares heartlog's JetStream topology and is the only
// place that knows its names: the HEARTBEATS stream and its subjects
// heartbeats.<YYYYMMDD>.<partition>, the codec of the batch one message
// carries, the publisher that group-commits requests into those messages,
// the KV buckets (shard states and the cluster-wide lock), and the durable
// consumers of the processors.
//
// Everything here is created or updated idempotently at start, so any
// instance may start first. This package must never decide what a sink
// does with a message; it only moves messages.
package streams
