package processors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"heartlog/progress"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// ReplayOptions choose what part of the stream Replay feeds a sink.
type ReplayOptions struct {
	// Since and SinceSeq choose the first message (by time or stream
	// sequence); zero for the start of the stream.
	Since    time.Time
	SinceSeq uint64
	// Until and UntilSeq choose the last; zero for the stream's last
	// message when Replay starts, so that a replay into a live system ends.
	Until    time.Time
	UntilSeq uint64
	// User replays only this user's heartbeats.
	User string
	// Admit, if set, chooses the messages replayed (see Admission): a
	// replay skips what it does not admit, held or passed over alike.
	Admit AdmitFunc
	// BatchMessages is how many messages one commit takes (default 512).
	BatchMessages int
	// Progress, if set, is called about every ProgressEvery (default 2s)
	// and once at the end.
	Progress      func(ReplayProgress)
	ProgressEvery time.Duration
	// Log receives failed commits (each is retried) and parked heartbeats.
	Log zerolog.Logger
}

// ReplayProgress is a progress report.
type ReplayProgress struct {
	Messages, Total uint64 // messages done, and the replay's size
	Heartbeats      uint64
	Elapsed         time.Duration
	Done            bool
}

// Rate is messages per second so far.
func (p ReplayProgress) Rate() float64 { return progress.Rate(float64(p.Messages), p.Elapsed) }

// ETA is the time left at the current rate.
func (p ReplayProgress) ETA() time.Duration {
	return progress.ETA(float64(p.Messages), float64(p.Total), p.Elapsed)
}

// ErrNothingToReplay means the chosen range holds no message.
var ErrNothingToReplay = errors.New("processors: nothing to replay in that range")

// Replay feeds part of the stream to sink through an ordered consumer: the
// processors' durable consumers are not touched, so replaying into a live
// system is safe (every sink is idempotent). It returns when the range is
// done; a failed commit is retried until ctx ends, and what the sink can
// never store is parked in the dead-letter stream, as Run does.
func Replay(ctx context.Context, js jetstream.JetStream, cfg streams.Config, sink Sink, o ReplayOptions) error {
	if o.BatchMessages <= 0 {
		o.BatchMessages = 512
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 2 * time.Second
	}
	stream, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return fmt.Errorf("processors: replay: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("processors: replay: %w", err)
	}
	last := info.State.LastSeq
	if o.UntilSeq > 0 && o.UntilSeq < last {
		last = o.UntilSeq
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.SubjectPrefix + ".>"}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if o.User != "" {
		occ.FilterSubjects = []string{streams.PartitionSubjects(streams.Partition(o.User, cfg.Partitions))}
	}
	first := info.State.FirstSeq
	switch {
	case o.SinceSeq > 0:
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, o.SinceSeq
		first = max(first, o.SinceSeq)
	case !o.Since.IsZero():
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &o.Since
	}
	if info.State.Msgs == 0 || first > last {
		return ErrNothingToReplay
	}
	cons, err := js.OrderedConsumer(ctx, cfg.Stream, occ)
	if err != nil {
		return fmt.Errorf("processors: replay: %w", err)
	}
	st := newStorer(sink, streams.NewDeadLetters(js, cfg), o.Log.With().Str("processor", sink.Name()).Logger(), 100*time.Millisecond, 10*time.Second)
	r := replayer{st: st, o: o, last: last, total: last - first + 1, start: time.Now()}
	return r.run(ctx, cons)
}

type replayer struct {
	st          *storer
	o           ReplayOptions
	last, total uint64
	start       time.Time
	progress    ReplayProgress
	reported    time.Time
}

func (r *replayer) run(ctx context.Context, cons jetstream.Consumer) error {
	for {
		msgs, err := cons.Fetch(r.o.BatchMessages, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("processors: replay: fetch: %w", err)
		}
		var items []item
		done := false
		n, seen := uint64(0), 0
		for msg := range msgs.Messages() {
			seen++
			meta, err := msg.Metadata()
			if err != nil {
				return err
			}
			if meta.Sequence.Stream > r.last || (!r.o.Until.IsZero() && meta.Timestamp.After(r.o.Until)) {
				done = true
				break
			}
			n++
			if meta.Sequence.Stream == r.last {
				done = true
			}
			if !r.admitted(msg.Subject(), meta.Sequence.Stream) {
				continue
			}
			it := itemOf(msg.Data(), msg.Subject(), meta.Sequence.Stream)
			if it.batch != nil {
				if it.batch = r.filter(it.batch); it.batch == nil {
					continue
				}
			}
			items = append(items, it)
		}
		if err := msgs.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("processors: replay: fetch: %w", err)
		}
		if seen == 0 {
			// Nothing left in the filter's range: the end message itself may
			// be outside the filter (a --user replay).
			done = true
		}
		if err := r.commit(ctx, items); err != nil {
			return err
		}
		r.progress.Messages += n
		r.report(done)
		if done {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// admitted reports whether ReplayOptions.Admit lets the message through.
func (r *replayer) admitted(subject string, seq uint64) bool {
	if r.o.Admit == nil {
		return true
	}
	day, p, err := streams.ParseSubject(subject)
	return err != nil || r.o.Admit(day, p, seq) == Admit
}

// filter keeps only the chosen user's heartbeats.
func (r *replayer) filter(b *heartlogv1.Batch) *heartlogv1.Batch {
	if r.o.User == "" {
		return b
	}
	kept := b.Heartbeats[:0]
	for _, hb := range b.Heartbeats {
		if hb.UserId == r.o.User {
			kept = append(kept, hb)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	b.Heartbeats = kept
	return b
}

// commit goes through the processors' own handling: transient errors are
// retried, a heartbeat the sink can never store is parked, not looped on.
func (r *replayer) commit(ctx context.Context, items []item) error {
	if len(items) == 0 {
		return nil
	}
	if err := r.st.store(ctx, items); err != nil {
		return fmt.Errorf("processors: replay stopped: %w", err)
	}
	for _, it := range items {
		if it.batch != nil {
			r.progress.Heartbeats += uint64(len(it.batch.Heartbeats))
		}
	}
	return nil
}

func (r *replayer) report(done bool) {
	if r.o.Progress == nil || (!done && time.Since(r.reported) < r.o.ProgressEvery) {
		return
	}
	r.reported = time.Now()
	p := r.progress
	p.Total, p.Elapsed, p.Done = r.total, time.Since(r.start), done
	r.o.Progress(p)
}
