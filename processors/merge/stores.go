package merge

import (
	"context"
	"errors"

	"heartlog/cache"
	"heartlog/objstore"
)

// BucketStore keeps day files in an S3 bucket.
func BucketStore(b objstore.Bucket) Store { return bucketStore{b} }

type bucketStore struct{ b objstore.Bucket }

func (s bucketStore) Read(ctx context.Context, key string) ([]byte, error) {
	data, _, err := s.b.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, ErrNotFound
	}
	return data, err
}

func (s bucketStore) Write(ctx context.Context, key string, data []byte) error {
	_, err := s.b.Put(ctx, key, data)
	return err
}

// CacheStore keeps day files in SSDB, each with the cache's TTL.
func CacheStore(c *cache.Cache) Store { return cacheStore{c} }

type cacheStore struct{ c *cache.Cache }

func (s cacheStore) Read(ctx context.Context, key string) ([]byte, error) {
	data, ok, err := s.c.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	return data, nil
}

func (s cacheStore) Write(ctx context.Context, key string, data []byte) error {
	return s.c.Set(ctx, key, data)
}
