// Package backup is the processor that mirrors day files into the backup
// bucket (DigitalOcean Spaces in production), which has versioning on:
// every change to a day file becomes a new object version, and an
// unchanged file is not written, so versions mark real changes and a
// point in time can be restored.
//
// Spaces writes take about 2 s and an account gets about 500 requests/s,
// so the backup flushes rarely (minutes), writes under a rate ceiling, and
// keeps many writes in flight to reach it.
package backup

import (
	"github.com/rs/zerolog"

	"heartlog/objstore"
	"heartlog/processors/merge"
	"heartlog/streams"
)

// New returns the backup sink writing at most writesPerSecond, with up to
// concurrency writes in flight.
func New(bucket objstore.Bucket, concurrency int, writesPerSecond float64, log zerolog.Logger) *merge.Sink {
	store := merge.BucketStore(bucket)
	return merge.New(merge.Options{
		Name: streams.DurableBackup, Store: store, Quarantine: store,
		Concurrency: concurrency, WritesPerSecond: writesPerSecond, Log: log,
	})
}
