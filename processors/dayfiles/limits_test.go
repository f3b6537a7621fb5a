package dayfiles_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/objstore"
	"heartlog/processors"
	"heartlog/processors/backup"
	cachesink "heartlog/processors/cache"
	"heartlog/processors/dayfiles"
	"heartlog/processors/objects"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/ssdb"
)

// commitAll commits hbs of d to each sink.
func commitAll(t *testing.T, d heartlogtest.UserDay, hbs []*heartlogv1.Heartbeat, sinks ...*dayfiles.Sink) {
	t.Helper()
	for _, sink := range sinks {
		if err := sink.Commit(context.Background(), d.Batch(hbs)); err != nil {
			t.Fatalf("%s: %v", sink.Name(), err)
		}
	}
}

func rejectedOf(t *testing.T, err error) *processors.Rejected {
	t.Helper()
	var rej *processors.Rejected
	if !errors.As(err, &rej) {
		t.Fatalf("Commit: %v, want a *processors.Rejected", err)
	}
	return rej
}

func noQuarantine(t *testing.T, b objstore.Bucket, key string) {
	t.Helper()
	q, err := objstore.ListAll(context.Background(), b, "quarantine/"+key)
	if err != nil || len(q) != 0 {
		t.Fatalf("quarantined %v (%v): a file over its limits is not corrupt", q, err)
	}
}

// TestFileAtItsLimitKeepsItsContent: a user-day at its limit and more
// heartbeats: the file keeps everything it had, byte for byte, plus the
// earliest new heartbeats that fit; the rest come back in a *Rejected for
// the loop to park; nothing is quarantined, and a retry changes nothing.
func TestFileAtItsLimitKeepsItsContent(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	sink := objects.New(ctx, st.Primary, objects.Options{Limits: dayfile.Limits{MaxHeartbeats: 5}, MemoBytes: 1 << 20, Log: heartlogtest.Logger(t)})
	d := heartlogtest.NewUserDay(3)
	first := d.Beats(t, 0, 3)
	if err := sink.Commit(ctx, d.Batch(first)); err != nil {
		t.Fatal(err)
	}
	more := d.Beats(t, 3, 7) // two fit, two do not
	for round := range 2 {   // the retry the loop would make gets the same answer
		rej := rejectedOf(t, sink.Commit(ctx, d.Batch(more)))
		if len(rej.Heartbeats) != 2 {
			t.Fatalf("round %d: %d rejected, want 2", round, len(rej.Heartbeats))
		}
		for i, r := range rej.Heartbeats {
			if r.Reason != "day file too large" || !errors.Is(r.Err, dayfile.ErrTooLarge) || r.Heartbeat != more[2+i] || r.Batch == nil || r.Batch.Day != d.Day {
				t.Fatalf("rejection %d: %+v, want heartbeat %s (the latest) as too large, with its batch", i, r, more[2+i].Id)
			}
		}
		data, _, err := st.Primary.Get(ctx, d.Key())
		if err != nil {
			t.Fatal(err)
		}
		if want := heartlogtest.DayFile(t, first, more[:2]); !bytes.Equal(data, want) {
			t.Fatalf("round %d: the file is not its three heartbeats plus the two that fit", round)
		}
		noQuarantine(t, st.Primary, d.Key())
	}
}

// TestFileOverItsLimitIsLeftAsItIs: a file already over the limits (an
// older version wrote it, or the limits were lowered) is neither
// overwritten nor quarantined; the new heartbeats are rejected; the cache
// drops the day rather than hold part of it.
func TestFileOverItsLimitIsLeftAsItIs(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	log := heartlogtest.Logger(t)
	d := heartlogtest.NewUserDay(3)
	big := heartlogtest.DayFile(t, d.Beats(t, 0, 8))
	etag, err := st.Primary.Put(ctx, d.Key(), big)
	if err != nil {
		t.Fatal(err)
	}
	limits := dayfile.Limits{MaxHeartbeats: 5}
	sink := objects.New(ctx, st.Primary, objects.Options{Limits: limits, Log: log})
	late := d.Beats(t, 8, 9)
	rej := rejectedOf(t, sink.Commit(ctx, d.Batch(late)))
	if len(rej.Heartbeats) != 1 || rej.Heartbeats[0].Heartbeat != late[0] || rej.Heartbeats[0].Reason != "day file too large" {
		t.Fatalf("rejected %+v, want the late heartbeat as too large", rej.Heartbeats)
	}
	data, now, err := st.Primary.Get(ctx, d.Key())
	if err != nil || now != etag || !bytes.Equal(data, big) {
		t.Fatalf("the file over its limits was rewritten (ETag %s -> %s, %v)", etag, now, err)
	}
	noQuarantine(t, st.Primary, d.Key())

	// The cache: an entry that S3 cannot give whole is dropped, not
	// rejected (the objects processor parks what S3 cannot hold).
	if err := st.Cache.Set(ctx, d.Key(), big); err != nil {
		t.Fatal(err)
	}
	cs := cachesink.New(st.Cache, st.Primary, cachesink.Options{Limits: limits, Log: log})
	if err := cs.Commit(ctx, d.Batch(late)); err != nil {
		t.Fatalf("cache commit: %v", err)
	}
	if _, ok, err := st.Cache.Get(ctx, d.Key()); ok || err != nil {
		t.Fatalf("cache still holds the day (%v) it cannot keep whole", err)
	}
}

