package ssdb

import "github.com/redis/go-redis/v9"

// RawClient exposes the guarded go-redis client to the tests in cache_test,
// so that they can try commands the Cache API never sends.
func RawClient(c *Cache) *redis.Client { return c.rdb }
