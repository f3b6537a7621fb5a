package streams_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/internal/heartlogtest"
	"heartlog/streams"
)

// shardsBucket is a fresh JetStream with the topology, and its shards bucket.
func shardsBucket(t *testing.T) (jetstream.JetStream, streams.Config, jetstream.KeyValue) {
	t.Helper()
	top := heartlogtest.StartTopology(t, streams.DefaultConfig())
	js, cfg := top.JS, top.Config
	kv, err := js.KeyValue(context.Background(), cfg.ShardsBucket)
	if err != nil {
		t.Fatal(err)
	}
	return js, cfg, kv
}

// TestDayLifecycleKeys: a day opens by default and closes once; a
// compaction is recorded once and read back; and the keys leave the shard
// states alone (the Postgres processor's view still reads the day active).
func TestDayLifecycleKeys(t *testing.T) {
	js, cfg, kv := shardsBucket(t)
	ctx := context.Background()
	const day = "20261120"
	lc, rev, _, err := streams.GetLifecycle(ctx, kv, day)
	if err != nil || lc.State != streams.DayOpen || rev != 0 {
		t.Fatalf("a new day: %+v rev %d, %v; want open, no key", lc, rev, err)
	}
	closed := streams.Lifecycle{State: streams.DayClosed, ClosedAt: time.Now().UTC(), By: "test"}
	if _, err := streams.PutLifecycle(ctx, kv, day, closed, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.PutLifecycle(ctx, kv, day, closed, 0); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("closing a closed day from revision 0: %v", err)
	}
	rec := streams.Compaction{Seq: 42, Messages: 3, Heartbeats: 30, UserDays: 7, Files: 7, At: time.Now().UTC(), Took: "1.5s"}
	if _, err := streams.PutCompaction(ctx, kv, day, 3, streams.DurableObjects, rec); err != nil {
		t.Fatal(err)
	}
	moved := rec
	moved.Seq = 99
	if _, err := streams.PutCompaction(ctx, kv, day, 3, streams.DurableObjects, moved); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("a second record of one compaction: %v; its bound must never move", err)
	}
	got, ok, err := streams.GetCompaction(ctx, kv, day, 3, streams.DurableObjects)
	if err != nil || !ok || got.Seq != 42 || got.UserDays != 7 {
		t.Fatalf("record read back: %+v %t %v", got, ok, err)
	}
	if _, ok, err := streams.GetCompaction(ctx, kv, day, 3, streams.DurableCache); ok || err != nil {
		t.Fatalf("cache has no record, got ok %t, %v", ok, err)
	}
	records, err := streams.DayRecords(ctx, kv, "")
	if err != nil {
		t.Fatal(err)
	}
	r := records[day]
	if len(records) != 1 || r == nil || r.Lifecycle.State != streams.DayClosed || r.Compactions[3][streams.DurableObjects].Seq != 42 {
		t.Fatalf("day records: %+v", records)
	}
	view, err := streams.WatchShards(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer view.Stop()
	if st := view.State(day); st != streams.ShardActive {
		t.Fatalf("the shard of a closed day reads %s; the lifecycle must not touch it", st)
	}
}

// TestDayViewFollowsTheKeys: the view starts with every key's value and
// follows closes, records and removed records.
func TestDayViewFollowsTheKeys(t *testing.T) {
	js, cfg, kv := shardsBucket(t)
	ctx := context.Background()
	const before, after = "20261118", "20261119"
	if _, err := streams.PutLifecycle(ctx, kv, before, streams.Lifecycle{State: streams.DayClosed}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.PutShard(ctx, kv, before, streams.Shard{State: streams.ShardDraining}, 0); err != nil {
		t.Fatal(err)
	}
	v, err := streams.WatchDays(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	if v.Lifecycle(before).State != streams.DayClosed || v.Lifecycle(after).State != streams.DayOpen {
		t.Fatalf("at start: %s %s", v.Lifecycle(before).State, v.Lifecycle(after).State)
	}
	if _, err := streams.PutLifecycle(ctx, kv, after, streams.Lifecycle{State: streams.DayClosed}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.PutCompaction(ctx, kv, after, 5, streams.DurableCache, streams.Compaction{Seq: 7}); err != nil {
		t.Fatal(err)
	}
	if !heartlogtest.Eventually(10*time.Second, func() bool {
		c, ok := v.Compacted(after, 5, streams.DurableCache)
		return ok && c.Seq == 7 && v.Lifecycle(after).State == streams.DayClosed
	}) {
		t.Fatal("the view did not follow the close and the record")
	}
	if err := kv.Delete(ctx, streams.CompactionKey(after, 5, streams.DurableCache)); err != nil {
		t.Fatal(err)
	}
	if !heartlogtest.Eventually(10*time.Second, func() bool {
		_, ok := v.Compacted(after, 5, streams.DurableCache)
		return !ok
	}) {
		t.Fatal("the view kept a removed record")
	}
}