// TestCorruptCacheEntryIsReseededFromS3: garbage in SSDB is never taken
// as an empty day: the next cache commit starts from the S3 file.
func TestCorruptCacheEntryIsReseededFromS3(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	log := heartlogtest.Logger(t)
	d := heartlogtest.NewUserDay(3)
	old, late := d.Beats(t, 0, 20), d.Beats(t, 20, 21)
	obj := objects.New(ctx, st.Primary, objects.Options{Log: log})
	commitAll(t, d, old, obj)
	commitAll(t, d, late, obj)
	if err := st.Cache.Set(ctx, d.Key(), []byte("\x1f\x8b\x08\x00garbage")); err != nil {
		t.Fatal(err)
	}
	cs := cachesink.New(st.Cache, st.Primary, cachesink.Options{Log: log})
	if err := cs.Commit(ctx, d.Batch(late)); err != nil {
		t.Fatal(err)
	}
	inS3, _, err := st.Primary.Get(ctx, d.Key())
	if err != nil {
		t.Fatal(err)
	}
	cached, ok, err := st.Cache.Get(ctx, d.Key())
	if err != nil || !ok || !bytes.Equal(cached, inS3) {
		t.Fatalf("cached entry (%d bytes, %v) is not S3's file (%d bytes)", len(cached), err, len(inS3))
	}
	if dg, ok, _ := st.Cache.Get(ctx, digest.Key(d.Key())); !ok {
		t.Fatal("no digest written with the re-seeded file")
	} else if act, err := digest.Decode(dg); err != nil || len(act.Beats) != 21 {
		t.Fatalf("digest has %d beats (%v), want 21", len(act.Beats), err)
	}
}

// TestCorruptFileIsRebuiltFromTheBackup: a day file in S3 that does not
// decode is quarantined and rebuilt from its backup copy and the
// heartbeats at hand, not from these alone.
func TestCorruptFileIsRebuiltFromTheBackup(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	log := heartlogtest.Logger(t)
	d := heartlogtest.NewUserDay(3)
	old, late := d.Beats(t, 0, 10), d.Beats(t, 10, 11)
	commitAll(t, d, old, backup.New(ctx, st.Backup, backup.Options{Log: log}))
	garbage := []byte("\x1f\x8b\x08\x00garbage")
	if _, err := st.Primary.Put(ctx, d.Key(), garbage); err != nil {
		t.Fatal(err)
	}
	commitAll(t, d, late, objects.New(ctx, st.Primary, objects.Options{Backup: st.Backup, Log: log}))
	data, _, err := st.Primary.Get(ctx, d.Key())
	if err != nil || !bytes.Equal(data, heartlogtest.DayFile(t, old, late)) {
		t.Fatalf("the rebuilt file is not the backup's ten heartbeats and the late one (%v)", err)
	}
	q, err := objstore.ListAll(ctx, st.Primary, "quarantine/"+d.Key())
	if err != nil || len(q) != 1 {
		t.Fatalf("quarantined %v (%v), want the corrupt file once", q, err)
	}
	if kept, _, _ := st.Primary.Get(ctx, q[0]); !bytes.Equal(kept, garbage) {
		t.Fatal("the quarantined copy is not the corrupt file")
	}
	_ = st.Primary.Delete(ctx, q[0])
}

// pausedStore runs pause once, between a read and the write after it.
type pausedStore struct {
	dayfiles.Store
	pause func()
}

func (p *pausedStore) Read(ctx context.Context, key string) ([]byte, string, error) {
	data, tag, err := p.Store.Read(ctx, key)
	if p.pause != nil {
		pause := p.pause
		p.pause = nil
		pause()
	}
	return data, tag, err
}

func (p *pausedStore) Drop(ctx context.Context, key string) error {
	return p.Store.(dayfiles.Dropper).Drop(ctx, key)
}

