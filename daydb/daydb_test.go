package daydb_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"heartlog/daydb"
	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/internal/wiring"
	"heartlog/pgheartbeats"
)

func daysFrom(first time.Time, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = first.AddDate(0, 0, i).Format(heartbeat.DayLayout)
	}
	return out
}

func placementRows(t *testing.T, d heartlogtest.Databases) map[string]string {
	t.Helper()
	s, err := daydb.New(d.Catalog, d.Shards...)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := s.Placements(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range ps {
		out[p.Day.Format(heartbeat.DayLayout)] = p.Database
	}
	return out
}

// TestConcurrentPlacersAgree: four processes (each its own Set over the
// same databases) place the same 40 days at once; every one gets the
// database recorded in the catalog, and asking again, after forgetting,
// gives the same answer.
func TestConcurrentPlacersAgree(t *testing.T) {
	dbs := heartlogtest.NewDatabases(t, 2)
	days := daysFrom(time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), 40)
	const placers = 4
	got := make([]map[string]string, placers)
	sets := make([]*daydb.Set, placers)
	var wg sync.WaitGroup
	for p := range placers {
		s, err := daydb.New(dbs.Catalog, dbs.Shards...)
		if err != nil {
			t.Fatal(err)
		}
		sets[p], got[p] = s, map[string]string{}
		wg.Go(func() {
			for _, d := range days {
				db, err := s.For(context.Background(), d)
				if err != nil {
					t.Error(err)
					return
				}
				got[p][d] = db.Name
			}
		})
	}
	wg.Wait()
	recorded := placementRows(t, dbs)
	if len(recorded) != len(days) {
		t.Fatalf("%d placements recorded, want %d", len(recorded), len(days))
	}
	for p := range placers {
		for _, d := range days {
			if got[p][d] != recorded[d] {
				t.Fatalf("placer %d has %s on %s, the catalog on %s", p, d, got[p][d], recorded[d])
			}
		}
	}
	sets[0].Forget()
	for _, d := range days {
		db, err := sets[0].For(context.Background(), d)
		if err != nil || db.Name != recorded[d] {
			t.Fatalf("%s after Forget: %s, %v; recorded on %s", d, db.Name, err, recorded[d])
		}
	}
}

