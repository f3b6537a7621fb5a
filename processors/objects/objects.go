// Package objects is the processor that keeps every user's day files in the
// primary S3 bucket, heartlog's primary store: each heartbeat that reaches
// the stream ends up in <prefix>/<user id>/<YYYY-MM-DD>.ndjson.gz.
//
// It is a dayfiles.Sink over the bucket; an unreadable file is copied to
// quarantine/ in the same bucket before it is rebuilt, from the backup
// bucket's copy (Options.Backup) and the heartbeats at hand.
package objects

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"heartlog/objstore"
	"heartlog/processors/dayfiles"
	"heartlog/schema/dayfile"
	"heartlog/streams"
)

// Options configure the objects sink. Zero fields take merge's defaults.
type Options struct {
	// Concurrency bounds day files merged at once across partitions.
	Concurrency int
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
	// Backup, if set, is the backup bucket: a corrupt day file is rebuilt
	// from its copy there and the heartbeats at hand, not from these alone.
	Backup objstore.Bucket
	Log    zerolog.Logger
}

// New returns the objects sink. It checks once, with a probe object,
// whether the bucket honours conditional writes (see dayfiles.NewOnBucket).
func New(ctx context.Context, bucket objstore.Bucket, opts Options) *dayfiles.Sink {
	var fallback dayfiles.Store
	if opts.Backup != nil {
		fallback = dayfiles.BucketStore(opts.Backup)
	}
	return dayfiles.NewOnBucket(ctx, bucket, dayfiles.Options{
		Fallback: fallback,
		Name:     streams.DurableObjects, Concurrency: opts.Concurrency,
		MemoBytes: opts.MemoBytes, AssumeNew: opts.AssumeNew, Limits: opts.Limits, MergeBytes: opts.MergeBytes, Log: opts.Log,
	})
}
