package processors

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/rs/zerolog"

	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// item is what one message gives a commit: its batch or, for a message
// that does not decode, its bytes; and where it is in the stream, which a
// parked heartbeat keeps.
type item struct {
	batch   *heartlogv1.Batch
	raw     []byte
	decode  error // why raw did not decode
	subject string
	seq     uint64
	retryOf uint64 // the dead letter this item is retried from
	held    bool   // the sink held its batch back (Held): give the message back
}

// storer is the retry and poison handling that Run, Replay and
// RetryDeadLetters share: transient errors are retried with backoff,
// permanent ones split the batches down to the heartbeats that fail alone,
// which are parked in the dead-letter stream with the rest committed.
type storer struct {
	sink               Sink
	dead               *streams.DeadLetters
	log                zerolog.Logger
	m                  *metrics
	retryMin, retryMax time.Duration
	parked             int // heartbeats and messages parked so far
	// handBack: a Held marks its items held and returns, for Run to give
	// their messages back; otherwise the held batches are retried here.
	handBack bool
}

func newStorer(sink Sink, dead *streams.DeadLetters, log zerolog.Logger, retryMin, retryMax time.Duration) *storer {
	return &storer{sink: sink, dead: dead, log: log, m: metricsFor(sink.Name()), retryMin: retryMin, retryMax: retryMax}
}

// store returns nil once every item is committed to the sink or parked in
// the dead-letter stream, so that the caller may ack all of them. It
// returns an error only when ctx ended first; then nothing may be acked.
func (s *storer) store(ctx context.Context, items []item) error {
	origin := make(map[*heartlogv1.Batch]*item, len(items))
	batches := make([]*heartlogv1.Batch, 0, len(items))
	for i := range items {
		it := &items[i]
		if it.batch == nil {
			if err := s.parkRaw(ctx, it); err != nil {
				return err
			}
			continue
		}
		origin[it.batch] = it
		batches = append(batches, it.batch)
	}
	if len(batches) == 0 {
		return nil
	}
	return s.commit(ctx, batches, origin)
}

// commit commits batches, retrying transient errors until ctx ends.
func (s *storer) commit(ctx context.Context, batches []*heartlogv1.Batch, origin map[*heartlogv1.Batch]*item) error {
	wait := s.retryMin
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := s.sink.Commit(ctx, batches)
		s.m.observeCommit(time.Since(start), err)
		var rejected *Rejected
		var held *Held
		switch {
		case err == nil:
			s.m.observeBatch(batches)
			return nil
		case ctx.Err() != nil:
			return err
		case errors.As(err, &rejected):
			s.m.observeBatch(batches)
			return s.parkAll(ctx, rejected.Heartbeats, origin)
		case errors.As(err, &held):
			s.m.observeBatch(without(batches, held.Batches))
			if err := s.parkAll(ctx, held.Rejected, origin); err != nil {
				return err
			}
			if len(held.Batches) == 0 {
				return nil
			}
			if s.handBack {
				for _, b := range held.Batches {
					if it := origin[b]; it != nil {
						it.held = true
					}
				}
				s.log.Warn().Err(held.Err).Int("held", len(held.Batches)).Int("committed", len(batches)-len(held.Batches)).
					Msg("commit held batches back; the others are committed, the held ones come again later")
				return nil
			}
			batches = held.Batches
		case errors.Is(err, ErrPermanent):
			return s.split(ctx, batches, err, origin)
		}
		s.log.Warn().Err(err).Int("attempt", attempt).Str("retry_in", wait.String()).Int("messages", len(batches)).Msg("commit failed; retrying")
		sleep(ctx, jitter(wait))
		wait = min(2*wait, s.retryMax)
	}
}

// without is batches less those in drop.
func without(batches, drop []*heartlogv1.Batch) []*heartlogv1.Batch {
	out := make([]*heartlogv1.Batch, 0, len(batches))
	for _, b := range batches {
		if !slices.Contains(drop, b) {
			out = append(out, b)
		}
	}
	return out
}

// parkAll parks the rejected heartbeats.
func (s *storer) parkAll(ctx context.Context, rejected []Rejection, origin map[*heartlogv1.Batch]*item) error {
	for _, r := range rejected {
		if err := s.park(ctx, r.Batch, r.Heartbeat, r.Reason, r.Err, origin[r.Batch]); err != nil {
			return err
		}
	}
	return nil
}

