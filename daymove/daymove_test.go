package daymove_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"heartlog/daydb"
	"heartlog/daymove"
	"heartlog/internal/heartlogtest"
	"heartlog/pgheartbeats"
	"heartlog/streams"
)

// TestATableCreatedOnTheSourceAfterTheSwitchIsMoved: a day placed but not
// yet written has no table to copy, and a writer that looked it up before
// the switch creates one on the source and writes a row there just after
// it. The move waits out the settle, finds that table, and finishes it:
// the row ends on the target, where reads look, and the source has none.
func TestATableCreatedOnTheSourceAfterTheSwitchIsMoved(t *testing.T) {
	ctx := context.Background()
	top := heartlogtest.StartTopology(t, streams.DefaultConfig())
	js, sc := top.JS, top.Config
	dbs := heartlogtest.NewDatabases(t, 2)
	day := "20261110"
	src, err := dbs.Days.For(ctx, day) // placed, no table yet
	if err != nil {
		t.Fatal(err)
	}
	dst := dbs.Shards[0]
	if src.Pool == dst {
		dst = dbs.Shards[1]
	}
	hb := heartlogtest.Heartbeat(t, uuid.NewString(), "late.go", time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC))
	late := func(step daymove.Step) error {
		if step != daymove.StepSwitch {
			return nil
		}
		if err := pgheartbeats.CreatePartition(ctx, src.Pool, day); err != nil {
			return err
		}
		row, _, err := pgheartbeats.Row(hb)
		if err != nil {
			return err
		}
		tx, err := src.Pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := pgheartbeats.CopyNew(ctx, tx, [][]any{row}); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	m := daymove.New(js, sc, dbs.Days, daymove.Options{Settle: 100 * time.Millisecond, AfterStep: late})
	if _, err := m.Move(ctx, day, daydb.NameOf(dst)); err != nil {
		t.Fatal(err)
	}
	var onTarget int
	if err := dst.QueryRow(ctx, "SELECT count(*) FROM heartbeats WHERE id = $1", hb.Id).Scan(&onTarget); err != nil || onTarget != 1 {
		t.Fatalf("the late row on the target: %d (%v), want 1", onTarget, err)
	}
	if tables, err := pgheartbeats.DayTables(ctx, src.Pool, day); err != nil || len(tables) != 0 {
		t.Fatalf("the source still has %v (%v)", tables, err)
	}
}
