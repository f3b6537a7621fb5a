package processors

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"heartlog/streams"
)

// RetryOptions choose what RetryDeadLetters feeds back.
type RetryOptions struct {
	// Seqs retries only these entries; empty for every entry of the sink's
	// processor.
	Seqs []uint64
	// BatchEntries is how many entries one commit takes (default 512).
	BatchEntries int
	// RetryMin and RetryMax bound the backoff between failed commits
	// (defaults 100ms and 10s).
	RetryMin, RetryMax time.Duration
	// Log receives failed commits and entries parked again.
	Log zerolog.Logger
}

// RetryResult says what a retry did.
type RetryResult struct {
	Retried  int // entries fed back to the sink and removed
	Reparked int // of those, heartbeats the sink refused again (new entries)
}

// RetryDeadLetters feeds parked entries of sink's processor back to it,
// through the same handling as Run: transient errors are retried, and a
// heartbeat the sink still refuses is parked again as a new entry (its
// RetryOf names the old one) rather than lost. An entry is removed from the
// dead-letter stream only after its heartbeats were committed or parked
// again. Entries parked while it runs are not retried.
func RetryDeadLetters(ctx context.Context, dead *streams.DeadLetters, sink Sink, o RetryOptions) (RetryResult, error) {
	if o.BatchEntries <= 0 {
		o.BatchEntries = 512
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Second
	}
	entries, err := selectEntries(ctx, dead, sink.Name(), o.Seqs)
	if err != nil {
		return RetryResult{}, err
	}
	st := newStorer(sink, dead, o.Log.With().Str("processor", sink.Name()).Logger(), o.RetryMin, o.RetryMax)
	var res RetryResult
	for len(entries) > 0 {
		chunk := entries[:min(o.BatchEntries, len(entries))]
		entries = entries[len(chunk):]
		items := make([]item, len(chunk))
		for i, d := range chunk {
			if d.Batch != nil {
				items[i] = item{batch: d.Batch, subject: d.Subject, seq: d.StreamSeq}
			} else {
				items[i] = itemOf(d.Raw, d.Subject, d.StreamSeq)
			}
			items[i].retryOf = d.Seq
		}
		before := st.parked
		if err := st.store(ctx, items); err != nil {
			return res, fmt.Errorf("processors: retry dead letters: %w", err)
		}
		for _, d := range chunk {
			if err := dead.Delete(ctx, d.Seq); err != nil {
				return res, fmt.Errorf("processors: retry dead letters: committed entry %d but could not remove it (retrying it again is harmless): %w", d.Seq, err)
			}
			res.Retried++
		}
		res.Reparked += st.parked - before
	}
	return res, nil
}

// selectEntries reads the processor's entries, or the ones asked for.
func selectEntries(ctx context.Context, dead *streams.DeadLetters, processor string, seqs []uint64) ([]streams.DeadLetter, error) {
	if len(seqs) == 0 {
		return dead.List(ctx, processor)
	}
	out := make([]streams.DeadLetter, 0, len(seqs))
	for _, seq := range seqs {
		d, err := dead.Get(ctx, seq)
		if err != nil {
			return nil, err
		}
		if d.Processor != processor {
			return nil, fmt.Errorf("processors: dead letter %d was parked by %s, not %s", seq, d.Processor, processor)
		}
		out = append(out, d)
	}
	return out, nil
}
