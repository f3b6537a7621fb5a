package main_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"heartlog/daydb"
	"heartlog/internal/heartlogtest"
	"heartlog/internal/wiring"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/migrations"
)

func versions(t *testing.T, pool *pgxpool.Pool) []int {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT version FROM schema_migrations ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	v, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestProcessWritesToShardDatabases runs `heartlog process` with a catalog
// and two shard databases, all empty: it migrates each with its own set
// (users and placements on the catalog, the heartbeats table on the
// shards), and every day's heartbeats land on one shard, none on the
// catalog.
func TestProcessWritesToShardDatabases(t *testing.T) {
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	_, pub := heartlogtest.Publisher(t, nc, js)
	catalog, catalogURL := heartlogtest.EmptyDatabase(t)
	s1, s1URL := heartlogtest.EmptyDatabase(t)
	s2, s2URL := heartlogtest.EmptyDatabase(t)
	ctx := context.Background()
	user := uuid.NewString()
	first := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for d := range 4 {
		var hbs []*heartlogv1.Heartbeat
		for i := range 25 {
			hbs = append(hbs, heartlogtest.Heartbeat(t, user, fmt.Sprintf("/src/f%d.go", i), first.AddDate(0, 0, d).Add(time.Duration(i)*time.Second)))
		}
		if err := pub.Publish(ctx, hbs, nil); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + catalogURL,
		"HEARTLOG_POSTGRES_SHARD_URLS=" + s1URL + "," + s2URL, "HEARTLOG_LOG_LEVEL=warn", "HEARTLOG_SHARDS_GRACE=87600h"}
	startHeartlog(t, env, "process", "--only", "postgres")
	rows := func(p *pgxpool.Pool) int {
		var c int
		if err := p.QueryRow(ctx, "SELECT count(*) FROM heartbeats").Scan(&c); err != nil {
			return -1 // not migrated yet
		}
		return c
	}
	if !heartlogtest.Eventually(60*time.Second, func() bool { return rows(s1)+rows(s2) == 100 }) {
		t.Fatalf("rows on the shards: %d and %d, want 100 in all", rows(s1), rows(s2))
	}
	if rows(s1) != 50 || rows(s2) != 50 {
		t.Errorf("rows on the shards: %d and %d, want two days (50) on each", rows(s1), rows(s2))
	}
	if v := versions(t, catalog); !slices.Equal(v, []int{1, 3, 4, 5}) {
		t.Errorf("catalog migrations %v, want 1, 3, 4, 5 (no heartbeats table)", v)
	}
	for _, s := range []*pgxpool.Pool{s1, s2} {
		if v := versions(t, s); !slices.Equal(v, []int{2}) {
			t.Errorf("shard migrations %v, want 2 alone (no users table)", v)
		}
	}
	var placed int
	if err := catalog.QueryRow(ctx, "SELECT count(*) FROM day_placements").Scan(&placed); err != nil || placed != 4 {
		t.Errorf("%d placements in the catalog (%v), want 4", placed, err)
	}
	out, err := command(env, "shards", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("shards list: %v\n%s", err, out)
	}
	for d := range 4 {
		day := first.AddDate(0, 0, d).Format(time.DateOnly)
		line := ""
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, day) {
				line = l
			}
		}
		if !strings.Contains(line, daydb.NameOf(s1)) && !strings.Contains(line, daydb.NameOf(s2)) {
			t.Errorf("shards list has no shard database for %s:\n%s", day, out)
		}
	}
	var catalogHeartbeats bool
	if err := catalog.QueryRow(ctx, "SELECT to_regclass('heartbeats') IS NOT NULL").Scan(&catalogHeartbeats); err != nil || catalogHeartbeats {
		t.Errorf("the catalog has a heartbeats table (%v)", err)
	}
}

// TestBadShardURLNamesTheEntry: a bad entry stops the process at start
// with its place in the list and without its password.
func TestBadShardURLNamesTheEntry(t *testing.T) {
	_, catalogURL := heartlogtest.EmptyDatabase(t)
	out, err := command([]string{"HEARTLOG_POSTGRES_URL=" + catalogURL, "HEARTLOG_NATS_URL=nats://127.0.0.1:1",
		"HEARTLOG_POSTGRES_SHARD_URLS=postgres://u:sekrit@127.0.0.1:1/a,http://u:sekrit@x/b"}, "migrate").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "HEARTLOG_POSTGRES_SHARD_URLS: entry 2") || strings.Contains(string(out), "sekrit") {
		t.Fatalf("migrate with a bad shard URL: %v\n%s", err, out)
	}
}

