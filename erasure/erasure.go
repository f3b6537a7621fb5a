// Package erasure removes a deleted user's heartbeats from every store:
// the rows in every day table of every Postgres database, the day files in
// S3, their entries in SSDB (day file, digest, generation) and, when asked,
// every version and delete marker in the versioned backup. It is the work
// of `heartlog users delete` after users.Store.Tombstone; the tombstone is
// what keeps the stream (which still holds the heartbeats for weeks) from
// bringing any of it back.
//
// Every step deletes what is there and finds nothing the second time, so
// an erasure that was interrupted is finished by running it again.
package erasure

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"heartlog/heartbeat"
	"heartlog/objstore"
	"heartlog/pgheartbeats"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	"heartlog/ssdb"
	"heartlog/users"
)

// Backup is the versioned backup bucket: its history is listed, and with
// Options.PurgeBackups each version and delete marker removed.
type Backup interface {
	objstore.Historian
	DeleteVersion(ctx context.Context, key, versionID string) error
	Name() string
}

// Stores are where a user's heartbeats are.
type Stores struct {
	// Days are every database that may hold day tables
	// (daydb.Set.Holders): the catalog too, without shard databases.
	Days    []*pgxpool.Pool
	Primary objstore.Bucket
	Cache   *ssdb.Cache
	Backup  Backup
}

// Options tune an erasure. Zero fields take the defaults.
type Options struct {
	// PurgeBackups removes every version and delete marker of the user's
	// backup files; without it they are counted and kept.
	PurgeBackups bool
	// RequestsPerSecond paces the backup's requests (list pages, deletes);
	// 0: no ceiling. heartlog passes HEARTLOG_BACKUP_REQUESTS_PER_SECOND,
	// as restore and verify do.
	RequestsPerSecond float64
	// Concurrency is how many S3 and backup deletes run at once (default 16).
	Concurrency int
	// Now ends the range of days whose cache keys are deleted (default
	// time.Now()).
	Now time.Time
	// Progress, if set, is told each step as it ends, and a backup purge
	// every 10,000 versions, with the report so far.
	Progress func(step string, r Report)
}

// Report is what an erasure removed.
type Report struct {
	Rows    int64 // Postgres rows
	Tables  int   // day tables looked into, over every database
	Objects int   // S3 objects: day files and quarantined copies
	// Quarantined are the S3 objects that were quarantined copies of an
	// unreadable day file (counted in Objects too).
	Quarantined int
	CacheKeys   int // SSDB keys that existed (day files, digests, generations)
	// BackupFiles are the user's keys in the backup's history; of their
	// versions and delete markers, BackupPurged were removed and
	// BackupKept left (without PurgeBackups).
	BackupFiles, BackupPurged, BackupKept int
}

// ErrBadTombstone is returned for a tombstone whose prefix or id could not
// name a day file: listing under it could reach another user's files.
var ErrBadTombstone = errors.New("erasure: the tombstone does not name a user's day files")

// Erase removes t's user's heartbeats from st. Call it only once the
// tombstone has been seen by every writer (users.Store.Tombstone, then a
// settle): a sink that has not seen it could write a file after the
// erasure passed.
func Erase(ctx context.Context, t users.Tombstone, st Stores, o Options) (Report, error) {
	if err := dayfile.CheckKeyParts(t.ObjectPrefix, t.ID, "20000101"); err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrBadTombstone, err)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	prefix := t.ObjectPrefix + "/" + t.ID + "/"
	e := &eraser{t: t, st: st, o: o, prefixes: []string{prefix, quarantinePrefix + prefix}, days: map[string]bool{}}
	if o.RequestsPerSecond > 0 {
		e.limit = rate.NewLimiter(rate.Limit(o.RequestsPerSecond), max(1, int(o.RequestsPerSecond/10)))
	}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"postgres", e.rows},
		{"s3", e.objects},
		{"backup", e.backup},
		{"cache", e.cache}, // covers the days the others found
		{"check", e.check},
	}
	for _, s := range steps {
		if err := s.run(ctx); err != nil {
			return e.r, fmt.Errorf("erasure: %s: %w", s.name, err)
		}
		if o.Progress != nil {
			o.Progress(s.name, e.r)
		}
	}
	return e.r, nil
}

