package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"heartlog/internal/heartlogtest"
	heartlogv1 "heartlog/schema/gen/heartlog/v1"
	"heartlog/schema/gen/heartlog/v1/heartlogv1connect"
	"heartlog/users"
)

const (
	uaVim  = "wakatime/v1.90.0 (linux-6.1.0-amd64) go1.26.8 vim/9.1 vim-wakatime/11.2.0"
	uaCode = "wakatime/v1.90.0 (darwin-23.1.0-arm64) go1.26.8 vscode/1.90.0 vscode-wakatime/24.5.0"
)

// postAs sends heartbeats (local times in loc) of one project from one
// machine and user agent.
func postAs(t *testing.T, svc *heartlogtest.Service, key, project, machine, ua string, times ...time.Time) {
	t.Helper()
	var items []string
	for _, at := range times {
		items = append(items, fmt.Sprintf(`{"entity":"/src/%s.go","type":"file","time":%d,"project":%q,"language":"Go","category":"coding"}`, project, at.Unix(), project))
	}
	req, err := http.NewRequest(http.MethodPost, svc.URL+bulk, strings.NewReader("["+strings.Join(items, ",")+"]"))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(key, "")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", ua)
	req.Header.Set("X-Machine-Name", machine)
	if resp, b := svc.Do(t, req); resp.StatusCode != http.StatusCreated {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

// TestInsightReads: tess lives in UTC+10 (Australia/Brisbane, no DST).
// Her local day D (two days ago) has heartbeats on two UTC days:
//
//	08:00 08:05 08:10 P1 on "desk" with vim   (22:00..22:10Z on D-1): 600 s
//	12:00 12:05       P2 on "laptop" with VS Code (02:00..02:05Z on D): 300 s
//
// and D-2 has 10:00 10:01 P1 on "desk" (60 s). Bob, in UTC, codes on
// project BOB from "bobbox" on the same days; none of it may show up in
// tess's reads.
func TestInsightReads(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	ctx := context.Background()
	tess, key, err := svc.Users.Create(ctx, users.NewUser{Name: "tess", TimeZone: "Australia/Brisbane"})
	if err != nil {
		t.Fatal(err)
	}
	bob, bobKey := svc.CreateUser(t, "bob", "")
	loc, _ := time.LoadLocation("Australia/Brisbane")
	now := time.Now().In(loc)
	d := time.Date(now.Year(), now.Month(), now.Day()-2, 0, 0, 0, 0, loc)
	d2 := d.AddDate(0, 0, -2)
	at := func(day time.Time, h, m int) time.Time {
		return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	postAs(t, svc, key, "P1", "desk", uaVim, at(d2, 10, 0), at(d2, 10, 1), at(d, 8, 0), at(d, 8, 5), at(d, 8, 10))
	postAs(t, svc, key, "P2", "laptop", uaCode, at(d, 12, 0), at(d, 12, 5))
	postAs(t, svc, bobKey, "BOB", "bobbox", uaVim, at(d, 9, 0), at(d, 9, 10), at(d2, 9, 0), at(d2, 9, 10))
	svc.WaitCount(t, 7, "SELECT count(*) FROM heartbeats WHERE user_id = $1", tess.ID)
	svc.WaitCount(t, 4, "SELECT count(*) FROM heartbeats WHERE user_id = $1", bob.ID)
	if n := len(map[string]bool{at(d, 8, 0).UTC().Format(time.DateOnly): true, at(d, 12, 0).UTC().Format(time.DateOnly): true}); n != 2 {
		t.Fatalf("day D spans %d UTC days, want 2", n)
	}
	date, date2 := d.Format(time.DateOnly), d2.Format(time.DateOnly)

	t.Run("projects", func(t *testing.T) {
		code, body := get(t, svc, "/api/v1/users/current/projects", key)
		want := []map[string]any{
			{"name": "P2", "first_heartbeat_at": at(d, 12, 0), "last_heartbeat_at": at(d, 12, 5), "total_seconds": 300.0},
			{"name": "P1", "first_heartbeat_at": at(d2, 10, 0), "last_heartbeat_at": at(d, 8, 10), "total_seconds": 660.0},
		}
		checkList(t, code, body, want)
		code, body = get(t, svc, "/api/compat/wakatime/v1/users/current/projects", bobKey)
		checkList(t, code, body, []map[string]any{{"name": "BOB", "total_seconds": 1200.0}})
	})
	t.Run("machine_names and user_agents", func(t *testing.T) {
		code, body := get(t, svc, "/api/v1/users/current/machine_names", key)
		checkList(t, code, body, []map[string]any{
			{"value": "laptop", "name": "laptop", "last_seen_at": at(d, 12, 5), "first_seen_at": at(d, 12, 0)},
			{"value": "desk", "last_seen_at": at(d, 8, 10), "first_seen_at": at(d2, 10, 0)},
		})
		code, body = get(t, svc, "/api/compat/wakatime/v1/users/current/user_agents", key)
		checkList(t, code, body, []map[string]any{
			{"value": uaCode, "editor": "VS Code", "os": "Mac", "last_seen_at": at(d, 12, 5)},
			{"value": uaVim, "editor": "Vim", "os": "Linux", "last_seen_at": at(d, 8, 10), "first_seen_at": at(d2, 10, 0)},
		})
	})
	t.Run("insights in the user's time zone", func(t *testing.T) {
		code, body := get(t, svc, "/api/v1/users/current/insights/best_day/last_7_days", key)
		if code != 200 || dig(body, "data", "best_day", "date") != date || dig(body, "data", "best_day", "total_seconds") != 900.0 {
			t.Fatalf("best_day: %d %v", code, body)
		}
		code, body = get(t, svc, "/api/v1/users/current/insights/daily_average/last_7_days", key)
		if avg, _ := dig(body, "data", "daily_average", "seconds").(float64); code != 200 || math.Abs(avg-960.0/7) > 1e-6 {
			t.Fatalf("daily_average: %d %v", code, body)
		}
		code, body = get(t, svc, "/api/v1/users/current/insights/hours/last_7_days", key)
		hours := map[float64]float64{}
		for _, h := range dig(body, "data", "hours").([]any) {
			if s := dig(h, "total_seconds").(float64); s != 0 {
				hours[dig(h, "hour").(float64)] = s
			}
		}
		if code != 200 || len(hours) != 3 || hours[8] != 600 || hours[12] != 300 || hours[10] != 60 {
			t.Fatalf("hours: %d %v", code, hours)
		}
		code, body = get(t, svc, "/api/v1/users/current/insights/weekday/last_7_days", key)
		days := map[string]float64{}
		for _, w := range dig(body, "data", "weekdays").([]any) {
			days[dig(w, "name").(string)] = dig(w, "total_seconds").(float64)
		}
		if code != 200 || len(days) != 7 || days[d.Weekday().String()] != 900 || days[d2.Weekday().String()] != 60 {
			t.Fatalf("weekdays: %d %v", code, days)
		}
		// The same heartbeats in UTC: D's morning falls on the day before.
		code, body = get(t, svc, "/api/v1/users/current/insights/best_day/last_7_days?timezone=UTC", key)
		if code != 200 || dig(body, "data", "best_day", "total_seconds") != 600.0 {
			t.Fatalf("best_day in UTC: %d %v", code, body)
		}
		code, body = get(t, svc, "/api/v1/users/current/insights/colors/last_7_days", key)
		if code != 404 {
			t.Fatalf("unknown insight: %d %v", code, body)
		}
		code, body = get(t, svc, "/api/v1/users/current/insights/hours/last_2_days", key)
		if code != 400 {
			t.Fatalf("unknown range: %d %v", code, body)
		}
	})
	t.Run("heat map", func(t *testing.T) {
		code, body := get(t, svc, "/api/v1/users/current/heatmap", key)
		list, _ := dig(body, "data").([]any)
		if code != 200 || len(list) != 365 || dig(list, 364, "date") != now.Format(time.DateOnly) {
			t.Fatalf("heat map: %d, %d days, last %v", code, len(list), dig(list, 364))
		}
		got := map[string]float64{}
		for _, e := range list {
			if s := dig(e, "total_seconds").(float64); s != 0 {
				got[dig(e, "date").(string)] = s
			}
		}
		if len(got) != 2 || got[date] != 900 || got[date2] != 60 {
			t.Fatalf("heat map days with time: %v", got)
		}
	})
	t.Run("another user's id is refused", func(t *testing.T) {
		for _, path := range []string{"projects", "user_agents", "machine_names", "heatmap", "insights/hours/last_7_days"} {
			if code, _ := get(t, svc, "/api/v1/users/"+tess.ID+"/"+path, bobKey); code != http.StatusForbidden {
				t.Errorf("bob reading tess's %s: %d, want 403", path, code)
			}
		}
	})
	t.Run("connect", func(t *testing.T) {
		client := heartlogv1connect.NewStatsServiceClient(h2cClient(), svc.URL, connect.WithGRPC())
		auth := func(r interface{ Header() http.Header }) { r.Header().Set("Authorization", "Bearer "+key) }
		preq := connect.NewRequest(&heartlogv1.GetProjectsRequest{})
		auth(preq)
		p, err := client.GetProjects(ctx, preq)
		if err != nil || len(p.Msg.Projects) != 2 || p.Msg.Projects[1].Name != "P1" || p.Msg.Projects[1].Total.TotalSeconds != 660 ||
			p.Msg.Projects[1].FirstHeartbeatAt != float64(at(d2, 10, 0).Unix()) {
			t.Fatalf("projects: %v %v", p, err)
		}
		mreq := connect.NewRequest(&heartlogv1.GetMachineNamesRequest{})
		auth(mreq)
		m, err := client.GetMachineNames(ctx, mreq)
		if err != nil || len(m.Msg.Seen) != 2 || m.Msg.Seen[0].Value != "laptop" || m.Msg.Seen[0].LastSeenAt != float64(at(d, 12, 5).Unix()) {
			t.Fatalf("machine names: %v %v", m, err)
		}
		ureq := connect.NewRequest(&heartlogv1.GetUserAgentsRequest{})
		auth(ureq)
		ua, err := client.GetUserAgents(ctx, ureq)
		if err != nil || len(ua.Msg.Seen) != 2 || ua.Msg.Seen[1].Value != uaVim {
			t.Fatalf("user agents: %v %v", ua, err)
		}
		ireq := connect.NewRequest(&heartlogv1.GetInsightsRequest{Range: "last_7_days"})
		auth(ireq)
		in, err := client.GetInsights(ctx, ireq)
		if err != nil || in.Msg.BestDay.Date != date || in.Msg.BestDay.Total.TotalSeconds != 900 || len(in.Msg.Hours) != 24 ||
			in.Msg.Hours[8].TotalSeconds != 600 || len(in.Msg.Weekdays) != 7 || in.Msg.Weekdays[0].Name != "Monday" {
			t.Fatalf("insights: %v %v", in, err)
		}
		hreq := connect.NewRequest(&heartlogv1.GetHeatMapRequest{End: date})
		auth(hreq)
		hm, err := client.GetHeatMap(ctx, hreq)
		if err != nil || len(hm.Msg.Days) != 365 || hm.Msg.Days[364].Date != date || hm.Msg.Days[364].Total.TotalSeconds != 900 ||
			hm.Msg.Days[362].Total.TotalSeconds != 60 {
			t.Fatalf("heat map: %v", err)
		}
		bad := connect.NewRequest(&heartlogv1.GetHeatMapRequest{End: "yesterday"})
		auth(bad)
		if _, err := client.GetHeatMap(ctx, bad); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("heat map ending %q: %v, want invalid_argument", "yesterday", err)
		}
		anon := connect.NewRequest(&heartlogv1.GetProjectsRequest{})
		if _, err := client.GetProjects(ctx, anon); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("no key: %v, want unauthenticated", err)
		}
	})
}

// checkList compares a {"data": [...]} answer with want, field by field
// (times as instants).
func checkList(t *testing.T, code int, body map[string]any, want []map[string]any) {
	t.Helper()
	list, _ := dig(body, "data").([]any)
	if code != 200 || len(list) != len(want) {
		b, _ := json.Marshal(body)
		t.Fatalf("%d %s: want %d entries", code, b, len(want))
	}
	for i, w := range want {
		for k, v := range w {
			got := dig(list, i, k)
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC().Format(time.RFC3339)
			}
			if got != v {
				t.Errorf("entry %d: %s = %v, want %v", i, k, got, v)
			}
		}
	}
}

