package processors

import (
	"errors"
	"fmt"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// ErrPermanent matches, with errors.Is, every error that retrying cannot
// fix: bad data that got past validation (a Postgres data error of class 22,
// a constraint violation), a message that does not decode, a day file over
// its limits. Everything else a Commit returns is transient: the loop
// retries it with backoff (connection refused, timeouts, 5xx, SlowDown,
// serialization failures).
var ErrPermanent = errors.New("permanent error")

// Permanent marks err as one that retrying the same input cannot fix, with
// a short reason for the dead-letter stream and the metrics ("numeric
// overflow", "day file too large"). A Commit that returns it for a batch
// tells the loop that some heartbeat in the batch can never be stored: the
// loop splits the batch until it finds the heartbeats that fail alone,
// commits the rest and parks those in the dead-letter stream.
func Permanent(reason string, err error) error {
	return &PermanentError{Reason: reason, Err: err}
}

// PermanentError is what Permanent returns.
type PermanentError struct {
	// Reason is a short, stable label ("numeric overflow"); it is a metric
	// label, so it must not carry user data.
	Reason string
	Err    error
}

func (e *PermanentError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }
func (e *PermanentError) Is(target error) bool {
	return target == ErrPermanent
}

// Rejected is what a Commit returns when it stored everything in its
// batches except the heartbeats listed: those can never be stored by this
// sink (a day file that would grow past its limit). The loop parks them in
// the dead-letter stream and acks the messages. A sink that cannot say
// which heartbeats failed returns Permanent instead, and the loop finds
// them by splitting the batch.
type Rejected struct {
	Heartbeats []Rejection
}

// Rejection is one heartbeat a sink can never store, and why.
type Rejection struct {
	Batch     *heartlogv1.Batch // the batch it came in (day, partition, prefixes)
	Heartbeat *heartlogv1.Heartbeat
	Reason    string // a short, stable label, as PermanentError.Reason
	Err       error
}

func (e *Rejected) Error() string {
	if len(e.Heartbeats) == 0 {
		return "no heartbeats rejected"
	}
	return fmt.Sprintf("%d heartbeat(s) rejected, first: %s: %v", len(e.Heartbeats), e.Heartbeats[0].Reason, e.Heartbeats[0].Err)
}

// Held is what a Commit returns when it committed every batch except those
// listed, which need a store that cannot be reached now (one shard database
// among several; the error says why). Run acks the messages of the
// committed batches and gives the held ones back to the server, to be
// delivered again after Options.HoldDelay, so that an outage of one
// database holds back only the messages that touch it. Replay and a
// Committer, which have no message to give back, retry the held batches
// alone. Batches must be batches Commit was given (the same pointers).
// Rejected lists heartbeats of the committed batches that can never be
// stored, as a *Rejected would.
type Held struct {
	Batches  []*heartlogv1.Batch
	Rejected []Rejection
	Err      error
}

func (e *Held) Error() string {
	return fmt.Sprintf("%d batch(es) held back: %v", len(e.Batches), e.Err)
}

func (e *Held) Unwrap() error { return e.Err }
