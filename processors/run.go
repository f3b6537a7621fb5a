package processors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"heartlog/streams"
)

// Options tune Run. Zero fields take the defaults.
//
// A batch is committed when it holds BatchMessages messages or BatchBytes
// bytes, or Linger after its first message arrived, whichever comes first:
// the flush count, size and age of DESIGN.md.
type Options struct {
	// BatchMessages is the most messages committed at once (default 512).
	BatchMessages int
	// BatchBytes is the most message bytes committed at once (default 64 MiB).
	BatchBytes int
	// PullBytes is the most message bytes the consumer asks the server for
	// at once (default 2 MiB; it must exceed the largest message, 1 MiB
	// under nats.conf's max_payload). The partition consumers of a process share
	// one connection, and the server cuts a client off as a slow consumer
	// once more than its max_pending (64 MiB by default) waits to be sent
	// to it; the messages are then redelivered only after AckWait, and
	// batches split. Keep partitions × PullBytes well below max_pending.
	PullBytes int
	// Linger is how long Run waits for more messages once one has arrived
	// (default 10ms): long enough to batch under load, short enough that
	// a lone heartbeat is visible at once. A sink with costly writes (the
	// backup) lingers for minutes. While the server holds a backlog for
	// the consumer, a batch fills to BatchMessages or BatchBytes instead.
	Linger time.Duration
	// ProgressEvery is how often messages held for a long Linger or a
	// failing commit are reported in progress to the server, which then
	// does not redeliver them (default 10s; keep it below the consumer's
	// AckWait).
	ProgressEvery time.Duration
	// PriorityGroup pulls as a member of the consumer's pinned priority
	// group: the server then delivers to one puller at a time, which is how
	// several instances keep one writer per partition.
	PriorityGroup string
	// RetryMin and RetryMax bound the backoff between failed commits and
	// failed parkings (defaults 100ms and 10s); each wait is jittered.
	RetryMin, RetryMax time.Duration
	// StopTimeout is how long a stop waits for the commit in progress
	// (default 30s). Past it, the batch is left unacked for redelivery.
	StopTimeout time.Duration
	// Log receives the processor's log lines.
	Log zerolog.Logger
	// DeadLetters is where heartbeats the sink can never store are parked
	// (required by Run; RunPartitions makes one from its config).
	DeadLetters *streams.DeadLetters
	// Stream is the consumer's stream; with it, the lag watcher also
	// tracks the age of the oldest unprocessed message against the
	// stream's MaxAge (RunPartitions sets it).
	Stream jetstream.Stream
	// Admit, if set, decides on each message before the sink sees it (see
	// Admission); nil admits every message.
	Admit AdmitFunc
	// HoldDelay is how long a held message waits before it is delivered
	// again (default 30s).
	HoldDelay time.Duration
	// Consumers, if set, are the partition consumers RunPartitions runs on
	// as they are (the late path's, kept by compaction.SyncLateFilters);
	// otherwise it ensures the processor's consumers of every day.
	Consumers []jetstream.Consumer
}

func (o *Options) setDefaults() {
	if o.BatchMessages <= 0 {
		o.BatchMessages = 512
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 64 << 20
	}
	if o.PullBytes <= 0 {
		o.PullBytes = 2 << 20
	}
	if o.Linger <= 0 {
		o.Linger = 10 * time.Millisecond
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 10 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 10 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 30 * time.Second
	}
	if o.HoldDelay <= 0 {
		o.HoldDelay = 30 * time.Second
	}
}

// Run feeds sink from the consumer until ctx is done, then finishes the
// batch in hand and returns nil. Transient commit errors are retried; what
// the sink can never store is parked in Options.DeadLetters (see Sink). It
// returns an error only when the consumer itself fails.
func Run(ctx context.Context, cons jetstream.Consumer, sink Sink, opts Options) error {
	if opts.DeadLetters == nil {
		return errors.New("processors: Run needs Options.DeadLetters, where it parks what the sink can never store")
	}
	opts.setDefaults()
	log := opts.Log.With().Str("processor", sink.Name()).Logger()
	// The iterator's buffer is messages delivered but not yet in a batch:
	// their AckWait runs while a long commit holds the loop, so it stays
	// at one batch, and at PullBytes (see there).
	pull := []jetstream.PullMessagesOpt{jetstream.PullMaxMessagesWithBytesLimit(opts.BatchMessages, opts.PullBytes)}
	if opts.PriorityGroup != "" {
		pull = append(pull, jetstream.PullPriorityGroup(opts.PriorityGroup))
	}
	iter, err := cons.Messages(pull...)
	if err != nil {
		return err
	}
	defer iter.Stop()
	go watchLag(ctx, cons, opts.Stream, sink.Name(), log, 10*time.Second)
	log.Debug().Str("consumer", cons.CachedInfo().Name).Msg("processor started")
	// Gathering and decoding the next batch overlaps the commit of the
	// current one; at most one decoded batch waits.
	pending := make(chan work, 1)
	failed := make(chan error, 1)
	go func() {
		defer close(pending)
		for {
			msgs, err := gather(ctx, iter, opts)
			msgs = admit(msgs, opts, sink.Name(), log)
			if len(msgs) > 0 {
				w := decode(msgs)
				// Waiting behind a long commit must not let the server
				// redeliver these messages elsewhere.
				w.held = keepInProgress(ctx, w.msgs, opts.ProgressEvery)
				pending <- w
			}
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				failed <- err
				return
			}
		}
	}()
	st := newStorer(sink, opts.DeadLetters, log, opts.RetryMin, opts.RetryMax)
	st.handBack = true
	for w := range pending {
		commit(ctx, st, w, opts, log)
	}
	select {
	case err := <-failed:
		return err
	default:
		log.Debug().Str("consumer", cons.CachedInfo().Name).Msg("processor stopped")
		return nil
	}
}

