// Package resync compares the copies of the day files that derive from the
// S3 primary (the versioned backup bucket, the SSDB cache) with it, and
// brings them back in line from S3 alone: `heartlog backup verify` and
// `heartlog rebuild cache|backup --from-s3`. It is what rebuilds the days
// the stream no longer holds; rebuilds from the stream are `heartlog replay`.
//
// S3 is the truth here. Files are compared by their bytes, never by ETag:
// an ETag is the MD5 of the bytes only for single-part uploads without
// SSE-KMS, and the two buckets may live at different providers (AWS and
// DigitalOcean Spaces), so equal content can carry different ETags. Day
// files are small (4-6 KB for a busy day), so reading both costs one GET
// each and is the only check that cannot be fooled.
//
// Every request to the backup (list pages, reads, writes, deletes) is paced
// under one ceiling (Options.RequestsPerSecond, the backup sink's
// HEARTLOG_BACKUP_REQUESTS_PER_SECOND) with a token bucket like the sink's.
// Every write is idempotent and conditional on what was read, so a run
// killed half-way is resumed by running it again, and a write by the live
// processors in between is never overwritten blindly.
package resync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"heartlog/objstore"
	"heartlog/progress"
	"heartlog/schema/dayfile"
)

// Scope narrows the day files a run looks at. The zero Scope is every day
// file of every user.
type Scope struct {
	// Prefix is the start of the keys: "<object prefix>/<user id>/" for
	// one user (UserPrefix), "" for all.
	Prefix string
	// Since is the first UTC day (YYYYMMDD) by the day in the key; "" for
	// every day.
	Since string
	// Deleted, if set, leaves out the files of deleted users (`heartlog
	// users delete`): a backup kept without --purge-backups is no drift,
	// and nothing of theirs is written back.
	Deleted func(userID string) bool
}

// UserPrefix is the Scope.Prefix of one user's day files.
func UserPrefix(objectPrefix, userID string) string { return objectPrefix + "/" + userID + "/" }

// holds reports whether key is a day file in the scope (the buckets also
// hold quarantine/ copies and a conditional-write probe, which are not).
func (s Scope) holds(key string) bool {
	_, user, day, err := dayfile.ParseKey(key)
	return err == nil && strings.HasPrefix(key, s.Prefix) && day >= s.Since && (s.Deleted == nil || !s.Deleted(user))
}

// Options tune a run. Zero fields take the defaults.
type Options struct {
	Scope
	// RequestsPerSecond is the ceiling on the backup's requests (default
	// 0: none). A running `heartlog process` backs up under the same
	// Space's ceiling: give a run beside it a share of it.
	RequestsPerSecond float64
	// Concurrency is how many files are compared at once (default 32).
	Concurrency int
	// Progress, if set, is called about once a second and at the end.
	Progress func(Progress)
}

func (o Options) concurrency() int {
	if o.Concurrency <= 0 {
		return 32
	}
	return o.Concurrency
}

// Progress is how far a run is.
type Progress struct {
	Done, Total int // files
	Elapsed     time.Duration
	Finished    bool
}

// Rate is files per second so far.
func (p Progress) Rate() float64 { return progress.Rate(float64(p.Done), p.Elapsed) }

// ETA is the time left at the rate so far (0 when unknown or done).
func (p Progress) ETA() time.Duration {
	return progress.ETA(float64(p.Done), float64(p.Total), p.Elapsed)
}

// pacer waits for the backup's ceiling; a nil pacer never waits.
type pacer struct{ limit *rate.Limiter }

func newPacer(perSecond float64) pacer {
	if perSecond <= 0 {
		return pacer{}
	}
	// The burst is a tenth of a second's worth, as the backup sink's.
	return pacer{rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond/10)))}
}

func (p pacer) wait(ctx context.Context) error {
	if p.limit == nil {
		return ctx.Err()
	}
	return p.limit.Wait(ctx)
}

// listKeys lists the day files of b in scope, sorted, waiting on pace once
// per page of 1000 keys (what ListObjectsV2 returns).
func listKeys(ctx context.Context, b objstore.Bucket, s Scope, pace pacer) ([]string, error) {
	objs, err := listObjects(ctx, b, s, pace)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return keys, nil
}

// listObjects is listKeys with each file's ETag.
func listObjects(ctx context.Context, b objstore.Bucket, s Scope, pace pacer) ([]objstore.Object, error) {
	var objs []objstore.Object
	n := 0
	if err := pace.wait(ctx); err != nil {
		return nil, err
	}
	for obj, err := range b.Objects(ctx, s.Prefix) {
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", b.Name(), err)
		}
		if n++; n%1000 == 0 {
			if err := pace.wait(ctx); err != nil {
				return nil, err
			}
		}
		if s.holds(obj.Key) {
			objs = append(objs, obj)
		}
	}
	slices.SortFunc(objs, func(a, b objstore.Object) int { return strings.Compare(a.Key, b.Key) })
	return objs, nil
}

// each runs fn on every key, o.Concurrency at once, reporting progress
// over settled files that needed no call and then keys; the first error
// stops the run (files done are done: a re-run skips them).
func each(ctx context.Context, settled int, keys []string, o Options, fn func(ctx context.Context, key string) error) error {
	start := time.Now()
	var (
		mu   sync.Mutex
		done = settled
		last time.Time
	)
	report := func(finished bool) {
		if o.Progress != nil {
			o.Progress(Progress{Done: done, Total: settled + len(keys), Elapsed: time.Since(start), Finished: finished})
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.concurrency())
	for _, key := range keys {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := fn(gctx, key); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if done++; time.Since(last) >= time.Second {
				last = time.Now()
				report(false)
			}
			return nil
		})
	}
	err := g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	report(err == nil)
	return err
}

// getOrNone is Get with a missing key as nil data and no error.
func getOrNone(ctx context.Context, b objstore.Bucket, key string) (data []byte, etag string, found bool, err error) {
	data, etag, err = b.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, "", false, nil
	}
	return data, etag, err == nil, err
}
