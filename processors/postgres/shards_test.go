package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/processors"
	pgsink "heartlog/processors/postgres"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/streams"
)

// runProcessor runs the Postgres processor over days on its durable
// consumer of a fresh JetStream, as `heartlog process` does, until the test
// ends, and returns a publish function for heartbeats and the consumer.
func runProcessor(t *testing.T, days *daydb.Set, holdDelay time.Duration) (publish func([]*heartlogv1.Heartbeat), cons jetstream.Consumer) {
	t.Helper()
	n := heartlogtest.StartNATS(t)
	nc, js := heartlogtest.Connect(t, n.URL)
	sc, pub := heartlogtest.Publisher(t, nc, js)
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	cons, err = streams.EnsureConsumer(ctx, js, sc, streams.DurablePostgres)
	if err != nil {
		t.Fatal(err)
	}
	sink := pgsink.New(days, states{}, heartlogtest.Logger(t), pgsink.Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		opts := processors.Options{Log: heartlogtest.Logger(t), RetryMax: 200 * time.Millisecond, HoldDelay: holdDelay,
			DeadLetters: streams.NewDeadLetters(js, sc)}
		if err := processors.Run(ctx, cons, sink, opts); err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func(hbs []*heartlogv1.Heartbeat) {
		t.Helper()
		if err := pub.Publish(context.Background(), hbs, nil); err != nil {
			t.Fatal(err)
		}
	}, cons
}

// dayBeats are n heartbeats of user on day (at noon UTC and after), named
// by tag so that two calls make different heartbeats.
func dayBeats(t *testing.T, user string, day time.Time, tag string, n int) []*heartlogv1.Heartbeat {
	t.Helper()
	var hbs []*heartlogv1.Heartbeat
	for i := range n {
		hbs = append(hbs, heartlogtest.Heartbeat(t, user, fmt.Sprintf("%s-%02d.go", tag, i), day.Add(12*time.Hour+time.Duration(i)*time.Second)))
	}
	return hbs
}

// idsIn counts the stored heartbeat ids of each database, by id.
func idsIn(t *testing.T, pools ...*pgxpool.Pool) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, p := range pools {
		rows, err := p.Query(context.Background(), "SELECT id FROM heartbeats")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			out[id]++
		}
	}
	return out
}

func count(t *testing.T, p *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := p.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func waitRows(t *testing.T, want int, what string, pools ...*pgxpool.Pool) {
	t.Helper()
	got := 0
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		got = len(idsIn(t, pools...))
		return got == want
	}) {
		t.Fatalf("%s: %d distinct heartbeats stored, want %d", what, got, want)
	}
}

// TestDaysLandOnTheirDatabaseAlone: heartbeats over ten days, through the
// log and the processor, land each in its day's shard database and in no
// other, the catalog holds no heartbeats table at all, and the days are
// spread evenly over the two shards.
func TestDaysLandOnTheirDatabaseAlone(t *testing.T) {
	dbs := heartlogtest.NewDatabases(t, 2)
	publish, _ := runProcessor(t, dbs.Days, time.Second)
	alice, bob := uuid.NewString(), uuid.NewString()
	first := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	var days []string
	for i := range 10 {
		day := first.AddDate(0, 0, i)
		days = append(days, day.Format(heartbeat.DayLayout))
		publish(append(dayBeats(t, alice, day, "a", 20), dayBeats(t, bob, day, "b", 20)...))
	}
	waitRows(t, 400, "all days", dbs.Shards...)

	placed, err := dbs.Days.Lookup(context.Background(), days)
	if err != nil {
		t.Fatal(err)
	}
	perDB := map[string]int{}
	for i, day := range days {
		db, ok := placed[day]
		if !ok {
			t.Fatalf("day %s has no placement", day)
		}
		perDB[db.Name]++
		date := first.AddDate(0, 0, i)
		for _, p := range dbs.Shards {
			rows := count(t, p, "SELECT count(*) FROM heartbeats WHERE day = $1", date)
			tables := count(t, p, "SELECT count(*) FROM pg_class WHERE relname = $1", "heartbeats_"+day)
			mine := daydb.NameOf(p) == db.Name
			if mine && (rows != 40 || tables != 1) || !mine && (rows != 0 || tables != 0) {
				t.Errorf("day %s on %s (placed on %s): %d rows, %d tables", day, daydb.NameOf(p), db.Name, rows, tables)
			}
		}
	}
	if len(perDB) != 2 || perDB[daydb.NameOf(dbs.Shards[0])] != 5 {
		t.Errorf("days per database %v, want 5 on each", perDB)
	}
	if n := count(t, dbs.Catalog, "SELECT count(*) FROM pg_class WHERE relname LIKE 'heartbeats%'"); n != 0 {
		t.Errorf("the catalog has %d heartbeats tables, want none", n)
	}
	if n := count(t, dbs.Catalog, "SELECT count(*) FROM day_placements"); n != 10 {
		t.Errorf("%d placements in the catalog, want 10", n)
	}
}

