package heartlogtest

import (
	"context"
	"sync/atomic"

	"heartlog/objstore"
)

// CountingBucket is a real bucket that counts the objects read from it:
// what a test of "this costs no read" asserts on.
type CountingBucket struct {
	objstore.Bucket
	gets atomic.Int64
}

// Get counts the read and passes it on.
func (b *CountingBucket) Get(ctx context.Context, key string) ([]byte, string, error) {
	b.gets.Add(1)
	return b.Bucket.Get(ctx, key)
}

// Gets is how many objects were read.
func (b *CountingBucket) Gets() int64 { return b.gets.Load() }
