package dayfiles

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"heartlog/objstore"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/ssdb"
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

func (s bucketStore) Write(ctx context.Context, key string, data []byte, _ []*heartlogv1.Heartbeat, tag string) (string, error) {
	etag, err := s.b.PutIfMatch(ctx, key, data, tag)
	if errors.Is(err, objstore.ErrPreconditionFailed) {
		return "", errors.Join(ErrConflict, err)
	}
	return etag, err
}

// CacheStore keeps day files in SSDB, each with the cache's TTL, and beside
// each its digest for the read path and its generation (package
// schema/digest): a Write is WriteDayFiles's one pipeline of DEL digest,
// SETEX day file, SETEX digest, INCR generation, so that a digest is
// missing, never stale, whatever happens between them. The digest is made
// from the heartbeats the sink merged (Write decodes data only when it
// has none).
//
// SSDB has no conditional write (no MULTI, no Lua, no SET NX), so the
// generation stands in for an ETag: Read returns it as the tag (MGET of
// the file and its generation, one command); Write first checks that the
// generation is still the tag (else ErrConflict, nothing written), then
// writes, and if the generation its INCR counted up to is not tag+1,
// another write came between the check and its own: the file is written
// but may have overwritten, or been overwritten by, the other one, and
// Write returns ErrConflict with ErrOverlapped. The sink then reads again
// and merges what it wrote into what it finds (the union never loses
// either side), or, as a standby (a replay), drops the file. Every writer
// of the cache (this store, the read path's fills, ssdb.Cache.DropDayFile) counts the
// generation up, so an unchanged generation means no write at all.
func CacheStore(c *ssdb.Cache) Store { return cacheStore{c: c} }

type cacheStore struct {
	c           *ssdb.Cache
	beforeWrite func() // tests: runs between the check and the write
}

func (s cacheStore) Read(ctx context.Context, key string) ([]byte, string, error) {
	vals, err := s.c.MGet(ctx, []string{key, digest.GenKey(key)})
	if err != nil {
		return nil, "", err
	}
	tag := genTag(vals[1])
	if vals[0] == nil {
		return nil, tag, ErrNotFound
	}
	return vals[0], tag, nil
}

// genTag is a generation as a tag: its decimal value, "0" for none.
func genTag(v []byte) string {
	if len(v) == 0 {
		return "0"
	}
	return string(v)
}

func (s cacheStore) Write(ctx context.Context, key string, data []byte, hbs []*heartlogv1.Heartbeat, tag string) (string, error) {
	if tag == "" {
		tag = "0" // a new file, written without a read
	}
	want, err := strconv.ParseInt(tag, 10, 64)
	if err != nil {
		return "", fmt.Errorf("cache: generation tag %q: %w", tag, err)
	}
	now, _, err := s.c.Get(ctx, digest.GenKey(key))
	if err != nil {
		return "", err
	}
	if genTag(now) != tag {
		return "", ErrConflict
	}
	if s.beforeWrite != nil {
		s.beforeWrite()
	}
	gens, err := s.c.WriteDayFiles(ctx, []ssdb.DayFile{{Key: key, Data: data, Heartbeats: hbs, Decoded: hbs != nil}})
	if err != nil {
		return "", err
	}
	got := strconv.FormatInt(gens[0], 10)
	if gens[0] != want+1 {
		return got, errors.Join(ErrConflict, ErrOverlapped)
	}
	return got, nil
}

// Drop removes the file (ssdb.Cache.DropDayFile): readers then take it from S3.
func (s cacheStore) Drop(ctx context.Context, key string) error {
	_, err := s.c.DropDayFile(ctx, key)
	return err
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
