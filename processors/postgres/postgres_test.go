package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	pgsink "heartlog/processors/postgres"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// states is a fixed shard view, standing in for the KV watch in this unit
// of the sink; the end-to-end path through the KV bucket is tested below.
type states map[string]streams.ShardState

func (s states) State(day string) streams.ShardState {
	if st, ok := s[day]; ok {
		return st
	}
	return streams.ShardActive
}

func batchOf(t *testing.T, user string, at time.Time, n int) *heartlogv1.Batch {
	t.Helper()
	b := &heartlogv1.Batch{Day: at.UTC().Format(heartbeat.DayLayout)}
	for i := range n {
		hb := &heartlogv1.Heartbeat{Entity: fmt.Sprintf("f%d.go", i), Type: "file", Time: float64(at.Unix() + int64(i))}
		if err := heartbeat.DefaultLimits.Prepare(hb, heartbeat.Origin{UserID: user, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
		b.Heartbeats = append(b.Heartbeats, hb)
	}
	return b
}

const user = "6f1e2a3b-0000-4000-8000-000000000001"

func TestCommitIsIdempotentInAnyOrder(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	sink := pgsink.New(daydb.One(pool), states{}, zerolog.Nop(), pgsink.Options{})
	ctx := context.Background()
	a := batchOf(t, user, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), 50)
	b := batchOf(t, user, time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC), 30)
	for _, order := range [][]*heartlogv1.Batch{{a, b}, {b, a}, {a, a, b}} {
		if err := sink.Commit(ctx, order); err != nil {
			t.Fatal(err)
		}
	}
	rows := map[string]int{}
	r, err := pool.Query(ctx, "SELECT tableoid::regclass::text, count(*) FROM heartbeats GROUP BY 1")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var part string
		var n int
		if err := r.Scan(&part, &n); err != nil {
			t.Fatal(err)
		}
		rows[part] = n
	}
	if rows["heartbeats_20261120"] != 50 || rows["heartbeats_20261121"] != 30 || len(rows) != 2 {
		t.Fatalf("rows per partition %v, want 50 on the 20th and 30 on the 21st", rows)
	}
}

func TestSkipsDrainingAndDroppedShards(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	ctx := context.Background()
	sink := pgsink.New(daydb.One(pool), states{"20261101": streams.ShardDropped, "20261102": streams.ShardDraining}, zerolog.Nop(), pgsink.Options{})
	err := sink.Commit(ctx, []*heartlogv1.Batch{
		batchOf(t, user, time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC), 5),
		batchOf(t, user, time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC), 5),
		batchOf(t, user, time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC), 5),
	})
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	r, err := pool.Query(ctx, "SELECT relname::text FROM pg_class WHERE relname LIKE 'heartbeats_2%' AND relkind = 'r' ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var p string
		_ = r.Scan(&p)
		parts = append(parts, p)
	}
	if fmt.Sprint(parts) != "[heartbeats_20261103]" {
		t.Fatalf("partitions %v: a dropped or draining day must not be recreated", parts)
	}
}

// TestShardStateFromKV runs the whole processor: a day marked dropped in the
// shards bucket gets no rows, the day beside it does.
func TestShardStateFromKV(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{NoProcessor: true})
	ctx := context.Background()
	kv, err := svc.JS.KeyValue(ctx, svc.Streams.ShardsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streams.PutShard(ctx, kv, "20261101", streams.Shard{State: streams.ShardDropped, UpdatedAt: time.Now()}, 0); err != nil {
		t.Fatal(err)
	}
	u, key := svc.CreateUser(t, "alice", "")
	svc.StartProcessor(t)
	for _, day := range []time.Time{time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)} {
		body := fmt.Sprintf(`[{"entity":"a.go","type":"file","time":%d}]`, day.Unix())
		if resp, b := svc.Post(t, "/api/v1/users/current/heartbeats.bulk", key, []byte(body)); resp.StatusCode != 201 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	}
	svc.WaitCount(t, 1, "SELECT count(*) FROM heartbeats WHERE user_id = $1 AND day = '2026-11-03'", u.ID)
	if n := svc.Count(t, "SELECT count(*) FROM pg_class WHERE relname = 'heartbeats_20261101'"); n != 0 {
		t.Fatal("the dropped day's partition was created")
	}
}