// TestListsFromDayFiles: the lists and the heat map read a day the same
// way once it has left Postgres, from SSDB and then from S3. User agents
// need whole heartbeats, the others the day's digest.
func TestListsFromDayFiles(t *testing.T) {
	svc := heartlogtest.Start(t, heartlogtest.Options{})
	svc.StartDayFiles(t, heartlogtest.DayFileOptions{})
	alice, key := svc.CreateUser(t, "alice", "")
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	at := func(m int) time.Time { return day.Add(10*time.Hour + time.Duration(m)*time.Minute) }
	postAs(t, svc, key, "P1", "desk", uaVim, at(0), at(5))
	postAs(t, svc, key, "P2", "laptop", uaCode, at(7))
	svc.WaitCount(t, 3, "SELECT count(*) FROM heartbeats WHERE user_id = $1", alice.ID)
	check := func(store string) bool {
		code, p := get(t, svc, "/api/v1/users/current/projects", key)
		_, m := get(t, svc, "/api/v1/users/current/machine_names", key)
		_, ua := get(t, svc, "/api/v1/users/current/user_agents", key)
		_, hm := get(t, svc, "/api/v1/users/current/heatmap", key)
		ok := code == 200 && dig(p, "data", 0, "name") == "P2" && dig(p, "data", 1, "total_seconds") == 420.0 &&
			dig(p, "data", 1, "first_heartbeat_at") == at(0).Format(time.RFC3339) &&
			dig(m, "data", 0, "value") == "laptop" && dig(m, "data", 1, "last_seen_at") == at(5).Format(time.RFC3339) &&
			dig(ua, "data", 0, "value") == uaCode && dig(ua, "data", 1, "value") == uaVim && dig(ua, "data", 2) == nil &&
			dig(hm, "data", 363, "date") == day.Format(time.DateOnly) && dig(hm, "data", 363, "total_seconds") == 420.0
		if !ok {
			t.Logf("%s: projects %v machines %v agents %v heat map day %v", store, p, m, ua, dig(hm, "data", 363))
		}
		return ok
	}
	if !check("Postgres") {
		t.Fatal("hot day read wrong")
	}
	evict := dropToDayFiles(t, svc, alice, day)
	if !heartlogtest.Eventually(10*time.Second, func() bool { return check("SSDB") }) {
		t.Fatal("warm day (SSDB) read wrong")
	}
	evict()
	if !check("S3") {
		t.Fatal("cold day (S3) read wrong")
	}
}
