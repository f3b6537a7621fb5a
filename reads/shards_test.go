package reads_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	pgsink "heartlog/processors/postgres"
	"heartlog/reads"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/stats"
	"heartlog/users"
)

// writeDays writes n heartbeats of user on each day (noon UTC and after,
// a minute apart) through the Postgres sink, which places each day on a
// database of set, and returns the days (YYYYMMDD).
func writeDays(t *testing.T, set *daydb.Set, user string, first time.Time, days, n int) []string {
	t.Helper()
	sink := pgsink.New(set, states{}, heartlogtest.Logger(t), pgsink.Options{})
	var out []string
	var batches []*heartlogv1.Batch
	for d := range days {
		at := first.AddDate(0, 0, d)
		b := &heartlogv1.Batch{Day: at.Format(heartbeat.DayLayout)}
		for i := range n {
			hb := heartlogtest.Heartbeat(t, user, fmt.Sprintf("f%d.go", i%3), at.Add(12*time.Hour+time.Duration(i)*time.Minute))
			hb.Project = fmt.Sprintf("p%d", d%2)
			b.Heartbeats = append(b.Heartbeats, hb)
		}
		batches, out = append(batches, b), append(out, b.Day)
	}
	if err := sink.Commit(context.Background(), batches); err != nil {
		t.Fatal(err)
	}
	return out
}

// summaries is what a summaries read gives for the days, in UTC.
func summaries(t *testing.T, r *reads.Reader, u users.User, first time.Time, days []string) (string, error) {
	t.Helper()
	act, err := r.Activity(context.Background(), u, days)
	if err != nil {
		return "", err
	}
	start := stats.DateOf(first, time.UTC)
	sum, err := stats.SummarizeBeats(act, stats.Options{Start: start, End: start.AddDays(len(days) - 1)})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(stats.Combine(sum)), nil
}

// TestReadsAcrossDatabases: a user's days spread over two shard databases
// read back with the same summaries as the same days in one database;
// with one shard database stopped, a read of days on the other still
// answers, and a read that needs the stopped one fails naming it rather
// than answering with the other's days alone; once it is back, reads are
// whole again.
func TestReadsAcrossDatabases(t *testing.T) {
	private := heartlogtest.StartPostgres(t)
	sharded := heartlogtest.NewDatabases(t, 1).AddShard(t, private.URL)
	single := heartlogtest.NewDatabases(t, 0)
	u := users.User{ID: uuid.NewString(), ObjectPrefix: "p"}
	first := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -5) // hot days, inside the grace
	days := writeDays(t, sharded.Days, u.ID, first, 6, 30)
	writeDays(t, single.Days, u.ID, first, 6, 30)

	placed, err := sharded.Days.Lookup(context.Background(), days)
	if err != nil {
		t.Fatal(err)
	}
	onPrivate, onShared := []string{}, []string{}
	for _, d := range days {
		if placed[d].Pool == sharded.Shards[1] {
			onPrivate = append(onPrivate, d)
		} else {
			onShared = append(onShared, d)
		}
	}
	if len(onPrivate) == 0 || len(onShared) == 0 {
		t.Fatalf("days not spread over both shards: %d on the private one, %d on the shared", len(onPrivate), len(onShared))
	}

	r := reads.New(sharded.Days, states{}, nil, nil, 4, heartlogtest.Logger(t))
	one := reads.New(single.Days, states{}, nil, nil, 4, heartlogtest.Logger(t))
	got, err := summaries(t, r, u, first, days)
	if err != nil {
		t.Fatal(err)
	}
	want, err := summaries(t, one, u, first, days)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || !strings.Contains(got, "p0") || !strings.Contains(got, "p1") {
		t.Fatalf("summaries over two databases:\n%s\nwant, as over one:\n%s", got, want)
	}
	hbs, err := r.Heartbeats(context.Background(), u, days)
	if err != nil || len(hbs) != 6*30 {
		t.Fatalf("heartbeats over two databases: %d, %v; want %d", len(hbs), err, 6*30)
	}

	upName, downName := daydb.NameOf(sharded.Shards[0]), daydb.NameOf(sharded.Shards[1])
	queries := func(db string) float64 {
		return max(heartlogtest.MetricValue(t, "heartlog_read_postgres_queries_total", map[string]string{"database": db}), 0)
	}
	readErrors := func(db string) float64 {
		return max(heartlogtest.MetricValue(t, "heartlog_read_postgres_errors_total", map[string]string{"database": db}), 0)
	}
	if readErrors(upName) != 0 || readErrors(downName) != 0 || queries(upName) == 0 || queries(downName) == 0 {
		t.Errorf("with both up: queries %v and %v, errors %v and %v; want queries on both and no errors",
			queries(upName), queries(downName), readErrors(upName), readErrors(downName))
	}
	private.Stop(t)
	upQueries := queries(upName)
	if hbs, err := r.Heartbeats(context.Background(), u, onShared); err != nil || len(hbs) != 30*len(onShared) {
		t.Errorf("days on the shard that is up, with the other down: %d heartbeats, %v; want %d", len(hbs), err, 30*len(onShared))
	}
	if queries(upName) != upQueries+1 {
		t.Errorf("queries of %s: %v after one read of its days, want %v", upName, queries(upName), upQueries+1)
	}
	_, err = summaries(t, r, u, first, days)
	if err == nil || !strings.Contains(err.Error(), downName) {
		t.Errorf("read needing the stopped database: %v; want an error naming %s", err, downName)
	}
	if readErrors(downName) < 1 || readErrors(upName) != 0 {
		t.Errorf("read errors with %s stopped: %v on it, %v on the other; want some on it alone", downName, readErrors(downName), readErrors(upName))
	}
	private.Start(t)
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		got, err = summaries(t, r, u, first, days)
		return err == nil
	}) || got != want {
		t.Fatalf("after the database came back: %v\n%s\nwant\n%s", err, got, want)
	}

	// Up but not migrated (down when the process started): treated as down.
	sharded.Days.SetReady(downName, false)
	if _, err := summaries(t, r, u, first, days); !errors.Is(err, reads.ErrNotMigrated) || !strings.Contains(err.Error(), downName) {
		t.Errorf("read needing a database not migrated: %v; want ErrNotMigrated naming %s", err, downName)
	}
	if hbs, err := r.Heartbeats(context.Background(), u, onShared); err != nil || len(hbs) != 30*len(onShared) {
		t.Errorf("days on the other shard, with one not migrated: %d heartbeats, %v", len(hbs), err)
	}
	sharded.Days.SetReady(downName, true)
	if got, err := summaries(t, r, u, first, days); err != nil || got != want {
		t.Errorf("once migrated: %v\n%s\nwant\n%s", err, got, want)
	}
}
