package today

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/heartbeat"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// feed is one partition's shared ordered consumer, started when its first
// user joins and stopped when its last one is dropped.
type feed struct {
	t         *Tracker
	partition uint32
	refs      int // users assigned to it, under Tracker.mu

	startMu sync.Mutex
	started bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	stopped bool
	last    uint64           // stream sequence of the last message handled
	users   map[string]*user // joined users
}

func newFeed(t *Tracker, p uint32) *feed {
	f := &feed{t: t, partition: p, users: map[string]*user{}, done: make(chan struct{})}
	f.ctx, f.cancel = context.WithCancel(t.ctx)
	return f
}

// join adds st to the feed, starting the feed first if need be, and
// returns the last sequence handled before st joined: st gets every
// message after it.
func (f *feed) join(ctx context.Context, st *user) (uint64, error) {
	f.startMu.Lock()
	if !f.started {
		if err := f.start(ctx); err != nil {
			f.startMu.Unlock()
			return 0, err
		}
		f.started = true
	}
	f.startMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return 0, errDropped
	}
	f.users[st.id] = st
	return f.last, nil
}

// start positions the feed after the stream's last message and runs it.
func (f *feed) start(ctx context.Context) error {
	stream, err := f.t.js.Stream(ctx, f.t.sc.Stream)
	if err != nil {
		return fmt.Errorf("today: partition %d: %w", f.partition, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return errDropped
	}
	f.last = stream.CachedInfo().State.LastSeq
	f.t.log.Info().Uint32("partition", f.partition).Uint64("from_seq", f.last+1).Msg("today: partition feed started")
	f.t.wg.Add(1)
	go f.run()
	return nil
}

// leave removes st.
func (f *feed) leave(st *user) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.users[st.id] == st {
		delete(f.users, st.id)
	}
}

// stop ends the feed; it does not wait for it.
func (f *feed) stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.cancel()
}

// window is the feed's filter at now: the partition's subjects of the UTC
// days from two before today to one after (see the package comment), and
// the next UTC midnight, when it moves.
func (f *feed) window(now time.Time) ([]string, time.Time) {
	day := now.UTC().Truncate(24 * time.Hour)
	var subjects []string
	for d := -2; d <= 1; d++ {
		subjects = append(subjects, streams.Subject(day.AddDate(0, 0, d).Format(heartbeat.DayLayout), f.partition))
	}
	return subjects, day.AddDate(0, 0, 1)
}

// run reads the partition from last+1 until stopped, moving its window at
// each UTC midnight and starting again after an error, always from the
// message after the last one handled: nothing is skipped.
func (f *feed) run() {
	defer f.t.wg.Done()
	defer close(f.done)
	wait := 100 * time.Millisecond
	for f.ctx.Err() == nil {
		err := f.follow()
		if f.ctx.Err() != nil {
			break
		}
		if err == nil {
			wait = 100 * time.Millisecond
			continue // the window moved
		}
		f.t.log.Error().Err(err).Uint32("partition", f.partition).Str("retry_in", wait.String()).Msg("today: partition feed failed")
		select {
		case <-f.ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
	f.t.log.Info().Uint32("partition", f.partition).Msg("today: partition feed stopped")
}

// follow reads one window: it returns nil when the window moves.
func (f *feed) follow() error {
	subjects, until := f.window(time.Now())
	f.mu.Lock()
	from := f.last + 1
	f.mu.Unlock()
	cons, err := f.t.js.OrderedConsumer(f.ctx, f.t.sc.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
	})
	if err != nil {
		return err
	}
	iter, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(256, 8<<20))
	if err != nil {
		return err
	}
	defer iter.Stop()
	ctx, cancel := context.WithDeadline(f.ctx, until)
	defer cancel()
	for {
		msg, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && f.ctx.Err() == nil {
				return nil
			}
			return err
		}
		if err := f.handle(msg); err != nil {
			return err
		}
	}
}

// handle hands one message's heartbeats to the joined users it has
// heartbeats of. It runs under f.mu, so that join sees each message as
// handled or not yet (the package comment's argument).
func (f *feed) handle(msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if meta.Sequence.Stream <= f.last {
		return nil // a redelivery after a restart of the consumer
	}
	f.last = meta.Sequence.Stream
	if len(f.users) == 0 {
		return nil
	}
	data := msg.Data()
	ours, err := streams.BatchHasUser(data, func(id string) bool { return f.users[id] != nil })
	if err == nil && !ours {
		messagesTotal.WithLabelValues("skipped").Inc()
		return nil
	}
	var b *heartlogv1.Batch
	if err == nil {
		b, err = streams.DecodeBatch(data)
	}
	if err != nil {
		// The processors park such a message; no sink has it, nor will we.
		messagesTotal.WithLabelValues("undecodable").Inc()
		f.t.log.Error().Err(err).Uint32("partition", f.partition).Uint64("seq", meta.Sequence.Stream).Msg("today: message does not decode")
		return nil
	}
	messagesTotal.WithLabelValues("applied").Inc()
	byUser := map[string][]*heartlogv1.Heartbeat{}
	for _, hb := range b.Heartbeats {
		if f.users[hb.UserId] != nil {
			byUser[hb.UserId] = append(byUser[hb.UserId], hb)
		}
	}
	now := f.t.o.Now()
	var news []string
	for id, hbs := range byUser {
		st := f.users[id]
		if n := st.add(b.Day, hbs); n > 0 {
			st.touch(now)
			if f.t.addKept(int64(n)) > int64(f.t.o.MaxHeartbeats) {
				f.t.nudge()
			}
			news = append(news, id)
		}
	}
	if len(news) > 0 {
		f.t.announceAfterProjected(meta.Sequence.Stream, news)
	}
	return nil
}
