// Package dayfiles is the sink that the objects, cache and backup processors
// share: it keeps one day file per user and UTC day, and commits a batch by
// reading each touched file, merging the new heartbeats in (union by id,
// sorted), and writing it back once.
//
// Because a day file is a set and its encoding is deterministic, the same
// heartbeats committed again, in any order, leave the same bytes, and a
// commit that adds nothing writes nothing (so the versioned backup gains no
// version). It relies on one writer per user-day (pinned partition
// consumers) and on conditional writes; it must never write a file it could
// not read, except after quarantining the unreadable one.
//
// # Limits
//
// A file is kept within dayfile.Limits (Options.Limits). A merge that would
// grow it past them takes the new heartbeats in (time, id) order while they
// fit, writes that, and returns the others in a *processors.Rejected
// (reason "day file too large") for the loop to park. A file already over
// the limits when read is left as it is, neither overwritten nor
// quarantined, and every new heartbeat for it is rejected. Too large is not
// corrupt: only a file that does not decode is quarantined and rebuilt.
// Merges hold at most Options.MergeBytes of (estimated uncompressed) files
// at once, so a few huge files cannot take the process's memory.
//
// # Derived stores (the cache)
//
// With Options.Seed set, Store is a copy of Seed (SSDB of S3) and Seed is
// the truth. The sink then merges into Store's file only when it knows
// that file is current: it is the memo's copy of this sink's own last
// write. Otherwise (a cold key, another writer's entry, a corrupt entry, a
// restart) it merges into the union of Store's file, if readable, and
// Seed's: a read-path fill of an older S3 version, a replay, or garbage
// can never become the base of a merge that loses what S3 or this sink
// had. A file that Seed cannot give (corrupt or too large in S3) or that
// would grow past the limits is dropped from Store instead of written:
// readers then take the day from S3, and nothing is rejected (the objects
// processor rejects what S3 cannot hold). See CacheStore for how writes
// that race are detected without conditional writes.
package dayfiles