// TestProcessStartsWithAShardDown runs `heartlog process` while the second
// shard database (a private cluster, not migrated yet, with one day placed
// on it already) is down: the process starts, says which database is down
// and when it is tried again, places the new days on the first shard
// alone and writes them, and holds the day placed on the down one. Once
// that cluster is up, the process migrates it, writes the held day there,
// and places new days on it again.
func TestProcessStartsWithAShardDown(t *testing.T) {
	ctx := context.Background()
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	_, pub := heartlogtest.Publisher(t, nc, js)
	catalog, catalogURL := heartlogtest.EmptyDatabase(t)
	s1, s1URL := heartlogtest.EmptyDatabase(t)
	pg := heartlogtest.StartPostgres(t)
	s2URL, err := wiring.CreateDatabase(ctx, pg.URL, "shard2")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := wiring.NewPool(ctx, s2URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s2.Close)
	s1Name, s2Name := daydb.NameOf(s1), daydb.NameOf(s2)
	// Day 0 was placed on the second shard by an earlier run.
	if err := wiring.MigrateSet(ctx, catalog, migrations.Catalog, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	first := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	if _, err := catalog.Exec(ctx, `INSERT INTO shard_databases (name) VALUES ($1), ($2)`, s1Name, s2Name); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Exec(ctx, `INSERT INTO day_placements (day, database) VALUES ($1, $2)`, first, s2Name); err != nil {
		t.Fatal(err)
	}
	pg.Stop(t)

	user := uuid.NewString()
	publishDay := func(d int) {
		t.Helper()
		var hbs []*heartlogv1.Heartbeat
		for i := range 25 {
			hbs = append(hbs, heartlogtest.Heartbeat(t, user, fmt.Sprintf("/src/f%d.go", i), first.AddDate(0, 0, d).Add(time.Duration(i)*time.Second)))
		}
		if err := pub.Publish(ctx, hbs, nil); err != nil {
			t.Fatal(err)
		}
	}
	for d := range 4 {
		publishDay(d)
	}
	env := []string{"HEARTLOG_NATS_URL=" + n.URL, "HEARTLOG_POSTGRES_URL=" + catalogURL,
		"HEARTLOG_POSTGRES_SHARD_URLS=" + s1URL + "," + s2URL, "HEARTLOG_LOG_LEVEL=warn", "HEARTLOG_LOG_FORMAT=json", "HEARTLOG_SHARDS_GRACE=87600h"}
	var log heartlogtest.LogBuffer
	startHeartlogTo(t, &log, env, "process", "--only", "postgres")
	rows := func(p *pgxpool.Pool) int {
		var c int
		if err := p.QueryRow(ctx, "SELECT count(*) FROM heartbeats").Scan(&c); err != nil {
			return -1 // down, or not migrated yet
		}
		return c
	}
	if !heartlogtest.Eventually(60*time.Second, func() bool { return rows(s1) == 75 }) {
		t.Fatalf("rows on the first shard with the second down: %d, want days 1-3 (75)\nlog:\n%s", rows(s1), log.String())
	}
	placedOn := func(database string) int {
		var c int
		if err := catalog.QueryRow(ctx, "SELECT count(*) FROM day_placements WHERE database = $1", database).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if on1, on2 := placedOn(s1Name), placedOn(s2Name); on1 != 3 || on2 != 1 {
		t.Errorf("days placed with the second shard down: %d on the first, %d on the second; want the 3 new ones on the first, the old one alone on the second", on1, on2)
	}
	var line string
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "shard database not migrated") {
			line = l
		}
	}
	if !strings.Contains(line, `"database":"`+s2Name+`"`) || !strings.Contains(line, `"retry_in":"1s"`) || !strings.Contains(line, "connection refused") {
		t.Errorf("no log line naming the down shard %s, why, and when it is retried (1s):\n%s", s2Name, log.String())
	}

	pg.Start(t)
	if !heartlogtest.Eventually(90*time.Second, func() bool { return rows(s2) == 25 }) {
		t.Fatalf("rows on the second shard once it is up: %d, want the held day 0 (25)\nlog:\n%s", rows(s2), log.String())
	}
	if v := versions(t, s2); !slices.Equal(v, []int{2}) {
		t.Errorf("second shard's migrations %v, want 2", v)
	}
	// The second shard holds fewer recent days: it takes the next new day.
	publishDay(4)
	if !heartlogtest.Eventually(60*time.Second, func() bool { return rows(s2) == 50 }) {
		t.Fatalf("rows on the second shard after a new day: %d, want 50 (the new day placed there)", rows(s2))
	}
	if rows(s1) != 75 {
		t.Errorf("rows on the first shard: %d, want 75", rows(s1))
	}
}