// TestReplayRacingTheCacheProcessorLosesNothing forces the interleaving
// that lost updates: a replay into the cache reads a user-day, the live
// cache processor writes new heartbeats to it (the objects processor has
// not written them to S3 yet), then the replay writes. The replay must
// not overwrite them, whichever way it resolves the race.
func TestReplayRacingTheCacheProcessorLosesNothing(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	log := heartlogtest.Logger(t)
	d := heartlogtest.NewUserDay(3)
	// old is everywhere; replayed is in S3 but not yet in the cache (what
	// a replay is for); fresh reaches the cache processor first.
	old, replayed, fresh := d.Beats(t, 0, 5), d.Beats(t, 5, 6), d.Beats(t, 6, 8)
	obj := objects.New(ctx, st.Primary, objects.Options{Log: log})
	live := cachesink.New(st.Cache, st.Primary, cachesink.Options{MemoBytes: 1 << 20, Log: log})
	commitAll(t, d, old, obj, live)
	commitAll(t, d, replayed, obj)
	paused := &pausedStore{Store: dayfiles.CacheStore(st.Cache)}
	paused.pause = func() {
		if err := live.Commit(ctx, d.Batch(fresh)); err != nil {
			t.Errorf("live commit: %v", err)
		}
	}
	replay := dayfiles.New(dayfiles.Options{Name: "cache-replay-test", Store: paused, Seed: dayfiles.BucketStore(st.Primary), Standby: true, Log: log})
	if err := replay.Commit(ctx, d.Batch(replayed)); err != nil {
		t.Fatal(err)
	}
	if paused.pause != nil {
		t.Fatal("the replay never read the cache: the race was not forced")
	}
	want := heartlogtest.DayFile(t, old, replayed, fresh)
	cached, ok, err := st.Cache.Get(ctx, d.Key())
	if err != nil || !ok || !bytes.Equal(cached, want) {
		t.Fatalf("after the race the cache holds %d bytes (present %v, %v), want the %d bytes of all 8 heartbeats", len(cached), ok, err, len(want))
	}
	// Once S3 has the new heartbeats, the two are the same file.
	if err := obj.Commit(ctx, d.Batch(fresh)); err != nil {
		t.Fatal(err)
	}
	if inS3, _, _ := st.Primary.Get(ctx, d.Key()); !bytes.Equal(inS3, want) {
		t.Fatal("S3 does not hold the 8 heartbeats")
	}
}

// TestReplayOverlappingTheCacheProcessorDropsTheDay puts the live cache
// processor's write between a replay's check of the generation and its
// write, the one window the check cannot close: the replay's write lands on
// top of heartbeats only the live processor has. The replay must notice and
// drop the day (readers then go to S3, and no fill puts an older copy
// back), and the live processor's next commit must restore all of it.
func TestReplayOverlappingTheCacheProcessorDropsTheDay(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	log := heartlogtest.Logger(t)
	d := heartlogtest.NewUserDay(3)
	old, replayed, fresh, next := d.Beats(t, 0, 5), d.Beats(t, 5, 6), d.Beats(t, 6, 8), d.Beats(t, 8, 9)
	obj := objects.New(ctx, st.Primary, objects.Options{Log: log})
	live := cachesink.New(st.Cache, st.Primary, cachesink.Options{MemoBytes: 1 << 20, Log: log})
	commitAll(t, d, old, obj, live)
	commitAll(t, d, replayed, obj)
	raced := false
	store := dayfiles.CacheStoreBeforeWrite(st.Cache, func() {
		raced = true
		if err := live.Commit(ctx, d.Batch(fresh)); err != nil {
			t.Errorf("live commit: %v", err)
		}
	})
	replay := dayfiles.New(dayfiles.Options{Name: "cache-replay-test", Store: store, Seed: dayfiles.BucketStore(st.Primary), Standby: true, Log: log})
	if err := replay.Commit(ctx, d.Batch(replayed)); err != nil {
		t.Fatal(err)
	}
	if !raced {
		t.Fatal("the replay never wrote: the race was not forced")
	}
	if cached, ok, err := st.Cache.Get(ctx, d.Key()); err != nil || ok {
		t.Fatalf("after the overlap the cache holds %d bytes (%v); want the day dropped", len(cached), err)
	}
	if err := live.Commit(ctx, d.Batch(next)); err != nil {
		t.Fatal(err)
	}
	want := heartlogtest.DayFile(t, old, replayed, fresh, next)
	if cached, ok, err := st.Cache.Get(ctx, d.Key()); err != nil || !ok || !bytes.Equal(cached, want) {
		t.Fatalf("the next live commit left %d bytes (present %v, %v), want all 9 heartbeats", len(cached), ok, err)
	}
}

