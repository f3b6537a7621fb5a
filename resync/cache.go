package resync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"heartlog/objstore"
	"heartlog/processors/dayfiles"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	"heartlog/ssdb"
)

// CacheReport is what RebuildCache did.
type CacheReport struct {
	Files   int // day files in S3, in scope
	InSync  int // already cached with S3's bytes and a digest
	Written int // cached from S3 (with the digest)
	// Merged are cache entries that held heartbeats S3 lacks (the cache
	// processor's late writes ahead of the objects processor's): the
	// union was cached, so nothing either side had is lost.
	Merged int
	// Dropped are entries another writer wrote while this one did: they
	// are removed (readers take the day from S3) rather than left holding
	// a write that may lack the other's heartbeats.
	Dropped int
	Failed  []string // S3 files that do not decode: not cached, with why
}

// RebuildCache writes every S3 day file in scope into SSDB as the cache
// processor writes it: the day file, its digest and its generation, in one
// pipeline (ssdb.Cache.WriteDayFiles through dayfiles.CacheStore, whose
// generation check stands in for a conditional write). A file already
// cached with S3's bytes and its digest costs one S3 GET and two cache
// reads, nothing more. The cache's TTL applies, as to every cache write.
func RebuildCache(ctx context.Context, primary objstore.Bucket, c *ssdb.Cache, o Options) (CacheReport, error) {
	keys, err := listKeys(ctx, primary, o.Scope, pacer{})
	if err != nil {
		return CacheReport{}, err
	}
	rep := CacheReport{Files: len(keys)}
	var mu sync.Mutex
	store := dayfiles.CacheStore(c)
	err = each(ctx, 0, keys, o, func(ctx context.Context, key string) error {
		out, why, err := cacheOne(ctx, primary, c, store, key)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		switch out {
		case inSync:
			rep.InSync++
		case written:
			rep.Written++
		case merged:
			rep.Merged++
		case dropped:
			rep.Dropped++
		case failed:
			rep.Failed = append(rep.Failed, key+": "+why)
		}
		return nil
	})
	return rep, err
}

// maxCacheAttempts bounds the re-reads after the cache's generation moved
// between the read and the write (another writer).
const maxCacheAttempts = 3

type outcome int

const (
	skipped outcome = iota // gone from S3 since the listing
	inSync
	written
	merged
	dropped
	failed
)

func cacheOne(ctx context.Context, primary objstore.Bucket, c *ssdb.Cache, store dayfiles.Store, key string) (outcome, string, error) {
	data, _, found, err := getOrNone(ctx, primary, key)
	if err != nil || !found {
		return skipped, "", err
	}
	hbs, err := dayfile.Decode(data)
	if err != nil {
		// Never cache what readers cannot decode; the objects processor
		// quarantines and rebuilds a corrupt S3 file.
		return failed, err.Error(), nil
	}
	for attempt := 1; ; attempt++ {
		cached, tag, err := store.Read(ctx, key)
		if err != nil && !errors.Is(err, dayfiles.ErrNotFound) {
			return 0, "", err
		}
		out, body, bodyHbs := written, data, hbs
		if cached != nil && !bytes.Equal(cached, data) {
			// A readable entry with heartbeats S3 lacks keeps them: S3 is
			// behind the cache processor for a moment, not ahead.
			if theirs, err := dayfile.Decode(cached); err == nil {
				if all, _ := dayfile.Merge(theirs, hbs); len(all) > len(hbs) {
					if body, err = dayfile.Encode(all); err != nil {
						return 0, "", fmt.Errorf("encode the union with the cached file: %w", err)
					}
					out, bodyHbs = merged, all
				}
			}
		}
		if cached != nil && bytes.Equal(cached, body) {
			if _, ok, err := c.Get(ctx, digest.Key(key)); err != nil {
				return 0, "", err
			} else if ok {
				return inSync, "", nil // a digest is missing or current, never stale
			}
		}
		_, err = store.Write(ctx, key, body, bodyHbs, tag)
		switch {
		case err == nil:
			return out, "", nil
		case errors.Is(err, dayfiles.ErrOverlapped), errors.Is(err, dayfiles.ErrConflict) && attempt == maxCacheAttempts:
			if err := store.(dayfiles.Dropper).Drop(ctx, key); err != nil {
				return 0, "", err
			}
			return dropped, "", nil
		case !errors.Is(err, dayfiles.ErrConflict):
			return 0, "", err
		}
	}
}