import (
	"bytes"
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
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"heartlog/heartbeat"
	"heartlog/processors"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// ErrNotFound is what a Store returns for a file that does not exist.
var ErrNotFound = errors.New("merge: no such day file")

// ErrConflict is what a Store's Write returns when the file is no longer
// the version its tag names: another writer got there first.
var ErrConflict = errors.New("merge: day file changed since it was read")

// ErrOverlapped is what a Store that cannot refuse a write (SSDB) returns,
// with ErrConflict, when it wrote the file but learnt that another write
// came between the read and its own: the sink then reads again and merges
// what it wrote into what it finds.
var ErrOverlapped = errors.New("merge: another write overlapped this one")

// Store holds day files by key.
//
// Contract: Read returns the file and a tag naming its version (an ETag, a
// generation; "" where the store has none), or ErrNotFound (possibly
// wrapped) for a missing key; the tag of a missing key is still returned
// where the store has one. Write replaces the file and returns the new
// version's tag; hbs are data's heartbeats when the caller has them
// decoded (nil otherwise), so that a store that needs them (the cache
// digests them) need not decode data again. A store that checks conditions writes only while the file
// is still the version tag names ("" meaning: it does not exist) and
// otherwise returns ErrConflict; a store that cannot refuse the write may
// write and then return ErrConflict and ErrOverlapped; a store that cannot
// check at all ignores tag. Writing the same bytes twice is harmless. Both
// are called concurrently for different keys; the sink never calls them
// concurrently for one key.
type Store interface {
	Read(ctx context.Context, key string) (data []byte, tag string, err error)
	Write(ctx context.Context, key string, data []byte, hbs []*heartlogv1.Heartbeat, tag string) (newTag string, err error)
}

// Dropper is a Store that can remove a file (a derived store: readers then
// go to the truth).
type Dropper interface {
	Drop(ctx context.Context, key string) error
}

// DefaultMergeBytes is Options.MergeBytes' default.
const DefaultMergeBytes = 256 << 20

// Options configure a Sink. Zero fields take the defaults.
type Options struct {
	// Name is the processor's name in logs and metrics (required).
	Name string
	// Store is where the day files live (required).
	Store Store
	// Seed, if set, is the truth that Store is a copy of (the cache's S3):
	// see "Derived stores" in the package comment. Store must then be a
	// Dropper.
	Seed Store
	// Standby marks a sink that is not the pinned writer of its Store (a
	// replay into the cache, which runs beside the live processor): when
	// one of its writes overlapped another, it drops the file rather than
	// keep a merge that may lack the other write's heartbeats, which only
	// the other writer has. The live processor merges again instead.
	Standby bool
	// Quarantine, if set, receives an unreadable file under
	// "quarantine/<key>.<unix time>" before it is replaced.
	Quarantine Store
	// Fallback, if set, is read when Store's file is unreadable, and its
	// file is the base of the rebuild instead of nothing: the objects
	// processor's is the backup bucket, a copy built independently from
	// the stream, so a corrupt S3 file loses at most what the backup had
	// not yet written.
	Fallback Store
	// Limits bound each day file (default dayfile.DefaultLimits).
	Limits dayfile.Limits
	// MergeBytes bounds the (estimated uncompressed) size of the files
	// merged at once across all commits (default DefaultMergeBytes). A file
	// larger than all of it is merged alone.
	MergeBytes int64
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
	// objstore.CheckConditionalWrites) or reports overlaps (CacheStore):
	// the refused write is what tells the sink that someone else (another
	// instance, a replay) wrote the file since, and that it must read it
	// again.
	MemoBytes int64
	// AssumeNew writes a file that the memo does not hold and whose UTC
	// day began less than AssumeNew ago as a new file (a create-only
	// conditional write) without reading it first. A day's first flush
	// then costs one request per file instead of two; where the guess is
	// wrong (after a restart) the refused write costs one request more.
	// Like MemoBytes it needs a Store that enforces conditions (default 0:
	// always read). Ignored with Seed.
	AssumeNew time.Duration
	// Log receives corrupt-file reports.
	Log zerolog.Logger
}

// Sink implements processors.Sink over a Store.
type Sink struct {
	opts    Options
	slots   chan struct{}       // bounds Concurrency across commits
	bytes   *semaphore.Weighted // bounds MergeBytes across commits
	limit   *rate.Limiter
	memo    *memo
	metrics *metrics
}

// New returns a Sink.
func New(opts Options) *Sink {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.MergeBytes <= 0 {
		opts.MergeBytes = DefaultMergeBytes
	}
	if opts.Seed != nil {
		opts.AssumeNew = 0
	}
	s := &Sink{
		opts: opts, slots: make(chan struct{}, opts.Concurrency), bytes: semaphore.NewWeighted(opts.MergeBytes),
		metrics: metricsFor(opts.Name),
	}
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
	batches    []*heartlogv1.Batch // the batch each heartbeat came in
}

// reasonTooLarge and reasonInvalid are the Rejection reasons of this sink.
const (
	reasonTooLarge = "day file too large"
	reasonInvalid  = "not encodable in a day file"
)

// Commit implements processors.Sink: one read-merge-write per user-day in
// the batches, Concurrency at a time. A file that fails does not stop the
// others; Commit then returns every failure, and the retry of the batch
// finds the written files unchanged (with a memo, without a request). When
// every file is written but some heartbeats could not go in (a file at its
// limits), it returns a *processors.Rejected naming them.
func (s *Sink) Commit(ctx context.Context, batches []*heartlogv1.Batch) error {
	days := group(batches, s.opts.Log)
	var (
		g        errgroup.Group
		mu       sync.Mutex
		errs     []error
		rejected []processors.Rejection
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
			refused, err := s.mergeOne(ctx, d)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			rejected = append(rejected, s.rejections(d, refused)...)
			return nil
		})
	}
	g.Wait()
	switch {
	case len(errs) > 0:
		// Transient: the whole batch is retried, and the rejections come
		// back with it.
		return fmt.Errorf("%s: %d of %d day files failed: %w", s.opts.Name, len(errs), len(days), errors.Join(errs...))
	case len(rejected) > 0:
		return &processors.Rejected{Heartbeats: rejected}
	}
	return nil
}

