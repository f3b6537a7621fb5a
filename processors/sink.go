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
//   - One Run never calls Commit concurrently; several processes may each run
//     a sink of the same kind, each on its own messages.
type Sink interface {
	// Name is the processor's name in logs and metrics.
	Name() string
	Commit(ctx context.Context, batches []*heartlogv1.Batch) error
}
