package reads_test

import (
	"bytes"
	"context"
	"testing"

	"heartlog/internal/heartlogtest"
	cachesink "heartlog/processors/cache"
	"heartlog/reads"
	"heartlog/schema/digest"
	"heartlog/streams"
)

// reader reads d's day as a day whose shard is dropped, so that it comes
// from SSDB and S3.
func reader(t *testing.T, st heartlogtest.Stores, d heartlogtest.UserDay) *reads.Reader {
	return reads.New(nil, states{d.Day: streams.ShardDropped}, st.Cache, st.Primary, 4, heartlogtest.Logger(t))
}

// TestCorruptCachedDayIsReadFromS3AndRefilled: a cached day file that does
// not decode is never taken as an empty day: the read comes from S3 and the
// cache gets S3's file back (and its digest, for accounting).
func TestCorruptCachedDayIsReadFromS3AndRefilled(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	c := heartlogtest.NewUserDay(5)
	hbs := c.Beats(t, 0, 12)
	inS3 := heartlogtest.DayFile(t, hbs)
	if _, err := st.Primary.Put(ctx, c.Key(), inS3); err != nil {
		t.Fatal(err)
	}
	r := reader(t, st, c)
	for _, accounting := range []bool{false, true} {
		if err := st.Cache.Set(ctx, c.Key(), []byte("\x1f\x8b\x08\x00not a day file")); err != nil {
			t.Fatal(err)
		}
		if err := st.Cache.Delete(ctx, digest.Key(c.Key())); err != nil {
			t.Fatal(err)
		}
		var got int
		if accounting {
			act, err := r.Activity(ctx, c.User, []string{c.Day})
			if err != nil {
				t.Fatal(err)
			}
			got = len(act.Beats)
		} else {
			read, err := r.Heartbeats(ctx, c.User, []string{c.Day})
			if err != nil {
				t.Fatal(err)
			}
			if ids(read) != ids(hbs) {
				t.Fatal("heartbeats read are not S3's")
			}
			got = len(read)
		}
		if got != len(hbs) {
			t.Fatalf("accounting %v: %d heartbeats read, S3 has %d", accounting, got, len(hbs))
		}
		cached, ok, err := st.Cache.Get(ctx, c.Key())
		if err != nil || !ok || !bytes.Equal(cached, inS3) {
			t.Fatalf("accounting %v: the corrupt entry was not replaced by S3's file (present %v, %v)", accounting, ok, err)
		}
		if dg, ok, _ := st.Cache.Get(ctx, digest.Key(c.Key())); !ok {
			t.Fatalf("accounting %v: no digest beside the refilled file", accounting)
		} else if act, err := digest.Decode(dg); err != nil || len(act.Beats) != len(hbs) {
			t.Fatalf("accounting %v: digest of %d beats (%v)", accounting, len(act.Beats), err)
		}
	}
}

// TestFillRacingACacheCommitLeavesNoStaleEntry puts a cache commit in each
// step of a read-path fill: the fill read S3 before the cache processor
// wrote heartbeats that the objects processor has not written to S3 yet.
// Whatever the interleaving, the cache never ends up holding the older S3
// copy, and the cache processor's next commit holds everything.
func TestFillRacingACacheCommitLeavesNoStaleEntry(t *testing.T) {
	for _, step := range []string{"check", "write"} {
		t.Run(step, func(t *testing.T) {
			ctx := context.Background()
			st := heartlogtest.OpenStores(t)
			c := heartlogtest.NewUserDay(5)
			a, b, more := c.Beats(t, 0, 4), c.Beats(t, 4, 6), c.Beats(t, 6, 7)
			stale := heartlogtest.DayFile(t, a)
			if _, err := st.Primary.Put(ctx, c.Key(), stale); err != nil {
				t.Fatal(err)
			}
			live := cachesink.New(st.Cache, st.Primary, cachesink.Options{MemoBytes: 1 << 20, Log: heartlogtest.Logger(t)})
			r := reader(t, st, c)
			raced := false
			reads.SetBeforeFill(r, func(s string) {
				if s == step && !raced {
					raced = true
					if err := live.Commit(ctx, c.Batch(b)); err != nil {
						t.Errorf("cache commit: %v", err)
					}
				}
			})
			if _, err := r.Heartbeats(ctx, c.User, []string{c.Day}); err != nil {
				t.Fatal(err)
			}
			if !raced {
				t.Fatal("the fill never reached the step: the race was not forced")
			}
			cached, ok, err := st.Cache.Get(ctx, c.Key())
			if err != nil {
				t.Fatal(err)
			}
			if ok && !bytes.Equal(cached, heartlogtest.DayFile(t, a, b)) {
				t.Fatalf("the cache holds %d bytes, not the cache processor's write (stale fill: %v)", len(cached), bytes.Equal(cached, stale))
			}
			// A later read fills nothing stale either.
			if _, err := r.Heartbeats(ctx, c.User, []string{c.Day}); err != nil {
				t.Fatal(err)
			}
			if cached, ok, _ := st.Cache.Get(ctx, c.Key()); ok && bytes.Equal(cached, stale) {
				t.Fatal("a later read filled the older S3 copy")
			}
			if err := live.Commit(ctx, c.Batch(more)); err != nil {
				t.Fatal(err)
			}
			cached, ok, err = st.Cache.Get(ctx, c.Key())
			if err != nil || !ok || !bytes.Equal(cached, heartlogtest.DayFile(t, a, b, more)) {
				t.Fatalf("after the next commit the cache holds %d bytes (present %v, %v), want all 7 heartbeats", len(cached), ok, err)
			}
		})
	}
}
