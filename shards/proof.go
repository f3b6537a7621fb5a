package shards

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/streams"
)

// ErrNotProven means a day may not be dropped yet: some processor that
// must hold the day has not acked all of it. The error is a
// *NotProvenError that says what the day waits for.
var ErrNotProven = errors.New("shards: day not proven safe to drop")

// Behind is one consumer that has not acked a day's last message on its
// partition.
type Behind struct {
	// Consumer is the durable, e.g. objects-p03.
	Consumer string
	// Partition is the partition the consumer reads.
	Partition uint32
	// LastSeq is the stream sequence of the day's last message on the
	// partition.
	LastSeq uint64
	// AckFloor is the stream sequence up to which the consumer has acked
	// every message of its partition.
	AckFloor uint64
	// Missing is set when the consumer does not exist.
	Missing bool
	// Uncompacted is set when the processor (Consumer holds its name) has
	// no compaction record of the partition: the day is closed but its
	// compaction did not finish.
	Uncompacted bool
}

func (b Behind) String() string {
	if b.Uncompacted {
		return fmt.Sprintf("%s has not recorded the compaction of partition %d (heartlog days close finishes it)", b.Consumer, b.Partition)
	}
	if b.Missing {
		return fmt.Sprintf("consumer %s does not exist, and the day's last message on partition %d is seq %d",
			b.Consumer, b.Partition, b.LastSeq)
	}
	return fmt.Sprintf("%s has acked up to seq %d, the day's last message on partition %d is seq %d",
		b.Consumer, b.AckFloor, b.Partition, b.LastSeq)
}

// NotProvenError says why a day may not be dropped yet.
type NotProvenError struct {
	// Day is YYYYMMDD.
	Day string
	// Behind lists the consumers that have not acked the whole day, in
	// processor then partition order.
	Behind []Behind
	// Reason is set when no consumer is to blame: the stream holds no
	// message of the day while its partition has rows.
	Reason string
}

func (e *NotProvenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "shards: day %s is not safe to drop yet: ", DisplayDay(e.Day))
	if e.Reason != "" {
		b.WriteString(e.Reason)
	}
	for i, x := range e.Behind {
		if i > 0 || e.Reason != "" {
			b.WriteString("; ")
		}
		b.WriteString(x.String())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotProven) hold.
func (e *NotProvenError) Is(target error) bool { return target == ErrNotProven }

// NotProven returns every *NotProvenError in err, which may be a join of
// several (RunOnce returns one per waiting day).
func NotProven(err error) []*NotProvenError {
	var out []*NotProvenError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if np, ok := err.(*NotProvenError); ok {
			out = append(out, np)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// Prove checks that the day (YYYYMMDD) is in its day files for good:
// it is closed, each processor in Options.Processors (objects and cache)
// has recorded the compaction of every partition, and every partition
// consumer of those processors (the late path) has acked every message of
// the day that the stream holds now past its compaction's bound (the late
// consumers read only closed days: they never see the messages at or
// below it). It returns nil when all of that holds, a *NotProvenError saying what is
// missing when not, and another error when it cannot tell.
//
// A day's messages are on heartbeats.<day>.<p>. Consumer p of a processor
// reads heartbeats.*.p, and its ack floor is the stream sequence up to
// which it has acked every message it reads (passing over those its
// compaction covered); so the late path has passed the day on partition p
// when the day's last message on heartbeats.<day>.<p> is at or below the
// ack floor of every processor's consumer p.
func (j *Janitor) Prove(ctx context.Context, day string) error {
	stream, err := j.js.Stream(ctx, j.sc.Stream)
	if err != nil {
		return fmt.Errorf("shards: stream %s: %w", j.sc.Stream, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(streams.DaySubjects(day)))
	if err != nil {
		return fmt.Errorf("shards: stream %s subjects of %s: %w", j.sc.Stream, day, err)
	}
	last := map[uint32]uint64{}
	for subject, n := range info.State.Subjects {
		if n == 0 {
			continue
		}
		_, p, err := streams.ParseSubject(subject)
		if err != nil {
			return fmt.Errorf("shards: %w", err)
		}
		m, err := stream.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return fmt.Errorf("shards: last message on %s: %w", subject, err)
		}
		last[p] = m.Sequence
	}
	if len(last) == 0 {
		// Nothing in the stream to measure the consumers against: either the
		// day never had a message (a partition created by hand), or its
		// messages aged out past the stream's MaxAge. An empty partition
		// loses nothing; rows with no message left to prove them are kept.
		rows, err := j.hasRows(ctx, day)
		if err != nil {
			return err
		}
		if rows {
			return &NotProvenError{Day: day, Reason: fmt.Sprintf(
				"the stream %s holds no message of this day (aged out past its MaxAge?) while %s has rows, so nothing proves %s have them; export the day, then drop the table by hand",
				j.sc.Stream, j.partitionName(day), strings.Join(j.opts.Processors, " and "))}
		}
		return nil
	}
	parts := make([]uint32, 0, len(last))
	for p := range last {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	np := &NotProvenError{Day: day}
	rec, err := j.proveCompacted(ctx, np)
	if err != nil {
		return err
	}
	if np.Reason != "" || len(np.Behind) > 0 {
		return np
	}
	for _, proc := range j.opts.Processors {
		for _, p := range parts {
			if last[p] <= rec.Compactions[p][proc].Seq {
				continue // the compaction wrote every message the stream holds
			}
			name := streams.PartitionDurable(proc, p)
			b := Behind{Consumer: name, Partition: p, LastSeq: last[p]}
			cons, err := stream.Consumer(ctx, name)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				b.Missing = true
				np.Behind = append(np.Behind, b)
				continue
			}
			if err != nil {
				return fmt.Errorf("shards: consumer %s: %w", name, err)
			}
			b.AckFloor = cons.CachedInfo().AckFloor.Stream
			if b.AckFloor < b.LastSeq {
				np.Behind = append(np.Behind, b)
			}
		}
	}
	if len(np.Behind) > 0 {
		return np
	}
	return nil
}

// proveCompacted files into np what the day lacks of its lifecycle: a
// Reason if it is open, a Behind (Uncompacted) for every partition and
// processor without a compaction record.
func (j *Janitor) proveCompacted(ctx context.Context, np *NotProvenError) (*streams.DayRecord, error) {
	kv, err := j.js.KeyValue(ctx, j.sc.ShardsBucket)
	if err != nil {
		return nil, fmt.Errorf("shards: KV bucket %s: %w", j.sc.ShardsBucket, err)
	}
	recs, err := streams.DayRecords(ctx, kv, np.Day)
	if err != nil {
		return nil, err
	}
	r := recs[np.Day]
	if r == nil || r.Lifecycle.State != streams.DayClosed {
		np.Reason = "the day is open: its day files are written when it closes (heartlog days close, or HEARTLOG_DAY_CLOSE_DELAY after it ends)"
		return r, nil
	}
	// Every partition, not only those with messages now: a partition
	// whose messages aged out of the stream may still have rows that no
	// compaction wrote (CloseDay records every partition, empty or not).
	for _, proc := range j.opts.Processors {
		for p := range j.sc.Partitions {
			if _, ok := r.Compactions[p][proc]; !ok {
				np.Behind = append(np.Behind, Behind{Consumer: proc, Partition: p, Uncompacted: true})
			}
		}
	}
	return r, nil
}
