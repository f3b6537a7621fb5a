package dayfiles

import "heartlog/ssdb"

// CacheStoreBeforeWrite is CacheStore that calls f once, after a write's
// check of the generation and before the write, so that a test can put
// another write there.
func CacheStoreBeforeWrite(c *ssdb.Cache, f func()) Store {
	once := f
	return cacheStore{c: c, beforeWrite: func() {
		if once != nil {
			g := once
			once = nil
			g()
		}
	}}
}
