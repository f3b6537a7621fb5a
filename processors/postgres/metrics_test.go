package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/processors"
	pgsink "heartlog/processors/postgres"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// perDB is a series of database's, 0 when it has none yet.
func perDB(t *testing.T, name, database string) float64 {
	t.Helper()
	return max(heartlogtest.MetricValue(t, name, map[string]string{"database": database}), 0)
}

// TestMetricsPerDatabase: rows written to one shard database count on its
// series alone; with the other shard (a private cluster) stopped, its
// commit errors and held batches count on its series, the rows of the
// first keep counting, and the held batch counts on the second's rows once
// it is back.
func TestMetricsPerDatabase(t *testing.T) {
	pg := heartlogtest.StartPostgres(t)
	dbs := heartlogtest.NewDatabases(t, 1).AddShard(t, pg.URL)
	a, b := daydb.NameOf(dbs.Shards[0]), daydb.NameOf(dbs.Shards[1])
	sink := pgsink.New(dbs.Days, states{}, heartlogtest.Logger(t), pgsink.Options{})
	user := uuid.NewString()
	// Past days: a heartbeat at noon tomorrow is refused before noon today.
	first := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -3)
	dayA, dayB := first, first.AddDate(0, 0, 1)
	batch := func(day time.Time, tag string, n int) *heartlogv1.Batch {
		return &heartlogv1.Batch{Day: day.Format(heartbeat.DayLayout), Heartbeats: dayBeats(t, user, day, tag, n)}
	}
	commit := func(batches ...*heartlogv1.Batch) error {
		t.Helper()
		return sink.Commit(context.Background(), batches)
	}

	// The least-loaded rule puts the first day on the first shard (a tie
	// goes to the first in the list) and the next on the second.
	if err := commit(batch(dayA, "a1", 10), batch(dayB, "b1", 5)); err != nil {
		t.Fatal(err)
	}
	placed, err := dbs.Days.Lookup(context.Background(), []string{dayA.Format(heartbeat.DayLayout), dayB.Format(heartbeat.DayLayout)})
	if err != nil {
		t.Fatal(err)
	}
	if placed[dayA.Format(heartbeat.DayLayout)].Name != a || placed[dayB.Format(heartbeat.DayLayout)].Name != b {
		t.Fatalf("placements %v: want day A on %s and day B on %s", placed, a, b)
	}
	const rows = "heartlog_postgres_rows_inserted_total"
	check := func(when string, wantA, wantB float64) {
		t.Helper()
		if ga, gb := perDB(t, rows, a), perDB(t, rows, b); ga != wantA || gb != wantB {
			t.Errorf("%s: rows inserted %v on A, %v on B; want %v and %v", when, ga, gb, wantA, wantB)
		}
	}
	check("both days written", 10, 5)
	for _, db := range []string{a, b} {
		if n := perDB(t, "heartlog_postgres_days_placed", db); n != 1 {
			t.Errorf("days placed on %s: %v, want 1", db, n)
		}
		if n := perDB(t, "heartlog_postgres_commit_seconds", db); n != 1 {
			t.Errorf("commits timed on %s: %v, want 1", db, n)
		}
	}
	if err := commit(batch(dayA, "a2", 10)); err != nil {
		t.Fatal(err)
	}
	check("day A written again", 20, 5)

	pg.Stop(t)
	heldB := batch(dayB, "b2", 5)
	err = commit(batch(dayA, "a3", 10), heldB)
	var held *processors.Held
	if !errors.As(err, &held) || len(held.Batches) != 1 || held.Batches[0] != heldB {
		t.Fatalf("commit with B stopped: %v; want B's batch held", err)
	}
	check("B stopped", 30, 5)
	if ea, eb := perDB(t, "heartlog_postgres_commit_errors_total", a), perDB(t, "heartlog_postgres_commit_errors_total", b); ea != 0 || eb != 1 {
		t.Errorf("commit errors %v on A, %v on B; want 0 and 1", ea, eb)
	}
	if ha, hb := perDB(t, "heartlog_postgres_held_batches_total", a), perDB(t, "heartlog_postgres_held_batches_total", b); ha != 0 || hb != 1 {
		t.Errorf("held batches %v on A, %v on B; want 0 and 1", ha, hb)
	}
	if n := count(t, dbs.Shards[0], "SELECT count(*) FROM heartbeats"); n != 30 {
		t.Errorf("%d rows on A, want 30", n)
	}

	pg.Start(t)
	if !heartlogtest.Eventually(30*time.Second, func() bool { return commit(heldB) == nil }) {
		t.Fatal("the held batch did not commit once B was back")
	}
	check("B back", 30, 10)
	if n := count(t, dbs.Shards[1], "SELECT count(*) FROM heartbeats"); n != 10 {
		t.Errorf("%d rows on B, want 10", n)
	}
}

// TestBatchesOfADatabaseNotMigratedAreHeld: the batches of a day placed on
// a database that is not ready (not migrated: down at start) are held
// without a write to it, the others commit, and once it is ready they land.
func TestBatchesOfADatabaseNotMigratedAreHeld(t *testing.T) {
	dbs := heartlogtest.NewDatabases(t, 2)
	b := daydb.NameOf(dbs.Shards[1])
	sink := pgsink.New(dbs.Days, states{}, heartlogtest.Logger(t), pgsink.Options{})
	user := uuid.NewString()
	// Past days: a heartbeat at noon tomorrow is refused before noon today.
	first := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -3)
	batch := func(d int, tag string) *heartlogv1.Batch {
		day := first.AddDate(0, 0, d)
		return &heartlogv1.Batch{Day: day.Format(heartbeat.DayLayout), Heartbeats: dayBeats(t, user, day, tag, 5)}
	}
	// Day 0 on the first shard, day 1 on the second.
	if err := sink.Commit(context.Background(), []*heartlogv1.Batch{batch(0, "x"), batch(1, "x")}); err != nil {
		t.Fatal(err)
	}
	dbs.Days.SetReady(b, false)
	held := batch(1, "y")
	err := sink.Commit(context.Background(), []*heartlogv1.Batch{batch(0, "y"), held})
	var h *processors.Held
	if !errors.As(err, &h) || len(h.Batches) != 1 || h.Batches[0] != held || !errors.Is(err, pgsink.ErrNotMigrated) {
		t.Fatalf("commit with the second shard not migrated: %v; want its batch held, ErrNotMigrated", err)
	}
	if n := perDB(t, "heartlog_postgres_held_batches_total", b); n != 1 {
		t.Errorf("held batches of %s: %v, want 1", b, n)
	}
	if ra, rb := count(t, dbs.Shards[0], "SELECT count(*) FROM heartbeats"), count(t, dbs.Shards[1], "SELECT count(*) FROM heartbeats"); ra != 10 || rb != 5 {
		t.Errorf("rows %d and %d, want 10 on the first shard and 5 on the second", ra, rb)
	}
	dbs.Days.SetReady(b, true)
	if err := sink.Commit(context.Background(), []*heartlogv1.Batch{held}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, dbs.Shards[1], "SELECT count(*) FROM heartbeats"); n != 10 {
		t.Errorf("%d rows on the second shard once migrated, want 10", n)
	}
}
