// Package merge is the sink that the objects, cache and backup processors
// share: it keeps one day file per user and UTC day, and commits a batch by
// reading each touched file, merging the new heartbeats in (union by id,
// sorted), and writing it back once.
//
// Because a day file is a set and its encoding is deterministic, the same
// heartbeats committed again, in any order, leave the same bytes, and a
// commit that adds nothing writes nothing (so the versioned backup gains no
// version). It relies on one writer per user-day (pinned partition
// consumers); it must never write a file it could not read, except after
// quarantining the unreadable one.
package merge

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// ErrNotFound is what a Store returns for a file that does not exist.
var ErrNotFound = errors.New("merge: no such day file")

// Store holds day files by key.
//
// Contract: Read returns ErrNotFound (possibly wrapped) for a missing key.
// Write replaces the file; writing the same bytes twice is harmless.
// Both are called concurrently for different keys, never for one key.
type Store interface {
	Read(ctx context.Context, key string) ([]byte, error)
	Write(ctx context.Context, key string, data []byte) error
}

// Options configure a Sink. Zero fields take the defaults.
type Options struct {
	// Name is the processor's name in logs and metrics (required).
	Name string
	// Store is where the day files live (required).
	Store Store
	// Seed, if set, is read when Store has no file yet, so that a file
	// started in Store is complete: the cache seeds from S3.
	Seed Store
	// Quarantine, if set, receives an unreadable file under
	// "quarantine/<key>.<unix time>" before it is replaced.
	Quarantine Store
	// Concurrency is how many day files are merged at once, across all
	// the commits that run in parallel (one per partition) (default 64).
	Concurrency int
	// WritesPerSecond caps writes to Store (default 0: no cap). Spaces
	// allows about 500 requests/s per account.
	WritesPerSecond float64
	// Log receives corrupt-file reports.
	Log zerolog.Logger
}

// Sink implements processors.Sink over a Store.
type Sink struct {
	opts    Options
	slots   chan struct{} // bounds Concurrency across commits
	limit   *rate.Limiter
	metrics *metrics
}

// New returns a Sink.
func New(opts Options) *Sink {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	s := &Sink{opts: opts, slots: make(chan struct{}, opts.Concurrency), metrics: metricsFor(opts.Name)}
	if opts.WritesPerSecond > 0 {
		s.limit = rate.NewLimiter(rate.Limit(opts.WritesPerSecond), max(1, int(opts.WritesPerSecond/10)))
	}
	return s
}

// Name implements processors.Sink.
func (s *Sink) Name() string { return s.opts.Name }

// userDay is one day file's worth of new heartbeats.
type userDay struct {
	key        string
	heartbeats []*heartlogv1.Heartbeat
}

// Commit implements processors.Sink: one read-merge-write per user-day in
// the batches, Concurrency at a time. It fails if any file could not be
// written; the retry redoes the others too, which changes nothing.
func (s *Sink) Commit(ctx context.Context, batches []*heartlogv1.Batch) error {
	days := group(batches, s.opts.Log)
	g, gctx := errgroup.WithContext(ctx)
	for _, d := range days {
		select {
		case s.slots <- struct{}{}:
		case <-gctx.Done():
			if err := g.Wait(); err != nil {
				return err
			}
			return ctx.Err() // stopped: the batch is not done, so not acked
		}
		g.Go(func() error {
			defer func() { <-s.slots }()
			return s.mergeOne(gctx, d)
		})
	}
	return g.Wait()
}