// TestShardOutageHoldsBackOnlyItsDays: one shard database is a private
// cluster, stopped while heartbeats arrive. The days on the other shard
// keep landing; the stopped one's land once it is back; every heartbeat is
// stored once, in one database.
func TestShardOutageHoldsBackOnlyItsDays(t *testing.T) {
	pg := heartlogtest.StartPostgres(t)
	dbs := heartlogtest.NewDatabases(t, 1).AddShard(t, pg.URL)
	up, down := dbs.Shards[0], dbs.Shards[1]
	publish, cons := runProcessor(t, dbs.Days, 200*time.Millisecond)
	user := uuid.NewString()
	first := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	var dates []time.Time
	var days []string
	for i := range 6 {
		dates = append(dates, first.AddDate(0, 0, i))
		days = append(days, dates[i].Format(heartbeat.DayLayout))
		publish(dayBeats(t, user, dates[i], "before", 10))
	}
	waitRows(t, 60, "before the outage", up, down)
	placed, err := dbs.Days.Lookup(context.Background(), days)
	if err != nil {
		t.Fatal(err)
	}
	var onUp, onDown []int
	for i, d := range days {
		if placed[d].Name == daydb.NameOf(down) {
			onDown = append(onDown, i)
		} else {
			onUp = append(onUp, i)
		}
	}
	if len(onUp) == 0 || len(onDown) == 0 {
		t.Fatalf("days on the shared shard %v, on the private one %v: want some on each", onUp, onDown)
	}

	pg.Stop(t)
	// Each message mixes nothing: one day per batch, so interleave the
	// days to make commits that touch both databases.
	for round := range 3 {
		for i := range dates {
			publish(dayBeats(t, user, dates[i], fmt.Sprintf("during%d", round), 5))
		}
	}
	wantUp := len(onUp) * (10 + 15)
	waitRows(t, wantUp, "days on the shard that is up, while the other is down", up)
	// Once the held messages have come back (and failed again) on their
	// own, without a day of the other shard in their commit, the days of
	// the shard that is up must still land.
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumRedelivered > 0
	}) {
		t.Fatal("the held messages were not delivered again")
	}
	for _, i := range onUp {
		publish(dayBeats(t, user, dates[i], "later", 5))
	}
	wantUp += len(onUp) * 5
	waitRows(t, wantUp, "days on the shard that is up, after the held messages came back", up)

	pg.Start(t)
	waitRows(t, 6*25+len(onUp)*5, "every day after the outage", up, down)
	// Redelivered and republished heartbeats are stored once.
	publish(dayBeats(t, user, dates[onDown[0]], "during0", 5))
	publish(dayBeats(t, user, dates[onUp[0]], "during0", 5))
	marker := dayBeats(t, user, dates[onDown[0]], "marker", 1)
	publish(marker)
	waitRows(t, 6*25+len(onUp)*5+1, "after a resend and a marker", up, down)
	for id, n := range idsIn(t, up, down) {
		if n != 1 {
			t.Errorf("heartbeat %s stored %d times", id, n)
		}
	}
	for _, i := range onDown {
		if n := count(t, up, "SELECT count(*) FROM heartbeats WHERE day = $1", dates[i]); n != 0 {
			t.Errorf("day %s of the stopped shard has %d rows on the other one", days[i], n)
		}
	}
}
