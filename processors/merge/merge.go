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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"heartlog/heartbeat"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// ErrNotFound is what a Store returns for a file that does not exist.
var ErrNotFound = errors.New("merge: no such day file")

// ErrConflict is what a Store's Write returns when the file is no longer
// the version its tag names: another writer got there first.
var ErrConflict = errors.New("merge: day file changed since it was read")

// Store holds day files by key.
//
// Contract: Read returns the file and a tag naming its version (an ETag;
// "" where the store has none), or ErrNotFound (possibly wrapped) for a
// missing key. Write replaces the file and returns the new version's tag.
// A store that checks conditions writes only while the file is still the
// version tag names ("" meaning: it does not exist) and otherwise returns
// ErrConflict; a store that cannot check them ignores tag. Writing the same
// bytes twice is harmless. Both are called concurrently for different keys;
// the sink never calls them concurrently for one key.
type Store interface {
	Read(ctx context.Context, key string) (data []byte, tag string, err error)
	Write(ctx context.Context, key string, data []byte, tag string) (newTag string, err error)
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
	// RequestsPerSecond caps the requests (reads and writes) made to Store
	// (default 0: no cap). Spaces allows about 500 requests/s per account.
	RequestsPerSecond float64
	// MemoBytes keeps the files this sink last wrote, up to that many
	// bytes, so that the next change to one of them is merged and written
	// without reading it first: one request instead of two (default 0:
	// off). Set it only when Store enforces write conditions (see
	// objstore.CheckConditionalWrites): the refused write is what tells the
	// sink that someone else (another instance, a replay) wrote the file
	// since, and that it must read it again.
	MemoBytes int64
	// AssumeNew writes a file that the memo does not hold and whose UTC
	// day began less than AssumeNew ago as a new file (a create-only
	// conditional write) without reading it first. A day's first flush
	// then costs one request per file instead of two; where the guess is
	// wrong (after a restart) the refused write costs one request more.
	// Like MemoBytes it needs a Store that enforces conditions (default 0:
	// always read).
	AssumeNew time.Duration
	// Log receives corrupt-file reports.
	Log zerolog.Logger
}

// Sink implements processors.Sink over a Store.
type Sink struct {
	opts    Options
	slots   chan struct{} // bounds Concurrency across commits
	limit   *rate.Limiter
	memo    *memo
	metrics *metrics
}

// New returns a Sink.
func New(opts Options) *Sink {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	s := &Sink{opts: opts, slots: make(chan struct{}, opts.Concurrency), metrics: metricsFor(opts.Name)}
	if opts.RequestsPerSecond > 0 {
		s.limit = rate.NewLimiter(rate.Limit(opts.RequestsPerSecond), max(1, int(opts.RequestsPerSecond/10)))
	}
	if opts.MemoBytes > 0 {
		s.memo = newMemo(opts.MemoBytes)
	}
	return s
}

// Name implements processors.Sink.
func (s *Sink) Name() string { return s.opts.Name }

// userDay is one day file's worth of new heartbeats.
type userDay struct {
	key        string
	day        string // YYYYMMDD, UTC
	heartbeats []*heartlogv1.Heartbeat
}

