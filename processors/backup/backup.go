// Package backup is the processor that mirrors day files into the backup
// bucket (DigitalOcean Spaces in production), which has versioning on:
// every change to a day file becomes a new object version, and an
// unchanged file is not written, so versions mark real changes and a
// point in time can be restored.
//
// Spaces writes take about 2 s and an account gets about 500 requests/s,
// so the backup flushes rarely (minutes), paces every request under a
// ceiling, keeps many writes in flight to reach it, and remembers the files
// it wrote so that most changes cost one request (a conditional PUT)
// instead of a GET and a PUT.
package backup

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"heartlog/objstore"
	"heartlog/processors/dayfiles"
	"heartlog/schema/dayfile"
	"heartlog/streams"
)

// Options configure the backup sink. Zero fields take merge's defaults.
type Options struct {
	// Concurrency is the requests in flight.
	Concurrency int
	// RequestsPerSecond is the ceiling on reads and writes together.
	RequestsPerSecond float64
	// MemoBytes is the memory of files last written (dayfiles.Options); it
	// is used only if the bucket enforces conditional writes.
	MemoBytes int64
	// AssumeNew is dayfiles.Options.AssumeNew (default 24h: the current
	// day's files; negative: off); used only with conditional writes.
	AssumeNew time.Duration
	// Limits bound each day file (dayfile.DefaultLimits); MergeBytes the
	// files merged at once (dayfiles.DefaultMergeBytes).
	Limits     dayfile.Limits
	MergeBytes int64
	Log        zerolog.Logger
}

// New returns the backup sink. It checks once, with a probe object, whether
// the bucket honours conditional writes (see dayfiles.NewOnBucket).
func New(ctx context.Context, bucket objstore.Bucket, opts Options) *dayfiles.Sink {
	return dayfiles.NewOnBucket(ctx, bucket, dayfiles.Options{
		Name: streams.DurableBackup, Concurrency: opts.Concurrency, RequestsPerSecond: opts.RequestsPerSecond,
		MemoBytes: opts.MemoBytes, AssumeNew: opts.AssumeNew, Limits: opts.Limits, MergeBytes: opts.MergeBytes, Log: opts.Log,
	})
}