// split commits the two halves of batches (by heartbeats, across and
// within batches) one after the other, and parks a heartbeat that fails
// alone. One bad heartbeat among n costs about 2·log2(n) commits.
func (s *storer) split(ctx context.Context, batches []*heartlogv1.Batch, cause error, origin map[*heartlogv1.Batch]*item) error {
	n := 0
	for _, b := range batches {
		n += len(b.Heartbeats)
	}
	if n <= 1 {
		for _, b := range batches {
			for _, hb := range b.Heartbeats {
				reason := "permanent"
				if pe := (*PermanentError)(nil); errors.As(cause, &pe) {
					reason = pe.Reason
				}
				if err := s.park(ctx, b, hb, reason, cause, origin[b]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	first, second := halve(batches, n/2, origin)
	if err := s.commit(ctx, first, origin); err != nil {
		return err
	}
	return s.commit(ctx, second, origin)
}

// halve cuts batches after k heartbeats. A batch cut in two becomes two
// batches of the same day, partition and prefixes, from the same message.
func halve(batches []*heartlogv1.Batch, k int, origin map[*heartlogv1.Batch]*item) (first, second []*heartlogv1.Batch) {
	for _, b := range batches {
		switch {
		case k <= 0:
			second = append(second, b)
		case k >= len(b.Heartbeats):
			first = append(first, b)
		default:
			a, c := part(b, b.Heartbeats[:k]), part(b, b.Heartbeats[k:])
			origin[a], origin[c] = origin[b], origin[b]
			first, second = append(first, a), append(second, c)
		}
		k -= len(b.Heartbeats)
	}
	return first, second
}

func part(b *heartlogv1.Batch, hbs []*heartlogv1.Heartbeat) *heartlogv1.Batch {
	return &heartlogv1.Batch{Day: b.Day, Partition: b.Partition, Heartbeats: hbs, ObjectPrefixes: b.ObjectPrefixes}
}

// park stores one heartbeat in the dead-letter stream, retrying until the
// server acks it or ctx ends: the message is acked only after that.
func (s *storer) park(ctx context.Context, b *heartlogv1.Batch, hb *heartlogv1.Heartbeat, reason string, cause error, it *item) error {
	if reason == "" {
		reason = "permanent"
	}
	one := &heartlogv1.Batch{Heartbeats: []*heartlogv1.Heartbeat{hb}}
	if b != nil {
		one.Day, one.Partition = b.Day, b.Partition
		if prefix, ok := b.ObjectPrefixes[hb.UserId]; ok {
			one.ObjectPrefixes = map[string]string{hb.UserId: prefix}
		}
	}
	d := streams.DeadLetter{Processor: s.sink.Name(), Reason: reason, Batch: one}
	if cause != nil {
		d.Error = cause.Error()
	}
	return s.parkEntry(ctx, d, it)
}

// parkRaw parks a message that did not decode, as it was.
func (s *storer) parkRaw(ctx context.Context, it *item) error {
	d := streams.DeadLetter{Processor: s.sink.Name(), Reason: streams.ReasonUndecodable, Raw: it.raw}
	if it.decode != nil {
		d.Error = it.decode.Error()
	}
	return s.parkEntry(ctx, d, it)
}

func (s *storer) parkEntry(ctx context.Context, d streams.DeadLetter, it *item) error {
	if it != nil {
		d.Subject, d.StreamSeq, d.RetryOf = it.subject, it.seq, it.retryOf
	}
	if d.Subject == "" && d.Batch != nil {
		d.Subject = streams.Subject(d.Batch.Day, d.Batch.Partition)
	}
	d.ParkedAt = time.Now()
	wait := s.retryMin
	for {
		seq, err := s.dead.Park(ctx, d)
		if err == nil {
			s.parked++
			s.m.parked(d.Reason).Inc()
			// Never the entity or the key: user data stays out of logs.
			s.log.Error().Str("user_id", d.User()).Str("day", d.Day()).Str("reason", d.Reason).
				Uint64("stream_seq", d.StreamSeq).Uint64("dlq_seq", seq).
				Msg("parked in the dead-letter stream; see heartlog dlq list")
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		s.log.Warn().Err(err).Str("retry_in", wait.String()).Msg("parking in the dead-letter stream failed; retrying, the message stays unacked")
		sleep(ctx, jitter(wait))
		wait = min(2*wait, s.retryMax)
	}
}

// itemOf decodes one message's data.
func itemOf(data []byte, subject string, seq uint64) item {
	it := item{subject: subject, seq: seq}
	b, err := streams.DecodeBatch(data)
	if err != nil {
		it.raw, it.decode = data, err
		return it
	}
	it.batch = b
	return it
}