// Commit implements processors.Sink: one read-merge-write per user-day in
// the batches, Concurrency at a time. A file that fails does not stop the
// others; Commit then returns every failure, and the retry of the batch
// finds the written files unchanged (with a memo, without a request).
func (s *Sink) Commit(ctx context.Context, batches []*heartlogv1.Batch) error {
	days := group(batches, s.opts.Log)
	var (
		g    errgroup.Group
		mu   sync.Mutex
		errs []error
	)
	for _, d := range days {
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			g.Wait()
			return ctx.Err() // stopped: the batch is not done, so not acked
		}
		g.Go(func() error {
			defer func() { <-s.slots }()
			if err := s.mergeOne(ctx, d); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%s: %d of %d day files failed: %w", s.opts.Name, len(errs), len(days), errors.Join(errs...))
	}
	return nil
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
				d = &userDay{key: key, day: b.Day}
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

// conflictAttempts bounds how often one file is read again after a write
// refused as a conflict, before the commit fails and is retried whole.
const conflictAttempts = 5

func (s *Sink) mergeOne(ctx context.Context, d userDay) error {
	assumeNew := s.likelyNew(d)
	var err error
	for range conflictAttempts {
		if err = s.tryMerge(ctx, d, assumeNew); !errors.Is(err, ErrConflict) {
			return err
		}
		assumeNew = false
		s.metrics.conflicts.Inc()
		s.memo.forget(d.key)
	}
	return err
}

// likelyNew reports whether d's file is written without a read first (see
// Options.AssumeNew).
func (s *Sink) likelyNew(d userDay) bool {
	if s.opts.AssumeNew <= 0 || s.memo.has(d.key) {
		return false
	}
	start, err := time.Parse(heartbeat.DayLayout, d.day)
	return err == nil && time.Since(start) < s.opts.AssumeNew
}

// tryMerge reads the file (from the memo when it holds it), merges d in,
// and writes the result under the version it read.
func (s *Sink) tryMerge(ctx context.Context, d userDay, assumeNew bool) error {
	cur, err := file{}, error(nil)
	if !assumeNew {
		if cur, err = s.current(ctx, d.key); err != nil {
			return err
		}
	}
	merged, changed := dayfile.Merge(cur.heartbeats, d.heartbeats)
	if !changed && cur.found {
		s.metrics.unchanged.Inc()
		return nil
	}
	data, err := dayfile.Encode(merged)
	if err != nil {
		return fmt.Errorf("%s: encode %s: %w", s.opts.Name, d.key, err)
	}
	if err := s.wait(ctx); err != nil {
		return err
	}
	start := time.Now()
	tag, err := s.opts.Store.Write(ctx, d.key, data, cur.tag)
	if err != nil {
		return fmt.Errorf("%s: write %s: %w", s.opts.Name, d.key, err)
	}
	s.metrics.writeSeconds.Observe(time.Since(start).Seconds())
	s.metrics.writes.Inc()
	s.metrics.fileBytes.Observe(float64(len(data)))
	s.memo.put(d.key, data, tag)
	return nil
}

// wait paces requests to Store under RequestsPerSecond.
func (s *Sink) wait(ctx context.Context) error {
	if s.limit == nil {
		return nil
	}
	return s.limit.Wait(ctx)
}

// file is a day file as read: its heartbeats, the version tag to write
// under, and whether Store has it at all.
type file struct {
	heartbeats []*heartlogv1.Heartbeat
	tag        string
	found      bool
}

// current returns the file from the memo, else from Store, else from Seed.
// An unreadable file is quarantined and reported, and counts as empty: one
// corrupt file must not stop the processor for every other user of its
// partition.
func (s *Sink) current(ctx context.Context, key string) (file, error) {
	data, tag, found, err := s.fetch(ctx, key)
	if err != nil || len(data) == 0 {
		return file{tag: tag, found: found}, err
	}
	hbs, err := dayfile.Decode(data)
	if err == nil {
		return file{heartbeats: hbs, tag: tag, found: found}, nil
	}
	s.memo.forget(key)
	if err := s.quarantine(ctx, key, data, err); err != nil {
		return file{}, err
	}
	return file{tag: tag, found: found}, nil
}

// fetch returns the file's bytes and tag. found reports whether Store has
// the file (a memo hit counts: the sink wrote it).
func (s *Sink) fetch(ctx context.Context, key string) (data []byte, tag string, found bool, err error) {
	if data, tag, ok := s.memo.get(key); ok {
		s.metrics.memoHits.Inc()
		return data, tag, true, nil
	}
	if err := s.wait(ctx); err != nil {
		return nil, "", false, err
	}
	data, tag, err = s.opts.Store.Read(ctx, key)
	switch {
	case err == nil:
		s.memo.put(key, data, tag)
		return data, tag, true, nil
	case !errors.Is(err, ErrNotFound):
		return nil, "", false, fmt.Errorf("%s: read %s: %w", s.opts.Name, key, err)
	case s.opts.Seed != nil:
		data, _, err = s.opts.Seed.Read(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, "", false, fmt.Errorf("%s: seed %s: %w", s.opts.Name, key, err)
		}
	}
	return data, "", false, nil
}

// quarantine keeps an unreadable file where an operator can look at it.
func (s *Sink) quarantine(ctx context.Context, key string, data []byte, cause error) error {
	s.metrics.corrupt.Inc()
	qkey := fmt.Sprintf("quarantine/%s.%d", key, time.Now().Unix())
	ev := s.opts.Log.Error().Err(cause).Str("processor", s.opts.Name).Str("key", key)
	if s.opts.Quarantine != nil {
		// A copy under the same name (same file, same second) is as good.
		if _, err := s.opts.Quarantine.Write(ctx, qkey, data, ""); err != nil && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("%s: quarantine corrupt %s: %w", s.opts.Name, key, err)
		}
		ev = ev.Str("quarantined_as", qkey)
	}
	ev.Msg("day file unreadable; rebuilding it from the heartbeats at hand (replay or restore to bring back older ones)")
	return nil
}

type metrics struct {
	writes, unchanged, corrupt prometheus.Counter
	conflicts, memoHits        prometheus.Counter
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
	conflictsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_dayfile_conflicts_total",
		Help: "Day-file writes refused because another writer changed the file since it was read; each costs a read and a retry.",
	}, []string{"processor"})
	memoHitsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_dayfile_memo_hits_total",
		Help: "Day files merged from the sink's memory of its last write, without a read.",
	}, []string{"processor"})
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
		conflicts:    conflictsTotal.WithLabelValues(name),
		memoHits:     memoHitsTotal.WithLabelValues(name),
		writeSeconds: writeSeconds.WithLabelValues(name),
		fileBytes:    fileBytes.WithLabelValues(name),
	}
}