// rejections turns refusals into the loop's Rejections.
func (s *Sink) rejections(d userDay, refused []dayfile.Refusal) []processors.Rejection {
	if len(refused) == 0 {
		return nil
	}
	from := make(map[*heartlogv1.Heartbeat]*heartlogv1.Batch, len(d.heartbeats))
	for i, hb := range d.heartbeats {
		from[hb] = d.batches[i]
	}
	out := make([]processors.Rejection, 0, len(refused))
	for _, r := range refused {
		reason := reasonInvalid
		if errors.Is(r.Err, dayfile.ErrTooLarge) {
			reason = reasonTooLarge
		}
		s.metrics.rejected.WithLabelValues(reason).Inc()
		out = append(out, processors.Rejection{Batch: from[r.Heartbeat], Heartbeat: r.Heartbeat, Reason: reason, Err: r.Err})
	}
	return out
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
			d.batches = append(d.batches, b)
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

func (s *Sink) mergeOne(ctx context.Context, d userDay) ([]dayfile.Refusal, error) {
	assumeNew := s.likelyNew(d)
	var carry []*heartlogv1.Heartbeat
	var err error
	for range conflictAttempts {
		var refused []dayfile.Refusal
		refused, carry, err = s.tryMerge(ctx, d, carry, assumeNew)
		if !errors.Is(err, ErrConflict) {
			return refused, err
		}
		assumeNew = false
		s.metrics.conflicts.Inc()
		s.memo.forget(d.key)
	}
	return nil, err
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

// tryMerge reads the file (from the memo when it holds it), merges d and
// carry in, and writes the result under the version it read. carry is
// what an earlier attempt wrote to a store that reported an overlap: it
// is merged again into what is found now. It returns the refused
// heartbeats, and what it wrote (the next attempt's carry).
func (s *Sink) tryMerge(ctx context.Context, d userDay, carry []*heartlogv1.Heartbeat, assumeNew bool) ([]dayfile.Refusal, []*heartlogv1.Heartbeat, error) {
	var raw rawFile
	if !assumeNew {
		var err error
		if raw, err = s.fetch(ctx, d.key); err != nil {
			return nil, carry, err
		}
	}
	release, err := s.reserve(ctx, raw)
	if err != nil {
		return nil, carry, err
	}
	defer release()
	cur, err := s.decode(ctx, d.key, raw)
	switch {
	case errors.Is(err, dayfile.ErrTooLarge) && s.opts.Seed == nil:
		return s.overLimit(d, err), carry, nil
	case errors.Is(err, dayfile.ErrTooLarge), errors.Is(err, errNoTruth):
		return nil, carry, s.drop(ctx, d.key, err.Error())
	case err != nil:
		return nil, carry, err
	}
	incoming := d.heartbeats
	if len(carry) > 0 {
		incoming = append(append([]*heartlogv1.Heartbeat{}, carry...), d.heartbeats...)
	}
	m := s.opts.Limits.Merge(cur.heartbeats, cur.size, incoming)
	merged, changed, refused := m.Heartbeats, m.Changed, m.Refused
	if s.opts.Seed != nil && tooLarge(refused) {
		// The cache holds only what it can hold whole.
		return onlyInvalid(refused), carry, s.drop(ctx, d.key, "day file over its limits")
	}
	if !changed && cur.found && !cur.rebuilt {
		s.metrics.unchanged.Inc()
		return refused, carry, nil
	}
	data, err := dayfile.Encode(merged)
	if err != nil {
		return refused, carry, fmt.Errorf("%s: encode %s: %w", s.opts.Name, d.key, err)
	}
	if cur.rebuilt && cur.found && bytes.Equal(data, raw.data) {
		s.metrics.unchanged.Inc() // a derived file already equal to the truth
		s.memo.put(d.key, data, raw.tag)
		return refused, carry, nil
	}
	if err := s.wait(ctx); err != nil {
		return refused, carry, err
	}
	start := time.Now()
	tag, err := s.opts.Store.Write(ctx, d.key, data, merged, cur.tag)
	if errors.Is(err, ErrOverlapped) && s.opts.Standby && s.onTop(ctx, d.key, data) {
		// The write that overlapped this one is under it, and may be the
		// live writer's, whose heartbeats this sink cannot know: readers
		// go to S3 until its next write.
		return refused, nil, s.drop(ctx, d.key, "a replay's write overlapped another")
	}
	if err != nil {
		if s.opts.Seed != nil {
			carry = merged // merged again into whatever is on top now
		}
		return refused, carry, fmt.Errorf("%s: write %s: %w", s.opts.Name, d.key, err)
	}
	s.metrics.writeSeconds.Observe(time.Since(start).Seconds())
	s.metrics.writes.Inc()
	s.metrics.fileBytes.Observe(float64(len(data)))
	s.memo.put(d.key, data, tag)
	return refused, nil, nil
}

// onTop reports whether Store holds data under key, or cannot say.
func (s *Sink) onTop(ctx context.Context, key string, data []byte) bool {
	now, _, err := s.opts.Store.Read(ctx, key)
	return err != nil && !errors.Is(err, ErrNotFound) || bytes.Equal(now, data)
}

// overLimit rejects all of d: its file is over the limits already and is
// left as it is (which of d it holds cannot be known without reading it
// whole).
func (s *Sink) overLimit(d userDay, cause error) []dayfile.Refusal {
	s.metrics.tooLarge.Inc()
	s.opts.Log.Warn().Err(cause).Str("processor", s.opts.Name).Str("key", d.key).Int("heartbeats", len(d.heartbeats)).
		Msg("day file over its limits: left as it is; its new heartbeats are rejected")
	out := make([]dayfile.Refusal, len(d.heartbeats))
	for i, hb := range d.heartbeats {
		out[i] = dayfile.Refusal{Heartbeat: hb, Err: cause}
	}
	return out
}

func tooLarge(refused []dayfile.Refusal) bool {
	for _, r := range refused {
		if errors.Is(r.Err, dayfile.ErrTooLarge) {
			return true
		}
	}
	return false
}

func onlyInvalid(refused []dayfile.Refusal) []dayfile.Refusal {
	var out []dayfile.Refusal
	for _, r := range refused {
		if !errors.Is(r.Err, dayfile.ErrTooLarge) {
			out = append(out, r)
		}
	}
	return out
}

// drop removes a derived store's file, so that readers take the day from
// the truth.
func (s *Sink) drop(ctx context.Context, key, why string) error {
	s.memo.forget(key)
	dropper, ok := s.opts.Store.(Dropper)
	if !ok {
		return fmt.Errorf("%s: cannot drop %s (%s): the store cannot remove files", s.opts.Name, key, why)
	}
	if err := dropper.Drop(ctx, key); err != nil {
		return fmt.Errorf("%s: drop %s: %w", s.opts.Name, key, err)
	}
	s.metrics.drops.Inc()
	s.opts.Log.Warn().Str("processor", s.opts.Name).Str("key", key).Str("why", why).Msg("day file dropped from the cache; reads take it from S3")
	return nil
}

// wait paces requests to Store under RequestsPerSecond.
func (s *Sink) wait(ctx context.Context) error {
	if s.limit == nil {
		return nil
	}
	return s.limit.Wait(ctx)
}

// rawFile is a day file as fetched, before decoding.
type rawFile struct {
	data  []byte
	tag   string
	found bool // Store has the file (a memo hit counts: the sink wrote it)
	known bool // data is this sink's own last write (from the memo)
	// seed is the truth's file, fetched when data is not known current
	// (derived stores only).
	seed      []byte
	seedFound bool
	seeded    bool
}

// file is a day file as read: its heartbeats and uncompressed size, the
// version tag to write under, and whether Store has it at all. rebuilt
// says the heartbeats are not Store's file as it is (a corrupt file's
// rebuild, a derived file merged with its truth), so it must be written
// even if the merge adds nothing.
type file struct {
	heartbeats []*heartlogv1.Heartbeat
	size       int
	tag        string
	found      bool
	rebuilt    bool
}

// fetch returns the file's bytes from the memo, else from Store, and for a
// derived store not known current, the truth's bytes too.
func (s *Sink) fetch(ctx context.Context, key string) (rawFile, error) {
	var raw rawFile
	if data, tag, ok := s.memo.get(key); ok {
		s.metrics.memoHits.Inc()
		return rawFile{data: data, tag: tag, found: true, known: true}, nil
	}
	if err := s.wait(ctx); err != nil {
		return raw, err
	}
	data, tag, err := s.opts.Store.Read(ctx, key)
	switch {
	case err == nil:
		raw = rawFile{data: data, tag: tag, found: true}
	case errors.Is(err, ErrNotFound):
		raw = rawFile{tag: tag}
	default:
		return raw, fmt.Errorf("%s: read %s: %w", s.opts.Name, key, err)
	}
	if s.opts.Seed == nil {
		return raw, nil
	}
	raw.seeded = true
	raw.seed, _, err = s.opts.Seed.Read(ctx, key)
	switch {
	case err == nil:
		raw.seedFound = true
	case !errors.Is(err, ErrNotFound):
		return raw, fmt.Errorf("%s: seed %s: %w", s.opts.Name, key, err)
	}
	return raw, nil
}

// reserve waits until the file's merge fits in MergeBytes with the others
// in flight, and returns the function that gives its share back. A file's
// weight is its uncompressed size as the gzip trailer states it (what
// decoding and encoding it hold), at least its compressed size, at most
// all of MergeBytes, so that a file larger than the budget goes alone.
func (s *Sink) reserve(ctx context.Context, raw rawFile) (func(), error) {
	n := min(inflated(raw.data)+inflated(raw.seed)+1, s.opts.MergeBytes)
	if err := s.bytes.Acquire(ctx, n); err != nil {
		return nil, err
	}
	return func() { s.bytes.Release(n) }, nil
}

// inflated estimates a gzip file's uncompressed size from its trailer
// (the size modulo 4 GiB), trusted up to 64 times the compressed size.
func inflated(data []byte) int64 {
	n := len(data)
	if n < 18 {
		return int64(n)
	}
	size := int64(uint32(data[n-4]) | uint32(data[n-3])<<8 | uint32(data[n-2])<<16 | uint32(data[n-1])<<24)
	return max(int64(n), min(size, 64*int64(n)))
}

// errNoTruth means a derived store's truth cannot be read whole (corrupt
// or over the limits in S3).
var errNoTruth = errors.New("the truth's file is unreadable")

// decode turns raw into the file to merge into. An unreadable file is
// quarantined and reported, and counts as empty: one corrupt file must not
// stop the processor for every other user of its partition. A file over
// the limits is an error wrapping dayfile.ErrTooLarge. For a derived
// store, see "Derived stores" in the package comment.
func (s *Sink) decode(ctx context.Context, key string, raw rawFile) (file, error) {
	if !raw.seeded {
		cur := file{tag: raw.tag, found: raw.found}
		if len(raw.data) == 0 {
			return cur, nil
		}
		hbs, size, err := s.opts.Limits.Decode(raw.data)
		switch {
		case err == nil:
			cur.heartbeats, cur.size = hbs, size
			return cur, nil
		case errors.Is(err, dayfile.ErrTooLarge):
			return file{}, err
		}
		s.memo.forget(key)
		base, size, ferr := s.fallback(ctx, key)
		if ferr != nil {
			return file{}, ferr // before the quarantine: the retry does it once
		}
		if err := s.quarantine(ctx, key, raw.data, err); err != nil {
			return file{}, err
		}
		cur.heartbeats, cur.size, cur.rebuilt = base, size, true
		return cur, nil
	}
	// Derived: the union of the truth and of Store's file where readable.
	cur := file{tag: raw.tag, found: raw.found, rebuilt: true}
	var seed []*heartlogv1.Heartbeat
	if raw.seedFound {
		var err error
		if seed, cur.size, err = s.opts.Limits.Decode(raw.seed); err != nil {
			s.metrics.corrupt.Inc()
			return file{}, fmt.Errorf("%w: %w", errNoTruth, err)
		}
	}
	var copied []*heartlogv1.Heartbeat
	if raw.found {
		var err error
		if copied, _, err = s.opts.Limits.Decode(raw.data); err != nil {
			s.metrics.corrupt.Inc()
			s.opts.Log.Error().Err(err).Str("processor", s.opts.Name).Str("key", key).Msg("cached day file unreadable; re-seeding it from S3")
			copied = nil
		}
	}
	m := s.opts.Limits.Merge(seed, cur.size, copied)
	if tooLarge(m.Refused) {
		return file{}, m.Refused[0].Err
	}
	cur.heartbeats, cur.size = m.Heartbeats, m.Size
	return cur, nil
}

// fallback returns the Fallback's file, the base of a corrupt file's
// rebuild; none if there is no Fallback, it has no file, or its file is
// unreadable too.
func (s *Sink) fallback(ctx context.Context, key string) ([]*heartlogv1.Heartbeat, int, error) {
	if s.opts.Fallback == nil {
		return nil, 0, nil
	}
	data, _, err := s.opts.Fallback.Read(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("%s: read the fallback of corrupt %s: %w", s.opts.Name, key, err)
	}
	hbs, size, err := s.opts.Limits.Decode(data)
	if err != nil {
		s.opts.Log.Error().Err(err).Str("processor", s.opts.Name).Str("key", key).Msg("the fallback of a corrupt day file is unreadable too")
		return nil, 0, nil
	}
	return hbs, size, nil
}

// quarantine keeps an unreadable file where an operator can look at it.
func (s *Sink) quarantine(ctx context.Context, key string, data []byte, cause error) error {
	s.metrics.corrupt.Inc()
	qkey := fmt.Sprintf("quarantine/%s.%d", key, time.Now().Unix())
	ev := s.opts.Log.Error().Err(cause).Str("processor", s.opts.Name).Str("key", key)
	if s.opts.Quarantine != nil {
		// A copy under the same name (same file, same second) is as good.
		if _, err := s.opts.Quarantine.Write(ctx, qkey, data, nil, ""); err != nil && !errors.Is(err, ErrConflict) {
			return fmt.Errorf("%s: quarantine corrupt %s: %w", s.opts.Name, key, err)
		}
		ev = ev.Str("quarantined_as", qkey)
	}
	ev.Bool("from_fallback", s.opts.Fallback != nil).Msg("day file unreadable; rebuilding it from the fallback (the backup), if any, and the heartbeats at hand (its copy is kept; replay to bring back what neither had)")
	return nil
}

type metrics struct {
	writes, unchanged, corrupt prometheus.Counter
	conflicts, memoHits        prometheus.Counter
	tooLarge, drops            prometheus.Counter
	rejected                   *prometheus.CounterVec
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
	tooLargeTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_dayfile_too_large_total",
		Help: "Day files found over their limits when read: left as they are, their new heartbeats rejected.",
	}, []string{"processor"})
	dropsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_dayfile_drops_total",
		Help: "Cached day files dropped (over the limits, S3 unreadable, a replay's overlapped write): reads take them from S3.",
	}, []string{"processor"})
	rejectedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "heartlog_dayfile_rejected_total",
		Help: "Heartbeats a day-file sink returned as rejected, by reason.",
	}, []string{"processor", "reason"})
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
		tooLarge:     tooLargeTotal.WithLabelValues(name),
		drops:        dropsTotal.WithLabelValues(name),
		rejected:     rejectedTotal.MustCurryWith(prometheus.Labels{"processor": name}),
		writeSeconds: writeSeconds.WithLabelValues(name),
		fileBytes:    fileBytes.WithLabelValues(name),
	}
}
