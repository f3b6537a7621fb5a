package api_test

import (
	"context"
	"testing"
	"time"

	"heartlog/heartbeat"
	"heartlog/internal/heartlogtest"
)

// TestReadsWithAShardServerDown: with the server of one shard database
// stopped, summaries of the days on the other databases answer as
// before; a summary that needs a day on the stopped one answers 503 with
// a clear error, never the totals of the other days alone; once the
// server is back, the same summary answers whole.
func TestReadsWithAShardServerDown(t *testing.T) {
	pg := heartlogtest.StartPostgres(t)
	svc := heartlogtest.Start(t, heartlogtest.Options{PrivateShard: pg})
	u, key := svc.CreateUser(t, "alice", "")
	first := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -7)
	var days []string
	for i := range 6 {
		day := first.AddDate(0, 0, i)
		sendDay(t, svc, key, day)
		days = append(days, day.Format(heartbeat.DayLayout))
	}
	svc.WaitCount(t, 6*5, "SELECT count(*) FROM heartbeats WHERE user_id = $1", u.ID)

	placed, err := svc.Days.Lookup(context.Background(), days)
	if err != nil {
		t.Fatal(err)
	}
	private := svc.Days.All()[len(svc.Days.All())-1].Name
	elsewhere := ""
	onPrivate := 0
	for _, day := range days {
		if placed[day].Name == private {
			onPrivate++
		} else if elsewhere == "" {
			elsewhere = day
		}
	}
	if onPrivate == 0 || elsewhere == "" {
		t.Fatalf("placements %v: want days on the private shard %s and elsewhere", placed, private)
	}
	dateOf := func(day string) string {
		d, err := time.Parse(heartbeat.DayLayout, day)
		if err != nil {
			t.Fatal(err)
		}
		return d.Format(time.DateOnly)
	}
	whole := "/api/v1/users/current/summaries?start=" + dateOf(days[0]) + "&end=" + dateOf(days[5])
	one := "/api/v1/users/current/summaries?start=" + dateOf(elsewhere) + "&end=" + dateOf(elsewhere)
	if code, sum := get(t, svc, whole, key); code != 200 || dig(sum, "cumulative_total", "seconds") != 6*660.0 {
		t.Fatalf("before the stop: %d %v, want 200 with %v s", code, dig(sum, "cumulative_total"), 6*660)
	}

	pg.Stop(t)
	if code, sum := get(t, svc, one, key); code != 200 || dig(sum, "cumulative_total", "seconds") != 660.0 {
		t.Errorf("a day on a shard that is up, while another is down: %d %v, want 200 with 660 s", code, sum)
	}
	code, sum := get(t, svc, whole, key)
	if code != 503 || dig(sum, "error") != "stats are unavailable right now, retry later" {
		t.Errorf("days on the stopped shard: %d %v, want 503 saying stats are unavailable", code, sum)
	}

	pg.Start(t)
	var last map[string]any
	if !heartlogtest.Eventually(30*time.Second, func() bool {
		code, last = get(t, svc, whole, key)
		return code == 200
	}) {
		t.Fatalf("after the shard came back: %d %v", code, last)
	}
	if got := dig(last, "cumulative_total", "seconds"); got != 6*660.0 {
		t.Errorf("after the shard came back: %v s, want %v", got, 6*660)
	}
}
