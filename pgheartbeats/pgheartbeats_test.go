package pgheartbeats_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/pgheartbeats"
	pgsink "heartlog/processors/postgres"
	"heartlog/reads"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
	"heartlog/users"
)

type allActive struct{}

func (allActive) State(string) streams.ShardState { return streams.ShardActive }

const user = "6f1e2a3b-0000-4000-8000-0000000000aa"

func i32(v int32) *int32 { return &v }

// TestColumnsAreTheMigratedTable holds the column list to the table the
// migrations create, name for name and in order.
func TestColumnsAreTheMigratedTable(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	rows, err := pool.Query(context.Background(), `SELECT column_name::text FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, pgheartbeats.Table)
	if err != nil {
		t.Fatal(err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(have, pgheartbeats.Columns) {
		t.Errorf("table %s has columns\n%v\nthe codec writes\n%v", pgheartbeats.Table, have, pgheartbeats.Columns)
	}
}

// TestRoundTripThroughProcessorAndReads writes heartbeats through the
// Postgres processor and reads them back through the read path: one with
// every field set, one with every optional field unset.
func TestRoundTripThroughProcessorAndReads(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(24 * time.Hour).Add(9 * time.Hour)
	full := &heartlogv1.Heartbeat{
		Entity: "/src/main.go", Type: "file", Category: "coding", Time: float64(at.UnixMicro())/1e6 + 0.25,
		Project: "heartlog", ProjectRootCount: i32(3), Branch: "main", Language: "Go",
		Dependencies: []string{"fmt", "github.com/jackc/pgx/v5"}, Lines: i32(120), LineAdditions: i32(4),
		LineDeletions: i32(0), Lineno: i32(17), Cursorpos: i32(9), IsWrite: proto.Bool(false),
		AiLineChanges: i32(2), HumanLineChanges: i32(5), Editor: "vscode", Plugin: "vscode-wakatime",
		OperatingSystem: "linux", Machine: "box", UserAgent: "wakatime/v1.90.0 (linux) vscode/1.90.0 vscode-wakatime/24.5.0",
		ExtraJson: []byte(`{"zeta":[1,2.5,"x"],"a":{"nested":true},"note":"ü"}`),
	}
	bare := &heartlogv1.Heartbeat{Entity: "notes.txt", Type: "file", Category: "coding", Time: float64(at.Unix() + 60)}
	for _, hb := range []*heartlogv1.Heartbeat{full, bare} {
		if err := heartbeat.DefaultLimits.Prepare(hb, heartbeat.Origin{UserID: user, Now: at}); err != nil {
			t.Fatal(err)
		}
	}
	day := at.Format(heartbeat.DayLayout)
	sink := pgsink.New(daydb.One(pool), allActive{}, zerolog.Nop(), pgsink.Options{})
	if err := sink.Commit(ctx, []*heartlogv1.Batch{{Day: day, Heartbeats: []*heartlogv1.Heartbeat{full, bare}}}); err != nil {
		t.Fatal(err)
	}
	// Every day is hot: the reader reads Postgres alone, no cache or bucket.
	got, err := reads.New(daydb.One(pool), allActive{}, nil, nil, 0, zerolog.Nop()).Heartbeats(ctx, users.User{ID: user}, []string{day})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("read %d heartbeats, want 2", len(got))
	}
	for i, want := range []*heartlogv1.Heartbeat{full, bare} {
		sameExtra(t, got[i].ExtraJson, want.ExtraJson)
		g, w := proto.CloneOf(got[i]), proto.CloneOf(want)
		g.ExtraJson, w.ExtraJson = nil, nil
		if !proto.Equal(g, w) {
			t.Errorf("read back\n%v\nwrote\n%v", g, w)
		}
	}
}

// sameExtra compares extra fields as JSON values: jsonb keeps the object,
// not its bytes (see pgheartbeats.Scan).
func sameExtra(t *testing.T, got, want []byte) {
	t.Helper()
	if len(got) == 0 || len(want) == 0 {
		if len(got) != len(want) {
			t.Errorf("extra: read %q, wrote %q", got, want)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("extra read back is not JSON: %q: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("extra: read %s, wrote %s", got, want)
	}
}

// TestPartitionLifecycle creates, lists, detaches and drops a day's
// partition as the processor and the janitor do.
func TestPartitionLifecycle(t *testing.T) {
	pool, _ := heartlogtest.NewDatabase(t)
	ctx := context.Background()
	const day = "20261120"
	list := func() []pgheartbeats.DayTable {
		t.Helper()
		dts, err := pgheartbeats.DayTables(ctx, pool, day)
		if err != nil {
			t.Fatal(err)
		}
		return dts
	}
	if err := pgheartbeats.CreatePartition(ctx, pool, "2026-11-20"); !errors.Is(err, pgheartbeats.ErrBadDay) {
		t.Errorf("CreatePartition of a bad day: %v, want ErrBadDay", err)
	}
	for range 2 { // the second finds it there
		if err := pgheartbeats.CreatePartition(ctx, pool, day); err != nil {
			t.Fatal(err)
		}
	}
	if have, err := pgheartbeats.Partitioned(ctx, pool, []string{day, "20261121"}); err != nil || !reflect.DeepEqual(have, map[string]bool{day: true}) {
		t.Errorf("Partitioned: %v %v, want only %s", have, err, day)
	}
	if dts := list(); len(dts) != 1 || dts[0].Day != day || !dts[0].Attached || dts[0].DetachPending {
		t.Errorf("after create: %+v, want one attached table", dts)
	}
	if has, err := pgheartbeats.HasRows(ctx, pool, day); err != nil || has {
		t.Errorf("HasRows of an empty partition: %t %v", has, err)
	}
	if err := pgheartbeats.Detach(ctx, pool, day, false); err != nil {
		t.Fatal(err)
	}
	if dts := list(); len(dts) != 1 || dts[0].Attached {
		t.Errorf("after detach: %+v, want one detached table", dts)
	}
	if have, err := pgheartbeats.Partitioned(ctx, pool, []string{day}); err != nil || have[day] {
		t.Errorf("Partitioned after detach: %v %v", have, err)
	}
	if err := pgheartbeats.DropTable(ctx, pool, day); err != nil {
		t.Fatal(err)
	}
	if dts := list(); len(dts) != 0 {
		t.Errorf("after drop: %+v, want none", dts)
	}
}