type eraser struct {
	t        users.Tombstone
	st       Stores
	o        Options
	prefixes []string        // <object prefix>/<user id>/, and its quarantine/ copies
	limit    *rate.Limiter   // the backup's ceiling; nil: none
	days     map[string]bool // YYYYMMDD of every day file found
	r        Report
}

// rows deletes the user's rows from every day table, attached or detached
// (a table the janitor has detached but not dropped yet still holds them).
func (e *eraser) rows(ctx context.Context) error {
	for _, pool := range e.st.Days {
		tables, err := pgheartbeats.DayTables(ctx, pool, "")
		if err != nil {
			return err
		}
		for _, dt := range tables {
			name := pgx.Identifier{pgheartbeats.PartitionName(dt.Day)}.Sanitize()
			tag, err := pool.Exec(ctx, "DELETE FROM "+name+" WHERE user_id = $1", e.t.ID)
			if err != nil {
				return fmt.Errorf("delete from %s: %w", name, err)
			}
			e.r.Rows += tag.RowsAffected()
			e.r.Tables++
			if tag.RowsAffected() > 0 {
				e.days[dt.Day] = true
			}
		}
	}
	return nil
}

// objects deletes every S3 object under the user's prefix.
func (e *eraser) objects(ctx context.Context) error {
	if e.st.Primary == nil {
		return nil
	}
	keys, err := e.primaryKeys(ctx)
	if err != nil {
		return err
	}
	e.noteDays(keys)
	var n, quarantined atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.o.Concurrency)
	for _, key := range keys {
		g.Go(func() error {
			if err := e.st.Primary.Delete(gctx, key); err != nil {
				return err
			}
			n.Add(1)
			if strings.HasPrefix(key, quarantinePrefix) {
				quarantined.Add(1)
			}
			return nil
		})
	}
	err = g.Wait()
	e.r.Objects, e.r.Quarantined = int(n.Load()), int(quarantined.Load())
	return err
}

// backup lists the history under the user's prefix, a page of 1000
// entries per paced request, and with PurgeBackups deletes each entry.
func (e *eraser) backup(ctx context.Context) error {
	if e.st.Backup == nil {
		return nil
	}
	var entries []objstore.Entry
	if err := e.wait(ctx); err != nil {
		return err
	}
	for _, prefix := range e.prefixes {
		for en, err := range e.st.Backup.History(ctx, prefix) {
			if err != nil {
				return err
			}
			entries = append(entries, en)
			if len(entries)%1000 == 0 {
				if err := e.wait(ctx); err != nil {
					return err
				}
			}
		}
	}
	byKey := map[string][]objstore.Entry{}
	for _, en := range entries {
		byKey[en.Key] = append(byKey[en.Key], en)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.noteDays(keys)
	e.r.BackupFiles = len(keys)
	if !e.o.PurgeBackups {
		e.r.BackupKept = len(entries)
		return nil
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.o.Concurrency)
	for _, key := range keys {
		g.Go(func() error {
			for _, en := range oldestFirst(byKey[key]) {
				if err := e.wait(gctx); err != nil {
					return err
				}
				if err := e.st.Backup.DeleteVersion(gctx, en.Key, en.ID); err != nil {
					return err
				}
				mu.Lock()
				if e.r.BackupPurged++; e.r.BackupPurged%progressEvery == 0 && e.o.Progress != nil {
					e.o.Progress(StepPurging, e.r)
				}
				mu.Unlock()
			}
			return nil
		})
	}
	return g.Wait()
}

// oldestFirst orders one key's history for a purge: the noncurrent
// versions and markers from the oldest, the current one last. One key's
// entries are deleted one after another, never at once: versitygw's posix
// backend, deleting a current version, promotes the newest noncurrent one
// in its place, and a delete of that one running at the same time is lost
// (measured: 22 of 120 versions survived concurrent deletes of 40 keys'
// three versions each; none one after another). Real S3 needs neither, and
// loses nothing by it: the keys still run in parallel.
func oldestFirst(history []objstore.Entry) []objstore.Entry {
	h := slices.Clone(history)
	slices.SortStableFunc(h, func(a, b objstore.Entry) int {
		if a.IsLatest != b.IsLatest {
			if a.IsLatest {
				return 1
			}
			return -1
		}
		return a.LastModified.Compare(b.LastModified)
	})
	return h
}

// quarantinePrefix is where the day-file sinks keep a copy of a file they
// could not read (dayfiles: "quarantine/<key>.<unix time>"), in S3 and in
// the backup: the user's heartbeats too.
const quarantinePrefix = "quarantine/"

// primaryKeys lists the user's S3 objects: day files and quarantined copies.
func (e *eraser) primaryKeys(ctx context.Context) ([]string, error) {
	var keys []string
	for _, prefix := range e.prefixes {
		k, err := objstore.ListAll(ctx, e.st.Primary, prefix)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k...)
	}
	return keys, nil
}

