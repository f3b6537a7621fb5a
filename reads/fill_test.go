package reads_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	cachesink "heartlog/processors/cache"
	"heartlog/reads"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
	"heartlog/users"
)

// coldDay is a fresh user and one of its days whose shard is dropped, so
// that it is read from SSDB and S3.
type coldDay struct {
	u     users.User
	day   string
	start time.Time
}

func newColdDay() coldDay {
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -5)
	return coldDay{u: users.User{ID: uuid.NewString(), ObjectPrefix: uuid.NewString()[:8]}, day: start.Format(heartbeat.DayLayout), start: start}
}

func (c coldDay) key() string { return dayfile.Key(c.u.ObjectPrefix, c.u.ID, c.day) }

func (c coldDay) beats(t *testing.T, from, to int) []*heartlogv1.Heartbeat {
	var out []*heartlogv1.Heartbeat
	for i := from; i < to; i++ {
		out = append(out, heartlogtest.Heartbeat(t, c.u.ID, fmt.Sprintf("/src/f%d.go", i), c.start.Add(time.Duration(600+i)*time.Minute)))
	}
	return out
}

func (c coldDay) batch(hbs []*heartlogv1.Heartbeat) []*heartlogv1.Batch {
	return []*heartlogv1.Batch{{Day: c.day, ObjectPrefixes: map[string]string{c.u.ID: c.u.ObjectPrefix}, Heartbeats: hbs}}
}

func encodeDay(t *testing.T, hbs ...[]*heartlogv1.Heartbeat) []byte {
	t.Helper()
	var all []*heartlogv1.Heartbeat
	for _, h := range hbs {
		all = append(all, h...)
	}
	merged, _ := dayfile.Merge(nil, all)
	data, err := dayfile.Encode(merged)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (c coldDay) reader(t *testing.T, st heartlogtest.Stores) *reads.Reader {
	return reads.New(nil, states{c.day: streams.ShardDropped}, st.Cache, st.Primary, 4, heartlogtest.Logger(t))
}

// TestCorruptCachedDayIsReadFromS3AndRefilled: a cached day file that does
// not decode is never taken as an empty day: the read comes from S3 and the
// cache gets S3's file back (and its digest, for accounting).
func TestCorruptCachedDayIsReadFromS3AndRefilled(t *testing.T) {
	ctx := context.Background()
	st := heartlogtest.OpenStores(t)
	c := newColdDay()
	hbs := c.beats(t, 0, 12)
	inS3 := encodeDay(t, hbs)
	if _, err := st.Primary.Put(ctx, c.key(), inS3); err != nil {
		t.Fatal(err)
	}
	r := c.reader(t, st)
	for _, accounting := range []bool{false, true} {
		if err := st.Cache.Set(ctx, c.key(), []byte("\x1f\x8b\x08\x00not a day file")); err != nil {
			t.Fatal(err)
		}
		if err := st.Cache.Delete(ctx, digest.Key(c.key())); err != nil {
			t.Fatal(err)
		}
		var got int
		if accounting {
			act, err := r.Activity(ctx, c.u, []string{c.day})
			if err != nil {
				t.Fatal(err)
			}
			got = len(act.Beats)
		} else {
			read, err := r.Heartbeats(ctx, c.u, []string{c.day})
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
		cached, ok, err := st.Cache.Get(ctx, c.key())
		if err != nil || !ok || !bytes.Equal(cached, inS3) {
			t.Fatalf("accounting %v: the corrupt entry was not replaced by S3's file (present %v, %v)", accounting, ok, err)
		}
		if dg, ok, _ := st.Cache.Get(ctx, digest.Key(c.key())); !ok {
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
			c := newColdDay()
			a, b, more := c.beats(t, 0, 4), c.beats(t, 4, 6), c.beats(t, 6, 7)
			stale := encodeDay(t, a)
			if _, err := st.Primary.Put(ctx, c.key(), stale); err != nil {
				t.Fatal(err)
			}
			live := cachesink.New(st.Cache, st.Primary, cachesink.Options{MemoBytes: 1 << 20, Log: heartlogtest.Logger(t)})
			r := c.reader(t, st)
			raced := false
			reads.SetBeforeFill(r, func(s string) {
				if s == step && !raced {
					raced = true
					if err := live.Commit(ctx, c.batch(b)); err != nil {
						t.Errorf("cache commit: %v", err)
					}
				}
			})
			if _, err := r.Heartbeats(ctx, c.u, []string{c.day}); err != nil {
				t.Fatal(err)
			}
			if !raced {
				t.Fatal("the fill never reached the step: the race was not forced")
			}
			cached, ok, err := st.Cache.Get(ctx, c.key())
			if err != nil {
				t.Fatal(err)
			}
			if ok && !bytes.Equal(cached, encodeDay(t, a, b)) {
				t.Fatalf("the cache holds %d bytes, not the cache processor's write (stale fill: %v)", len(cached), bytes.Equal(cached, stale))
			}
			// A later read fills nothing stale either.
			if _, err := r.Heartbeats(ctx, c.u, []string{c.day}); err != nil {
				t.Fatal(err)
			}
			if cached, ok, _ := st.Cache.Get(ctx, c.key()); ok && bytes.Equal(cached, stale) {
				t.Fatal("a later read filled the older S3 copy")
			}
			if err := live.Commit(ctx, c.batch(more)); err != nil {
				t.Fatal(err)
			}
			cached, ok, err = st.Cache.Get(ctx, c.key())
			if err != nil || !ok || !bytes.Equal(cached, encodeDay(t, a, b, more)) {
				t.Fatalf("after the next commit the cache holds %d bytes (present %v, %v), want all 7 heartbeats", len(cached), ok, err)
			}
		})
	}
}
