package restore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"heartlog/objstore"
	"heartlog/processors/dayfiles"
	"heartlog/progress"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/ssdb"
)

// Backup is the versioned bucket restore reads the history from.
type Backup interface {
	objstore.Historian
	objstore.Versioned
	Name() string
}

// Primary is the bucket of the day files that restore writes.
type Primary interface {
	objstore.Bucket
	// DeleteIfMatch removes key only while its ETag is ifMatch, else
	// returns an error matching objstore.ErrPreconditionFailed.
	DeleteIfMatch(ctx context.Context, key, ifMatch string) error
}

// Defaults of Options. A file costs three requests one after another (S3
// GET, backup version GET, S3 PUT), each 100-200 ms at S3 and Spaces: by
// Little's law, keeping the Space at its 240 requests/s takes some 150
// files in flight (16 allowed 27 files/s in the restore benchmark). The
// pace, not the concurrency, is what keeps restore under the ceiling.
const (
	DefaultConcurrency       = 128
	DefaultRequestsPerSecond = 240 // DigitalOcean Spaces' ceiling per Space
	maxAttempts              = 10  // conflicts on one file before restore gives up on it
)

// Options choose what to restore. At is required, and at least one of
// Objects and Cache.
type Options struct {
	At time.Time
	// Prefix limits the listing of the backup ("<prefix>/<user id>/" for
	// one user; "" for the whole bucket).
	Prefix string
	// Deleted, if set, leaves out the files of deleted users (`heartlog
	// users delete` without --purge-backups keeps their backup): a restore
	// never brings a deleted user back. It is asked when the history is
	// listed and again before each file is restored, so a user deleted
	// during a long restore is left alone from then on.
	Deleted func(userID string) bool
	// Since and Until bound the days (YYYYMMDD, inclusive); "" is open.
	Since, Until string
	// Objects restores the S3 day files, Cache the SSDB entries (day file
	// and digest). A cache entry that is missing is left missing: a read
	// fills it from S3.
	Objects, Cache bool
	// DryRun reports what would change and writes nothing.
	DryRun bool
	// Again runs a restore anew that its journal (in the primary bucket;
	// see journal.go) says finished: without it, Run returns
	// ErrAlreadyDone, and a run that was cut short goes on where it
	// stopped, skipping the files it finished.
	Again bool
	// Concurrency is the files restored at once (default 16).
	Concurrency int
	// RequestsPerSecond paces the backup bucket's requests (listing pages
	// and version reads; default 240, Spaces' ceiling).
	RequestsPerSecond float64
	// Progress, if set, is called after each file and at the end.
	Progress func(Progress)
	// Changed, if set, is called for each file that changed (or, with
	// DryRun, would change), from one goroutine at a time.
	Changed func(Change)
	// AfterWrite, if set, is called after each file restore wrote, with the
	// count so far (the fault tests' kill hook).
	AfterWrite func(written int)
	Log        zerolog.Logger

	beforeWrite func(key string) // tests: between the first read and the write
}

// Progress is where a restore is. It first lists the backup's history
// (Listed false: Versions grows, Total is not known yet), then restores
// file by file.
type Progress struct {
	Versions     int  // backup versions and delete markers listed so far
	Listed       bool // the listing is done: Total is known
	Files, Total int  // files looked at, and listed (less Resumed)
	Resumed      int  // files an earlier run of this restore finished: skipped
	Changed      int  // files written (or that would be, with DryRun)
	Conflicts    int  // writes refused because the file changed meanwhile
	Failed       int  // files left as they were after an error (see Run)
	Elapsed      time.Duration
	// Restoring is the time since the listing ended, over which Rate and
	// ETA count: a listing of many pages would otherwise make the first
	// minutes' rate look slow and the ETA long.
	Restoring time.Duration
	Done      bool
}

// Rate is files per second since the listing ended.
func (p Progress) Rate() float64 { return progress.Rate(float64(p.Files), p.Restoring) }

// ListRate is versions listed per second.
func (p Progress) ListRate() float64 {
	return progress.Rate(float64(p.Versions), p.Elapsed-p.Restoring)
}

// ETA is the time left at the current rate.
func (p Progress) ETA() time.Duration {
	return progress.ETA(float64(p.Files), float64(p.Total), p.Restoring)
}

// Change is what restore did, or would do, to one file in one store.
type Change struct {
	Key   string
	Store string // "objects" or "cache"
	// Created, Deleted: the file did not exist, or will not.
	Created, Deleted bool
	// Added and Removed are heartbeat ids: in the content at TIME and not
	// in the file, and the other way round.
	Added, Removed []string
	// Unreadable: the file did not decode (it is replaced).
	Unreadable bool
	// Kept are the heartbeats that arrived during the restore (a
	// conflict) and were kept beside the content at TIME.
	Kept      int
	Conflicts int
}

