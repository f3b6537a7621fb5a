package processors

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// Committer feeds a sink batches that its caller made itself rather than
// read one to one from messages (the day compaction, which groups a day's
// heartbeats by user), with the handling Run, Replay and RetryDeadLetters
// share: transient errors are retried with backoff, a heartbeat the sink
// can never store is parked in the dead-letter stream, the rest committed.
type Committer struct {
	st *storer
}

// CommitterOptions tune a Committer. Zero fields take the defaults.
type CommitterOptions struct {
	// RetryMin and RetryMax bound the backoff between failed commits
	// (defaults 100ms and 10s).
	RetryMin, RetryMax time.Duration
	// Log receives failed commits and parked heartbeats.
	Log zerolog.Logger
}

// NewCommitter returns a Committer of sink that parks in dead.
func NewCommitter(sink Sink, dead *streams.DeadLetters, o CommitterOptions) *Committer {
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Second
	}
	return &Committer{st: newStorer(sink, dead, o.Log.With().Str("processor", sink.Name()).Logger(), o.RetryMin, o.RetryMax)}
}

// Commit returns nil once every heartbeat in batches is committed to the
// sink or parked. It returns an error only when ctx ended first; then some
// may be committed and others not, and committing them again is harmless.
// A parked heartbeat names the subject of its batch (day and partition) and
// no stream sequence: a made batch comes from many messages.
func (c *Committer) Commit(ctx context.Context, batches []*heartlogv1.Batch) error {
	items := make([]item, len(batches))
	for i, b := range batches {
		items[i] = item{batch: b, subject: streams.Subject(b.Day, b.Partition)}
	}
	return c.st.store(ctx, items)
}

// ParkUndecodable parks a message that did not decode, as it was, under
// the sink's name: what Run does with it.
func (c *Committer) ParkUndecodable(ctx context.Context, subject string, seq uint64, data []byte, cause error) error {
	return c.st.parkRaw(ctx, &item{raw: data, decode: cause, subject: subject, seq: seq})
}

// Parked is how many heartbeats and messages this Committer parked.
func (c *Committer) Parked() int { return c.st.parked }
