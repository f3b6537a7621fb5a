package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"heartlog/internal/heartlogtest"
	"heartlog/streams"
	"heartlog/users"
)

func get(t *testing.T, svc *heartlogtest.Service, path, key string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, svc.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(key, "")
	resp, body := svc.Do(t, req)
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET %s: %d, body %s is not a JSON object", path, resp.StatusCode, body)
	}
	return resp.StatusCode, out
}

// dig walks a decoded JSON document: dig(m, "data", "grand_total", "text").
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// The day used by these tests (UTC, the users' time zone):
//
//	10:00 A, 10:05 A, 10:10 A, 10:30 B, 10:31 B
//
// Gaps: 300 s + 300 s to A; 10:10 -> 10:30 is 20 min, over the 15-minute
// timeout, so it counts nothing; 60 s to B. A = 600 s, B = 60 s, total
// 660 s = "11 mins".
func sendDay(t *testing.T, svc *heartlogtest.Service, key string, day time.Time) {
	t.Helper()
	var items []string
	for _, hb := range []struct {
		min  int
		proj string
	}{{0, "A"}, {5, "A"}, {10, "A"}, {30, "B"}, {31, "B"}} {
		at := day.Add(10*time.Hour + time.Duration(hb.min)*time.Minute)
		items = append(items, fmt.Sprintf(`{"entity":"/src/%s.go","type":"file","time":%d,"project":%q,"language":"Go","category":"coding"}`, hb.proj, at.Unix(), hb.proj))
	}
	if resp, b := svc.Post(t, bulk, key, []byte("["+strings.Join(items, ",")+"]")); resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

func TestWakaTimeReadRoutes(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	alice, aliceKey := svc.CreateUser(t, "alice", "")
	_, bobKey := svc.CreateUser(t, "bob", "")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if time.Now().UTC().Hour() < 11 {
		today = today.AddDate(0, 0, -1) // keep the heartbeats in the past
	}
	sendDay(t, svc, aliceKey, today)
	svc.WaitCount(t, 5, "SELECT count(*) FROM heartbeats WHERE user_id = $1", alice.ID)
	date := today.Format(time.DateOnly)
	yesterday := today.AddDate(0, 0, -1).Format(time.DateOnly)

	code, sum := get(t, svc, "/api/v1/users/current/summaries?start="+yesterday+"&end="+date, aliceKey)
	if code != 200 || dig(sum, "cumulative_total", "seconds") != 660.0 || len(dig(sum, "data").([]any)) != 2 {
		t.Fatalf("summaries: %d %v", code, sum)
	}
	if dig(sum, "data", 1, "grand_total", "text") != "11 mins" || dig(sum, "data", 0, "grand_total", "total_seconds") != 0.0 {
		t.Fatalf("summaries per day: %v", dig(sum, "data"))
	}
	projects := dig(sum, "data", 1, "projects").([]any)
	if len(projects) != 2 || dig(projects, 0, "name") != "A" || dig(projects, 0, "total_seconds") != 600.0 || dig(projects, 1, "total_seconds") != 60.0 {
		t.Fatalf("projects: %v", projects)
	}
	for _, field := range []string{"name", "total_seconds", "percent", "digital", "decimal", "text", "hours", "minutes", "seconds"} {
		if dig(projects, 0, field) == nil {
			t.Errorf("a summary item lacks %q: %v", field, projects[0])
		}
	}
	code, sum = get(t, svc, "/api/v1/users/current/summaries?start="+date+"&end="+date+"&project=B", aliceKey)
	if code != 200 || dig(sum, "cumulative_total", "seconds") != 60.0 {
		t.Fatalf("summaries for project B: %d %v", code, dig(sum, "cumulative_total"))
	}

	code, dur := get(t, svc, "/api/compat/wakatime/v1/users/current/durations?date="+date, aliceKey)
	if code != 200 || len(dig(dur, "data").([]any)) != 2 || dig(dur, "data", 0, "duration") != 600.0 || dig(dur, "data", 1, "project") != "B" {
		t.Fatalf("durations: %d %v", code, dur)
	}
	code, st := get(t, svc, "/api/v1/users/"+alice.ID+"/stats/last_7_days", aliceKey)
	if code != 200 || dig(st, "data", "total_seconds") != 660.0 || dig(st, "data", "range") != "last_7_days" {
		t.Fatalf("stats: %d %v", code, st)
	}
	code, at := get(t, svc, "/api/v1/users/current/all_time_since_today", aliceKey)
	if code != 200 || dig(at, "data", "total_seconds") != 660.0 {
		t.Fatalf("all_time_since_today: %d %v", code, at)
	}
	code, hbs := get(t, svc, "/api/v1/users/current/heartbeats?date="+date, aliceKey)
	if code != 200 || len(dig(hbs, "data").([]any)) != 5 || dig(hbs, "data", 0, "project") != "A" {
		t.Fatalf("heartbeats: %d %v", code, hbs)
	}
	code, me := get(t, svc, "/api/v1/users/current", aliceKey)
	if code != 200 || dig(me, "data", "id") != alice.ID || dig(me, "data", "timezone") != "UTC" {
		t.Fatalf("user: %d %v", code, me)
	}

	t.Run("bad parameters", func(t *testing.T) {
		for path, want := range map[string]string{
			"/api/v1/users/current/stats/last_2_days":                                                   "last_7_days",
			"/api/v1/users/current/summaries?start=" + date + "&end=" + yesterday:                       "before start",
			"/api/v1/users/current/summaries?start=" + date + "&end=" + date + "&timezone=Mars/Olympus": "unknown time zone",
			"/api/v1/users/current/summaries?start=" + date + "&end=" + date + "&timeout=0":             "timeout",
			"/api/v1/users/current/summaries?start=yesterday&end=" + date:                               "YYYY-MM-DD",
			"/api/v1/users/current/durations?date=" + date + "&slice_by=color":                          "slice_by",
		} {
			code, body := get(t, svc, path, aliceKey)
			if code != 400 || !strings.Contains(fmt.Sprint(body["error"]), want) {
				t.Errorf("GET %s: %d %v, want 400 mentioning %q", path, code, body, want)
			}
		}
	})
	t.Run("one user never reads another's data", func(t *testing.T) {
		code, _ := get(t, svc, "/api/v1/users/"+alice.ID+"/summaries?start="+date+"&end="+date, bobKey)
		if code != http.StatusForbidden {
			t.Fatalf("bob reading alice's summaries: %d, want 403", code)
		}
		code, sum := get(t, svc, "/api/v1/users/current/summaries?start="+date+"&end="+date, bobKey)
		if code != 200 || dig(sum, "cumulative_total", "seconds") != 0.0 {
			t.Fatalf("bob's own summaries show %v", dig(sum, "cumulative_total"))
		}
	})
}

// TestSameTotalsFromEveryStore: a day's summary before and after its shard
// is dropped, and after SSDB is wiped, shows the same total each time.
func TestSameTotalsFromEveryStore(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	svc.StartDayFiles(t, heartlogtest.DayFileOptions{})
	alice, key := svc.CreateUser(t, "alice", "")
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	sendDay(t, svc, key, today.AddDate(0, 0, -1))
	svc.WaitCount(t, 5, "SELECT count(*) FROM heartbeats WHERE user_id = $1", alice.ID)
	path := "/api/v1/users/current/summaries?start=" + today.AddDate(0, 0, -1).Format(time.DateOnly) + "&end=" + today.AddDate(0, 0, -1).Format(time.DateOnly)
	total := func() any {
		code, sum := get(t, svc, path, key)
		if code != 200 {
			t.Fatalf("summaries: %d %v", code, sum)
		}
		return dig(sum, "cumulative_total", "seconds")
	}
	if got := total(); got != 660.0 {
		t.Fatalf("hot (Postgres): %v, want 660", got)
	}
	evict := dropToDayFiles(t, svc, alice, today.AddDate(0, 0, -1))
	if !heartlogtest.Eventually(10*time.Second, func() bool { return total() == 660.0 }) {
		t.Fatalf("warm (SSDB): %v, want 660", total())
	}
	evict()
	if got := total(); got != 660.0 {
		t.Fatalf("cold (S3): %v, want 660", got)
	}
}

// TestStatusBarToday is what `wakatime-cli --today` asks for.
func TestStatusBarToday(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	_, key := svc.CreateUser(t, "alice", "")
	now := time.Now().UTC()
	start := now.Add(-10 * time.Minute)
	if start.Day() != now.Day() {
		start = now.Truncate(24 * time.Hour) // just after midnight: keep all of them today
	}
	// start, +5 min, +10 min (or less after midnight): two gaps of 300 s.
	var items []string
	for i := range 3 {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		items = append(items, fmt.Sprintf(`{"entity":"a.go","type":"file","time":%d,"project":"heartlog","category":"coding"}`, at.Unix()))
	}
	if resp, b := svc.Post(t, bulk, key, []byte("["+strings.Join(items, ",")+"]")); resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	for _, path := range []string{"/api/v1/users/current/statusbar/today", "/api/v1/users/current/status_bar/today"} {
		var sb map[string]any
		if !heartlogtest.Eventually(30*time.Second, func() bool {
			var code int
			code, sb = get(t, svc, path, key)
			return code == 200 && dig(sb, "data", "grand_total", "total_seconds") == 600.0
		}) {
			t.Fatalf("GET %s: %v, want 600 s", path, sb)
		}
		if dig(sb, "data", "grand_total", "text") != "10 mins" || dig(sb, "data", "categories", 0, "name") != "coding" {
			t.Fatalf("GET %s: %v", path, dig(sb, "data"))
		}
	}
}

// TestAllTimeStartsAtTheFirstHeartbeat: an import or an offline queue can
// bring heartbeats from long before the account existed; all_time counts
// from the earliest one stored, read afresh rather than from the key cache.
func TestAllTimeStartsAtTheFirstHeartbeat(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	carol, key := svc.CreateUser(t, "carol", "")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if time.Now().UTC().Hour() < 11 {
		today = today.AddDate(0, 0, -1)
	}
	code, at := get(t, svc, "/api/v1/users/current/all_time_since_today", key)
	if code != 200 || dig(at, "data", "total_seconds") != 0.0 || dig(at, "data", "range", "start_date") != time.Now().UTC().Format(time.DateOnly) {
		t.Fatalf("all_time before any heartbeat: %d %v", code, at)
	}
	long := today.AddDate(0, 0, -90)
	sendDay(t, svc, key, today)
	sendDay(t, svc, key, long)
	svc.WaitCount(t, 10, "SELECT count(*) FROM heartbeats WHERE user_id = $1", carol.ID)
	code, at = get(t, svc, "/api/v1/users/current/all_time_since_today", key)
	if code != 200 || dig(at, "data", "total_seconds") != 1320.0 || dig(at, "data", "range", "start_date") != long.Format(time.DateOnly) {
		t.Fatalf("all_time: %d %v", code, at)
	}
	code, st := get(t, svc, "/api/v1/users/current/stats/all_time", key)
	if code != 200 || dig(st, "data", "total_seconds") != 1320.0 {
		t.Fatalf("stats/all_time: %d %v", code, st)
	}
}

// dropToDayFiles closes day, waits for u's day file in SSDB and S3, marks
// the day's shard dropped and deletes u's rows from Postgres, so that
// reads of the day come from SSDB; evict then removes the SSDB copy, so
// that they come from S3.
func dropToDayFiles(t *testing.T, svc *heartlogtest.Service, u users.User, day time.Time) (evict func()) {
	t.Helper()
	stores := heartlogtest.OpenStores(t)
	ctx := context.Background()
	file := u.ObjectPrefix + "/" + u.ID + "/" + day.Format(time.DateOnly) + ".ndjson.gz"
	svc.CloseDay(t, day, &stores)
	if !heartlogtest.Eventually(30*time.Second, func() bool { // the day files are written
		cached, ok, err := stores.Cache.Get(ctx, file)
		stored, _, err2 := stores.Primary.Get(ctx, file)
		return err == nil && ok && len(cached) > 0 && err2 == nil && len(stored) > 0
	}) {
		t.Fatal("the day file never reached SSDB and S3")
	}
	kv, err := svc.JS.KeyValue(ctx, svc.Streams.ShardsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streams.PutShard(ctx, kv, day.Format("20060102"), streams.Shard{State: streams.ShardDropped, UpdatedAt: time.Now()}, 0); err != nil {
		t.Fatal(err)
	}
	for _, pool := range svc.DayPools() {
		if _, err := pool.Exec(ctx, "DELETE FROM heartbeats WHERE user_id = $1", u.ID); err != nil {
			t.Fatal(err) // make sure Postgres is not what answers
		}
	}
	return func() {
		if err := stores.Cache.Delete(ctx, file); err != nil {
			t.Fatal(err)
		}
	}
}
