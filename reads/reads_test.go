package reads_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
	"heartlog/reads"
	"heartlog/schema/dayfile"
	"heartlog/schema/digest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/ssdb"
	"heartlog/stats"
	"heartlog/streams"
	"heartlog/users"
)

// states marks chosen days as dropped; the others are active.
type states map[string]streams.ShardState

func (s states) State(day string) streams.ShardState {
	if st, ok := s[day]; ok {
		return st
	}
	return streams.ShardActive
}

func ids(hbs []*heartlogv1.Heartbeat) string {
	out := ""
	for _, hb := range hbs {
		out += hb.Id + ","
	}
	return out
}

func TestSameHeartbeatsFromEveryStore(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	svc.StartDayFiles(t, heartlogtest.DayFileOptions{})
	u, key := svc.CreateUser(t, "alice", "")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	var days []string
	var body string
	for d := range 3 {
		at := today.AddDate(0, 0, -d-1).Add(9 * time.Hour) // closed days, with day files
		days = append(days, at.Format(heartbeat.DayLayout))
		for i := range 4 {
			if body != "" {
				body += ","
			}
			body += fmt.Sprintf(`{"entity":"f%d.go","type":"file","time":%d,"project":"p%d","dependencies":["a","b"],"is_write":true,"lineno":%d}`, i, at.Unix()+int64(i*60), d, i)
		}
	}
	if resp, b := svc.Post(t, "/api/v1/users/current/heartbeats.bulk", key, []byte("["+body+"]")); resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	svc.WaitCount(t, 12, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)
	stores := heartlogtest.OpenStores(t)
	for d := range 3 {
		svc.CloseDay(t, today.AddDate(0, 0, -d-1), &stores)
	}
	for _, d := range days { // the day files
		k := dayfile.Key(u.ObjectPrefix, u.ID, d)
		if !heartlogtest.Eventually(30*time.Second, func() bool {
			data, _, err := stores.Primary.Get(context.Background(), k)
			if err != nil {
				return false
			}
			hbs, err := dayfile.Decode(data)
			return err == nil && len(hbs) == 4
		}) {
			t.Fatalf("day file %s not written", k)
		}
	}
	ctx := context.Background()
	bucket := &heartlogtest.CountingBucket{Bucket: stores.Primary}
	hot := reads.New(svc.Days, states{}, stores.Cache, bucket, 4, heartlogtest.Logger(t))
	fromPG, err := hot.Heartbeats(ctx, u, days)
	if err != nil {
		t.Fatal(err)
	}
	dropped := states{}
	for _, d := range days {
		dropped[d] = streams.ShardDropped
	}
	cold := reads.New(svc.Days, dropped, stores.Cache, bucket, 4, heartlogtest.Logger(t))
	keys := make([]string, len(days))
	for i, d := range days {
		keys[i] = dayfile.Key(u.ObjectPrefix, u.ID, d)
	}
	if !heartlogtest.Eventually(30*time.Second, func() bool { // the cache processor has run too
		vals, err := stores.Cache.MGet(ctx, keys)
		for _, v := range vals {
			if v == nil {
				return false
			}
		}
		return err == nil
	}) {
		t.Fatal("cache not warmed by the cache processor")
	}
	warm, err := cold.Heartbeats(ctx, u, days)
	if err != nil {
		t.Fatal(err)
	}
	if bucket.Gets() != 0 {
		t.Fatalf("%d S3 GETs on a warm read, want none", bucket.Gets())
	}
	checkActivity(t, cold, stores.Cache, u, days, fromPG, keys)
	if bucket.Gets() != 0 {
		t.Fatalf("%d S3 GETs on warm activity reads, want none", bucket.Gets())
	}
	// Wipe the cache (a day whose file is gone but whose generation is
	// left was dropped on purpose, and is not filled: see reads' fill).
	if err := stores.Cache.Delete(ctx, keys...); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := stores.Cache.Delete(ctx, digest.Key(k), digest.GenKey(k)); err != nil {
			t.Fatal(err)
		}
	}
	fromS3, err := cold.Heartbeats(ctx, u, days)
	if err != nil {
		t.Fatal(err)
	}
	if bucket.Gets() != int64(len(days)) {
		t.Fatalf("%d S3 GETs after the cache was wiped, want %d", bucket.Gets(), len(days))
	}
	if len(fromPG) != 12 || ids(fromPG) != ids(warm) || ids(fromPG) != ids(fromS3) {
		t.Fatalf("stores disagree:\npostgres %d %s\ncache    %d %s\ns3       %d %s", len(fromPG), ids(fromPG), len(warm), ids(warm), len(fromS3), ids(fromS3))
	}
	for i := range fromPG {
		a, b := fromPG[i], fromS3[i]
		if a.Entity != b.Entity || a.Project != b.Project || fmt.Sprint(a.Dependencies) != fmt.Sprint(b.Dependencies) || *a.IsWrite != *b.IsWrite || *a.Lineno != *b.Lineno {
			t.Fatalf("heartbeat %s differs between Postgres and S3: %v vs %v", a.Id, a, b)
		}
	}
	again, err := cold.Heartbeats(ctx, u, days) // the S3 read filled the cache
	if err != nil || bucket.Gets() != int64(len(days)) || ids(again) != ids(fromPG) {
		t.Fatalf("after the fill: %d S3 GETs (want %d), err %v", bucket.Gets(), len(days), err)
	}
	// The fill wrote the digests too.
	checkActivity(t, cold, stores.Cache, u, days, fromPG, keys)
	if bucket.Gets() != int64(len(days)) {
		t.Fatalf("%d S3 GETs after activity reads of a filled cache, want %d", bucket.Gets(), len(days))
	}

	// A dropped day without heartbeats costs one S3 GET, then none: the
	// cache holds an empty file for it.
	empty := today.AddDate(0, 0, -10).Format(heartbeat.DayLayout)
	dropped[empty] = streams.ShardDropped
	withEmpty := append([]string{empty}, days...)
	for round, want := range []int64{1, 0} {
		before := bucket.Gets()
		got, err := cold.Heartbeats(ctx, u, withEmpty)
		if err != nil || ids(got) != ids(fromPG) {
			t.Fatalf("read %d with an empty day: %d heartbeats, err %v", round, len(got), err)
		}
		if n := bucket.Gets() - before; n != want {
			t.Fatalf("read %d with an empty day: %d S3 GETs, want %d", round, n, want)
		}
	}
}