// TestStaleCacheEntryIsMergedWithS3: an entry that is not the cache
// processor's own last write (here an older S3 copy put back by someone)
// is never the base of a merge: the commit starts from S3 as well (here
// without a memo, as after a restart).
func TestStaleCacheEntryIsMergedWithS3(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	log := heartlogtest.Logger(t)
	d := heartlogtest.NewUserDay(3)
	a, b, c := d.Beats(t, 0, 3), d.Beats(t, 3, 6), d.Beats(t, 6, 7)
	obj := objects.New(ctx, st.Primary, objects.Options{Log: log})
	live := cachesink.New(st.Cache, st.Primary, cachesink.Options{Log: log})
	commitAll(t, d, a, obj, live)
	commitAll(t, d, b, obj, live)
	// An older version (only a) written back behind the processor's back,
	// as a blind fill of an old S3 read would.
	if err := st.Cache.PutDayFiles(ctx, []ssdb.DayFile{{Key: d.Key(), Data: heartlogtest.DayFile(t, a)}}); err != nil {
		t.Fatal(err)
	}
	commitAll(t, d, c, obj, live)
	inS3, _, _ := st.Primary.Get(ctx, d.Key())
	cached, _, _ := st.Cache.Get(ctx, d.Key())
	if want := heartlogtest.DayFile(t, a, b, c); !bytes.Equal(inS3, want) || !bytes.Equal(cached, want) {
		t.Fatalf("S3 equal %v, cache equal %v to all 7 heartbeats", bytes.Equal(inS3, want), bytes.Equal(cached, want))
	}
}

// TestReplayCacheOnALiveSystemLeavesTheCacheEqualToS3 runs what `heartlog
// replay cache` runs (a standby cache sink over the stream) several times
// while the live processors write new heartbeats to the same user-days:
// afterwards every cached file is byte for byte the S3 file.
func TestReplayCacheOnALiveSystemLeavesTheCacheEqualToS3(t *testing.T) {
	w := newWorld(t, 3)
	w.svc.StartDayFiles(t, heartlogtest.DayFileOptions{})
	for i := range w.users {
		w.send(t, i, day(1, 1), day(2, 3), day(3, 4))
	}
	w.closeDays(t, 1, 2, 3)
	w.waitFiles(t, w.expected(t))
	ctx := context.Background()
	standby := cachesink.New(w.stores.Cache, w.stores.Primary, cachesink.Options{Standby: true, Log: heartlogtest.Logger(t)})
	done := make(chan error, 1)
	go func() {
		for range 3 {
			if err := processors.Replay(ctx, w.svc.JS, w.svc.Streams, standby, processors.ReplayOptions{BatchMessages: 1}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for round := range 12 {
		for i := range w.users {
			at := day(1+round%3, 6).Add(time.Duration(round) * time.Minute) // late heartbeats
			w.send(t, i, at, at.Add(30*time.Second))
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("replay: %v", err)
	}
	w.waitFiles(t, w.expected(t))
}

// inFlight is a Store that counts the writes in progress at once; each
// write waits a little for company, so that merges that may overlap do.
type inFlight struct {
	dayfiles.Store
	mu       sync.Mutex
	now, max int
	arrived  chan struct{}
}

func (s *inFlight) Write(ctx context.Context, key string, data []byte, hbs []*heartlogv1.Heartbeat, tag string) (string, error) {
	s.mu.Lock()
	s.now++
	s.max = max(s.max, s.now)
	s.mu.Unlock()
	select {
	case s.arrived <- struct{}{}:
	case <-s.arrived:
	case <-time.After(200 * time.Millisecond):
	}
	defer func() {
		s.mu.Lock()
		s.now--
		s.mu.Unlock()
	}()
	return s.Store.Write(ctx, key, data, hbs, tag)
}

// TestMergesAreBoundedByBytes: with a budget smaller than any file, the
// merges of one commit run one at a time even where Concurrency allows
// eight, and each still completes (a file larger than the budget goes
// alone); with the default budget they overlap.
func TestMergesAreBoundedByBytes(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	for _, tc := range []struct {
		budget int64
		alone  bool
	}{{1, true}, {0, false}} {
		store := &inFlight{Store: dayfiles.BucketStore(st.Primary), arrived: make(chan struct{})}
		sink := dayfiles.New(dayfiles.Options{Name: "bytes-test", Store: store, MergeBytes: tc.budget, Concurrency: 8, Log: heartlogtest.Logger(t)})
		var batches []*heartlogv1.Batch
		var days []heartlogtest.UserDay
		for range 8 {
			d := heartlogtest.NewUserDay(3)
			days = append(days, d)
			batches = append(batches, d.Batch(d.Beats(t, 0, 3))...)
		}
		if err := sink.Commit(ctx, batches); err != nil {
			t.Fatal(err)
		}
		if alone := store.max == 1; alone != tc.alone {
			t.Fatalf("budget %d: at most %d merges at once", tc.budget, store.max)
		}
		for _, d := range days {
			if data, _, err := st.Primary.Get(ctx, d.Key()); err != nil || !bytes.Equal(data, heartlogtest.DayFile(t, d.Beats(t, 0, 3))) {
				t.Fatalf("budget %d: %s not written (%v)", tc.budget, d.Key(), err)
			}
		}
	}
}
