package merge

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"heartlog/cache"
	"heartlog/objstore"
	"heartlog/schema/digest"
)

// BucketStore keeps day files in an S3 bucket. Its tags are ETags, and its
// writes are conditional on them (objstore's PutIfMatch).
func BucketStore(b objstore.Bucket) Store { return bucketStore{b} }

type bucketStore struct{ b objstore.Bucket }

func (s bucketStore) Read(ctx context.Context, key string) ([]byte, string, error) {
	data, etag, err := s.b.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, "", ErrNotFound
	}
	return data, etag, err
}

func (s bucketStore) Write(ctx context.Context, key string, data []byte, tag string) (string, error) {
	etag, err := s.b.PutIfMatch(ctx, key, data, tag)
	if errors.Is(err, objstore.ErrPreconditionFailed) {
		return "", errors.Join(ErrConflict, err)
	}
	return etag, err
}

// CacheStore keeps day files in SSDB, each with the cache's TTL, and beside
// each its digest for the read path (package schema/digest): a Write is
// digest.Put's one pipeline of DEL digest, SETEX day file, SETEX digest, so
// that a digest is missing, never stale, whatever happens between them.
// The Store interface passes only bytes, so Write decodes the day file it
// writes to digest it (about 2 ms of CPU per 1,000 heartbeats).
// SSDB has no conditional write, so it ignores tags: the cache relies on
// one writer per user-day (pinned partition consumers) alone.
func CacheStore(c *cache.Cache) Store { return cacheStore{c} }

type cacheStore struct{ c *cache.Cache }

func (s cacheStore) Read(ctx context.Context, key string) ([]byte, string, error) {
	data, ok, err := s.c.Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	if !ok {
		return nil, "", ErrNotFound
	}
	return data, "", nil
}

func (s cacheStore) Write(ctx context.Context, key string, data []byte, _ string) (string, error) {
	return "", digest.Put(ctx, s.c, []digest.File{{Key: key, Data: data}})
}

// NewOnBucket returns a Sink whose Store is bucket, quarantining
// unreadable files in it too. opts.MemoBytes and opts.AssumeNew (zero: 24
// hours, as a file of the current UTC day that the memo does not hold is
// most often the day's first; negative: off) are kept only if the bucket's
// server enforces conditional writes, which both need; it checks that
// once, with a probe object (see ConditionalWrites).
func NewOnBucket(ctx context.Context, bucket objstore.Bucket, opts Options) *Sink {
	store := BucketStore(bucket)
	opts.Store, opts.Quarantine = store, store
	switch {
	case !ConditionalWrites(ctx, bucket, opts.Log):
		opts.MemoBytes, opts.AssumeNew = 0, 0
	case opts.AssumeNew == 0:
		opts.AssumeNew = 24 * time.Hour
	}
	return New(opts)
}

// ConditionalWrites reports whether b's server enforces conditional writes,
// which MemoBytes and AssumeNew need, and says in log why not when it does
// not: the sink then reads every file before it writes it.
func ConditionalWrites(ctx context.Context, b objstore.Bucket, log zerolog.Logger) bool {
	err := objstore.CheckConditionalWrites(ctx, b)
	switch {
	case err == nil:
		return true
	case errors.Is(err, objstore.ErrConditionsIgnored):
		log.Warn().Str("bucket", b.Name()).Msg("the bucket's server ignores conditional writes: every day file is read before it is written (no memo)")
	default:
		log.Warn().Err(err).Str("bucket", b.Name()).Msg("could not check conditional writes: every day file is read before it is written until the next start (no memo)")
	}
	return false
}
