package processors

import (
	"context"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// Sink is one projection of the log (Postgres rows, S3 day files, ...).
//
// Contract:
//   - Commit receives batches in stream order, but must not depend on it:
//     after a crash, a redelivery or a replay, any batch may come again,
//     later, or out of order. Committing the same heartbeats again must
//     leave the sink as it was (heartbeat ids make this possible).
//   - Commit returns nil only once every heartbeat in batches is durable in
//     the sink, or deliberately skipped (a dropped shard). The loop acks the
//     messages only then.
//   - An error means nothing is acknowledged: the loop retries the same
//     batches with backoff. A sink must therefore leave nothing half-visible
//     on error that a retry would not complete.
//   - Except for two kinds of error (errors.go): one matching ErrPermanent
//     says some heartbeat in batches can never be stored, and the loop
//     splits the batches to find it; a *Rejected says everything else is
//     committed and names the heartbeats that never can be. Either way the
//     loop parks those heartbeats in the dead-letter stream, with their
//     reason, and goes on: one bad heartbeat never holds back the others.
//   - A *Held (errors.go) says everything was committed except the batches
//     it lists, which wait on a store that is down: Run acks the other
//     messages and lets the server deliver the held ones again later, so
//     one unreachable database never holds back what does not touch it.
//     What was committed is committed once: the held batches come back
//     alone.
//   - One Run never calls Commit concurrently; several processes may each run
//     a sink of the same kind, each on its own messages.
type Sink interface {
	// Name is the processor's name in logs and metrics.
	Name() string
	Commit(ctx context.Context, batches []*heartlogv1.Batch) error
}
