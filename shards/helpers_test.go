package shards_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/shards"
	"heartlog/streams"
)

// now is the janitors' clock in these tests: with the default 48h grace,
// days up to 2024-03-07 are eligible, 2024-03-08 and later are not.
var now = time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)

type env struct {
	t    *testing.T
	nats *heartlogtest.NATS
	js   jetstream.JetStream
	sc   streams.Config
	// dbs are a catalog and two shard databases: each day's table is on
	// the one its placement names (poolOf).
	dbs heartlogtest.Databases
	// consumers[processor][partition], kept so that fetches stay pinned.
	consumers map[string][]jetstream.Consumer
}

func setup(t *testing.T) *env {
	t.Helper()
	sc := streams.DefaultConfig()
	sc.Partitions = 4
	sc.PinnedTTL = 2 * time.Second
	top := heartlogtest.StartTopology(t, sc)
	e := &env{t: t, nats: top.NATS, sc: sc, js: top.JS}
	ctx := context.Background()
	e.consumers = map[string][]jetstream.Consumer{}
	for _, proc := range []string{streams.DurableObjects, streams.DurableCache} {
		cs, err := streams.EnsurePartitionConsumers(ctx, e.js, e.sc, proc)
		if err != nil {
			t.Fatal(err)
		}
		e.consumers[proc] = cs
	}
	e.dbs = heartlogtest.NewDatabases(t, 2)
	return e
}

// poolOf is the database of day (YYYYMMDD), placing the day if it has no
// database yet, as the Postgres processor does at its first heartbeat.
func (e *env) poolOf(day string) *pgxpool.Pool {
	e.t.Helper()
	db, err := e.dbs.Days.For(context.Background(), day)
	if err != nil {
		e.t.Fatal(err)
	}
	return db.Pool
}

func (e *env) janitor(owner string, mod func(*shards.Options)) *shards.Janitor {
	opts := shards.Options{
		Owner:   owner,
		LockTTL: 2 * time.Second,
		Settle:  100 * time.Millisecond,
		Now:     func() time.Time { return now },
		Log:     heartlogtest.Logger(e.t),
	}
	if mod != nil {
		mod(&opts)
	}
	return shards.New(e.js, e.sc, e.dbs.Days, opts)
}

