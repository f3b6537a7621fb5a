package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"heartlog/daydb"
	"heartlog/internal/heartlogtest"
	"heartlog/processors"
	pgsink "heartlog/processors/postgres"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// TestPoisonRowIsParkedAndRetriedAfterTheFix: a heartbeat that got past
// validation (published straight to the stream) with a number jsonb cannot
// hold. The processor parks it with its reason, stores every other
// heartbeat of its batch and of the batches after it, and once the column
// can hold the value, a retry of the dead letter stores it.
func TestPoisonRowIsParkedAndRetriedAfterTheFix(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	alice, _ := svc.CreateUser(t, "alice", "")
	bob, _ := svc.CreateUser(t, "bob", "")
	ctx := context.Background()
	pub := streams.NewPublisher(svc.NC, svc.JS, svc.Streams, streams.PublisherOptions{})
	defer pub.Close()
	at := time.Now().Add(-time.Hour)
	var hbs []*heartlogv1.Heartbeat
	for i := range 30 {
		hbs = append(hbs, heartlogtest.Heartbeat(t, alice.ID, fmt.Sprintf("f%02d.go", i), at.Add(time.Duration(i)*time.Second)))
	}
	poison := hbs[17]
	poison.ExtraJson = []byte(`{"x":1e200000}`) // what Validate now refuses
	if err := pub.Publish(ctx, hbs, map[string]string{alice.ID: alice.ObjectPrefix}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		later := heartlogtest.Heartbeat(t, bob.ID, fmt.Sprintf("b%02d.go", i), at.Add(time.Duration(i)*time.Second))
		if err := pub.Publish(ctx, []*heartlogv1.Heartbeat{later}, map[string]string{bob.ID: bob.ObjectPrefix}); err != nil {
			t.Fatal(err)
		}
	}
	svc.WaitCount(t, 29, "SELECT count(*) FROM heartbeats WHERE user_id = $1", alice.ID)
	svc.WaitCount(t, 10, "SELECT count(*) FROM heartbeats WHERE user_id = $1", bob.ID)

	dead := streams.NewDeadLetters(svc.JS, svc.Streams)
	var parked []streams.DeadLetter
	if !heartlogtest.Eventually(10*time.Second, func() bool {
		parked, _ = dead.List(ctx, streams.DurablePostgres)
		return len(parked) == 1
	}) {
		t.Fatalf("dead letters: %+v, want the poison heartbeat alone", parked)
	}
	d := parked[0]
	if d.Reason != "postgres 22003" || d.User() != alice.ID || d.Batch.Heartbeats[0].Id != poison.Id ||
		d.Batch.ObjectPrefixes[alice.ID] != alice.ObjectPrefix || d.StreamSeq != 1 {
		t.Fatalf("dead letter %+v", d)
	}

	// The fix: a column that holds the value as sent.
	for _, pool := range svc.DayPools() {
		if _, err := pool.Exec(ctx, "ALTER TABLE heartbeats ALTER COLUMN extra TYPE text"); err != nil {
			t.Fatal(err)
		}
	}
	view, err := streams.WatchShards(ctx, svc.JS, svc.Streams)
	if err != nil {
		t.Fatal(err)
	}
	defer view.Stop()
	sink := pgsink.New(svc.Days, view, heartlogtest.Logger(t), pgsink.Options{})
	res, err := processors.RetryDeadLetters(ctx, dead, sink, processors.RetryOptions{Log: heartlogtest.Logger(t)})
	if err != nil || res.Retried != 1 || res.Reparked != 0 {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	if n := svc.Count(t, `SELECT count(*) FROM heartbeats WHERE id = $1 AND extra = '{"x":1e200000}'`, poison.Id); n != 1 {
		t.Fatalf("the retried heartbeat is not stored as sent (%d rows)", n)
	}
	if left, _ := dead.List(ctx, ""); len(left) != 0 {
		t.Fatalf("dead letters left after the retry: %+v", left)
	}
}

// TestErrorClasses: what retrying cannot fix is permanent; the rest is not.
func TestErrorClasses(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	sink := pgsink.New(daydb.One(pool), states{}, heartlogtest.Logger(t), pgsink.Options{})
	ctx := context.Background()
	at := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name, extra string
	}{
		{"numeric overflow", `{"x":1e200000}`},
		{"numeric scale", `{"x":1e-16384}`},
	} {
		b := batchOf(t, user, at, 3)
		b.Heartbeats[1].ExtraJson = []byte(tc.extra)
		err := sink.Commit(ctx, []*heartlogv1.Batch{b})
		var pe *processors.PermanentError
		if !errors.As(err, &pe) || pe.Reason != "postgres 22003" {
			t.Errorf("%s: %v, want a permanent postgres 22003", tc.name, err)
		}
	}
	// A time far past Postgres' last date (published straight to the log).
	far := batchOf(t, user, at, 2)
	far.Heartbeats[1].Time = 1e15
	if err := sink.Commit(ctx, []*heartlogv1.Batch{far}); !errors.Is(err, processors.ErrPermanent) {
		t.Errorf("a time in the year 31 million: %v, want permanent", err)
	}
	// A CHECK constraint the row breaks (23514) is permanent too.
	if _, err := pool.Exec(ctx, "ALTER TABLE heartbeats ADD CONSTRAINT no_poison CHECK (entity <> 'f1.go')"); err != nil {
		t.Fatal(err)
	}
	if err := sink.Commit(ctx, []*heartlogv1.Batch{batchOf(t, user, at, 3)}); !errors.Is(err, processors.ErrPermanent) {
		t.Errorf("check violation: %v, want permanent", err)
	}
	// A user id that is not a UUID is rejected alone; the rest is stored.
	b := batchOf(t, user, at.Add(time.Minute), 2)
	b.Heartbeats[0].Entity, b.Heartbeats[1].Entity = "ok.go", "bad-user.go"
	b.Heartbeats[1].UserId = "not-a-uuid"
	var rej *processors.Rejected
	if err := sink.Commit(ctx, []*heartlogv1.Batch{b}); !errors.As(err, &rej) || len(rej.Heartbeats) != 1 || rej.Heartbeats[0].Heartbeat != b.Heartbeats[1] {
		t.Fatalf("bad user id: %v, want it rejected alone", err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM heartbeats WHERE entity = 'ok.go'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the good heartbeat beside a rejected one: %d rows, %v", n, err)
	}
	// A closed pool is a connection error: transient.
	pool.Close()
	if err := sink.Commit(ctx, []*heartlogv1.Batch{batchOf(t, user, at.Add(2*time.Minute), 1)}); err == nil || errors.Is(err, processors.ErrPermanent) {
		t.Errorf("closed pool: %v, want a transient error", err)
	}
}