// work is a decoded batch and the messages it came from.
type work struct {
	items []item // one per message
	msgs  []jetstream.Msg
	held  func() // stops reporting msgs in progress while queued
}

// gather blocks for one message, then takes what else arrives until the
// batch is full or Linger has passed (and no backlog waits on the server),
// keeping held messages in progress.
func gather(ctx context.Context, iter jetstream.MessagesContext, opts Options) ([]jetstream.Msg, error) {
	first, err := iter.Next(jetstream.NextContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	}
	msgs := []jetstream.Msg{first}
	size := len(first.Data())
	deadline := time.Now().Add(opts.Linger)
	progressed := time.Now()
	for len(msgs) < opts.BatchMessages && size < opts.BatchBytes {
		if time.Until(deadline) <= 0 && backlogged(msgs[len(msgs)-1]) {
			// The consumer is behind: the batch is late anyway, and filling
			// it means fewer writes per user-day (a drain after downtime).
			deadline = time.Now().Add(opts.Linger)
		}
		wait := min(time.Until(deadline), opts.ProgressEvery)
		if wait <= 0 {
			break
		}
		next, cancel := context.WithTimeout(ctx, wait)
		msg, err := iter.Next(jetstream.NextContext(next))
		cancel()
		if time.Since(progressed) >= opts.ProgressEvery {
			inProgress(msgs)
			progressed = time.Now()
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			break // stopping, or the iterator failed: the next gather says which
		}
		msgs = append(msgs, msg)
		size += len(msg.Data())
	}
	return msgs, nil
}

// backlogged reports whether the consumer had more messages waiting on the
// server when msg was delivered.
func backlogged(msg jetstream.Msg) bool {
	meta, err := msg.Metadata()
	return err == nil && meta.NumPending > 0
}

// keepInProgress reports msgs in progress every interval until the
// returned function is called.
func keepInProgress(ctx context.Context, msgs []jetstream.Msg, every time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				inProgress(msgs)
			}
		}
	}()
	return func() { close(done) }
}

// inProgress tells the server the messages are being worked on, so that it
// does not redeliver them meanwhile.
func inProgress(msgs []jetstream.Msg) {
	for _, msg := range msgs {
		_ = msg.InProgress()
	}
}

func commit(ctx context.Context, st *storer, w work, opts Options, log zerolog.Logger) {
	// A stop must not cut a commit in half: it gets StopTimeout to finish.
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		time.AfterFunc(opts.StopTimeout, cancel)
	})
	defer stop()
	// A commit may outlast the consumer's AckWait (a slow store, a large
	// batch): keep reporting progress so the server does not redeliver the
	// messages to another instance while this one is still writing them.
	defer keepInProgress(work, w.msgs, opts.ProgressEvery)()
	w.held()
	if err := st.store(work, w.items); err != nil {
		log.Warn().Err(err).Int("messages", len(w.msgs)).Msg("stopped before the commit finished; messages stay unacked and will be redelivered")
		return
	}
	for i, msg := range w.msgs {
		if w.items[i].held {
			_ = msg.NakWithDelay(opts.HoldDelay)
			continue
		}
		ack(msg, log)
	}
}

func isClosed(err error) bool { return errors.Is(err, nats.ErrConnectionClosed) }

// decode turns messages into items. A message that does not decode can
// never succeed: it becomes an item of its raw bytes, which the commit
// parks in the dead-letter stream, rather than blocking the partition
// forever or being dropped without a trace.
func decode(msgs []jetstream.Msg) work {
	items := make([]item, len(msgs))
	for i, msg := range msgs {
		var seq uint64
		if meta, err := msg.Metadata(); err == nil {
			seq = meta.Sequence.Stream
		}
		items[i] = itemOf(msg.Data(), msg.Subject(), seq)
	}
	return work{items: items, msgs: msgs}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// RunPartitions runs sink on every partition's pinned consumer of the
// processor (see streams.PartitionConsumerConfig) until ctx is done. Several
// processes may call it for one processor: each partition is served by one
// of them at a time.
func RunPartitions(ctx context.Context, js jetstream.JetStream, cfg streams.Config, sink Sink, opts Options) error {
	conss, err := opts.Consumers, error(nil)
	if conss == nil {
		conss, err = streams.EnsurePartitionConsumers(ctx, js, cfg, sink.Name())
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	opts.PriorityGroup = streams.PriorityGroup
	if opts.DeadLetters == nil {
		opts.DeadLetters = streams.NewDeadLetters(js, cfg)
	}
	if opts.Stream == nil {
		if opts.Stream, err = js.Stream(ctx, cfg.Stream); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("processors: look up stream %s: %w", cfg.Stream, err)
		}
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = cfg.AckWait / 3
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, cons := range conss {
		g.Go(func() error { return Run(ctx, cons, sink, opts) })
	}
	return g.Wait()
}
