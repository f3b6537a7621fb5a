// Package cache is the processor that keeps SSDB's copy of each day file
// current, so that dashboards read finished days without touching S3.
//
// S3 is the truth and the cache never holds, and never merges into, less
// than S3 had. It is a dayfiles.Sink over SSDB seeded from the primary bucket
// (see "Derived stores" in package dayfiles): a merge starts from the entry
// only when the entry is this processor's own last write (its memo);
// otherwise (a cold key, a corrupt entry, an entry a read-path fill or a
// replay wrote, a restart) it starts from the union of the entry and the S3
// file. Every write into SSDB counts the day's generation up
// (digest.GenKey), which is how a write that raced another is detected
// without MULTI, Lua or SET NX (dayfiles.CacheStore): the writer then merges
// again, and a replay (Standby) drops the entry instead, since what it
// raced may be the live processor's write, which only the live processor
// can redo. A day that would grow past the limits, or whose S3 file is
// unreadable, is dropped from the cache (reads then go to S3); the objects
// processor is the one that rejects what S3 cannot hold.
//
// The read path fills only entries that are missing with no generation (no
// writer touched the day within the TTL) or unreadable, and keeps its fill
// only if it was the only write between its read and its own (package
// reads). What remains, and why it is harmless, is in README ("Day files")
// and in reads' fill.
package cache

import (
	"github.com/rs/zerolog"

	"heartlog/objstore"
	"heartlog/processors/dayfiles"
	"heartlog/schema/dayfile"
	"heartlog/ssdb"
	"heartlog/streams"
)

// Options configure the cache sink. Zero fields take merge's defaults.
type Options struct {
	// Concurrency bounds day files merged at once across partitions.
	Concurrency int
	// MemoBytes is the memory of the files last written (dayfiles.Options):
	// a file it holds is merged without a read of SSDB or S3.
	MemoBytes int64
	// MergeBytes bounds the files merged at once (dayfiles.Options).
	MergeBytes int64
	// Limits bound each day file (dayfile.DefaultLimits).
	Limits dayfile.Limits
	// Standby is set for a replay, which runs beside the live processor
	// (dayfiles.Options.Standby).
	Standby bool
	Log     zerolog.Logger
}

// New returns the cache sink over SSDB, seeded from the primary bucket.
func New(c *ssdb.Cache, primary objstore.Bucket, opts Options) *dayfiles.Sink {
	return dayfiles.New(dayfiles.Options{
		Name: streams.DurableCache, Store: dayfiles.CacheStore(c), Seed: dayfiles.BucketStore(primary),
		Concurrency: opts.Concurrency, MemoBytes: opts.MemoBytes, MergeBytes: opts.MergeBytes,
		Limits: opts.Limits, Standby: opts.Standby, Log: opts.Log,
	})
}