// TestLeastLoadedAndAddingADatabase: days alternate over two databases; a
// third added to the list takes the new days until it holds as many, and
// the old days stay where they were.
func TestLeastLoadedAndAddingADatabase(t *testing.T) {
	ctx := context.Background()
	dbs := heartlogtest.NewDatabases(t, 2)
	first := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	old := daysFrom(first, 10)
	perDB := map[string]int{}
	for _, d := range old {
		db, err := dbs.Days.For(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		perDB[db.Name]++
	}
	a, b := daydb.NameOf(dbs.Shards[0]), daydb.NameOf(dbs.Shards[1])
	if perDB[a] != 5 || perDB[b] != 5 {
		t.Fatalf("days per database %v, want 5 on each", perDB)
	}
	before := placementRows(t, dbs)

	grown := dbs.AddShard(t, "")
	c := daydb.NameOf(grown.Shards[2])
	placed, err := grown.Days.Lookup(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range old {
		if placed[d].Name != before[d] {
			t.Fatalf("old day %s moved from %s to %s", d, before[d], placed[d].Name)
		}
	}
	newDays := daysFrom(first.AddDate(0, 0, 10), 8)
	var went []string
	for _, d := range newDays {
		db, err := grown.Days.For(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		went = append(went, db.Name)
	}
	for i, name := range went[:5] {
		if name != c {
			t.Fatalf("new day %d went to %s, want the added database %s (all: %v)", i, name, c, went)
		}
	}
	after := placementRows(t, grown)
	for _, d := range old {
		if after[d] != before[d] {
			t.Fatalf("old day %s is now on %s, was on %s", d, after[d], before[d])
		}
	}
}

// TestLookupNeverPlaces: a read of a day nobody wrote claims no database.
func TestLookupNeverPlaces(t *testing.T) {
	dbs := heartlogtest.NewDatabases(t, 2)
	ctx := context.Background()
	placed, err := dbs.Days.For(ctx, "20260901")
	if err != nil {
		t.Fatal(err)
	}
	got, err := dbs.Days.Lookup(ctx, []string{"20260901", "20260902"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["20260901"].Name != placed.Name {
		t.Fatalf("lookup %v, want only 20260901 on %s", got, placed.Name)
	}
	if rows := placementRows(t, dbs); len(rows) != 1 {
		t.Fatalf("placements %v after a lookup, want the one placed day", rows)
	}
	if _, err := dbs.Days.For(ctx, "2026-09-01"); !errors.Is(err, daydb.ErrBadDay) {
		t.Fatalf("bad day: %v, want ErrBadDay", err)
	}
}

// TestDatabaseLeftOutOfTheList: a day placed on a database that a later
// list lacks is an error naming that database, not a new placement.
func TestDatabaseLeftOutOfTheList(t *testing.T) {
	dbs := heartlogtest.NewDatabases(t, 2)
	ctx := context.Background()
	var onSecond string
	for _, d := range daysFrom(time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), 2) {
		db, err := dbs.Days.For(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if db.Name == daydb.NameOf(dbs.Shards[1]) {
			onSecond = d
		}
	}
	shrunk, err := daydb.New(dbs.Catalog, dbs.Shards[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, try := range []func() error{
		func() error { _, err := shrunk.For(ctx, onSecond); return err },
		func() error { _, err := shrunk.Lookup(ctx, []string{onSecond}); return err },
	} {
		err := try()
		if !errors.Is(err, daydb.ErrUnknownDatabase) || !strings.Contains(err.Error(), daydb.NameOf(dbs.Shards[1])) {
			t.Fatalf("day on a database left out: %v, want ErrUnknownDatabase naming it", err)
		}
	}
}

// TestNamesSurviveANewPassword: a database's name is its host, port and
// database, so a URL with another password or user names the same one, and
// the name never carries the password.
func TestNamesSurviveANewPassword(t *testing.T) {
	ctx := context.Background()
	p1, err := wiring.NewPool(ctx, "postgres://heartlog:old-secret@db.example:5433/shard1?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	p2, err := wiring.NewPool(ctx, "postgres://other:new-secret@db.example:5433/shard1?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if daydb.NameOf(p1) != daydb.NameOf(p2) || daydb.NameOf(p1) != "db.example:5433/shard1" {
		t.Fatalf("names %q and %q, want both db.example:5433/shard1", daydb.NameOf(p1), daydb.NameOf(p2))
	}
	if _, err := daydb.New(p1, p1, p2); err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("one database twice in the list: %v, want an error without the password", err)
	}
}

// TestAdoptTheDaysOfOneDatabase: an upgrade from one database. Its day
// partitions predate placements; once shard databases are listed, Adopt
// places those days on the catalog where they are, and only new days go
// to the shards.
func TestAdoptTheDaysOfOneDatabase(t *testing.T) {
	ctx := context.Background()
	one := heartlogtest.NewDatabases(t, 0)
	for _, d := range []string{"20260901", "20260902"} {
		if err := pgheartbeats.CreatePartition(ctx, one.Catalog, d); err != nil {
			t.Fatal(err)
		}
	}
	grown := one.AddShard(t, "").AddShard(t, "")
	if err := grown.Days.Adopt(ctx); err != nil {
		t.Fatal(err)
	}
	if err := grown.Days.Adopt(ctx); err != nil { // every start does it
		t.Fatal(err)
	}
	cat := daydb.NameOf(one.Catalog)
	for _, d := range []string{"20260901", "20260902"} {
		db, err := grown.Days.For(ctx, d)
		if err != nil || db.Name != cat {
			t.Fatalf("old day %s: %s, %v; want it on the catalog %s", d, db.Name, err, cat)
		}
	}
	db, err := grown.Days.For(ctx, "20260903")
	if err != nil || db.Name == cat {
		t.Fatalf("new day: %s, %v; want a shard", db.Name, err)
	}
}

// TestPlacementCacheExpires: a placement changed in the catalog (what
// `shards move` does) is seen by a Set that had it cached once the cache
// TTL has passed, without a Forget.
func TestPlacementCacheExpires(t *testing.T) {
	ctx := context.Background()
	dbs := heartlogtest.NewDatabases(t, 2)
	s, err := daydb.New(dbs.Catalog, dbs.Shards...)
	if err != nil {
		t.Fatal(err)
	}
	if s.CacheTTL() != daydb.DefaultCacheTTL {
		t.Fatalf("default cache TTL %s, want %s", s.CacheTTL(), daydb.DefaultCacheTTL)
	}
	const ttl = 300 * time.Millisecond
	s.SetCacheTTL(ttl)
	day := "20260905"
	first, err := s.For(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	other := daydb.NameOf(dbs.Shards[0])
	if other == first.Name {
		other = daydb.NameOf(dbs.Shards[1])
	}
	if _, err := dbs.Catalog.Exec(ctx, `UPDATE day_placements SET database = $2 WHERE day = $1`, time.Date(2026, 9, 5, 0, 0, 0, 0, time.UTC), other); err != nil {
		t.Fatal(err)
	}
	if !heartlogtest.Eventually(5*time.Second, func() bool {
		got, err := s.Lookup(ctx, []string{day})
		if err != nil {
			t.Fatal(err)
		}
		return got[day].Name == other
	}) {
		t.Fatalf("the Set still has %s on %s long after its TTL of %s", day, first.Name, ttl)
	}
}

// TestNoDayPlacedOnADatabaseNotReady: with the second database not ready,
// every new day goes to the first, and a day placed on the second already
// stays there; with neither ready, a new day is refused with ErrNotReady
// and placed nowhere; once the second is ready, it takes new days again.
func TestNoDayPlacedOnADatabaseNotReady(t *testing.T) {
	dbs := heartlogtest.NewDatabases(t, 2)
	ctx := context.Background()
	a, b := daydb.NameOf(dbs.Shards[0]), daydb.NameOf(dbs.Shards[1])
	days := daysFrom(time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), 8)
	for _, day := range days[:2] { // one on each
		if _, err := dbs.Days.For(ctx, day); err != nil {
			t.Fatal(err)
		}
	}
	dbs.Days.SetReady(b, false)
	for _, day := range days[2:5] {
		if db, err := dbs.Days.For(ctx, day); err != nil || db.Name != a {
			t.Fatalf("day %s with %s not ready: %s, %v; want %s", day, b, db.Name, err, a)
		}
	}
	dbs.Days.Forget()
	if db, err := dbs.Days.For(ctx, days[1]); err != nil || db.Name != b {
		t.Errorf("day %s, placed on %s before: %s, %v", days[1], b, db.Name, err)
	}
	dbs.Days.SetReady(a, false)
	if db, err := dbs.Days.For(ctx, days[5]); !errors.Is(err, daydb.ErrNotReady) {
		t.Errorf("a new day with no database ready: %s, %v; want ErrNotReady", db.Name, err)
	}
	if p := placementRows(t, dbs); p[days[5]] != "" {
		t.Errorf("day %s placed on %s with no database ready", days[5], p[days[5]])
	}
	dbs.Days.SetReady(a, true)
	dbs.Days.SetReady(b, true)
	if db, err := dbs.Days.For(ctx, days[5]); err != nil || db.Name != b {
		t.Errorf("a new day with both ready again: %s, %v; want %s (fewer days)", db.Name, err, b)
	}
}
