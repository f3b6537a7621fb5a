// Package objects is the processor that keeps every user's day files in the
// primary S3 bucket, heartlog's primary store: each heartbeat that reaches
// the stream ends up in <prefix>/<user id>/<YYYY-MM-DD>.ndjson.gz.
//
// It is a merge.Sink over the bucket; an unreadable file is copied to
// quarantine/ in the same bucket before it is rebuilt.
package objects

import (
	"github.com/rs/zerolog"

	"heartlog/objstore"
	"heartlog/processors/merge"
	"heartlog/streams"
)

// New returns the objects sink; concurrency bounds day files merged at
// once across partitions.
func New(bucket objstore.Bucket, concurrency int, log zerolog.Logger) *merge.Sink {
	store := merge.BucketStore(bucket)
	return merge.New(merge.Options{
		Name: streams.DurableObjects, Store: store, Quarantine: store,
		Concurrency: concurrency, Log: log,
	})
}