// ErrNoTarget is returned for Options that restore nothing.
var ErrNoTarget = errors.New("restore: nothing to restore to (objects, cache)")

// Run restores every day file in the backup's history under o.Prefix. A
// file that fails (a backup version that does not decode, a store error
// after its retries, a file that changed under every attempt) is not
// restored, or only in S3, and the others go on; Run then returns an
// error naming them (a re-run retries them).
func Run(ctx context.Context, backup Backup, primary Primary, cache *ssdb.Cache, o Options) (Progress, error) {
	if o.At.IsZero() {
		return Progress{}, errors.New("restore: no time to restore to")
	}
	if !o.Objects && !o.Cache {
		return Progress{}, ErrNoTarget
	}
	if (o.Objects && primary == nil) || (o.Cache && cache == nil) {
		return Progress{}, errors.New("restore: a store to restore is not configured")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.RequestsPerSecond <= 0 {
		o.RequestsPerSecond = DefaultRequestsPerSecond
	}
	r := &run{o: o, backup: backup, limit: rate.NewLimiter(rate.Limit(o.RequestsPerSecond), max(1, int(o.RequestsPerSecond/10))), start: time.Now()}
	if o.Objects {
		r.objects = dayfiles.BucketStore(primary)
		r.primary = primary
	}
	if o.Cache {
		r.cache = dayfiles.CacheStore(cache)
		r.ssdb = cache
	}
	var jr *journal
	var finished map[string]bool
	if primary != nil {
		jr = openJournal(primary, o)
		var err error
		if finished, err = r.resume(ctx, jr); err != nil {
			return Progress{}, err
		}
	}
	targets, err := r.list(ctx)
	if err != nil {
		return Progress{}, err
	}
	targets = slices.DeleteFunc(targets, func(t target) bool { return finished[t.key] })
	r.p.Total, r.p.Resumed, r.p.Listed, r.listed = len(targets), len(finished), true, time.Now()
	if o.DryRun {
		jr = nil // read, never written
	}
	stopJournal := r.keepJournal(ctx, jr)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for _, t := range targets {
		g.Go(func() error {
			err := r.restore(gctx, t)
			if err != nil && gctx.Err() == nil {
				r.fail(err)
				return nil // one file's error holds back no other file
			}
			if err == nil && jr != nil {
				jr.add(t.key)
			}
			return err
		})
	}
	err = g.Wait()
	if jerr := stopJournal(err == nil && r.p.Failed == 0); err == nil {
		err = jerr
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tick()
	r.p.Done = err == nil
	if o.Progress != nil && err == nil {
		o.Progress(r.p)
	}
	if err == nil && r.p.Failed > 0 {
		err = fmt.Errorf("restore: %d files not restored (run again to retry them): %w", r.p.Failed, errors.Join(r.errs...))
	}
	return r.p, err
}

// resume reads the journal: the keys an earlier run of this restore
// finished, nothing if it is run Again (the journal is cleared), and
// ErrAlreadyDone if an earlier run finished it.
func (r *run) resume(ctx context.Context, jr *journal) (map[string]bool, error) {
	finished, done, err := jr.load(ctx)
	switch {
	case err != nil:
		return nil, err
	case r.o.Again && !r.o.DryRun:
		return nil, jr.clear(ctx)
	case r.o.Again:
		return nil, nil
	case done:
		return nil, ErrAlreadyDone
	}
	if len(finished) > 0 {
		r.o.Log.Info().Int("files", len(finished)).Msg("restore: going on from an earlier run of this restore: skipping the files it finished")
	}
	return finished, nil
}

// keepJournal flushes jr's finished keys in the background; the returned
// func stops that, flushes the rest and, when the restore is complete,
// records it as finished. A nil jr keeps nothing.
func (r *run) keepJournal(ctx context.Context, jr *journal) func(complete bool) error {
	if jr == nil {
		return func(bool) error { return nil }
	}
	jctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		jr.every(jctx, func(err error) {
			r.o.Log.Warn().Err(err).Msg("restore: the journal could not be written; a re-run may redo these files")
		})
	}()
	return func(complete bool) error {
		cancel()
		<-stopped
		ctx := context.WithoutCancel(ctx) // a stopped restore still records what it finished
		if complete {
			return jr.finish(ctx)
		}
		return jr.flush(ctx)
	}
}

// maxErrors bounds the errors Run returns; the rest are counted.
const maxErrors = 20

func (r *run) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Failed++
	r.p.Files++
	if len(r.errs) < maxErrors {
		r.errs = append(r.errs, err)
	}
}

type run struct {
	o       Options
	backup  Backup
	limit   *rate.Limiter
	objects dayfiles.Store
	primary Primary
	cache   dayfiles.Store
	ssdb    *ssdb.Cache
	start   time.Time
	listed  time.Time // when the listing ended

	mu      sync.Mutex
	p       Progress
	written int
	errs    []error
}

