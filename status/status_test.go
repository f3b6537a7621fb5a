package status_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/internal/heartlogtest"
	"heartlog/processors/compaction"
	"heartlog/status"
	"heartlog/streams"
)

// TestGatherDays: days are counted by state (open, closed, compacted,
// dropped), a held compaction lock is listed, and with the clock 50 days
// on, a day closed and not compacted and an oldest message near MaxAge
// are warned about; a compacted day is not.
func TestGatherDays(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	_, js := heartlogtest.Connect(t, n.URL)
	ctx := context.Background()
	sc := streams.DefaultConfig()
	sc.Partitions = 2
	if err := streams.Ensure(ctx, js, sc); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	stuck, done, dropped := now.AddDate(0, 0, -3).Format("20060102"), now.AddDate(0, 0, -2).Format("20060102"), now.AddDate(0, 0, -9).Format("20060102")
	open := now.Format("20060102")
	for _, day := range []string{stuck, done, open} {
		if _, err := js.Publish(ctx, streams.Subject(day, 1), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := js.KeyValue(ctx, sc.ShardsBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, day := range []string{stuck, done} {
		if _, err := streams.PutLifecycle(ctx, kv, day, streams.Lifecycle{State: streams.DayClosed, ClosedAt: now}, 0); err != nil {
			t.Fatal(err)
		}
	}
	for p := range sc.Partitions {
		if _, err := streams.PutCompaction(ctx, kv, done, p, streams.DurableObjects, streams.Compaction{At: now}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := streams.PutShard(ctx, kv, dropped, streams.Shard{State: streams.ShardDropped, UpdatedAt: now}, 0); err != nil {
		t.Fatal(err)
	}
	locks, err := js.KeyValue(ctx, sc.LocksBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locks.Create(ctx, compaction.LockName(stuck, 1), []byte("test"), jetstream.KeyTTL(time.Minute)); err != nil {
		t.Fatal(err)
	}

	later := now.Add(50*24*time.Hour + time.Minute)
	r, err := status.Gather(ctx, status.Sources{
		JS: js, Streams: sc, Processors: []string{streams.DurableObjects},
		Days:         compaction.New(js, sc, compaction.Options{}).List,
		DayFileSinks: []string{streams.DurableObjects},
		Now:          func() time.Time { return later },
	})
	if err != nil {
		t.Fatal(err)
	}
	d := r.Days
	if d.Open != 1 || d.Closed != 1 || d.Compacted != 1 || d.Dropped != 1 {
		t.Fatalf("days %+v: want 1 open, 1 closed, 1 compacted, 1 dropped", d)
	}
	show := func(day string) string { t, _ := time.Parse("20060102", day); return t.Format(time.DateOnly) }
	if !slices.Equal(d.Compacting, []string{show(stuck) + " p01"}) {
		t.Fatalf("compacting %q", d.Compacting)
	}
	want := []string{
		"day " + show(stuck) + " closed 50 days ago and still not compacted",
		"oldest message is 50 days old, MaxAge 56 days: compaction of " + show(stuck) + " must finish before it ages out",
		"processor objects has no consumer on the stream",
	}
	for _, w := range want {
		if !slices.ContainsFunc(r.Warnings, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no warning %q in %q", w, r.Warnings)
		}
	}
	if slices.ContainsFunc(r.Warnings, func(s string) bool { return strings.Contains(s, show(done)) }) {
		t.Errorf("a warning names the compacted day %s: %q", show(done), r.Warnings)
	}
	if len(r.Warnings) != len(want) {
		t.Errorf("warnings %q, want only %q", r.Warnings, want)
	}
}
