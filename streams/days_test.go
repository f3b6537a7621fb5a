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

// TestDayLifecycleKeys: a day opens by default and closes once; a
// compaction is recorded once and read back; and the keys leave the shard
// states alone (the Postgres processor's view still reads the day active).
func TestDayLifecycleKeys(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	_, js := heartlogtest.Connect(t, n.URL)
	ctx := context.Background()
	cfg := streams.DefaultConfig()
	if err := streams.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, cfg.ShardsBucket)
	if err != nil {
		t.Fatal(err)
	}
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
