// Package cache is the processor that keeps SSDB's copy of each day file
// current, so that dashboards read finished days without touching S3.
// On a cold key it starts from the S3 day file, so that a cached file is
// always complete, never just the heartbeats that happened to arrive since.
package cache

import (
	"github.com/rs/zerolog"

	ssdb "heartlog/cache"
	"heartlog/objstore"
	"heartlog/processors/merge"
	"heartlog/streams"
)

// New returns the cache sink over SSDB, seeded from the primary bucket.
// An unreadable cached file is simply rebuilt: S3 holds the real one.
func New(c *ssdb.Cache, primary objstore.Bucket, concurrency int, log zerolog.Logger) *merge.Sink {
	return merge.New(merge.Options{
		Name: streams.DurableCache, Store: merge.CacheStore(c), Seed: merge.BucketStore(primary),
		Concurrency: concurrency, Log: log,
	})
}
