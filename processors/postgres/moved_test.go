package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/pgheartbeats"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
)

// staleSet is a processor's Set that keeps placements for an hour: a
// process that has not seen a move.
func staleSet(t *testing.T, dbs heartlogtest.Databases) *daydb.Set {
	t.Helper()
	s, err := daydb.New(dbs.Catalog, dbs.Shards...)
	if err != nil {
		t.Fatal(err)
	}
	s.SetCacheTTL(time.Hour)
	return s
}

// moveAway switches day's placement from its database to the other shard,
// as `shards move` does, with the partition created there, and returns
// the two pools.
func moveAway(t *testing.T, dbs heartlogtest.Databases, day string) (from, to *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	name, _, ok, err := dbs.Days.PlacedFor(ctx, day)
	if err != nil || !ok {
		t.Fatalf("placement of %s: %v, %v", day, ok, err)
	}
	from, to = dbs.Shards[0], dbs.Shards[1]
	if daydb.NameOf(from) != name {
		from, to = to, from
	}
	if err := pgheartbeats.CreatePartition(ctx, to, day); err != nil {
		t.Fatal(err)
	}
	if err := dbs.Days.Switch(ctx, day, daydb.NameOf(from), daydb.NameOf(to)); err != nil {
		t.Fatal(err)
	}
	return from, to
}

func ids(hbs []*heartlogv1.Heartbeat) []string {
	out := make([]string, len(hbs))
	for i, hb := range hbs {
		out[i] = hb.Id
	}
	return out
}

// TestFencedDayGoesToItsNewDatabase: a processor whose cached placement
// still names the database a day moved away from writes the day's new
// heartbeats there, meets the fence, and writes them to the day's new
// database at once (the hold delay is a minute, longer than the test
// waits: the batch is not held back), while another day's heartbeats are
// stored once.
func TestFencedDayGoesToItsNewDatabase(t *testing.T) {
	ctx := context.Background()
	dbs := heartlogtest.NewDatabases(t, 2)
	publish, _ := runProcessor(t, staleSet(t, dbs), time.Minute)
	user := uuid.NewString()
	moved, other := time.Date(2026, 10, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 4, 0, 0, 0, 0, time.UTC)
	day := moved.Format(heartbeat.DayLayout)
	publish(dayBeats(t, user, moved, "before", 10))
	publish(dayBeats(t, user, other, "before", 10))
	waitRows(t, 20, "before the move", dbs.Shards...)

	from, to := moveAway(t, dbs, day)
	if err := pgheartbeats.Fence(ctx, from, day, time.Second); err != nil {
		t.Fatal(err)
	}
	after := dayBeats(t, user, moved, "after", 10)
	publish(after)
	publish(dayBeats(t, user, other, "after", 10))
	waitRows(t, 40, "after the fence", dbs.Shards...)
	onTo, onFrom := idsIn(t, to), idsIn(t, from)
	for _, id := range ids(after) {
		if onTo[id] != 1 || onFrom[id] != 0 {
			t.Errorf("heartbeat %s written after the fence: %d on the new database, %d on the old", id, onTo[id], onFrom[id])
		}
	}
	for id, n := range idsIn(t, dbs.Shards...) {
		if n != 1 {
			t.Errorf("heartbeat %s stored %d times", id, n)
		}
	}
}

// TestMovedDayIsNotRecreatedOnItsOldDatabase: a processor that cached a
// day's placement before a move, and has not created its partition yet,
// does not bring the partition back on the old database after the move
// dropped it: it reads the placement again before creating one.
func TestMovedDayIsNotRecreatedOnItsOldDatabase(t *testing.T) {
	ctx := context.Background()
	dbs := heartlogtest.NewDatabases(t, 2)
	stale := staleSet(t, dbs)
	moved := time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC)
	day := moved.Format(heartbeat.DayLayout)
	if _, err := stale.For(ctx, day); err != nil { // cached, nothing written yet
		t.Fatal(err)
	}
	from, to := moveAway(t, dbs, day)
	publish, _ := runProcessor(t, stale, time.Minute)
	hbs := dayBeats(t, uuid.NewString(), moved, "after", 10)
	publish(hbs)
	waitRows(t, 10, "after the move", to)
	if n := count(t, from, "SELECT count(*) FROM pg_class WHERE relname = $1", pgheartbeats.PartitionName(day)); n != 0 {
		t.Errorf("the old database has the moved day's partition again")
	}
}