// group collects the heartbeats of each user-day, in key order so that
// logs and retries are reproducible.
func group(batches []*heartlogv1.Batch, log zerolog.Logger) []userDay {
	byKey := map[string]*userDay{}
	for _, b := range batches {
		for _, hb := range b.Heartbeats {
			prefix := b.ObjectPrefixes[hb.UserId]
			if err := dayfile.CheckKeyParts(prefix, hb.UserId, b.Day); err != nil {
				// The API always sets these; a message without them is
				// corrupt, and no retry would ever store it.
				badMessages.Inc()
				log.Error().Err(err).Str("day", b.Day).Uint32("partition", b.Partition).Str("heartbeat", hb.Id).Msg("heartbeat without a valid day-file key dropped")
				continue
			}
			key := dayfile.Key(prefix, hb.UserId, b.Day)
			d := byKey[key]
			if d == nil {
				d = &userDay{key: key}
				byKey[key] = d
			}
			d.heartbeats = append(d.heartbeats, hb)
		}
	}
	out := make([]userDay, 0, len(byKey))
	for _, d := range byKey {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

func (s *Sink) mergeOne(ctx context.Context, d userDay) error {
	existing, found, err := s.read(ctx, d.key)
	if err != nil {
		return err
	}
	merged, changed := dayfile.Merge(existing, d.heartbeats)
	if !changed && found {
		s.metrics.unchanged.Inc()
		return nil
	}
	data, err := dayfile.Encode(merged)
	if err != nil {
		return fmt.Errorf("%s: encode %s: %w", s.opts.Name, d.key, err)
	}
	if s.limit != nil {
		if err := s.limit.Wait(ctx); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := s.opts.Store.Write(ctx, d.key, data); err != nil {
		return fmt.Errorf("%s: write %s: %w", s.opts.Name, d.key, err)
	}
	s.metrics.writeSeconds.Observe(time.Since(start).Seconds())
	s.metrics.writes.Inc()
	s.metrics.fileBytes.Observe(float64(len(data)))
	return nil
}

// read returns the file's heartbeats from Store, else from Seed. found
// reports whether Store had the file. An unreadable file is quarantined
// and reported, and counts as empty: one corrupt file must not stop the
// processor for every other user of its partition.
func (s *Sink) read(ctx context.Context, key string) (hbs []*heartlogv1.Heartbeat, found bool, err error) {
	data, err := s.opts.Store.Read(ctx, key)
	switch {
	case err == nil:
		found = true
	case !errors.Is(err, ErrNotFound):
		return nil, false, fmt.Errorf("%s: read %s: %w", s.opts.Name, key, err)
	case s.opts.Seed != nil:
		data, err = s.opts.Seed.Read(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, false, fmt.Errorf("%s: seed %s: %w", s.opts.Name, key, err)
		}
	}
	if len(data) == 0 {
		return nil, found, nil
	}
	hbs, err = dayfile.Decode(data)
	if err == nil {
		return hbs, found, nil
	}
	s.metrics.corrupt.Inc()
	qkey := fmt.Sprintf("quarantine/%s.%d", key, time.Now().Unix())
	ev := s.opts.Log.Error().Err(err).Str("processor", s.opts.Name).Str("key", key)
	if s.opts.Quarantine != nil {
		if qerr := s.opts.Quarantine.Write(ctx, qkey, data); qerr != nil {
			return nil, false, fmt.Errorf("%s: quarantine corrupt %s: %w", s.opts.Name, key, qerr)
		}
		ev = ev.Str("quarantined_as", qkey)
	}
	ev.Msg("day file unreadable; rebuilding it from the heartbeats at hand (replay or restore to bring back older ones)")
	return nil, found, nil
}

type metrics struct {
	writes, unchanged, corrupt prometheus.Counter
	writeSeconds, fileBytes    prometheus.Observer
}

var (
	writesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_dayfile_writes_total",
		Help: "Day files written by a processor.",
	}, []string{"processor"})
	unchangedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_dayfile_unchanged_total",
		Help: "Day files not written because the batch added nothing new.",
	}, []string{"processor"})
	badMessages = promauto.NewCounter(prometheus.CounterOpts{
		Name: "heartlog_dayfile_bad_heartbeats_total",
		Help: "Heartbeats dropped by day-file processors because their message lacks a valid prefix, user or day.",
	})
	corruptTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_dayfile_corrupt_total",
		Help: "Day files found unreadable (see the error log for their keys).",
	}, []string{"processor"})
	writeSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "heartlog_dayfile_write_seconds",
		Help:    "Latency of one day-file write, retries included.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"processor"})
	fileBytes = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "heartlog_dayfile_bytes",
		Help:    "Size of day files written.",
		Buckets: prometheus.ExponentialBuckets(256, 2, 16),
	}, []string{"processor"})
)

func metricsFor(name string) *metrics {
	return &metrics{
		writes:       writesTotal.WithLabelValues(name),
		unchanged:    unchangedTotal.WithLabelValues(name),
		corrupt:      corruptTotal.WithLabelValues(name),
		writeSeconds: writeSeconds.WithLabelValues(name),
		fileBytes:    fileBytes.WithLabelValues(name),
	}
}