// tick brings the progress's clocks to now. The caller holds mu, or is
// the listing, which runs before any file's goroutine.
func (r *run) tick() {
	r.p.Elapsed = time.Since(r.start)
	if r.p.Listed {
		r.p.Restoring = time.Since(r.listed)
	}
}

// target is one key and its state at TIME: the version to restore, or
// none (the file did not exist then).
type target struct {
	key, user string
	version   *objstore.Version
}

// list reads the backup's history under the prefix and picks, for each day
// file in the range, its newest entry not after TIME.
func (r *run) list(ctx context.Context) ([]target, error) {
	byKey := map[string][]objstore.Entry{}
	n := 0
	if err := r.limit.Wait(ctx); err != nil {
		return nil, err
	}
	for e, err := range r.backup.History(ctx, r.o.Prefix) {
		if err != nil {
			return nil, err
		}
		if n++; n%1000 == 0 { // a page of ListObjectVersions
			r.p.Versions = n
			r.tick()
			if r.o.Progress != nil {
				r.o.Progress(r.p)
			}
			if err := r.limit.Wait(ctx); err != nil {
				return nil, err
			}
		}
		_, user, day, err := dayfile.ParseKey(e.Key)
		if err != nil || (r.o.Since != "" && day < r.o.Since) || (r.o.Until != "" && day > r.o.Until) {
			continue // not a day file (the probe, quarantine/), or outside the range
		}
		if r.o.Deleted != nil && r.o.Deleted(user) {
			continue
		}
		byKey[e.Key] = append(byKey[e.Key], e)
	}
	r.p.Versions = n
	targets := make([]target, 0, len(byKey))
	for key, entries := range byKey {
		_, user, _, _ := dayfile.ParseKey(key) // parsed above
		targets = append(targets, target{key: key, user: user, version: at(entries, r.o.At)})
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].key < targets[j].key })
	return targets, nil
}

// at is the version that was current at t, nil for none (a delete marker,
// or nothing yet). Entries with the same time (servers keep seconds) are
// ordered as the server marks them: the latest last.
func at(entries []objstore.Entry, t time.Time) *objstore.Version {
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if !a.LastModified.Equal(b.LastModified) {
			return a.LastModified.After(b.LastModified)
		}
		return a.IsLatest && !b.IsLatest
	})
	for _, e := range entries {
		if e.LastModified.After(t) {
			continue
		}
		if e.DeleteMarker {
			return nil
		}
		v := e.Version
		return &v
	}
	return nil
}

// restore puts one key back in every store restore writes.
func (r *run) restore(ctx context.Context, t target) error {
	var want *content // nil: the file should not exist
	var err error
	if t.version != nil {
		want = &content{version: *t.version}
	}
	changed, conflicts := false, 0
	objects, cache := r.objects, r.cache
	if r.o.Deleted != nil && r.o.Deleted(t.user) {
		objects, cache = nil, nil // deleted since the listing: nothing to write
	}
	if objects != nil {
		c, err := r.put(ctx, objects, "objects", t.key, want)
		if err != nil {
			return err
		}
		changed, conflicts = changed || c.changed, conflicts+c.conflicts
		want = c.final
	}
	if cache != nil {
		c, err := r.put(ctx, cache, "cache", t.key, want)
		if err != nil {
			return err
		}
		changed, conflicts = changed || c.changed, conflicts+c.conflicts
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Files++
	r.p.Conflicts += conflicts
	if changed {
		r.p.Changed++
	}
	r.tick()
	if r.o.Progress != nil {
		r.o.Progress(r.p)
	}
	if changed && !r.o.DryRun && r.o.AfterWrite != nil {
		r.written++
		r.o.AfterWrite(r.written)
	}
	return err
}

// content is a day file's content at TIME, read from the backup only when
// needed (a matching ETag proves the file is already there).
type content struct {
	version objstore.Version
	data    []byte
	hbs     []*heartlogv1.Heartbeat
}

func (r *run) load(ctx context.Context, key string, c *content) error {
	if c.data != nil {
		return nil
	}
	if err := r.limit.Wait(ctx); err != nil {
		return err
	}
	data, err := r.backup.GetVersion(ctx, key, c.version.ID)
	if err != nil {
		return err
	}
	hbs, err := dayfile.Decode(data)
	if err != nil {
		return fmt.Errorf("restore: version %s of %s in %s does not decode: %w", c.version.ID, key, r.backup.Name(), err)
	}
	c.data, c.hbs = data, hbs
	return nil
}

// same reports whether data (with its ETag, if any) is c's content.
func (c *content) same(data []byte, etag string) bool {
	if c.data != nil {
		return bytes.Equal(data, c.data)
	}
	if etag == "" {
		sum := md5.Sum(data)
		etag = hex.EncodeToString(sum[:])
	}
	return etag == c.version.ETag
}

type putResult struct {
	changed   bool
	conflicts int
	final     *content // what the store holds now (the next store's target)
}