// partition creates the day's partition (YYYYMMDD) with rows rows.
func (e *env) partition(day string, rows int) {
	e.t.Helper()
	from, err := time.Parse(heartbeat.DayLayout, day)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	name := pgx.Identifier{"heartbeats_" + day}.Sanitize()
	pool := e.poolOf(day)
	if _, err := pool.Exec(ctx, fmt.Sprintf(
		"CREATE TABLE %s PARTITION OF heartbeats FOR VALUES FROM ('%s') TO ('%s')",
		name, from.Format(time.DateOnly), from.AddDate(0, 0, 1).Format(time.DateOnly))); err != nil {
		e.t.Fatal(err)
	}
	for i := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO heartbeats (day, user_id, id, time, entity, type, category)
			VALUES ($1, gen_random_uuid(), $2, $3, 'main.go', 'file', 'coding')`,
			from, fmt.Sprint(i), float64(from.Unix()+int64(i))); err != nil {
			e.t.Fatal(err)
		}
	}
}

// publish puts one raw message on heartbeats.<day>.<p> and returns its
// stream sequence.
func (e *env) publish(day string, p uint32) uint64 {
	e.t.Helper()
	pa, err := e.js.Publish(context.Background(), streams.Subject(day, p), []byte("batch"))
	if err != nil {
		e.t.Fatal(err)
	}
	return pa.Sequence
}

// ack pulls everything on the processor's consumer of partition p and
// acks it (double ack: the server has it when this returns), until the
// consumer's ack floor reaches the partition's last message. (The
// consumer's NumPending can lag a publish for a moment, so it is not
// what tells us we are done.)
func (e *env) ack(proc string, p uint32) {
	e.t.Helper()
	ctx := context.Background()
	target := e.lastOnPartition(p)
	cons := e.consumers[proc][p]
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if info.AckFloor.Stream >= target {
			return
		}
		// Ask for what is pending, so the fetch returns once it has it.
		n := max(1, int(info.NumPending))
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(2*time.Second), jetstream.FetchPriorityGroup(streams.PriorityGroup))
		if err != nil {
			e.t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				e.t.Fatal(err)
			}
		}
		err = batch.Error()
		if errors.Is(err, jetstream.ErrPinIDMismatch) {
			// The pin ran out (PinnedTTL) between our pulls; the client
			// has forgotten it, and the next pull gets a new one.
			continue
		}
		if err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			e.t.Fatal(err)
		}
	}
}

// lastOnPartition is the stream sequence of the last message on partition
// p (any day), 0 when there is none.
func (e *env) lastOnPartition(p uint32) uint64 {
	e.t.Helper()
	ctx := context.Background()
	stream, err := e.js.Stream(ctx, e.sc.Stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(streams.PartitionSubjects(p)))
	if err != nil {
		e.t.Fatal(err)
	}
	var last uint64
	for subject := range info.State.Subjects {
		m, err := stream.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			e.t.Fatal(err)
		}
		last = max(last, m.Sequence)
	}
	return last
}

// ackAll acks every partition of the processors.
func (e *env) ackAll(procs ...string) {
	e.t.Helper()
	for _, proc := range procs {
		for p := range e.sc.Partitions {
			e.ack(proc, p)
		}
	}
}

// safeDay creates a partition with rows and messages on two partitions,
// closed, compacted and acked by objects and cache.
func (e *env) safeDay(day string) {
	e.t.Helper()
	e.partition(day, 3)
	e.publish(day, 0)
	e.publish(day, 2)
	e.compacted(day, streams.DurableObjects, streams.DurableCache)
	e.ackAll(streams.DurableObjects, streams.DurableCache)
}

// compacted records what a compaction of the day (YYYYMMDD) records: the
// day closed, and every partition compacted for each processor up to its
// last message now (as compaction.CloseDay does).
func (e *env) compacted(day string, procs ...string) {
	e.t.Helper()
	ctx := context.Background()
	kv, err := e.js.KeyValue(ctx, e.sc.ShardsBucket)
	if err != nil {
		e.t.Fatal(err)
	}
	if lc, rev, _, err := streams.GetLifecycle(ctx, kv, day); err != nil {
		e.t.Fatal(err)
	} else if lc.State != streams.DayClosed {
		if _, err := streams.PutLifecycle(ctx, kv, day, streams.Lifecycle{State: streams.DayClosed, ClosedAt: time.Now()}, rev); err != nil {
			e.t.Fatal(err)
		}
	}
	stream, err := e.js.Stream(ctx, e.sc.Stream)
	if err != nil {
		e.t.Fatal(err)
	}
	for p := range e.sc.Partitions {
		var seq uint64
		if m, err := stream.GetLastMsgForSubject(ctx, streams.Subject(day, p)); err == nil {
			seq = m.Sequence
		}
		for _, proc := range procs {
			if _, err := streams.PutCompaction(ctx, kv, day, p, proc, streams.Compaction{Seq: seq, At: time.Now()}); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// tableState reads where the day's table stands: none, attached,
// detach-pending or detached.
func (e *env) tableState(day string) string {
	e.t.Helper()
	var attached, pending *bool
	err := e.poolOf(day).QueryRow(context.Background(), `
		SELECT i.inhrelid IS NOT NULL, i.inhdetachpending
		FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
		WHERE c.relname = $1`, "heartbeats_"+day).Scan(&attached, &pending)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "none"
	case err != nil:
		e.t.Fatal(err)
	case !*attached:
		return "detached"
	case *pending:
		return "detach-pending"
	}
	return "attached"
}

// shardState reads the day's state from the shards bucket ("" when none).
func (e *env) shardState(day string) streams.ShardState {
	e.t.Helper()
	kv, err := e.js.KeyValue(context.Background(), e.sc.ShardsBucket)
	if err != nil {
		e.t.Fatal(err)
	}
	entry, err := kv.Get(context.Background(), day)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var s streams.Shard
	if err := json.Unmarshal(entry.Value(), &s); err != nil {
		e.t.Fatal(err)
	}
	return s.State
}

func (e *env) locks() jetstream.KeyValue {
	e.t.Helper()
	kv, err := e.js.KeyValue(context.Background(), e.sc.LocksBucket)
	if err != nil {
		e.t.Fatal(err)
	}
	return kv
}

// expectDropped checks that the day is gone from Postgres and marked
// dropped.
func (e *env) expectDropped(day string) {
	e.t.Helper()
	if st := e.tableState(day); st != "none" {
		e.t.Errorf("%s: table is %s, want none", day, st)
	}
	if st := e.shardState(day); st != streams.ShardDropped {
		e.t.Errorf("%s: shard is %q, want dropped", day, st)
	}
}

// terminateDetach ends every backend of this test's databases that is
// still running a DETACH PARTITION, and waits until they are gone.
func (e *env) terminateDetach() {
	e.t.Helper()
	const running = `FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()
		AND query ILIKE 'ALTER TABLE heartbeats DETACH PARTITION%'`
	ctx := context.Background()
	for _, pool := range e.dbs.Shards {
		if _, err := pool.Exec(ctx, "SELECT pg_terminate_backend(pid) "+running); err != nil {
			e.t.Fatal(err)
		}
		gone := heartlogtest.Eventually(10*time.Second, func() bool {
			var n int
			err := pool.QueryRow(ctx, "SELECT count(*) "+running).Scan(&n)
			return err == nil && n == 0
		})
		if !gone {
			e.t.Fatal("the detaching backend did not end")
		}
	}
}