// ErrWrittenDuring is returned when a file of the user appeared in S3 (or,
// with PurgeBackups, in the backup) while the erasure ran: a commit that
// began before the tombstone and outlasted the settle. Erase again.
var ErrWrittenDuring = errors.New("files of the user were written while the erasure ran (a commit that outlasted the settle): run the delete again")

// check lists what the erasure removed once more: a sink's commit that
// began before the tombstone may have written after the list above, and
// the erasure is finished only when nothing is left.
func (e *eraser) check(ctx context.Context) error {
	left := 0
	if e.st.Primary != nil {
		keys, err := e.primaryKeys(ctx)
		if err != nil {
			return err
		}
		left += len(keys)
	}
	if e.st.Backup != nil && e.o.PurgeBackups {
		for _, prefix := range e.prefixes {
			if err := e.wait(ctx); err != nil {
				return err
			}
			for _, err := range e.st.Backup.History(ctx, prefix) {
				if err != nil {
					return err
				}
				left++
			}
		}
	}
	if left > 0 {
		return fmt.Errorf("%w (%d objects)", ErrWrittenDuring, left)
	}
	return nil
}

func (e *eraser) wait(ctx context.Context) error {
	if e.limit == nil {
		return ctx.Err()
	}
	return e.limit.Wait(ctx)
}

// StepPurging is the step Options.Progress is told while a backup purge
// is under way.
const StepPurging = "backup purge"

// progressEvery is how many backup versions a purge erases between two
// progress reports (at the Spaces ceiling, about a minute's worth).
const progressEvery = 10000

// cacheChunk is how many keys one MGET and one DEL take.
const cacheChunk = 512

// cache deletes the cache entries of every day the user may have one for:
// the days found in Postgres, S3 and the backup, and every day from the
// user's first day to tomorrow. The cache has no listing that SSDB
// supports (no SCAN), so the keys are computed (dayfile.Key, digest.Key,
// digest.GenKey); only those that exist are counted.
func (e *eraser) cache(ctx context.Context) error {
	if e.st.Cache == nil {
		return nil
	}
	if !e.t.FirstDay.IsZero() {
		end := e.o.Now.UTC().AddDate(0, 0, 1)
		for d := e.t.FirstDay.UTC(); !d.After(end); d = d.AddDate(0, 0, 1) {
			e.days[d.Format(heartbeat.DayLayout)] = true
		}
	}
	var keys []string
	for day := range e.days {
		k := dayfile.Key(e.t.ObjectPrefix, e.t.ID, day)
		keys = append(keys, k, digest.Key(k), digest.GenKey(k))
	}
	sort.Strings(keys)
	for len(keys) > 0 {
		chunk := keys[:min(cacheChunk, len(keys))]
		keys = keys[len(chunk):]
		vals, err := e.st.Cache.MGet(ctx, chunk)
		if err != nil {
			return err
		}
		for _, v := range vals {
			if v != nil {
				e.r.CacheKeys++
			}
		}
		if err := e.st.Cache.Delete(ctx, chunk...); err != nil {
			return err
		}
	}
	return nil
}

// noteDays adds the days of the day-file keys (others are skipped).
func (e *eraser) noteDays(keys []string) {
	for _, k := range keys {
		if _, _, day, err := dayfile.ParseKey(k); err == nil {
			e.days[day] = true
		}
	}
}
