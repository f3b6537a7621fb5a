package shards_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/shards"
	"heartlog/streams"
)

// TestDropWithPostgresProcessor runs the real API and Postgres processor:
// the janitor drops a proven old day, and a late heartbeat for it is
// skipped by the processor instead of bringing the partition back.
func TestDropWithPostgresProcessor(t *testing.T) {
	t.Parallel()
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	ctx := context.Background()
	e := &env{t: t, js: svc.JS, sc: svc.Streams, dbs: heartlogtest.Databases{Days: svc.Days, Catalog: svc.Pool}, consumers: map[string][]jetstream.Consumer{}}
	for _, proc := range []string{streams.DurableObjects, streams.DurableCache} {
		cs, err := streams.EnsurePartitionConsumers(ctx, svc.JS, svc.Streams, proc)
		if err != nil {
			t.Fatal(err)
		}
		e.consumers[proc] = cs
	}
	u, key := svc.CreateUser(t, "alice", "")
	at := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -5).Add(9 * time.Hour)
	day := at.Format(heartbeat.DayLayout)
	post := func(entity string) {
		body := fmt.Sprintf(`[{"entity":%q,"type":"file","time":%d}]`, entity, at.Unix())
		if resp, b := svc.Post(t, "/api/v1/users/current/heartbeats.bulk", key, []byte(body)); resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	}
	post("a.go")
	svc.WaitCount(t, 1, "SELECT count(*) FROM heartbeats WHERE user_id = $1 AND day = $2", u.ID, at.Truncate(24*time.Hour))

	j := shards.New(svc.JS, svc.Streams, svc.Days, shards.Options{Owner: "janitor", Settle: time.Second, LockTTL: 3 * time.Second, Log: heartlogtest.Logger(t)})
	if dropped, err := j.RunOnce(ctx); len(dropped) != 0 || len(shards.NotProven(err)) != 1 {
		t.Fatalf("before objects and cache acked: dropped %v, err %v", dropped, err)
	}
	svc.CloseDay(t, at, nil)
	e.ackAll(streams.DurableObjects, streams.DurableCache)
	dropped, err := j.RunOnce(ctx)
	if err != nil || !slices.Equal(dropped, []string{day}) {
		t.Fatalf("dropped %v, err %v", dropped, err)
	}
	e.expectDropped(day)

	// A late heartbeat for the dropped day: the processor acks it without
	// writing, and the partition stays gone.
	post("late.go")
	cons, err := svc.JS.Consumer(ctx, svc.Streams.Stream, streams.DurablePostgres)
	if err != nil {
		t.Fatal(err)
	}
	ok := heartlogtest.Eventually(30*time.Second, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= 2
	})
	if !ok {
		t.Fatal("the Postgres processor did not take the late heartbeat")
	}
	if n := svc.Count(t, "SELECT count(*) FROM pg_class WHERE relname = 'heartbeats_' || $1", day); n != 0 {
		t.Fatal("a late heartbeat brought the dropped partition back")
	}
	list, err := j.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].State != streams.ShardDropped || list[0].Table != shards.TableNone || list[0].Eligible {
		t.Errorf("List: %+v", list)
	}
}
