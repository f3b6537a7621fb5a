package heartlogtest

import (
	"context"
	"os"
	"testing"
	"time"

	"heartlog/cache"
	"heartlog/objstore"
	"heartlog/processors"
	"heartlog/processors/backup"
	cachesink "heartlog/processors/cache"
	"heartlog/processors/merge"
	"heartlog/processors/objects"
	"heartlog/streams"
)

// Stores are the day-file stores of the local stack: the primary bucket,
// the versioned backup bucket and the SSDB stand-in. Tests share them and
// stay apart by user: every user has a random key prefix.
type Stores struct {
	Primary *objstore.S3
	Backup  *objstore.S3
	Cache   *cache.Cache
}

// OpenStores connects to the stack's S3 buckets and cache (from var/env).
// Without them the test fails: run it with `make test`.
func OpenStores(t testing.TB) Stores {
	t.Helper()
	return Stores{Primary: Bucket(t, "HEARTLOG_S3_", ""), Backup: Bucket(t, "HEARTLOG_BACKUP_S3_", ""), Cache: Cache(t)}
}

// Bucket opens a bucket from the variables with the prefix; endpoint, if
// set, replaces theirs (a faults proxy in front of the real server).
func Bucket(t testing.TB, envPrefix, endpoint string) *objstore.S3 {
	t.Helper()
	if os.Getenv(envPrefix+"ENDPOINT") == "" {
		t.Fatalf("%sENDPOINT is not set: run the tests with `make test` (or `. var/env` with the stack up)", envPrefix)
	}
	cfg, err := objstore.ConfigFromEnv(envPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if endpoint != "" {
		cfg.Endpoint = endpoint
	}
	b, err := objstore.NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Cache opens the stack's SSDB stand-in.
func Cache(t testing.TB) *cache.Cache {
	t.Helper()
	if os.Getenv("HEARTLOG_CACHE_URL") == "" {
		t.Fatal("HEARTLOG_CACHE_URL is not set: run the tests with `make test`")
	}
	cfg, err := cache.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Sinks are the three day-file sinks over a set of stores.
func (st Stores) Sinks(t testing.TB) map[string]*merge.Sink {
	log := Logger(t)
	return map[string]*merge.Sink{
		streams.DurableObjects: objects.New(context.Background(), st.Primary, objects.Options{Concurrency: 32, MemoBytes: 64 << 20, Backup: st.Backup, Log: log}),
		streams.DurableCache:   cachesink.New(st.Cache, st.Primary, cachesink.Options{Concurrency: 32, MemoBytes: 64 << 20, Log: log}),
		streams.DurableBackup:  backup.New(context.Background(), st.Backup, backup.Options{Concurrency: 32, MemoBytes: 64 << 20, Log: log}),
	}
}

// DayFileOptions change how StartDayFiles runs the processors.
type DayFileOptions struct {
	// Stores replaces the stack's (e.g. buckets behind a faults proxy).
	Stores *Stores
	// FlushAge is the processors' Linger (default 100ms).
	FlushAge time.Duration
	// Names limits the processors started (default all three).
	Names []string
}

// StartDayFiles runs the objects, cache and backup processors on the
// service's stream, as `heartlog process` does, and returns a function that
// stops them (also called when the test ends). Calling it twice runs two
// instances of each, as two processes would.
func (s *Service) StartDayFiles(t testing.TB, o DayFileOptions) (stop func()) {
	t.Helper()
	st := o.Stores
	if st == nil {
		open := OpenStores(t)
		st = &open
	}
	if o.FlushAge == 0 {
		o.FlushAge = 100 * time.Millisecond
	}
	sinks := st.Sinks(t)
	if len(o.Names) == 0 {
		o.Names = []string{streams.DurableObjects, streams.DurableCache, streams.DurableBackup}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, len(o.Names))
	for _, name := range o.Names {
		go func() {
			defer func() { done <- struct{}{} }()
			opts := processors.Options{Linger: o.FlushAge, Log: Logger(t), RetryMax: 500 * time.Millisecond}
			if err := processors.RunPartitions(ctx, s.JS, s.Streams, sinks[name], opts); err != nil && ctx.Err() == nil {
				t.Errorf("%s processor: %v", name, err)
			}
		}()
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		for range o.Names {
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}
