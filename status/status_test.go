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
	ctx := context.Background()
	sc := streams.DefaultConfig()
	sc.Partitions = 2
	js := heartlogtest.StartTopology(t, sc).JS
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

// TestOldestUnackedOfALateConsumer: a late consumer filters on the closed
// days' subjects, and the stream's message just past its ack floor is
// another subject's (here an older one of an open day): its oldest
// unacked message is the first on its own subjects, not that one.
func TestOldestUnackedOfALateConsumer(t *testing.T) {
	js, sc := withTopology(t)
	ctx := context.Background()
	now := time.Now().UTC()
	open, closed := now.Format("20060102"), now.AddDate(0, 0, -2).Format("20060102")
	if _, err := js.Publish(ctx, streams.Subject(open, 1), []byte("x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the other subject's message is 1.5 s older
	if _, err := js.Publish(ctx, streams.Subject(closed, 1), []byte("late")); err != nil {
		t.Fatal(err)
	}
	name := streams.DurableObjects + "-p01"
	if _, err := js.CreateOrUpdateConsumer(ctx, sc.Stream, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubjects: []string{streams.Subject(closed, 1), streams.Subject(now.AddDate(0, 0, -3).Format("20060102"), 1)}}); err != nil {
		t.Fatal(err)
	}
	r, err := status.Gather(ctx, status.Sources{JS: js, Streams: sc, Processors: []string{streams.DurableObjects}})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(r.Consumers, func(c status.Consumer) bool { return c.Name == name })
	if i < 0 {
		t.Fatalf("no consumer %s in %+v", name, r.Consumers)
	}
	if c := r.Consumers[i]; c.Lag != 1 || time.Duration(c.OldestUnacked) <= 0 || time.Duration(c.OldestUnacked) >= time.Second {
		t.Fatalf("%s: lag %d, oldest unacked %s; want 1 and the age of its own subject's message (under 1s), not the other's (1.5s)",
			name, c.Lag, time.Duration(c.OldestUnacked))
	}
}

// TestUnreadableVerifyRecordIsAWarning: a backup verify record that does
// not decode is a warning (exit 1 for `heartlog status`), not "nothing
// needs attention".
func TestUnreadableVerifyRecordIsAWarning(t *testing.T) {
	js, sc := withTopology(t)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: status.OpsBucket})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, status.VerifyKey, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	r, err := status.Gather(ctx, status.Sources{JS: js, Streams: sc, Processors: []string{streams.DurableObjects}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.HasPrefix(w, "cannot read the last backup verify: ") }) {
		t.Fatalf("warnings %q: want one for the unreadable verify record", r.Warnings)
	}
}

// withTopology is a NATS server of the test's own with heartlog's default
// stream and buckets on it.
func withTopology(t *testing.T) (jetstream.JetStream, streams.Config) {
	t.Helper()
	top := heartlogtest.StartTopology(t, streams.DefaultConfig())
	return top.JS, top.Config
}
