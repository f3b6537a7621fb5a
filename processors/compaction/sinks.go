package compaction

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"heartlog/objstore"
	"heartlog/processors"
	"heartlog/processors/dayfiles"
	"heartlog/schema/dayfile"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/ssdb"
	"heartlog/streams"
)

// Stores are where a closed day's files go.
type Stores struct {
	Primary objstore.Bucket // S3, the primary store
	Cache   *ssdb.Cache     // SSDB, with each file's digest
	Backup  objstore.Bucket // the versioned backup bucket
}

// SinkOptions tune the sinks Sinks builds. Zero fields take the defaults.
type SinkOptions struct {
	// Concurrency is how many day files each sink writes at once, across
	// the partitions compacted in parallel (default 64).
	Concurrency int
	// BackupConcurrency is the backup's (default 256: its writes are slow).
	BackupConcurrency int
	// BackupRequestsPerSecond paces the backup's reads and writes (default
	// 0: no cap; heartlog sets HEARTLOG_BACKUP_REQUESTS_PER_SECOND).
	BackupRequestsPerSecond float64
	// Limits bound each day file (dayfile.DefaultLimits), and MergeBytes
	// the files each sink merges at once (dayfiles.DefaultMergeBytes), as for
	// the processors.
	Limits     dayfile.Limits
	MergeBytes int64
	// CreateFirst writes each S3 and backup file as a new one (a
	// create-only conditional PUT) without reading it first, and reads it
	// only when the server refuses because the file exists. At close most
	// user-days have no file yet, so a file costs one request instead of
	// two, which halves the backup's share of a Space's request ceiling.
	// Set it only when both buckets enforce conditional writes
	// (dayfiles.ConditionalWrites); a server that ignores them would let the
	// PUT overwrite a file it should have merged into.
	CreateFirst bool
	Log         zerolog.Logger
}

// Sinks returns the objects, cache and backup sinks as a compaction
// writes them, those whose stores are set (objects: Primary, its rebuilds
// from Backup if set; cache: Cache and Primary, its seed; backup: Backup): the processors' day-file sinks (dayfiles.Sink, same names, so
// that what they park goes back to them through `heartlog dlq retry`; the
// cache seeded from S3, a corrupt S3 file rebuilt from its backup copy),
// without the memo of last-written files (a compaction writes each file
// once, so the memo would only hold memory), and with every write counted
// into the compaction's record of files written.
func Sinks(st Stores, o SinkOptions) []processors.Sink {
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.BackupConcurrency <= 0 {
		o.BackupConcurrency = 256
	}
	var assumeNew time.Duration // dayfiles.Options.AssumeNew: files of any day
	if o.CreateFirst {
		assumeNew = math.MaxInt64
	}
	var primary, backup dayfiles.Store
	if st.Backup != nil {
		backup = dayfiles.BucketStore(st.Backup)
	}
	var out []processors.Sink
	if st.Primary != nil {
		primary = dayfiles.BucketStore(st.Primary)
		out = append(out, dayfiles.New(dayfiles.Options{Name: streams.DurableObjects, Store: count(primary), Quarantine: primary, Fallback: backup,
			AssumeNew: assumeNew, Concurrency: o.Concurrency, Limits: o.Limits, MergeBytes: o.MergeBytes, Log: o.Log}))
	}
	if st.Cache != nil && primary != nil {
		out = append(out, dayfiles.New(dayfiles.Options{Name: streams.DurableCache, Store: count(dayfiles.CacheStore(st.Cache)), Seed: primary,
			Concurrency: o.Concurrency, Limits: o.Limits, MergeBytes: o.MergeBytes, Log: o.Log}))
	}
	if backup != nil {
		out = append(out, dayfiles.New(dayfiles.Options{Name: streams.DurableBackup, Store: count(backup), Quarantine: backup,
			AssumeNew: assumeNew, Concurrency: o.BackupConcurrency, RequestsPerSecond: o.BackupRequestsPerSecond, Limits: o.Limits, MergeBytes: o.MergeBytes, Log: o.Log}))
	}
	return out
}

// count wraps s in a counted store that keeps s's Drop, if it has one.
func count(s dayfiles.Store) dayfiles.Store {
	c := counted{s}
	if d, ok := s.(dayfiles.Dropper); ok {
		return countedDropper{c, d}
	}
	return c
}

// counted is a dayfiles.Store that counts its successful writes into the
// counter its context carries (a sink's pass sets one), so that a sink
// shared by partitions compacted at once still tells each its own count.
type counted struct{ dayfiles.Store }

type countedDropper struct {
	counted
	dayfiles.Dropper
}

type counterKey struct{}

func withCounter(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, counterKey{}, n)
}

func (c counted) Write(ctx context.Context, key string, data []byte, hbs []*heartlogv1.Heartbeat, tag string) (string, error) {
	newTag, err := c.Store.Write(ctx, key, data, hbs, tag)
	if n, ok := ctx.Value(counterKey{}).(*atomic.Int64); ok && err == nil {
		n.Add(1)
	}
	return newTag, err
}