// view is what package stats reads of beats.
func view(act stats.Activity) string {
	out := ""
	for _, b := range act.Beats {
		a := act.Attrs(b.Set)
		out += fmt.Sprintf("%d|%s|%s|%s|%s|%s|%s|%s|%s|%s|%v|%v\n", b.Nanos, a.Entity, a.Type, a.Category, a.Project,
			a.Branch, a.Language, a.Editor, a.OperatingSystem, a.Machine, a.Dependencies, b.IsWrite)
	}
	return out
}

// checkActivity checks, on a warm cache (keys are the days' day-file
// keys), that Activity reads the days' digests, that they give what
// Postgres gives (every field stats reads, and the same summaries); and
// that a day whose digest is missing falls back to its day file, with
// the same result, and gets its digest written back.
func checkActivity(t *testing.T, r *reads.Reader, c *ssdb.Cache, u users.User, days []string, want []*heartlogv1.Heartbeat, keys []string) {
	t.Helper()
	ctx := context.Background()
	dkeys := make([]string, len(keys))
	for i, k := range keys {
		dkeys[i] = digest.Key(k)
	}
	digests, err := c.MGet(ctx, dkeys)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range digests {
		if d == nil {
			t.Fatalf("no digest beside %s", keys[i])
		}
	}
	summary := func(beats stats.Activity) []stats.Day {
		first, err := stats.ParseDate(days[len(days)-1][:4] + "-" + days[len(days)-1][4:6] + "-" + days[len(days)-1][6:])
		if err != nil {
			t.Fatal(err)
		}
		out, err := stats.SummarizeBeats(beats, stats.Options{Start: first, End: first.AddDays(len(days) - 1), Timeout: 60})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	wantBeats := stats.ActivityOf(want)
	wantSummary := fmt.Sprint(summary(wantBeats))
	read := func(what string) {
		t.Helper()
		got, err := r.Activity(ctx, u, days)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if view(got) != view(wantBeats) {
			t.Fatalf("%s: activity differs from Postgres:\n%s\nwant\n%s", what, view(got), view(wantBeats))
		}
		if fmt.Sprint(summary(got)) != wantSummary {
			t.Fatalf("%s: summaries differ from Postgres's", what)
		}
	}
	read("from digests")

	// Concurrent reads of the same days share one read of their files
	// (shared.go): each still gets the whole activity, and one whose caller
	// gives up at once fails alone (or, if the shared read was done
	// already, gets it).
	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			c := ctx
			if i == 0 {
				c = gaveUp
			}
			got, err := r.Activity(c, u, days)
			if err == nil && view(got) != view(wantBeats) {
				err = fmt.Errorf("activity differs from Postgres:\n%s", view(got))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if errs[0] != nil && !errors.Is(errs[0], context.Canceled) { // nil if the shared read won the race
		t.Fatalf("concurrent read whose caller gave up: %v, want context.Canceled", errs[0])
	}
	for i, err := range errs[1:] {
		if err != nil {
			t.Fatalf("concurrent read %d: %v", i+1, err)
		}
	}

	// A missing digest: the day file is read, and the digest written back.
	if err := c.Delete(ctx, dkeys[0]); err != nil {
		t.Fatal(err)
	}
	read("with a digest missing")
	back, _, err := c.Get(ctx, dkeys[0])
	if err != nil || string(back) != string(digests[0]) {
		t.Fatalf("digest written back: %d bytes, %v; want the %d bytes of before", len(back), err, len(digests[0]))
	}
	// An unreadable digest is a missing one.
	if err := c.Set(ctx, dkeys[0], []byte("not a digest")); err != nil {
		t.Fatal(err)
	}
	read("with a digest corrupt")
}
